#!/usr/bin/env python3
"""tests/e2e/hostile/hostile.py — the syscalls of tests/e2e/t_hostile.sh.

  hostile.py probe  MOUNT SEED REPORT            every hostile operation once, in order,
                                                 each with the exact errnos it may give and
                                                 what it may change
  hostile.py storm  MOUNT SEED NPROC NOPS REPORT NPROC processes doing NOPS hostile
                                                 operations each at once, and a reader
  hostile.py numbers MOUNT REPORT                plans with numbers at the engine's limits
  hostile.py verify MOUNT REPORT...              the state holds exactly what was acknowledged
  hostile.py table REPORT...                     the outcomes per operation
  hostile.py states MOUNT                        RUN STATE for every run

Every operation is one syscall (os.open/os.write/os.pwrite/os.ftruncate/...);
its outcome is "ok" or the errno's name, and each operation has the set of
outcomes it may have. Anything else (EIO, ENOTCONN, ENOSYS, a hang...) is
reported as "BAD ..." and makes the command exit 1. A REPORT (JSON) keeps the
table of outcomes, what was acknowledged (tags of messages and events,
accepted plan submissions) and what was refused, for verify.

The shell test sets the scene first (the names below): sandboxes hb (made by
mkdir) and hn (isolation none, made by plan hnset), runs base-1 (finished, in
hn) and slow-1 (a long sleep in its own sandbox slow-1), plans/bad.error.
"""
import collections
import ctypes
import errno
import json
import os
import random
import re
import signal
import sys
import time

sys.setrecursionlimit(20000)   # json.loads of deeply nested (recorded) values

SANDBOXES = ["hb", "hn", "slow-1"]
RUNS = ["base-1", "slow-1"]
PLAN_OK = b'{"sandbox": {"id": "hn"}, "steps": [{"id": "a", "command": "true"}]}\n'
UNI = "h\u00e9llo \u2603 \U0001d11e \u202e\u200b \"q\" \\ \t"
MIB = 1 << 20
PLAN_MAX = 16 * MIB

# outcome sets shared by several operations
TRUNC_NOOP = {"ok", "EINVAL", "EPERM", "EROFS", "EACCES"}   # truncating what only takes appends or commands
RO = {"EROFS", "EACCES"}                                    # writing a read-only file
ATTR_RO = {"EROFS", "EPERM", "EACCES"}                      # chmod/chown/utime of a generated file
NO_NODE = {"EPERM", "EACCES"}                               # symlink/link/mknod where orchfs makes none
POS_APPEND = {"ok", "ESPIPE", "EINVAL"}                     # pwrite at an offset to an append-only file
CTL_POS = {"ESPIPE", "EINVAL"}                              # pwrite at an offset to a ctl file
XATTR = {"EOPNOTSUPP", "ENODATA", "EPERM", "EACCES", "EROFS"}
LONG_NAME = {"ENAMETOOLONG"}


def ename(e):
    if e == errno.EOPNOTSUPP:
        return "EOPNOTSUPP"   # the same number as ENOTSUP on Linux
    return errno.errorcode.get(e, str(e))


_libc = ctypes.CDLL(None, use_errno=True)


def renameat2(a, b, flags):
    if _libc.renameat2(-100, os.fsencode(a), -100, os.fsencode(b), ctypes.c_uint(flags)) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def fallocate(fd, length):
    if _libc.fallocate(fd, 0, ctypes.c_long(0), ctypes.c_long(length)) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


class Ctx:
    """The outcome table and the acknowledged/refused bookkeeping of one process."""

    def __init__(self, mount, who):
        self.m = mount
        self.who = who
        self.rows = collections.defaultdict(collections.Counter)
        self.bad = []
        self.acked = {"msg": [], "ev": []}
        self.refused = {"msg": [], "ev": []}
        self.accepted = collections.Counter()   # plan name -> accepted submissions
        # plan name -> closes of a shared file after writes that returned 0: each
        # submitted, unless another handle's close had submitted what it wrote
        self.shared_ok = collections.Counter()
        self.refused_names = set()              # plan names some submission of which was refused
        self.ntag = 0
        signal.signal(signal.SIGALRM, _alarm)

    def p(self, rel):
        return os.path.join(self.m, rel)

    def tag(self):
        self.ntag += 1
        return "%s.%d" % (self.who, self.ntag)

    def call(self, fn, *args):
        """Run one syscall: ("ok", value) or (errno name, None); a hang of 20 s is BAD."""
        signal.alarm(20)
        try:
            return "ok", fn(*args)
        except OSError as e:
            return ename(e.errno), None
        except Hang:
            return "HANG(20s)", None
        finally:
            signal.alarm(0)

    def check(self, op, res, expected, detail=""):
        self.rows[op][res] += 1
        if res not in expected:
            self.bad.append("%s: got %s, expected %s%s" % (op, res, "|".join(sorted(expected)),
                                                          " (%s)" % detail if detail else ""))
        return res

    def problem(self, what):
        self.bad.append(what)

    def do(self, op, expected, fn, *args, detail=""):
        res, val = self.call(fn, *args)
        self.check(op, res, expected, detail)
        return res, val

    def report(self):
        return {"who": self.who, "rows": {k: dict(v) for k, v in self.rows.items()}, "bad": self.bad,
                "acked": self.acked, "refused": self.refused, "accepted": dict(self.accepted),
                "shared_ok": dict(self.shared_ok), "refused_names": sorted(self.refused_names)}


# ---- payloads --------------------------------------------------------------

def msg_line(tag, kind=0):
    """A valid messages line carrying TAG (plain text or a typed JSON object)."""
    content = "hx:%s %s" % (tag, UNI)
    if kind == 0:
        return content.replace("\t", " ").encode() + b"\n"
    t = ["user_message", "interrupt", "guardian_intervention"][kind % 3]
    return json.dumps({"content": content, "message_type": t}, ensure_ascii=kind % 2 == 0).encode() + b"\n"


def ev_line(tag, kind=0):
    """A valid events line carrying TAG."""
    ev = {"event_type": "hostile.t%d" % kind, "event_data": {"hx": tag, "s": UNI, "n": [1, 2.5, None, True]}}
    if kind % 2:
        ev["source"] = "hx \u2603"
    return json.dumps(ev, ensure_ascii=kind % 3 == 0).encode() + b"\n"


def exact_line(kind, tag, size):
    """A valid line of SIZE bytes (without its newline) carrying TAG."""
    if kind == "msg":
        head = ("hx:%s " % tag).encode()
        return head + b"a" * (size - len(head)) + b"\n"
    head = ('{"event_type": "hostile.big", "event_data": {"hx": "%s", "pad": "' % tag).encode()
    tail = b'"}}'
    return head + b"b" * (size - len(head) - len(tail)) + tail + b"\n"


def invalid_lines(kind):
    """Lines the spec says make a write to messages (msg) or events (ev) fail with EINVAL."""
    common = [b"caf\xc3 \xff\xfe\xc0\xaf bad utf-8\n", b"ab\x00cd nul\n", b"\xed\xa0\x80 surrogate\n",
              b"\xf4\x90\x80\x80 above U+10FFFF\n"]
    if kind == "msg":
        return common + [b'{"content": "x",\n', b'{"content": "x", "message_type": "shout"}\n',
                         b'{"content": "x", "extra": 1}\n', b'{"content": 5}\n', b'{"content": "x"} tail\n',
                         b'{"content": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", b"{}\n", b'{"content": null}\n',
                         b'{"message_type": "interrupt"}\n', b'{"content": "x", "message_type": ""}\n']
    return common + [b"not json\n", b"[1, 2]\n", b'"str"\n', b"{}\n", b'{"event_type": 5}\n',
                     b'{"event_type": "x", "extra": 1}\n', b'{"event_type": "x", "event_data": [1]}\n',
                     b'{"event_type": "x", "source": 7}\n', b'{"event_type": "run.succeeded"}\n',
                     b'{"event_type": "message.queued"}\n', b'{"event_type": "sandbox.deleted"}\n',
                     b'{"event_type": "step.failed", "event_data": {"run_id": "base-1"}}\n',
                     b'{"event_type": ""}\n', b'{"event_type": "x",\n', b'{"event_type": "x", "event_data": null}\n']


def odd_lines(kind):
    """Lines the spec leaves open (escaped NULs, lone surrogates, huge numbers,
    deep nesting): refused or recorded, either is fine, but what is recorded
    must read back as JSON."""
    if kind == "msg":
        return [b'{"content": "a\\u0000b"}\n', b'{"content": "\\ud800"}\n', b'{"content": "\\udc00\\ud800x"}\n',
                b'{"content": "x", "content": "y"}\n']
    return [b'{"event_type": "x\\u0000"}\n', b'{"event_type": "x", "event_data": {"n": 1e999}}\n',
            b'{"event_type": "x", "event_data": {"n": 123456789012345678901234567890}}\n',
            b'{"event_type": "x", "event_data": {"n": -0.0, "m": 5e-324, "k": 1.7976931348623157e308}}\n',
            b'{"event_type": "x", "event_data": {"\\u0000": "\\ud800"}}\n',
            b'{"event_type": "x", "event_data": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3000 + b"}\n",
            b'{"event_type": "x", "event_data": {"a": ' + b"[" * 300 + b"]" * 300 + b"}}\n",
            b'{"event_type": "x", "event_type": "y"}\n']


def rand_bytes(rng, n):
    """N random bytes that are certainly not valid UTF-8 and hold a newline."""
    b = bytearray(rng.getrandbits(8) for _ in range(n))
    b[rng.randrange(n)] = 0xFF
    b[-1] = 0x0A
    return bytes(b)


# ---- messages and events ---------------------------------------------------

def lines_unit(ctx, rng, kind, sb, pay):
    """One hostile use of sandboxes/SB/messages or /events. KIND: msg or ev."""
    path = ctx.p("sandboxes/%s/%s" % (sb, "messages" if kind == "msg" else "events"))
    T = "sandboxes/ID/%s" % ("messages" if kind == "msg" else "events")
    mk = msg_line if kind == "msg" else ev_line

    def opened(flags=os.O_WRONLY | os.O_APPEND, what="open(O_WRONLY|O_APPEND)"):
        res, fd = ctx.do("%s: %s" % (T, what), {"ok"}, os.open, path, flags)
        return fd if res == "ok" else None

    def close(fd, op, expected):
        return ctx.do("%s: close after %s" % (T, op), expected, os.close, fd)[0]

    def write(fd, data, op, expected, tags):
        res = ctx.do("%s: write(%s)" % (T, op), expected, os.write, fd, data)[0]
        (ctx.acked if res == "ok" else ctx.refused)[kind].extend(tags)
        return res

    if pay == "valid":
        tags = [ctx.tag() for _ in range(rng.randint(1, 6))]
        data = b"".join(mk(t, rng.randrange(6)) for t in tags)
        if kind == "msg" and rng.random() < 0.5:
            data = b"\n" + data.replace(b"\n", b"\n\n", 1)   # empty lines are ignored
        fd = opened()
        if fd is not None:
            write(fd, data, "%d valid lines" % len(tags), {"ok"}, tags)
            close(fd, "valid lines", {"ok"})
    elif pay == "mixed":
        tags = [ctx.tag() for _ in range(rng.randint(1, 4))]
        bad = rng.choice(invalid_lines(kind))
        data = b"".join(mk(t, rng.randrange(6)) for t in tags)
        cut = rng.randrange(len(tags) + 1)
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[:cut]) + bad + b"".join(lines[cut:])
        fd = opened()
        if fd is not None:
            write(fd, data, "valid lines and an invalid one", {"EINVAL"}, tags)
            close(fd, "a refused write", {"ok"})
    elif pay in ("random", "bad-utf8", "nul", "1MiB"):
        data = {"random": lambda: rand_bytes(rng, rng.randint(16, 8192)),
                "bad-utf8": lambda: b"caf\xc3 \xff\xfe\xc0\xaf\n",
                "nul": lambda: b"ab\x00cd\n",
                "1MiB": lambda: b"a" * MIB + b"\n"}[pay]()
        fd = opened()
        if fd is not None:
            write(fd, data, {"random": "random bytes", "1MiB": "a 1 MiB line"}.get(pay, pay), {"EINVAL"}, [])
            close(fd, "a refused write", {"ok"})
    elif pay == "odd":
        line = rng.choice(odd_lines(kind))
        fd = opened()
        if fd is not None:
            ctx.do("%s: write(a line the spec leaves open)" % T, {"ok", "EINVAL"}, os.write, fd, line, detail=repr(line[:50]))
            close(fd, "a line the spec leaves open", {"ok"})
    elif pay in ("64KiB", "64KiB+1"):
        t = ctx.tag()
        n = 65536 if pay == "64KiB" else 65537
        fd = opened()
        if fd is not None:
            write(fd, exact_line(kind, t, n), "a line of %d bytes" % n, {"ok"} if n == 65536 else {"EINVAL"}, [t])
            close(fd, "a line of %d bytes" % n, {"ok"})
    elif pay in ("half", "half+rest"):
        t = ctx.tag()
        line = mk(t, 1)
        cut = rng.randint(1, len(line) - 2)
        fd = opened()
        if fd is not None:
            res = ctx.do("%s: write(half a JSON line)" % T, {"ok"}, os.write, fd, line[:cut])[0]
            if pay == "half":
                if close(fd, "half a JSON line", {"EINVAL"}) == "ok" or res != "ok":
                    ctx.acked[kind].append(t)   # recorded (wrongly): must be there
                else:
                    ctx.refused[kind].append(t)
            else:
                write(fd, line[cut:], "the rest of the line", {"ok"}, [t])
                close(fd, "a completed line", {"ok"})
    elif pay == "dribble":
        tags = [ctx.tag() for _ in range(rng.randint(1, 3))]
        data = b"".join(mk(t, rng.randrange(6)) for t in tags)
        last = ctx.tag()
        data += mk(last, 0).rstrip(b"\n")       # an unterminated last line: recorded at close
        fd = opened()
        if fd is not None:
            ok = True
            for i in range(len(data)):
                res = ctx.call(os.write, fd, data[i:i + 1])[0]
                ok = ok and res == "ok"
                if res != "ok":
                    ctx.check("%s: write(one byte at a time)" % T, res, {"ok"})
                    break
            if ok:
                ctx.rows["%s: write(one byte at a time)" % T]["ok"] += len(data)
            (ctx.acked if ok else ctx.refused)[kind].extend(tags)
            res = close(fd, "one-byte writes and an unterminated valid line", {"ok"})
            (ctx.acked if res == "ok" and ok else ctx.refused)[kind].append(last)
    elif pay in ("pwrite7", "pwrite1<<40", "pwrite-1"):
        t = ctx.tag()
        off = {"pwrite7": 7, "pwrite1<<40": 1 << 40, "pwrite-1": -1}[pay]
        fd = opened(os.O_WRONLY, "open(O_WRONLY)")
        if fd is not None:
            res = ctx.do("%s: pwrite(valid line, offset %s)" % (T, pay[6:]), POS_APPEND if off >= 0 else {"EINVAL"},
                         os.pwrite, fd, mk(t, 2), off)[0]
            (ctx.acked if res == "ok" else ctx.refused)[kind].append(t)
            close(fd, "pwrite", {"ok"})
    elif pay in ("ftruncate0", "ftruncate1G"):
        fd = opened(os.O_WRONLY, "open(O_WRONLY)")
        if fd is not None:
            ctx.do("%s: ftruncate(%s)" % (T, pay[9:]), TRUNC_NOOP, os.ftruncate, fd, 0 if pay == "ftruncate0" else 1 << 30)
            close(fd, "ftruncate", {"ok"})
    elif pay in ("truncate0", "truncate1G"):
        ctx.do("%s: truncate(path, %s)" % (T, pay[8:]), TRUNC_NOOP, os.truncate, path, 0 if pay == "truncate0" else 1 << 30)
    elif pay == "O_TRUNC":
        t = ctx.tag()
        fd = opened(os.O_WRONLY | os.O_TRUNC | os.O_CREAT, "open(O_WRONLY|O_TRUNC|O_CREAT)")
        if fd is not None:
            write(fd, mk(t, 3), "a valid line after O_TRUNC", {"ok"}, [t])
            close(fd, "O_TRUNC", {"ok"})
    else:
        raise ValueError(pay)


LINE_PAYLOADS = ["valid", "odd", "mixed", "random", "bad-utf8", "nul", "1MiB", "64KiB", "64KiB+1", "half", "half+rest",
                 "dribble", "pwrite7", "pwrite1<<40", "pwrite-1", "ftruncate0", "ftruncate1G", "truncate0",
                 "truncate1G", "O_TRUNC"]
LINE_WEIGHTS = [14, 2, 10, 6, 3, 3, 0.4, 2, 2, 4, 4, 2, 2, 2, 1, 1, 1, 1, 1, 2]


# ---- ctl files ---------------------------------------------------------------

def ctl_unit(ctx, rng, path, T, pay):
    """One hostile write to a ctl file (never a valid command)."""
    def opened(flags=os.O_WRONLY, what="open(O_WRONLY)"):
        res, fd = ctx.do("%s: %s" % (T, what), {"ok"}, os.open, path, flags)
        return fd if res == "ok" else None

    if pay in ("pwrite7", "pwrite1<<40", "pwrite-1"):
        off = {"pwrite7": 7, "pwrite1<<40": 1 << 40, "pwrite-1": -1}[pay]
        fd = opened()
        if fd is not None:
            ctx.do("%s: pwrite(offset %s)" % (T, pay[6:]), CTL_POS if off >= 0 else {"EINVAL"}, os.pwrite, fd, b"xyzzy\n", off)
            ctx.do("%s: close" % T, {"ok"}, os.close, fd)
        return
    if pay in ("ftruncate0", "ftruncate1G"):
        fd = opened()
        if fd is not None:
            ctx.do("%s: ftruncate(%s)" % (T, pay[9:]), TRUNC_NOOP, os.ftruncate, fd, 0 if pay == "ftruncate0" else 1 << 30)
            ctx.do("%s: close" % T, {"ok"}, os.close, fd)
        return
    if pay in ("truncate0", "truncate1G"):
        ctx.do("%s: truncate(path, %s)" % (T, pay[8:]), TRUNC_NOOP, os.truncate, path, 0 if pay == "truncate0" else 1 << 30)
        return
    if pay == "O_TRUNC":
        fd = opened(os.O_WRONLY | os.O_TRUNC, "open(O_WRONLY|O_TRUNC)")
        if fd is not None:
            ctx.do("%s: close" % T, {"ok"}, os.close, fd)
        return
    if pay == "dribble":
        fd = opened(os.O_WRONLY | os.O_APPEND, "open(O_WRONLY|O_APPEND)")
        if fd is not None:
            for b in b"xyzzy\xff\x00{":
                ctx.do("%s: write(one byte)" % T, {"EINVAL"}, os.write, fd, bytes([b]))
            ctx.do("%s: close" % T, {"ok"}, os.close, fd)
        return
    chunks = {"random": lambda: [rand_bytes(rng, rng.randint(16, 4096))],
              "bad-utf8": lambda: [b"canc\xff\xfel\n"],
              "nul": lambda: [b"cancel\x00\n"],
              "1MiB": lambda: [b"c" * MIB + b"\n"],
              "64KiB": lambda: [b"p" * 65536 + b"\n"],
              "64KiB+1": lambda: [b"p" * 65537 + b"\n"],
              "half": lambda: [b'{"command": "can'],
              "half+rest": lambda: [b'{"command": "can', b'cel"}\n'],
              "garbage": lambda: [rng.choice([b"bogus\n", b"cancelled\n", b"pause pause\n", b"\tretryx\n",
                                              b"re\nsume\n", b"delete\x00\n", b"stop it now\n", b"../../reset\n",
                                              b"\xef\xbb\xbfcancel-\n", UNI.encode() + b"\n"])]}[pay]()
    fd = opened(os.O_WRONLY | os.O_APPEND, "open(O_WRONLY|O_APPEND)")
    if fd is None:
        return
    for c in chunks:
        ctx.do("%s: write(%s)" % (T, {"random": "random bytes", "1MiB": "a 1 MiB line", "64KiB": "a line of 65536 bytes",
                                       "64KiB+1": "a line of 65537 bytes", "half": "half a JSON object",
                                       "half+rest": "half a JSON object, then the rest",
                                       "garbage": "an unknown command"}.get(pay, pay)),
               {"EINVAL"}, os.write, fd, c)
    ctx.do("%s: close" % T, {"ok"}, os.close, fd)


CTL_PAYLOADS = ["random", "bad-utf8", "nul", "1MiB", "64KiB", "64KiB+1", "half", "half+rest", "garbage", "dribble",
                "pwrite7", "pwrite1<<40", "pwrite-1", "ftruncate0", "ftruncate1G", "truncate0", "truncate1G", "O_TRUNC"]
CTL_WEIGHTS = [8, 3, 3, 0.4, 1, 1, 3, 3, 8, 2, 2, 2, 1, 1, 1, 1, 1, 2]


# ---- plans -----------------------------------------------------------------

def plan_text(rng, pay):
    """(chunks, valid): the bytes of a plan file written in CHUNKS; VALID if it is a valid plan."""
    if pay == "valid":
        return [PLAN_OK], True
    if pay == "random":
        return [rand_bytes(rng, rng.randint(16, 8192))], False
    if pay == "bad-utf8":
        return [PLAN_OK.replace(b'"true"', b'"tr\xff\xfeue"')], False
    if pay == "nul":
        return [PLAN_OK.replace(b'"a"', b'"a\x00"')], False
    if pay == "nul-escape":
        return [PLAN_OK.replace(b'"true"', b'"tr\\u0000ue"')], False
    if pay == "1MiB-garbage":
        return [b"{" * MIB + b"\n"], False
    if pay == "1MiB-valid":
        return [PLAN_OK[:-2] + b', "metadata": {"x": "' + b"m" * MIB + b'"}}\n'], True
    if pay in ("64KiB", "64KiB+1"):
        n = 65536 if pay == "64KiB" else 65537
        head = PLAN_OK[:-2] + b', "metadata": {"x": "'
        return [head + b"m" * (n - len(head) - 3) + b'"}}\n'], True
    if pay == "half":
        return [PLAN_OK[:rng.randint(1, len(PLAN_OK) - 3)]], False
    if pay == "half+rest":
        cut = rng.randint(1, len(PLAN_OK) - 2)
        return [PLAN_OK[:cut], PLAN_OK[cut:]], True
    if pay == "dribble":
        return [PLAN_OK[i:i + 1] for i in range(len(PLAN_OK))], True
    if pay == "bad-steps":
        ids = ["a/b", "..", "s" * 65, "", "\u00e9", "a b", "../../etc", "a\nb"]
        return [json.dumps({"sandbox": {"id": "hn"}, "steps": [{"id": rng.choice(ids), "command": "true"}]}).encode()], False
    if pay == "bad-sandbox":
        ids = ["..", "../x", "q" * 81, "h\u00e9", "a/b", "", "a b"]
        return [json.dumps({"sandbox": {"id": rng.choice(ids)}, "steps": [{"id": "a", "command": "true"}]}).encode()], False
    if pay == "deep":
        return [b'{"metadata": ' + b"[" * 100000 + b"]" * 100000 + b', "steps": []}'], False
    if pay == "deep300":
        # deeper than jq 1.6 reads (256): refused, or its run's plan.json must still read with jq
        return [PLAN_OK[:-2] + b', "metadata": {"x": ' + b"[" * 300 + b"]" * 300 + b'}}\n'], None
    raise ValueError(pay)


PLAN_PAYLOADS = ["valid", "random", "bad-utf8", "nul", "nul-escape", "1MiB-garbage", "1MiB-valid", "64KiB", "64KiB+1",
                 "half", "half+rest", "dribble", "bad-steps", "bad-sandbox", "deep", "deep300",
                 "pwrite7", "pwrite1<<40", "pwrite-1", "pwrite16MiB", "ftruncate0", "ftruncate1G", "truncate0",
                 "truncate1G", "O_TRUNC"]
PLAN_WEIGHTS = [1, 6, 2, 2, 2, 0.2, 0.2, 0.7, 0.7, 4, 1.5, 0.5, 3, 3, 0.5, 0.3, 2, 2, 1, 0.1, 1, 1, 1, 1, 1]


def plan_unit(ctx, rng, rel, T, pay, shared, stem):
    """One hostile write to plans/REL. T names it in the table. SHARED: other
    processes write it too (a close may then see their bytes). STEM: its plan
    name, or None for a plain file."""
    path = ctx.p(rel)
    close_any = {"ok", "EINVAL"}

    def submitted(res, wrote, valid):
        """Book a close after writes: an accepted or a refused submission."""
        if stem is None or not wrote:
            return
        if res == "ok" and shared:
            ctx.shared_ok[stem] += 1
        elif res == "ok":
            ctx.accepted[stem] += 1
        elif res == "EINVAL":
            ctx.refused_names.add(stem)

    if pay in ("truncate0", "truncate1G"):
        ctx.do("%s: truncate(path, %s)" % (T, pay[8:]), {"ok", "ENOENT"} if pay == "truncate0" else {"EFBIG", "ENOENT"},
               os.truncate, path, 0 if pay == "truncate0" else 1 << 30)
        return
    flags = os.O_WRONLY | os.O_CREAT
    what = "open(O_WRONLY|O_CREAT)"
    if pay in ("O_TRUNC",) or pay not in ("pwrite7", "pwrite1<<40", "pwrite-1", "pwrite16MiB", "ftruncate0", "ftruncate1G"):
        flags |= os.O_TRUNC
        what = "open(O_WRONLY|O_CREAT|O_TRUNC)"
    res, fd = ctx.do("%s: %s" % (T, what), {"ok"}, os.open, path, flags, 0o644)
    if res != "ok":
        return
    if pay == "O_TRUNC":
        res = ctx.do("%s: close after O_TRUNC and no write" % T, {"ok"}, os.close, fd)[0]
        return
    if pay in ("pwrite7", "pwrite1<<40", "pwrite-1", "pwrite16MiB"):
        off = {"pwrite7": 7, "pwrite1<<40": 1 << 40, "pwrite-1": -1, "pwrite16MiB": PLAN_MAX}[pay]
        exp = {"ok"} if off == 7 else {"EINVAL"} if off < 0 else {"EFBIG"}
        r = ctx.do("%s: pwrite(offset %s)" % (T, pay[6:]), exp, os.pwrite, fd, b"  x", off)[0]
        if off == 7 and stem and not shared and r == "ok":
            # the first 7 bytes are what was there (or NULs): not a plan
            exp_close = close_any
        else:
            exp_close = {"ok"} if r != "ok" or stem is None else close_any
        res = ctx.do("%s: close after pwrite(offset %s)" % (T, pay[6:]), exp_close, os.close, fd)[0]
        submitted(res, r == "ok", False)
        return
    if pay in ("ftruncate0", "ftruncate1G"):
        ctx.do("%s: ftruncate(%s)" % (T, pay[9:]), {"ok"} if pay == "ftruncate0" else {"EFBIG"},
               os.ftruncate, fd, 0 if pay == "ftruncate0" else 1 << 30)
        ctx.do("%s: close after ftruncate and no write" % T, {"ok"}, os.close, fd)
        return
    chunks, valid = plan_text(rng, pay)
    wrote = False
    ok = True
    for c in chunks:
        r = ctx.call(os.write, fd, c)[0]
        if r == "ok":
            wrote = True
        else:
            ok = False
            ctx.check("%s: write(%s)" % (T, pay), r, {"ok"})
            break
    ctx.rows["%s: write(%s)" % (T, "one byte at a time" if pay == "dribble" else pay)]["ok"] += len(chunks) if ok else 0
    if stem is None:
        exp = {"ok"}
    elif shared:
        exp = close_any
    else:
        exp = {"ok", "EINVAL"} if valid is None else {"ok"} if valid else {"EINVAL"}
    res = ctx.do("%s: close after write(%s)" % (T, "valid plan" if valid and pay == "valid" else pay), exp, os.close, fd)[0]
    submitted(res, wrote, valid)


# ---- the tree ----------------------------------------------------------------

RO_FILES = ["README", "metrics", "events", "runs/base-1/status", "runs/base-1/summary", "runs/base-1/plan.json",
            "runs/base-1/events", "runs/base-1/graph.dot", "runs/base-1/steps/a/status", "runs/base-1/steps/a/log",
            "runs/slow-1/status", "runs/slow-1/events", "sandboxes/hb/status", "sandboxes/hb/logs",
            "sandboxes/slow-1/status", "plans/bad.error"]


def ro_unit(ctx, rng, rel, op):
    path = ctx.p(rel)
    T = "read-only file"
    if op.startswith("open"):
        flags = {"open(O_WRONLY)": os.O_WRONLY, "open(O_RDWR)": os.O_RDWR,
                 "open(O_WRONLY|O_APPEND)": os.O_WRONLY | os.O_APPEND,
                 "open(O_WRONLY|O_TRUNC)": os.O_WRONLY | os.O_TRUNC,
                 "open(O_WRONLY|O_CREAT|O_TRUNC)": os.O_WRONLY | os.O_CREAT | os.O_TRUNC}[op]
        res, fd = ctx.do("%s: %s" % (T, op), RO, os.open, path, flags, detail=rel)
        if res == "ok":
            os.close(fd)
    elif op == "truncate(path, 0)":
        ctx.do("%s: %s" % (T, op), RO, os.truncate, path, 0, detail=rel)
    elif op == "chmod":
        ctx.do("%s: chmod" % T, ATTR_RO, os.chmod, path, 0o666, detail=rel)
    elif op == "chown":
        ctx.do("%s: chown" % T, ATTR_RO, os.chown, path, 1, 1, detail=rel)
    elif op == "utime":
        ctx.do("%s: utime" % T, ATTR_RO, os.utime, path, (0, 0), detail=rel)
    elif op == "unlink":
        ctx.do("%s: unlink" % T, {"EACCES", "EPERM", "EROFS"}, os.unlink, path, detail=rel)
    elif op == "setxattr":
        ctx.do("%s: setxattr" % T, XATTR, os.setxattr, path, "user.hx", b"1", detail=rel)
    elif op == "read":
        # a read-only file still reads
        res, fd = ctx.do("read-only file: open(O_RDONLY)", {"ok"}, os.open, path, os.O_RDONLY, detail=rel)
        if res == "ok":
            ctx.do("read-only file: read", {"ok"}, os.read, fd, 1 << 16, detail=rel)
            os.close(fd)
    else:
        raise ValueError(op)


RO_OPS = ["open(O_WRONLY)", "open(O_RDWR)", "open(O_WRONLY|O_APPEND)", "open(O_WRONLY|O_TRUNC)",
          "open(O_WRONLY|O_CREAT|O_TRUNC)", "truncate(path, 0)", "chmod", "chown", "utime", "unlink", "setxattr", "read"]


def inbox_unit(ctx, rng, sb):
    path = ctx.p("sandboxes/%s/inbox" % sb)
    res, fd = ctx.do("sandboxes/ID/inbox: open(O_RDONLY)", {"ok"}, os.open, path, os.O_RDONLY)
    if res != "ok":
        return
    whole = rng.random() < 0.6
    data = b""
    while True:
        r, b = ctx.call(os.read, fd, 4096)
        ctx.check("sandboxes/ID/inbox: read", r, {"ok"})
        if r != "ok" or not b:
            break
        data += b
        if not whole:
            break
    for line in data.splitlines():
        if whole:
            try:
                json.loads(line)
            except ValueError:
                ctx.problem("inbox of %s: a line is not JSON: %r" % (sb, line[:200]))
    ctx.do("sandboxes/ID/inbox: close", {"ok"}, os.close, fd)


def tree_unit(ctx, rng, i):
    """Path tricks: nodes orchfs does not make, renames across directories, removals."""
    w = ctx.who
    op = rng.choice(["symlink", "link", "mknod", "mkfifo", "mkdir-plans", "mkdir-runs", "rename-xdev",
                     "rename-runs", "rmdir-top", "unlink-dir", "mkdir-sb-bad", "mkdir-rmdir-sb", "rmdir-busy",
                     "create-generated", "rename-generated"])
    if op == "symlink":
        d = rng.choice(["plans", "runs", "runs/base-1", "sandboxes/hb", ""])
        ctx.do("symlink in %s/" % (d or "the root"), NO_NODE, os.symlink, "/etc/passwd", ctx.p(os.path.join(d, "hx%s.json" % w)))
    elif op == "link":
        d = rng.choice(["plans", "runs"])
        ctx.do("link plans/base.json into %s/" % d, NO_NODE | {"ENOENT"}, os.link, ctx.p("plans/base.json"),
               ctx.p("%s/hx%s-%d.json" % (d, w, i)))
    elif op in ("mknod", "mkfifo"):
        d = rng.choice(["plans", "runs", "sandboxes"])
        fn = (lambda p: os.mknod(p, 0o644 | 0o100000)) if op == "mknod" else (lambda p: os.mkfifo(p))
        ctx.do("%s in %s/" % (op, d), NO_NODE, fn, ctx.p("%s/hx%s-%d.json" % (d, w, i)))
    elif op == "mkdir-plans":
        ctx.do("mkdir in plans/", NO_NODE, os.mkdir, ctx.p("plans/hx%s-%d" % (w, i)))
    elif op == "mkdir-runs":
        d = rng.choice(["runs", "runs/base-1", "runs/slow-1/steps", ""])
        ctx.do("mkdir in %s/" % (d or "the root"), NO_NODE, os.mkdir, ctx.p(os.path.join(d, "hx%s-%d" % (w, i))))
    elif op == "rename-xdev":
        src = ctx.p("plans/hx%s.tmp" % w)
        if not os.path.exists(src):
            open(src, "wb").close()
        dst = rng.choice(["runs/x", "sandboxes/hb/x", "x", "runs/base-1/x"])
        ctx.do("rename plans/F to %s" % dst, {"EXDEV"}, os.rename, src, ctx.p(dst))
        ctx.do("rename runs/ID to plans/", {"EXDEV"}, os.rename, ctx.p("runs/base-1"), ctx.p("plans/hx%s.x" % w))
    elif op == "rename-runs":
        ctx.do("rename runs/ID within runs/", {"EACCES", "EPERM"}, os.rename, ctx.p("runs/base-1"), ctx.p("runs/hx%s" % w))
        ctx.do("rename sandboxes/ID within sandboxes/", {"EACCES", "EPERM"}, os.rename, ctx.p("sandboxes/hb"),
               ctx.p("sandboxes/hx%s" % w))
    elif op == "rmdir-top":
        d = rng.choice(["plans", "runs", "sandboxes"])
        ctx.do("rmdir of %s/ itself" % d, {"EACCES", "EPERM", "EBUSY"}, os.rmdir, ctx.p(d))
    elif op == "unlink-dir":
        d = rng.choice(["plans", "runs", "sandboxes", "runs/base-1", "sandboxes/hb"])
        ctx.do("unlink of a directory", {"EISDIR", "EACCES", "EPERM"}, os.unlink, ctx.p(d))
    elif op == "mkdir-sb-bad":
        n = rng.choice(["a..b", "q" * 81, "h\u00e9llo", "a b", "a\nb", "a.b", "x/../y", "\u2603" * 20])
        ctx.do("mkdir sandboxes/(bad id)", {"EINVAL", "ENOENT"}, os.mkdir, ctx.p("sandboxes/" + n), detail=repr(n))
    elif op == "mkdir-rmdir-sb":
        n = "hx%s-%d" % (w, i)
        if ctx.do("mkdir sandboxes/ID", {"ok"}, os.mkdir, ctx.p("sandboxes/" + n))[0] == "ok":
            ctx.do("rmdir sandboxes/ID (idle)", {"ok"}, os.rmdir, ctx.p("sandboxes/" + n))
    elif op == "rmdir-busy":
        d = rng.choice(["runs/slow-1", "sandboxes/slow-1"])
        ctx.do("rmdir of an active run or its sandbox", {"EBUSY"}, os.rmdir, ctx.p(d), detail=d)
    elif op == "create-generated":
        n = rng.choice(["base.error", "base.run", "hx%s.error" % w, "hx%s.run" % w])
        res, fd = ctx.do("create plans/NAME.error or NAME.run", {"EACCES", "EISDIR"}, os.open, ctx.p("plans/" + n),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        if res == "ok":
            os.close(fd)
    elif op == "rename-generated":
        src = ctx.p("plans/hx%s.tmp" % w)
        if not os.path.exists(src):
            open(src, "wb").close()
        ctx.do("rename onto plans/NAME.error", {"EACCES"}, os.rename, src, ctx.p("plans/bad.error"))
        ctx.do("rename plans/NAME.error away", {"EACCES"}, os.rename, ctx.p("plans/bad.error"), ctx.p("plans/hx%s.e" % w))


# ---- probe: each operation once, with its effect checked -----------------------

def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def posted(ctx, sb):
    n = 0
    with open(ctx.p("sandboxes/%s/events" % sb), "rb") as f:
        for line in f:
            if b'"hostile.' in line:
                n += 1
    return n


def run_state(ctx, run):
    with open(ctx.p("runs/%s/status" % run)) as f:
        return json.load(f)["state"]


def readb(path):
    with open(path, "rb") as f:
        return f.read()


def probe(mount, seed, report):
    ctx = Ctx(mount, "p")
    rng = random.Random(seed)

    # messages and events: every payload, on every sandbox; a refusal changes nothing
    for kind in ("msg", "ev"):
        for sb in SANDBOXES:
            f = ctx.p("sandboxes/%s/%s" % (sb, "messages" if kind == "msg" else "events"))
            count = (lambda: count_lines(f)) if kind == "msg" else (lambda: posted(ctx, sb))
            for pay in LINE_PAYLOADS:
                if pay == "1MiB" and sb != "hb":
                    continue
                before_tags = len(ctx.acked[kind])
                n0 = count()
                lines_unit(ctx, rng, kind, sb, pay)
                want = n0 + len(ctx.acked[kind]) - before_tags
                n1 = count()
                if n1 != want:
                    ctx.problem("%s of %s after %s: %d lines, want %d" % (kind, sb, pay, n1, want))
            for bad in invalid_lines(kind):
                n0 = count()
                t = ctx.tag()
                data = (msg_line if kind == "msg" else ev_line)(t) + bad
                fd = os.open(f, os.O_WRONLY | os.O_APPEND)
                res = ctx.check("sandboxes/ID/%s: write(a valid line and an invalid one)" % ("messages" if kind == "msg" else "events"),
                                ctx.call(os.write, fd, data)[0], {"EINVAL"}, detail=repr(bad[:60]))
                (ctx.acked if res == "ok" else ctx.refused)[kind].append(t)
                os.close(fd)
                if count() != n0 + (res == "ok"):
                    ctx.problem("%s of %s: a refused write (%r) recorded something" % (kind, sb, bad[:60]))

            for odd in odd_lines(kind):
                n0 = count_lines(f)
                fd = os.open(f, os.O_WRONLY | os.O_APPEND)
                res = ctx.check("sandboxes/ID/%s: write(a line the spec leaves open)" % ("messages" if kind == "msg" else "events"),
                                ctx.call(os.write, fd, odd)[0], {"ok", "EINVAL"}, detail=repr(odd[:60]))
                os.close(fd)
                if kind == "msg" and count_lines(f) != n0 + (res == "ok"):
                    ctx.problem("messages of %s: %r: %s, yet %d lines were added" % (sb, odd[:60], res, count_lines(f) - n0))

    # many small writes: lines one byte at a time, through one handle
    for kind in ("msg", "ev"):
        f = ctx.p("sandboxes/hb/%s" % ("messages" if kind == "msg" else "events"))
        tags = [ctx.tag() for _ in range(200 if kind == "msg" else 120)]
        data = b"".join((msg_line if kind == "msg" else ev_line)(t, 0) for t in tags)
        fd = os.open(f, os.O_WRONLY | os.O_APPEND)
        results = collections.Counter(ctx.call(os.write, fd, data[i:i + 1])[0] for i in range(len(data)))
        for r, n in results.items():
            ctx.rows["sandboxes/ID/%s: write(one byte at a time)" % ("messages" if kind == "msg" else "events")][r] += n
            if r != "ok":
                ctx.problem("%d one-byte writes to %s failed with %s" % (n, f, r))
        ctx.do("sandboxes/ID/%s: close after one-byte writes" % ("messages" if kind == "msg" else "events"), {"ok"}, os.close, fd)
        (ctx.acked if set(results) == {"ok"} else ctx.refused)[kind].extend(tags)

    # ctl files: nothing hostile is a command, and none changes the run or the sandbox
    for path, T, what in [("runs/base-1/ctl", "runs/ID/ctl", "base-1"), ("runs/slow-1/ctl", "runs/ID/ctl", "slow-1"),
                          ("sandboxes/hb/ctl", "sandboxes/ID/ctl", "hb"), ("sandboxes/slow-1/ctl", "sandboxes/ID/ctl", "slow-1")]:
        for pay in CTL_PAYLOADS:
            ctl_unit(ctx, rng, ctx.p(path), T, pay)
    if run_state(ctx, "base-1") != "succeeded" or run_state(ctx, "slow-1") != "running":
        ctx.problem("hostile ctl writes changed a run: base-1 %s, slow-1 %s" % (run_state(ctx, "base-1"), run_state(ctx, "slow-1")))
    for sb, want in (("hb", "ready"), ("slow-1", "running")):
        with open(ctx.p("sandboxes/%s/status" % sb)) as f:
            got = json.load(f)["state"]
        if got != want:
            ctx.problem("hostile ctl writes changed sandbox %s: %s, want %s" % (sb, got, want))
    # near misses of real commands, on the finished run: each refused, nothing changes
    for c in [b"cancel\n", b"pause\n", b"resume\n", b"CANCEL\n", b"cancel now\n", b"cancelcancel\n", b" pause\n",
              b"retry\x00\n", b"retry\nretry\n", b"retry retry\n"]:
        fd = os.open(ctx.p("runs/base-1/ctl"), os.O_WRONLY | os.O_TRUNC)
        ctx.do("runs/ID/ctl: write(a command that does not apply, or a near miss)", {"EINVAL"}, os.write, fd, c, detail=repr(c))
        os.close(fd)
    if run_state(ctx, "base-1") != "succeeded" or not os.path.isdir(ctx.p("runs/base-1")):
        ctx.problem("a refused ctl command changed base-1")

    # plans: existing names (the run's own and a valid plan), new names, plain files
    base = readb(ctx.p("plans/base.json"))
    runs0 = set(os.listdir(ctx.p("runs")))
    for pay in PLAN_PAYLOADS:
        stem = "hxp%d" % PLAN_PAYLOADS.index(pay)
        plan_unit(ctx, rng, "plans/%s.json" % stem, "plans/NEW.json", pay, False, stem)
        plan_unit(ctx, rng, "plans/hxplain.txt", "plans/PLAIN (not a plan name)", pay, False, None)
        # an existing plan: a refused write or truncation leaves its text alone
        p = ctx.p("plans/hxkeep.json")
        if pay == PLAN_PAYLOADS[0]:
            with open(p, "wb") as f:
                f.write(PLAN_OK)
            ctx.accepted["hxkeep"] += 1
        before = readb(p)
        plan_unit(ctx, rng, "plans/hxkeep.json", "plans/EXISTING.json", pay, False, "hxkeep")
        if pay in ("pwrite1<<40", "pwrite-1", "ftruncate1G", "truncate1G", "pwrite16MiB") and readb(p) != before:
            ctx.problem("plans/EXISTING.json: a refused %s changed its text" % pay)
        if pay == "O_TRUNC" and readb(p) != b"":
            ctx.problem("plans/EXISTING.json: O_TRUNC left %d bytes" % len(readb(p)))
    if readb(ctx.p("plans/base.json")) != base:
        ctx.problem("plans/base.json changed")
    # a refused submission keeps its text and says why; nothing starts
    for pay in ("random", "bad-steps", "bad-sandbox", "half", "nul-escape"):
        stem = "hxp%d" % PLAN_PAYLOADS.index(pay)
        if not os.path.exists(ctx.p("plans/%s.error" % stem)):
            ctx.problem("plans/%s.json (%s) was refused but there is no %s.error" % (stem, pay, stem))
        if any(r.startswith(stem + "-") for r in os.listdir(ctx.p("runs"))):
            ctx.problem("plans/%s.json (%s) was refused but started a run" % (stem, pay))
    err = open(ctx.p("plans/%s.error" % ("hxp%d" % PLAN_PAYLOADS.index("bad-steps")))).read()
    if "step" not in err:
        ctx.problem("a bad step id: the .error does not name the step: %r" % err[:200])
    if any(r.startswith("hxplain") for r in os.listdir(ctx.p("runs"))) or os.path.exists(ctx.p("plans/hxplain.error")):
        ctx.problem("a plain file in plans/ was treated as a plan")
    # step ids and plan names at and over their limits
    for sid, ok in [("s" * 64, True), ("s" * 65, False), ("a/b", False), ("..", False), ("", False), ("-_", True)]:
        stem = "hxid%d" % len(sid)
        txt = json.dumps({"sandbox": {"id": "hn"}, "steps": [{"id": sid, "command": "true"}]}).encode()
        fd = os.open(ctx.p("plans/%s.json" % stem), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, txt)
        res = ctx.do("plans/NEW.json: close after a plan with step id %s" % ("of 64 characters" if ok and len(sid) == 64 else "'-_'" if ok else "bad"),
                     {"ok"} if ok else {"EINVAL"}, os.close, fd, detail=repr(sid))[0]
        if res == "ok":
            ctx.accepted[stem] += 1
        else:
            ctx.refused_names.add(stem)
            e = readb(ctx.p("plans/%s.error" % stem)).decode(errors="replace")
            if "step" not in e:
                ctx.problem("step id %r: %s.error does not name the step: %r" % (sid, stem, e[:200]))
    for name, stem in [("n" * 64 + ".json", "n" * 64), ("-x.json", "-x"), ("_.json", "_")]:
        fd = os.open(ctx.p("plans/" + name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.write(fd, PLAN_OK)
        if ctx.do("plans/NEW.json: close of a plan named %s" % ("with 64 characters" if len(stem) == 64 else repr(stem)),
                  {"ok"}, os.close, fd)[0] == "ok":
            ctx.accepted[stem] += 1
    plain = ["n" * 65 + ".json", "..json", "...", "a..b.json", "a b.json", "a\nb.json", "h\u00e9llo\u2603.json",
             "tab\t.json", "\x01\x1b[31m.json", " .json", "x.json.tmp", ".x.json.swp", "x" * 250 + ".json", "y" * 255,
             os.fsdecode(b"\xff\xfe.json"), "NAME.json.error", "a.run.json"]
    for name in plain:
        stem = name[:-5] if name.endswith(".json") else None
        res, fd = ctx.do("plans/: create a file with an odd name (255 bytes at most)", {"ok"}, os.open,
                         ctx.p("plans/" + name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, detail=repr(name[:40]))
        if res == "ok":
            os.write(fd, PLAN_OK)
            ctx.do("plans/: close of a valid plan under a name that is not a plan name", {"ok"}, os.close, fd,
                   detail=repr(name[:40]))
    listing = set(os.listdir(ctx.p("plans")))
    for name in plain:
        if name not in listing:
            ctx.problem("plans/%r is not listed as created" % name[:60])
        elif readb(ctx.p("plans/" + name)) != PLAN_OK:
            ctx.problem("plans/%r does not read back" % name[:60])
    runs1 = set(os.listdir(ctx.p("runs")))
    for r in runs1 - runs0:
        stem = r.rsplit("-", 1)[0]
        if stem not in ctx.accepted and not stem.startswith("hxp"):
            ctx.problem("an unexpected run appeared: %s" % r)
    for n in (256, 300, 1024, 1025, 4000):
        name = "z" * (n - 5) + ".json"
        res, fd = ctx.do("plans/: create a name of more than 255 bytes", LONG_NAME, os.open, ctx.p("plans/" + name),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, detail="%d bytes" % n)
        if res == "ok":
            os.write(fd, PLAN_OK)
            os.close(fd)
        ctx.do("plans/: stat a name of more than 255 bytes", {"ENAMETOOLONG", "ENOENT"}, os.stat, ctx.p("plans/" + name),
               detail="%d bytes" % n)
        ctx.do("mkdir sandboxes/(a name of more than 255 bytes)", {"ENAMETOOLONG", "EINVAL"}, os.mkdir,
               ctx.p("sandboxes/" + "z" * n), detail="%d bytes" % n)
    with open(ctx.p("plans/hxsrc.tmp"), "wb") as f:
        f.write(b"x")
    ctx.do("rename plans/F to a name of more than 255 bytes", LONG_NAME, os.rename, ctx.p("plans/hxsrc.tmp"),
           ctx.p("plans/" + "r" * 256))
    # every name listed in plans/ can be looked up (what ls -l does)
    for name in os.listdir(ctx.p("plans")):
        r = ctx.call(os.lstat, ctx.p("plans/" + name))[0]
        ctx.check("plans/: lstat of each listed name", r, {"ok"}, detail="%d bytes: %r" % (len(os.fsencode(name)), name[:40]))
    # remove the odd names again
    for name in plain:
        ctx.do("plans/: unlink a file with an odd name", {"ok"}, os.unlink, ctx.p("plans/" + name), detail=repr(name[:40]))

    # sandbox ids
    for n, exp in [("..", {"EEXIST"}), (".", {"EEXIST"}), ("a..b", {"EINVAL"}), ("../hx", {"EACCES", "EPERM"}),
                   ("x" * 80, {"ok"}), ("x" * 81, {"EINVAL"}), ("h\u00e9llo", {"EINVAL"}), ("\u2603", {"EINVAL"}),
                   ("a b", {"EINVAL"}), ("a\nb", {"EINVAL"}), ("a.b", {"EINVAL"}), ("-", {"ok"}), ("_-_", {"ok"}),
                   ("z" * 255, {"EINVAL", "ENAMETOOLONG"}), ("hb", {"EEXIST"})]:
        res = ctx.do("mkdir sandboxes/%s" % ("(80 characters)" if len(n) == 80 else "(existing)" if n == "hb"
                                             else "(a short valid id: - or _-_)" if "ok" in exp
                                             else "(a path: ../hx)" if "/" in n else "(bad id)"),
                     exp, os.mkdir, ctx.p("sandboxes/" + n), detail=repr(n[:40]))[0]
        if res == "ok":
            ctx.do("rmdir sandboxes/ID (idle)", {"ok"}, os.rmdir, ctx.p("sandboxes/" + n))

    # nodes orchfs makes none of, renames, removals
    for d in ["plans", "runs", "runs/base-1", "runs/base-1/steps", "sandboxes", "sandboxes/hb", ""]:
        where = d or "the root"
        ctx.do("symlink in %s/" % where, NO_NODE, os.symlink, "/etc/passwd", ctx.p(os.path.join(d, "hxl.json")))
        ctx.do("link plans/base.json into %s/" % where, NO_NODE, os.link, ctx.p("plans/base.json"), ctx.p(os.path.join(d, "hxh.json")))
        ctx.do("mknod in %s/" % where, NO_NODE, os.mknod, ctx.p(os.path.join(d, "hxn.json")), 0o644 | 0o100000)
        ctx.do("mkfifo in %s/" % where, NO_NODE, os.mkfifo, ctx.p(os.path.join(d, "hxf.json")))
        if d != "sandboxes":
            ctx.do("mkdir in %s/" % where, NO_NODE, os.mkdir, ctx.p(os.path.join(d, "hxd")))
        res, fd = ctx.do("create in %s/" % where, {"ok"} if d == "plans" else NO_NODE, os.open,
                         ctx.p(os.path.join(d, "hxc")), os.O_WRONLY | os.O_CREAT, 0o644)
        if res == "ok":
            os.close(fd)
    ctx.do("unlink plans/F", {"ok"}, os.unlink, ctx.p("plans/hxc"))
    with open(ctx.p("plans/hxsrc.tmp"), "wb") as f:
        f.write(PLAN_OK)
    for dst in ["runs/x", "runs/base-1/x", "sandboxes/x", "sandboxes/hb/x", "x"]:
        ctx.do("rename plans/F to %s" % dst, {"EXDEV"}, os.rename, ctx.p("plans/hxsrc.tmp"), ctx.p(dst))
    ctx.do("rename runs/ID to plans/", {"EXDEV"}, os.rename, ctx.p("runs/base-1"), ctx.p("plans/hxr"))
    ctx.do("rename sandboxes/ID to plans/", {"EXDEV"}, os.rename, ctx.p("sandboxes/hb"), ctx.p("plans/hxs"))
    ctx.do("rename runs/ID within runs/", {"EACCES", "EPERM"}, os.rename, ctx.p("runs/base-1"), ctx.p("runs/hxr"))
    ctx.do("rename sandboxes/ID within sandboxes/", {"EACCES", "EPERM"}, os.rename, ctx.p("sandboxes/hb"), ctx.p("sandboxes/hxs"))
    ctx.do("rename a file of a run", {"EACCES", "EPERM", "EROFS"}, os.rename, ctx.p("runs/base-1/status"), ctx.p("runs/base-1/s2"))
    ctx.do("rename plans/ itself", {"EACCES", "EPERM", "EBUSY"}, os.rename, ctx.p("plans"), ctx.p("plans2"))
    ctx.do("rename the root's events", {"EACCES", "EPERM", "EROFS"}, os.rename, ctx.p("events"), ctx.p("ev2"))
    ctx.do("rename plans/F onto plans/..", {"EBUSY", "EISDIR", "EINVAL", "EACCES", "EXDEV", "ENOTEMPTY"}, os.rename,
           ctx.p("plans/hxsrc.tmp"), ctx.p("plans/.."))
    ctx.do("renameat2(RENAME_EXCHANGE) in plans/", {"EINVAL"}, renameat2, ctx.p("plans/hxsrc.tmp"), ctx.p("plans/base.json"), 2)
    ctx.do("renameat2(RENAME_WHITEOUT) in plans/", {"EINVAL", "EPERM", "EOPNOTSUPP"}, renameat2, ctx.p("plans/hxsrc.tmp"),
           ctx.p("plans/hxwo.tmp"), 4)
    with open(ctx.p("plans/hxsrc.tmp"), "wb") as f:
        f.write(PLAN_OK)
    ctx.do("renameat2(RENAME_NOREPLACE) onto an existing file", {"EEXIST"}, renameat2, ctx.p("plans/hxsrc.tmp"),
           ctx.p("plans/base.json"), 1)
    for gen in ["base.run", "bad.error"]:
        ctx.do("rename onto plans/NAME.%s" % gen.split(".")[1], {"EACCES"}, os.rename, ctx.p("plans/hxsrc.tmp"),
               ctx.p("plans/" + gen))
        ctx.do("unlink plans/NAME.%s" % gen.split(".")[1], {"EACCES"}, os.unlink, ctx.p("plans/" + gen))
    for d in ["plans", "runs", "sandboxes"]:
        ctx.do("rmdir of %s/ itself" % d, {"EACCES", "EPERM", "EBUSY"}, os.rmdir, ctx.p(d))
        ctx.do("unlink of a directory", {"EISDIR", "EACCES", "EPERM"}, os.unlink, ctx.p(d))
    for f in ["README", "events", "metrics"]:
        ctx.do("rmdir of the root's %s" % f, {"ENOTDIR"}, os.rmdir, ctx.p(f))
        ctx.do("unlink of the root's %s" % f, {"EACCES", "EPERM", "EROFS"}, os.unlink, ctx.p(f))
    ctx.do("rmdir of the mount's root", {"EBUSY", "EACCES", "EPERM"}, os.rmdir, mount)
    ctx.do("rmdir runs/ID/steps", {"EACCES", "EPERM", "ENOTEMPTY"}, os.rmdir, ctx.p("runs/base-1/steps"))
    ctx.do("rmdir of an active run or its sandbox", {"EBUSY"}, os.rmdir, ctx.p("runs/slow-1"))
    ctx.do("rmdir of an active run or its sandbox", {"EBUSY"}, os.rmdir, ctx.p("sandboxes/slow-1"))
    ctx.do("rmdir of a missing run", {"ENOENT"}, os.rmdir, ctx.p("runs/nope-1"))

    # read-only files: every way of writing them fails
    for rel in RO_FILES:
        for op in RO_OPS:
            ro_unit(ctx, rng, rel, op)
    # attributes of generated files and directories; a plan file is its owner's
    for rel in ["runs/base-1/ctl", "sandboxes/hb/ctl", "sandboxes/hb/messages", "sandboxes/hb/events", "sandboxes/hb/inbox"]:
        ctx.do("chmod of a generated file", ATTR_RO, os.chmod, ctx.p(rel), 0o666, detail=rel)
        ctx.do("chown of a generated file", ATTR_RO, os.chown, ctx.p(rel), 1, 1, detail=rel)
        ctx.do("utime of a generated file", ATTR_RO, os.utime, ctx.p(rel), (0, 0), detail=rel)
        ctx.do("setxattr of a generated file", XATTR, os.setxattr, ctx.p(rel), "user.hx", b"1", detail=rel)
    for rel in ["plans", "runs", "runs/base-1", "runs/base-1/steps/a", "sandboxes/hb", ""]:
        ctx.do("chmod of a directory of the tree", ATTR_RO, os.chmod, ctx.p(rel), 0o700, detail=rel or "/")
        ctx.do("chown of a directory of the tree", ATTR_RO, os.chown, ctx.p(rel), 1, 1, detail=rel or "/")
        ctx.do("utime of a directory of the tree", ATTR_RO, os.utime, ctx.p(rel), (0, 0), detail=rel or "/")
    for rel in ["plans/base.run", "sandboxes/hb/workspace"]:
        ctx.do("lchown of a symlink of the tree", ATTR_RO, os.lchown, ctx.p(rel), 1, 1, detail=rel)
        ctx.do("utime(follow_symlinks=False) of a symlink of the tree", ATTR_RO,
               lambda p: os.utime(p, (0, 0), follow_symlinks=False), ctx.p(rel), detail=rel)
    ctx.do("chmod of one's own plan file", {"ok"}, os.chmod, ctx.p("plans/base.json"), 0o600)
    ctx.do("utime of one's own plan file", {"ok"}, os.utime, ctx.p("plans/base.json"), (0, 0))
    ctx.do("chown of one's own plan file (root)", {"ok"}, os.chown, ctx.p("plans/base.json"), 0, 0)
    ctx.do("setxattr of a plan file", XATTR, os.setxattr, ctx.p("plans/base.json"), "user.hx", b"1")
    ctx.do("getxattr of a plan file", XATTR, os.getxattr, ctx.p("plans/base.json"), "user.hx")
    fd = os.open(ctx.p("plans/hxfa.tmp"), os.O_WRONLY | os.O_CREAT, 0o644)
    ctx.do("fallocate of a plans/ file", {"EOPNOTSUPP", "EFBIG", "ok"}, fallocate, fd, 1 << 30)
    os.close(fd)
    fd = os.open(ctx.p("sandboxes/hb/messages"), os.O_WRONLY | os.O_APPEND)
    ctx.do("fallocate of sandboxes/ID/messages", {"EOPNOTSUPP", "EBADF", "EINVAL"}, fallocate, fd, 1 << 20)
    ctx.do("fsync of sandboxes/ID/messages", {"ok"}, os.fsync, fd)
    os.close(fd)
    if ctx.call(os.stat, ctx.p("README"))[0] != "ok":
        ctx.problem("the mount stopped answering")
    with open(report, "w") as f:
        json.dump(ctx.report(), f)
    return ctx


# ---- numbers: plans whose numbers are at or past what the engine can hold ------------

NUMBERS = [
    ("timeout_sec", 1e308), ("timeout_sec", 1e19), ("timeout_sec", 9.3e15), ("timeout_sec", 2147483.648),
    ("timeout_sec", 4294967.296), ("heartbeat_ttl_sec", 1e300), ("heartbeat_ttl_sec", 2147483.648),
    ("globals.default_timeout_sec", 1e20), ("globals.kill_grace_sec", 3600), ("kill_grace_sec", 3600), ("kill_grace_sec", 1e308),
    ("globals.max_concurrency", 100000),
    ("retries", 1000), ("retry_delay_sec", 86400), ("retry_backoff", 100), ("sandbox.ports", 64),
]


def numbers(mount, report):
    """Each plan is valid as far as types go; refused (EINVAL, out of range) or
    run, it must not upset the engine: a step that sleeps 0.3 s succeeds."""
    ctx = Ctx(mount, "n")
    for i, (field, value) in enumerate(NUMBERS):
        plan = {"sandbox": {"id": "hxnum%d" % i, "isolation": "none"},
                "steps": [{"id": "a", "command": "sleep", "args": ["0.3"]}]}
        where = plan["steps"][0]
        if field.startswith("globals."):
            plan["globals"] = {field[8:]: value}
        elif field.startswith("sandbox."):
            plan["sandbox"][field[8:]] = value
        else:
            where[field] = value
        stem = "hxnum%d" % i
        fd = os.open(ctx.p("plans/%s.json" % stem), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, json.dumps(plan).encode())
        res = ctx.do("plans/NEW.json: close after a plan with %s = %r" % (field, value), {"ok", "EINVAL"}, os.close, fd)[0]
        if res == "ok":
            ctx.accepted[stem] += 1
        else:
            ctx.refused_names.add(stem)
        print("numbers: %s = %r: %s" % (field, value, res))
        sys.stdout.flush()
    with open(report, "w") as f:
        json.dump(ctx.report(), f)
    return ctx


# ---- storm: many processes at once ----------------------------------------------

TARGETS = ["msg", "ev", "runctl", "sbctl", "plan-shared", "plan-new", "plan-plain", "ro", "inbox", "tree"]
TARGET_WEIGHTS = [22, 22, 8, 7, 7, 5, 4, 8, 4, 6]


def worker(mount, seed, k, nops):
    ctx = Ctx(mount, "w%d" % k)
    rng = random.Random(seed * 1000003 + k)
    for i in range(nops):
        t = rng.choices(TARGETS, TARGET_WEIGHTS)[0]
        if t in ("msg", "ev"):
            pay = rng.choices(LINE_PAYLOADS, LINE_WEIGHTS)[0]
            lines_unit(ctx, rng, t, rng.choice(SANDBOXES), pay)
        elif t == "runctl":
            ctl_unit(ctx, rng, ctx.p("runs/%s/ctl" % rng.choice(RUNS)), "runs/ID/ctl", rng.choices(CTL_PAYLOADS, CTL_WEIGHTS)[0])
        elif t == "sbctl":
            ctl_unit(ctx, rng, ctx.p("sandboxes/%s/ctl" % rng.choice(SANDBOXES)), "sandboxes/ID/ctl",
                     rng.choices(CTL_PAYLOADS, CTL_WEIGHTS)[0])
        elif t == "plan-shared":
            plan_unit(ctx, rng, "plans/storm.json", "plans/EXISTING.json (shared)", rng.choices(PLAN_PAYLOADS, PLAN_WEIGHTS)[0],
                      True, "storm")
        elif t == "plan-new":
            stem = "hx%s-%d" % (ctx.who, i)
            plan_unit(ctx, rng, "plans/%s.json" % stem, "plans/NEW.json", rng.choices(PLAN_PAYLOADS, PLAN_WEIGHTS)[0], False, stem)
        elif t == "plan-plain":
            plan_unit(ctx, rng, "plans/hx%s.json.tmp" % ctx.who, "plans/PLAIN (not a plan name)",
                      rng.choices(PLAN_PAYLOADS, PLAN_WEIGHTS)[0], False, None)
        elif t == "ro":
            ro_unit(ctx, rng, rng.choice(RO_FILES), rng.choice(RO_OPS))
        elif t == "inbox":
            inbox_unit(ctx, rng, rng.choice(SANDBOXES))
        else:
            tree_unit(ctx, rng, i)
    return ctx


def reader(mount, stop_path):
    """Reads the growing files while the storm runs: never a torn line."""
    ctx = Ctx(mount, "reader")
    files = ["events", "sandboxes/hb/messages", "sandboxes/hb/events", "sandboxes/hn/messages", "sandboxes/hn/events",
             "runs/slow-1/events"]
    statuses = ["runs/base-1/status", "runs/slow-1/status", "sandboxes/hb/status", "sandboxes/hn/status"]
    while not os.path.exists(stop_path):
        for rel in files:
            r, data = ctx.call(readb, ctx.p(rel))
            ctx.check("reader: read a JSONL file whole", r, {"ok"}, detail=rel)
            if r != "ok":
                continue
            if data and not data.endswith(b"\n"):
                ctx.problem("reader: %s ends in a torn line: %r" % (rel, data[-80:]))
            for line in data.splitlines():
                try:
                    json.loads(line)
                except ValueError:
                    ctx.problem("reader: %s holds a line that is not JSON: %r" % (rel, line[:120]))
                    break
        for rel in statuses:
            r, data = ctx.call(readb, ctx.p(rel))
            ctx.check("reader: read a status", r, {"ok"}, detail=rel)
            if r == "ok":
                try:
                    json.loads(data)
                except ValueError:
                    ctx.problem("reader: %s is not JSON: %r" % (rel, data[:200]))
        r = ctx.call(readb, ctx.p("README"))[0]
        ctx.check("reader: cat README", r, {"ok"})
        time.sleep(0.2)
    return ctx


def storm(mount, seed, nproc, nops, report):
    tmp = report + ".d"
    os.makedirs(tmp, exist_ok=True)
    stop = os.path.join(tmp, "stop")
    pids = []
    for k in range(nproc + 1):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                ctx = reader(mount, stop) if k == nproc else worker(mount, seed, k, nops)
                with open(os.path.join(tmp, "%d.json" % k), "w") as f:
                    json.dump(ctx.report(), f)
            except BaseException as e:   # a crash of the test itself
                import traceback
                with open(os.path.join(tmp, "%d.crash" % k), "w") as f:
                    f.write("seed %d process %d: %s\n%s" % (seed, k, e, traceback.format_exc()))
                code = 1
            os._exit(code)
        pids.append(pid)
    for pid in pids[:-1]:
        os.waitpid(pid, 0)
    open(stop, "w").close()
    os.waitpid(pids[-1], 0)
    merged = {"who": "storm", "rows": collections.defaultdict(collections.Counter), "bad": [],
              "acked": {"msg": [], "ev": []}, "refused": {"msg": [], "ev": []}, "accepted": collections.Counter(),
              "shared_ok": collections.Counter(), "refused_names": set()}
    for k in range(nproc + 1):
        crash = os.path.join(tmp, "%d.crash" % k)
        if os.path.exists(crash):
            merged["bad"].append("test process %d died: %s" % (k, open(crash).read()))
            continue
        with open(os.path.join(tmp, "%d.json" % k)) as f:
            r = json.load(f)
        for op, c in r["rows"].items():
            merged["rows"][op].update(c)
        merged["bad"] += ["[%s] %s" % (r["who"], b) for b in r["bad"]]
        for kind in ("msg", "ev"):
            merged["acked"][kind] += r["acked"][kind]
            merged["refused"][kind] += r["refused"][kind]
        merged["accepted"].update(r["accepted"])
        merged["shared_ok"].update(r["shared_ok"])
        merged["refused_names"].update(r["refused_names"])
    merged["rows"] = {k: dict(v) for k, v in merged["rows"].items()}
    merged["accepted"] = dict(merged["accepted"])
    merged["shared_ok"] = dict(merged["shared_ok"])
    merged["refused_names"] = sorted(merged["refused_names"])
    with open(report, "w") as f:
        json.dump(merged, f)
    return merged


# ---- verify: the state holds exactly what was acknowledged ----------------------

TAG_RE = re.compile(r"hx:(\S+)")


def verify(mount, reports):
    bad = []
    acked = {"msg": collections.Counter(), "ev": collections.Counter()}
    refused = {"msg": set(), "ev": set()}
    accepted = collections.Counter()
    shared_ok = collections.Counter()
    refused_names = set()
    for rep in reports:
        with open(rep) as f:
            r = json.load(f)
        for kind in ("msg", "ev"):
            acked[kind].update(r["acked"][kind])
            refused[kind].update(r["refused"][kind])
        accepted.update(r["accepted"])
        shared_ok.update(r.get("shared_ok", {}))
        refused_names.update(r["refused_names"])
    seen = {"msg": collections.Counter(), "ev": collections.Counter()}
    last = None
    with open(os.path.join(mount, "events"), "rb") as f:
        for no, line in enumerate(f, 1):
            try:
                seq = json.loads(line)["seq"]
            except (ValueError, KeyError, TypeError):
                bad.append("MOUNT/events line %d is not a JSON object with a seq: %r" % (no, line[:120]))
                continue
            if not isinstance(seq, int) or (last is not None and seq <= last):
                bad.append("MOUNT/events line %d: seq %r after %r" % (no, seq, last))
            last = seq if isinstance(seq, int) else last
    for sb in os.listdir(os.path.join(mount, "sandboxes")):
        d = os.path.join(mount, "sandboxes", sb)
        with open(os.path.join(d, "status")) as f:
            st = json.load(f)
        n = 0
        with open(os.path.join(d, "messages"), "rb") as f:
            for line in f:
                n += 1
                try:
                    m = json.loads(line)
                except ValueError:
                    bad.append("sandboxes/%s/messages: a line is not JSON: %r" % (sb, line[:120]))
                    continue
                if sorted(m) != ["content", "id", "message_type", "state", "ts"]:
                    bad.append("sandboxes/%s/messages: fields %s" % (sb, sorted(m)))
                for t in TAG_RE.findall(m.get("content", "")):
                    seen["msg"][t] += 1
        q = st["messages"]["queued"] + st["messages"]["delivered"]
        if q != n:
            bad.append("sandboxes/%s: messages holds %d lines, status says %d queued + %d delivered" %
                       (sb, n, st["messages"]["queued"], st["messages"]["delivered"]))
        with open(os.path.join(d, "events"), "rb") as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    bad.append("sandboxes/%s/events: a line is not JSON: %r" % (sb, line[:120]))
                    continue
                if str(ev.get("type", "")).startswith("hostile."):
                    seen["ev"][(ev.get("event_data") or {}).get("hx")] += 1
    for kind, what in (("msg", "message"), ("ev", "posted event")):
        for t, n in seen[kind].items():
            if t in refused[kind] and t not in acked[kind]:
                bad.append("a refused %s was recorded: %s" % (what, t))
            elif t not in acked[kind]:
                bad.append("a %s nobody acknowledged was recorded: %s" % (what, t))
            elif n > 1:
                bad.append("a %s was recorded %d times: %s" % (what, n, t))
        lost = [t for t in acked[kind] if t not in seen[kind]]
        if lost:
            bad.append("%d acknowledged %ss are missing, e.g. %s" % (len(lost), what, ", ".join(sorted(lost)[:5])))
    runs = os.listdir(os.path.join(mount, "runs"))
    per = collections.Counter()
    for r in runs:
        stem, _, n = r.rpartition("-")
        if n.isdigit():
            per[stem] += 1
    for stem, n in accepted.items():
        if stem not in shared_ok and per[stem] != n:
            bad.append("plan %s: %d submissions were accepted, runs/ holds %d runs of it" % (stem, n, per[stem]))
    # several handles of one file: a close submits only what its handle wrote
    # since the last submission, so runs are at most the closes that returned 0
    for stem, n in shared_ok.items():
        if per[stem] > n + accepted[stem]:
            bad.append("plan %s (shared): %d closes after writes returned 0, runs/ holds %d runs of it"
                       % (stem, n + accepted[stem], per[stem]))
    for stem in refused_names:
        if stem not in accepted and stem not in shared_ok and per[stem]:
            bad.append("plan %s: every submission was refused, yet it has %d runs" % (stem, per[stem]))
    print("verify: %d acknowledged messages, %d acknowledged events, %d accepted plan submissions; %d refused lines "
          "absent" % (sum(acked["msg"].values()), sum(acked["ev"].values()), sum(accepted.values()),
                      len(refused["msg"]) + len(refused["ev"])))
    return bad


STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"')


def too_deep(text, limit=256):
    """Is TEXT (one JSON value) nested LIMIT deep or more (jq 1.6 reads 255)?"""
    if text.count(b"[") + text.count(b"{") < limit:
        return False
    depth = top = 0
    for c in STRING_RE.sub(b'""', text):
        if c in (0x5B, 0x7B):
            depth += 1
            top = max(top, depth)
        elif c in (0x5D, 0x7D):
            depth -= 1
    return top >= limit


def suspects(paths, jsonl):
    """The files of PATHS that may not read with jq: not JSON (JSONL), or too deep."""
    for path in paths:
        try:
            data = readb(path)
            for v in (data.splitlines() if jsonl else [data]):
                json.loads(v)
                if too_deep(v):
                    raise ValueError("deep")
        except (OSError, ValueError, RecursionError):
            print(path)


def print_table(rows, out):
    for op in sorted(rows):
        c = rows[op]
        out.write("  %-80s %s\n" % (op, "  ".join("%s x%d" % (r, n) for r, n in sorted(c.items(), key=lambda x: -x[1]))))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "probe" and len(sys.argv) == 5:
        ctx = probe(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        print_table(ctx.rows, sys.stdout)
        for b in ctx.bad:
            print("BAD " + b)
        sys.exit(1 if ctx.bad else 0)
    if cmd == "numbers" and len(sys.argv) == 4:
        ctx = numbers(sys.argv[2], sys.argv[3])
        for b in ctx.bad:
            print("BAD " + b)
        sys.exit(1 if ctx.bad else 0)
    if cmd == "storm" and len(sys.argv) == 7:
        r = storm(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
        print_table(r["rows"], sys.stdout)
        for b in r["bad"]:
            print("BAD " + b)
        sys.exit(1 if r["bad"] else 0)
    if cmd == "verify" and len(sys.argv) >= 4:
        bad = verify(sys.argv[2], sys.argv[3:])
        for b in bad:
            print("BAD " + b)
        sys.exit(1 if bad else 0)
    if cmd == "states" and len(sys.argv) == 3:
        # RUN STATE for every run (UNREADABLE when its status does not parse)
        for r in sorted(os.listdir(os.path.join(sys.argv[2], "runs"))):
            try:
                with open(os.path.join(sys.argv[2], "runs", r, "status"), "rb") as f:
                    print(r, json.load(f)["state"])
            except (OSError, ValueError, KeyError, TypeError):
                print(r, "UNREADABLE")
        sys.exit(0)
    if cmd in ("suspects", "suspects-jsonl"):
        suspects(sys.argv[2:], cmd == "suspects-jsonl")
        sys.exit(0)
    if cmd == "table":
        rows = collections.defaultdict(collections.Counter)
        for rep in sys.argv[2:]:
            with open(rep) as f:
                for op, c in json.load(f)["rows"].items():
                    rows[op].update(c)
        print_table(rows, sys.stdout)
        sys.exit(0)
    sys.stderr.write(__doc__)
    sys.exit(2)


if __name__ == "__main__":
    main()
