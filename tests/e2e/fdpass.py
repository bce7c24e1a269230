#!/usr/bin/env python3
"""tests/e2e/fdpass.py: hand an open file to another process (SCM_RIGHTS) and
choose who does what through it, and who closes it first.

  fdpass.py take SOCK ACTION [ARG]
      listen on the Unix socket SOCK (mode 0777; it appears once listening),
      take one descriptor, then:
        close            close it now (before the giver closes its own)
        write FILE       write FILE's bytes through it
        mmap FILE        map it shared and writable, copy FILE in, msync
        none             nothing
      tell the giver, wait for its answer, close the descriptor, exit.
  fdpass.py give SOCK PATH MODE [FILE]
      open PATH (MODE: "w" = O_WRONLY|O_CREAT|O_TRUNC, "rw" = O_RDWR|O_CREAT,
      "a" = O_WRONLY|O_APPEND) with permissions 0666, write FILE's bytes if
      given, hand the descriptor over SOCK, wait for the taker, close it, tell
      the taker, exit.

Each side prints one line per step: "open: ok", "write: ok" or
"write: EACCES", "close: ok" or "close: EINVAL"... Exit status 0 unless
the socket itself failed.
"""
import ctypes
import ctypes.util
import errno
import mmap
import os
import socket
import sys


def why(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def step(name, fn):
    try:
        r = fn()
        print(name + ": ok", flush=True)
        return r
    except OSError as e:
        print("%s: %s" % (name, why(e)), flush=True)
        return None


def data(path):
    with open(path, "rb") as f:
        return f.read()


def take(sock_path, action, arg):
    # listening before the name appears: the giver waits for the name
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path + ".tmp")
    os.chmod(sock_path + ".tmp", 0o777)
    srv.listen(1)
    os.rename(sock_path + ".tmp", sock_path)
    srv.settimeout(60)
    conn, _ = srv.accept()
    conn.settimeout(60)
    _, fds, _, _ = socket.recv_fds(conn, 16, 1)
    fd = fds[0]
    closed = False
    if action == "close":
        step("close", lambda: os.close(fd))
        closed = True
    elif action == "write":
        step("write", lambda: os.write(fd, data(arg)))
    elif action == "mmap":
        text = data(arg)

        def mapped():
            # libc's mmap: Python's mmap object keeps a dup of the fd, whose
            # close would be a FLUSH of its own
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_int, ctypes.c_long]
            libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            addr = libc.mmap(None, len(text), mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
            if addr is None or addr == ctypes.c_void_p(-1).value:
                raise OSError(ctypes.get_errno(), "mmap")
            ctypes.memmove(addr, text, len(text))
            rc = libc.msync(addr, len(text), 4)  # MS_SYNC
            err = ctypes.get_errno()
            libc.munmap(addr, len(text))
            if rc:
                raise OSError(err, "msync")
        step("ftruncate", lambda: os.ftruncate(fd, len(text)))
        step("mmap", mapped)
    conn.sendall(b"1")
    conn.recv(1)
    if not closed:
        step("close", lambda: os.close(fd))


def give(sock_path, path, mode, arg):
    flags = {"w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "rw": os.O_RDWR | os.O_CREAT,
             "a": os.O_WRONLY | os.O_APPEND}[mode]
    os.umask(0)
    fd = step("open", lambda: os.open(path, flags, 0o666))
    if fd is None:
        sys.exit(1)
    if arg:
        step("write", lambda: os.write(fd, data(arg)))
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(60)
    conn.connect(sock_path)
    socket.send_fds(conn, [b"f"], [fd])
    conn.recv(1)
    step("close", lambda: os.close(fd))
    conn.sendall(b"1")


if __name__ == "__main__":
    if sys.argv[1] == "take":
        take(sys.argv[2], sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    else:
        give(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
