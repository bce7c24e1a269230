/* fs/conn.h — our FUSE connection must not outlive the daemon. A reverse
 * invalidation (fs/inval.c) waits in the kernel, uninterruptibly, for the
 * lock of a directory that a client holds while it waits for our answer.
 * If the daemon dies meanwhile (kill -9), that thread never returns: it
 * keeps the process's files (/dev/fuse, the state lock) open, so the kernel
 * never ends the connection, the client never gets its answer, and nothing
 * can kill either. Only an abort of the connection through the fusectl
 * filesystem (/sys/fs/fuse/connections/N/abort) breaks that cycle:
 *
 * - the watchdog, a small process of its own started by the daemon's main
 *   thread, holds the connection's abort file open and writes it when that
 *   thread dies without having told it to stand down. An abort file opened
 *   while the connection lives names that connection only: once it is
 *   gone, writing it does nothing, even if a later mount reuses the number;
 * - at start, what a dead daemon left on the same state directory and
 *   mountpoint is cleared: a holder of the state lock whose main thread is
 *   dead but which a thread keeps in the kernel has its connection aborted,
 *   and a dead mount (ENOTCONN) of orchfs on the mountpoint is unmounted.
 *
 * main() calls all of this, on the main thread (the watchdog's parent must
 * be the thread whose death it watches); conn_watchdog_main() runs in the
 * watchdog's own process. Notes for the log go through SAY (one line each,
 * without the "orchfs: " prefix). */
#ifndef ORCH_FS_CONN_H
#define ORCH_FS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* argv[1] of the watchdog: this program again (/proc/self/exe) */
#define CONN_WATCHDOG_FLAG "--watchdog"

typedef void conn_say_fn(const char *msg);

/* The fusectl filesystem is mounted on /sys/fs/fuse/connections, or is
 * mounted there now (root only; said through SAY). 0 or -errno. */
int conn_fusectl(conn_say_fn *say);

/* The newest mount on MOUNTPOINT (absolute, canonical): its device and
 * filesystem type ("fuse.orchfs"; "fuse.orchfs-of-another-user" for one
 * another uid mounted). 0, or -ENOENT when nothing is mounted there. */
int conn_mount_at(const char *mountpoint, dev_t *dev, char *fstype, size_t fstype_size);

/* Open connection MINOR's abort file (O_CLOEXEC): an fd, or -errno. */
int conn_abort_open(unsigned minor);
/* Abort the connection that ABORT_FD (conn_abort_open) names; a no-op if it
 * is gone. 0 or -errno. */
int conn_abort_fd(int abort_fd);

struct conn_watchdog {
	pid_t pid;		/* -1: none */
	int ctl;		/* write end of its pipe: "s" = stand down */
};
#define CONN_WATCHDOG_INIT { -1, -1 }

/* Start the watchdog of connection MINOR (mounted on MOUNTPOINT), which
 * ABORT_FD names; its stderr is ours (the log, once a daemonizing start has
 * taken it). 0 or -errno. */
int conn_watchdog_start(struct conn_watchdog *w, int abort_fd, unsigned minor, const char *mountpoint);
/* The daemon ends its connection itself (orderly stop): the watchdog exits
 * without aborting anything; reaped here (bounded). */
void conn_watchdog_stop(struct conn_watchdog *w);
/* The watchdog process (argv from conn_watchdog_start). */
void conn_watchdog_main(int argc, char **argv) __attribute__((noreturn));

/* flock(LOCKFD) failed with EWOULDBLOCK: if the holder is an orchfs whose
 * main thread is dead while a thread of it stays in the kernel with
 * /dev/fuse open, abort its connection (the mount on MOUNTPOINT, or the
 * one it recorded in the lock file: conn_record), then wait (bounded) for
 * it to let go. Each step is said through SAY. 0 when the lock is ours now;
 * -EBUSY when the holder lives, or a live one took the lock meanwhile (WHY:
 * who), or -errno with WHY saying what stays in the way. */
int conn_recover_lock(int lockfd, const char *mountpoint, conn_say_fn *say, char *why, size_t why_size);

/* Record in the lock file (after the pid line) which connection is ours. */
int conn_record(int lockfd, unsigned minor);

/* Unmount the dead mounts of orchfs (ENOTCONN) on MOUNTPOINT, saying so.
 * Never touches a mount that answers, nor another filesystem. 0 or -errno
 * (WHY says what is still in the way). */
int conn_clear_dead_mount(const char *mountpoint, conn_say_fn *say, char *why, size_t why_size);

#endif
