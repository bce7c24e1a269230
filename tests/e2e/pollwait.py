#!/usr/bin/env python3
"""tests/e2e/pollwait.py: wait for a file of the mount to have something new,
the way a program that does not poll in a loop does (SPEC 11).

  pollwait.py HOW FILE [--rounds N] [--reopen | --reread] [--no-read]

HOW is poll, select, epoll (level-triggered) or epollet (edge-triggered).
Opens FILE read-only and reads it to its end (not with --no-read), then, N
times (default 1):
  1. waits 1.5 s: FILE must not be readable (nothing new was added);
     exit 3 if it is ("readable with nothing new");
  2. prints "armed K" (the test then adds something);
  3. waits up to 30 s for FILE to become readable; exit 4 if it does not;
  4. prints "new K: " and what is new: the bytes read on to the end; with
     --reopen (an inbox) FILE opened again and read whole (the handle read
     before is kept open, and polled again); with --reread (attention) the
     same handle read again from offset 0.
The 1.5 s are a correctness check, not a speed check: nothing may wake the
poller while nothing is new, however long it waits.
"""
import os
import select
import sys

QUIET = 1.5
LIMIT = 30.0


def read_to_end(fd):
    out = b""
    while True:
        b = os.read(fd, 65536)
        if not b:
            return out
        out += b


def waiter(how, fd):
    """A function (timeout in seconds) -> readable?"""
    if how == "poll":
        p = select.poll()
        p.register(fd, select.POLLIN)
        return lambda t: any(ev & select.POLLIN for _, ev in p.poll(t * 1000))
    if how == "select":
        return lambda t: fd in select.select([fd], [], [], t)[0]
    if how in ("epoll", "epollet"):
        ep = select.epoll()
        ep.register(fd, select.EPOLLIN | (select.EPOLLET if how == "epollet" else 0))
        return lambda t: any(ev & select.EPOLLIN for _, ev in ep.poll(t))
    sys.exit("pollwait: unknown way to wait: " + how)


def main():
    args = sys.argv[1:]
    rounds, reopen, reread, no_read = 1, False, False, False
    if "--rounds" in args:
        i = args.index("--rounds")
        rounds = int(args[i + 1])
        del args[i:i + 2]
    if "--reopen" in args:
        args.remove("--reopen")
        reopen = True
    if "--reread" in args:
        args.remove("--reread")
        reread = True
    if "--no-read" in args:
        args.remove("--no-read")
        no_read = True
    how, path = args
    fd = os.open(path, os.O_RDONLY)
    if not no_read:
        read_to_end(fd)
    ready = waiter(how, fd)
    for k in range(1, rounds + 1):
        if ready(QUIET):
            print("readable with nothing new (round %d)" % k, flush=True)
            sys.exit(3)
        print("armed %d" % k, flush=True)
        if not ready(LIMIT):
            print("no wake-up within %d s (round %d)" % (LIMIT, k), flush=True)
            sys.exit(4)
        if reopen:
            fd2 = os.open(path, os.O_RDONLY)
            new = read_to_end(fd2)
            os.close(fd2)
        elif reread:
            os.lseek(fd, 0, os.SEEK_SET)
            new = read_to_end(fd)
        else:
            new = read_to_end(fd)
        print("new %d: %s" % (k, new.decode(errors="replace").replace("\n", "\\n")), flush=True)
    os.close(fd)


main()
