#!/usr/bin/env python3
"""tests/crash/worker.py — the background clients of the crash matrix.

  worker.py writer W ITER SANDBOX_DIR ACK_LOG ERR_LOG SEED DELAY_MS
      Appends to SANDBOX_DIR/messages and SANDBOX_DIR/events until killed.
      Every line carries the writer id W, the iteration ITER, a per-writer
      sequence number N (never reused: a failed write moves on) and its
      group G (the N of the first line of its write()) with its place k/K in
      the group:
        messages: "cw W ITER N G k K" as a plain line, or as the content of a
                  {"content": ..., "message_type": ...} object
        events:   {"event_type": "crash.w", "event_data": {"w", "i", "n", "g", "k", "kk"}, ...}
      Some write()s carry 2 or 3 lines (all-or-nothing per write()). Each line
      of a write() that returned the full length, and whose close() succeeded,
      is then logged to ACK_LOG as "msg|ev W ITER N G k K", opening, appending
      and closing ACK_LOG per write: a line is in ACK_LOG only once orchfs
      acknowledged it. Failed writes are logged to ERR_LOG as "op errno file".
      The sandbox may not exist yet (its plan is being submitted): the writer
      waits for its directory.

  worker.py follow FILE OUT
      Like `tail -n0 -f FILE`: starts at the current end and copies every
      complete line it reads to OUT (flushed per line) until killed or the
      file goes away. What readers saw is compared with the final state.
"""
import errno
import json
import os
import random
import sys
import time

TYPES = ["user_message", "interrupt", "guardian_intervention"]


def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def append_log(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def writer(w, it, sbdir, ack, errlog, seed, delay_ms):
    rng = random.Random(seed)
    n = 0
    msgs = os.path.join(sbdir, "messages")
    evs = os.path.join(sbdir, "events")
    while not os.path.isdir(sbdir):
        time.sleep(0.02)
    while True:
        r = rng.random()
        kind = "msg" if r < 0.6 else "ev"
        size = 1 if rng.random() < 0.8 else rng.choice([2, 3])
        g = n
        lines, tags = [], []
        for k in range(1, size + 1):
            tag = "%d %d %d %d %d %d" % (w, it, n, g, k, size)
            if kind == "msg":
                if rng.random() < 0.6:
                    lines.append("cw " + tag)
                else:
                    lines.append(json.dumps({"content": "cw " + tag,
                                             "message_type": rng.choice(TYPES)}))
            else:
                lines.append(json.dumps({"event_type": "crash.w",
                                         "event_data": {"w": w, "i": it, "n": n, "g": g,
                                                        "k": k, "kk": size},
                                         "source": "writer-%d" % w}))
            tags.append("%s %s" % (kind, tag))
            n += 1
        data = ("\n".join(lines) + "\n").encode()
        path = msgs if kind == "msg" else evs
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except OSError as e:
            append_log(errlog, "open %s %s\n" % (errname(e), kind))
            time.sleep(0.01)
            continue
        ok = False
        try:
            got = os.write(fd, data)
            if got == len(data):
                ok = True
            else:
                append_log(errlog, "write short-%d/%d %s\n" % (got, len(data), kind))
        except OSError as e:
            append_log(errlog, "write %s %s\n" % (errname(e), kind))
        try:
            os.close(fd)
        except OSError as e:
            ok = False
            append_log(errlog, "close %s %s\n" % (errname(e), kind))
        if not ok:
            time.sleep(0.01)
        if ok:
            append_log(ack, "".join(t + "\n" for t in tags))
        if delay_ms > 0:
            time.sleep(rng.uniform(0, delay_ms) / 1000.0)


def follow(path, out):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.lseek(fd, os.fstat(fd).st_size, os.SEEK_SET)
    except OSError:
        return
    o = open(out, "ab", buffering=0)
    buf = b""
    while True:
        try:
            b = os.read(fd, 1 << 20)
        except OSError:
            return
        if not b:
            time.sleep(0.03)
            continue
        buf += b
        i = buf.rfind(b"\n")
        if i >= 0:
            o.write(buf[: i + 1])
            buf = buf[i + 1:]


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "writer" and len(sys.argv) == 9:
        a = sys.argv[2:]
        writer(int(a[0]), int(a[1]), a[2], a[3], a[4], int(a[5]), float(a[6]))
    elif len(sys.argv) == 4 and sys.argv[1] == "follow":
        follow(sys.argv[2], sys.argv[3])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
