/* fs/conn.c — the FUSE connection never outlives the daemon: the watchdog,
 * and the recovery at start from what a dead daemon left (see conn.h). */
#include "fs/conn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/mounts.h"
#include "core/util.h"

#define FUSECTL_DIR "/sys/fs/fuse/connections"
#define FUSECTL_MAGIC 0x65735543
/* how long a start waits for a dead daemon to let go of the state lock once
 * its connection is aborted (it goes within milliseconds) */
#define RECOVER_WAIT_MS 30000

extern char **environ;

static void sayf(conn_say_fn *say, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sayf(conn_say_fn *say, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (say)
		say(msg);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- the mount table ---- */

/* Call FN on each line of our mount table, in mount order, until it
 * returns nonzero (returned). */
static int mnt_each(int (*fn)(const struct mount_line *m, void *arg), void *arg)
{
	char *text;
	size_t len;
	int r = read_file("/proc/self/mountinfo", 64 << 20, &text, &len);
	if (r)
		return r;
	struct mount_line m;
	for (char *pos = text; mounts_next(&pos, &m);)
		if ((r = fn(&m, arg)))
			break;
	orch_free(text);
	return r;
}

struct mnt_find {
	const char *mountpoint;
	bool found;
	dev_t dev;
	char fstype[64];
	long owner;
};

static int mnt_find_cb(const struct mount_line *m, void *arg)
{
	struct mnt_find *f = arg;
	if (strcmp(m->mountpoint, f->mountpoint))
		return 0;
	/* the newest (last) one is on top */
	f->found = true;
	f->dev = m->dev;
	snprintf(f->fstype, sizeof(f->fstype), "%s", m->fstype);
	f->owner = mounts_user_id(m->super);
	return 0;
}

int conn_mount_at(const char *mountpoint, dev_t *dev, char *fstype, size_t fstype_size)
{
	struct mnt_find f = { .mountpoint = mountpoint };
	int r = mnt_each(mnt_find_cb, &f);
	if (r)
		return r < 0 ? r : -EIO;
	if (!f.found)
		return -ENOENT;
	*dev = f.dev;
	/* an orchfs mounted by another user (any user may name a FUSE
	 * subtype "orchfs") is not ours to ask, abort or unmount */
	snprintf(fstype, fstype_size, "%s",
		 !strcmp(f.fstype, "fuse.orchfs") && f.owner != (long)getuid() ? "fuse.orchfs-of-another-user"
									   : f.fstype);
	return 0;
}

/* Is connection MINOR mounted somewhere other than MOUNTPOINT, or as
 * something other than orchfs? (then it is not the one a dead orchfs of
 * ours recorded: the number was used again) */
struct mnt_other {
	unsigned minor;
	const char *mountpoint;
	char what[300];
};

static int mnt_other_cb(const struct mount_line *m, void *arg)
{
	struct mnt_other *o = arg;
	if (major(m->dev) != 0 || minor(m->dev) != o->minor)
		return 0;
	if (!strcmp(m->fstype, "fuse.orchfs") && !strcmp(m->mountpoint, o->mountpoint) &&
	    mounts_user_id(m->super) == (long)getuid())
		return 0;
	snprintf(o->what, sizeof(o->what), "%s on %s", m->fstype, m->mountpoint);
	return 1;
}

/* ---- fusectl ---- */

int conn_fusectl(conn_say_fn *say)
{
	struct statfs sf;
	if (statfs(FUSECTL_DIR, &sf) < 0)
		return -errno;	/* no FUSE in this kernel, or no sysfs */
	if (sf.f_type == FUSECTL_MAGIC)
		return 0;
	if (geteuid() != 0)
		return -EPERM;
	if (mount("fusectl", FUSECTL_DIR, "fusectl", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return -errno;
	sayf(say, "mounted the fusectl filesystem on %s (where orchfs aborts the FUSE connection of a daemon "
		  "that died)", FUSECTL_DIR);
	return 0;
}

int conn_abort_open(unsigned minor)
{
	char path[128];
	snprintf(path, sizeof(path), FUSECTL_DIR "/%u/abort", minor);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int conn_abort_fd(int abort_fd)
{
	/* the kernel aborts at any write; one whose connection is gone does nothing */
	if (write(abort_fd, "1", 1) < 0)
		return -errno;
	return 0;
}

static int abort_minor(unsigned minor)
{
	int fd = conn_abort_open(minor);
	if (fd < 0)
		return fd;
	int r = conn_abort_fd(fd);
	close(fd);
	return r;
}

/* ---- the watchdog ---- */

int conn_watchdog_start(struct conn_watchdog *w, int abort_fd, unsigned minor, const char *mountpoint)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	/* above 3 and 4 first, so that the dup2()s onto 3 and 4 cannot clobber
	 * one another */
	int hi_abort = fcntl(abort_fd, F_DUPFD_CLOEXEC, 10);
	int hi_pipe = fcntl(p[0], F_DUPFD_CLOEXEC, 10);
	close(p[0]);
	int r = 0;
	if (hi_abort < 0 || hi_pipe < 0)
		r = -errno;
	char spid[24], smin[24];
	snprintf(spid, sizeof(spid), "%d", (int)getpid());
	snprintf(smin, sizeof(smin), "%u", minor);
	char *argv[] = { "orchfs", CONN_WATCHDOG_FLAG, spid, smin, (char *)mountpoint, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, hi_abort, 3);
	posix_spawn_file_actions_adddup2(&fa, hi_pipe, 4);
	/* a group of its own: a ^C at the daemon's terminal is not for it */
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGINT);
	sigaddset(&dfl, SIGTERM);
	sigaddset(&dfl, SIGUSR1);
	sigaddset(&dfl, SIGPIPE);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
	pid_t pid = -1;
	if (!r) {
		int e = posix_spawn(&pid, "/proc/self/exe", &fa, &at, argv, environ);
		if (e)
			r = -e;
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (hi_abort >= 0)
		close(hi_abort);
	if (hi_pipe >= 0)
		close(hi_pipe);
	if (r) {
		close(p[1]);
		return r;
	}
	w->pid = pid;
	w->ctl = p[1];
	return 0;
}

void conn_watchdog_stop(struct conn_watchdog *w)
{
	if (w->ctl >= 0) {
		if (write(w->ctl, "s", 1) < 0) {
			/* it is gone already */
		}
		close(w->ctl);
		w->ctl = -1;
	}
	if (w->pid > 0) {
		/* it exits as soon as it reads that; bounded all the same */
		for (int i = 0; i < 500; i++) {
			pid_t p = waitpid(w->pid, NULL, WNOHANG);
			if (p != 0)
				break;
			sleep_ms(10);
		}
		w->pid = -1;
	}
}

/* The state of thread TID of PID ('R', 'S', 'D', 'Z'...), or 0 if gone. */
static char task_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' ? rp[2] : 0;
}

/* Is PID on its way out: killed (SIGKILL pending for it or its group) or
 * exiting (PF_EXITING)? Then its main thread is a zombie, or it is gone,
 * within a moment: kill -9 reaches each thread in turn. */
static bool task_dying(pid_t pid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* after "(comm)": state ppid pgrp session tty tpgid flags */
	char *rp = strrchr(buf, ')');
	unsigned long flags = 0;
	if (rp && sscanf(rp + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) == 1 && (flags & 0x4))
		return true;	/* PF_EXITING */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (const char *key = "SigPnd:", *p; key; key = strcmp(key, "SigPnd:") ? NULL : "ShdPnd:") {
		unsigned long long set;
		if ((p = strstr(buf, key)) && sscanf(p + strlen(key), " %llx", &set) == 1 &&
		    (set & (1ULL << (SIGKILL - 1))))
			return true;
	}
	return false;
}

static bool main_thread_dead(pid_t pid)
{
	char s = task_state(pid, pid);
	return s == 0 || s == 'Z' || s == 'X' || getppid() != pid;
}

static bool stand_down(const char *buf, ssize_t n)
{
	return n > 0 && memchr(buf, 's', (size_t)n);
}

void conn_watchdog_main(int argc, char **argv)
{
	/* fds: 0-2 as given, 3 the abort file, 4 our pipe; nothing else of the
	 * daemon's (a /dev/fuse kept here would keep the connection up) */
	if (argc != 5)
		_exit(2);
	close_range(5, ~0U, 0);
	pid_t daemon = (pid_t)atoi(argv[2]);
	unsigned minor = (unsigned)strtoul(argv[3], NULL, 10);
	const char *mnt = argv[4];
	prctl(PR_SET_NAME, "orchfs-watchdog", 0, 0, 0);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTTOU, SIG_IGN);	/* a group of its own: its one line may go to a terminal */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	/* SIGUSR1 when the thread that started us (the daemon's main thread)
	 * dies; it may have died already */
	prctl(PR_SET_PDEATHSIG, SIGUSR1, 0, 0, 0);
	bool dead = main_thread_dead(daemon);
	char buf[64];
	ssize_t n;
	while (!dead) {
		struct pollfd pf[2] = { { .fd = 4, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
		if (poll(pf, sfd >= 0 ? 2 : 1, sfd >= 0 ? -1 : 1000) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (pf[0].revents) {
			n = read(4, buf, sizeof(buf));
			if (stand_down(buf, n))
				exit(0);
			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
				dead = true;	/* every fd of it is closed: it is gone */
		}
		if (sfd >= 0 && pf[1].revents)
			dead = true;
		if (!dead && sfd < 0)
			dead = main_thread_dead(daemon);
	}
	/* a stand-down written just before the end still counts */
	fcntl(4, F_SETFL, O_NONBLOCK);
	n = read(4, buf, sizeof(buf));
	if (stand_down(buf, n))
		exit(0);
	int r = conn_abort_fd(3);
	char ts[ISO8601_LEN];
	fmt_iso8601(clock_wall_ms(), ts);
	if (r)
		fprintf(stderr, "%s orchfs: watchdog: orchfs (pid %d) died without stopping; aborting its FUSE "
				"connection %u (%s) failed: %s\n", ts, (int)daemon, minor, mnt, strerror(-r));
	else
		fprintf(stderr, "%s orchfs: watchdog: orchfs (pid %d) died without stopping: aborted its FUSE "
				"connection %u, so that no thread of it stays held in the kernel by a request in "
				"flight; %s answers ENOTCONN until the next start clears it\n",
			ts, (int)daemon, minor, mnt);
	exit(r ? 1 : 0);
}

/* ---- recovery at start ---- */

/* The pid holding an flock on the file LST is (from /proc/locks), or 0. */
static pid_t locks_holder(const struct stat *lst)
{
	char *text;
	size_t len;
	if (read_file("/proc/locks", 16 << 20, &text, &len))
		return 0;
	pid_t found = 0;
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		/* "1: FLOCK  ADVISORY  WRITE 1234 00:2d:5678 0 EOF"; waiters have "->" */
		char kind[16], adv[16], rw[16];
		int pid;
		unsigned maj, min;
		unsigned long ino;
		char *p = strchr(line, ':');
		if (!p || strstr(line, "->"))
			continue;
		if (sscanf(p + 1, "%15s %15s %15s %d %x:%x:%lu", kind, adv, rw, &pid, &maj, &min, &ino) != 7)
			continue;
		if (strcmp(kind, "FLOCK") || ino != (unsigned long)lst->st_ino ||
		    makedev(maj, min) != lst->st_dev)
			continue;
		found = pid;
		break;
	}
	orch_free(text);
	return found;
}

/* What a live thread of a dead-led process holds. */
struct holder {
	pid_t tid;		/* a live thread other than the leader, or 0 */
	char state;
	char wchan[64];
	bool has_lock;		/* an fd on the lock file */
	bool has_fuse;		/* an fd on /dev/fuse */
};

static void read_small(const char *path, char *out, size_t size)
{
	out[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, out, size - 1);
	close(fd);
	out[n > 0 ? n : 0] = '\0';
	out[strcspn(out, "\n")] = '\0';
}

static void holder_scan(pid_t pid, const struct stat *lst, struct holder *h)
{
	memset(h, 0, sizeof(*h));
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		pid_t tid = (pid_t)atoi(de->d_name);
		char s;
		if (tid <= 0 || tid == pid || !(s = task_state(pid, tid)) || s == 'Z' || s == 'X')
			continue;
		struct holder t = { .tid = tid, .state = s };
		snprintf(path, sizeof(path), "/proc/%d/task/%d/wchan", (int)pid, (int)tid);
		read_small(path, t.wchan, sizeof(t.wchan));
		/* the threads share one file table: any live one shows it */
		snprintf(path, sizeof(path), "/proc/%d/task/%d/fd", (int)pid, (int)tid);
		DIR *fd = opendir(path);
		struct dirent *fe;
		while (fd && (fe = readdir(fd))) {
			if (fe->d_name[0] == '.')
				continue;
			char fp[400], link[64];
			snprintf(fp, sizeof(fp), "%s/%s", path, fe->d_name);
			struct stat st;
			if (!stat(fp, &st) && st.st_dev == lst->st_dev && st.st_ino == lst->st_ino)
				t.has_lock = true;
			ssize_t n = readlink(fp, link, sizeof(link) - 1);
			if (n > 0) {
				link[n] = '\0';
				if (!strcmp(link, "/dev/fuse"))
					t.has_fuse = true;
			}
		}
		if (fd)
			closedir(fd);
		/* the one the kernel holds is the one to name */
		if (!h->tid || (t.state == 'D' && h->state != 'D'))
			*h = t;
	}
	closedir(d);
}

/* The lock file: "PID\n" and, once mounted, "fuse MINOR\n". */
static void lock_read(int lockfd, pid_t *pid, bool *has_minor, unsigned *minor)
{
	char buf[128];
	ssize_t n = pread(lockfd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	*pid = (pid_t)atoi(buf);
	char *l = strchr(buf, '\n');
	*has_minor = l && sscanf(l + 1, "fuse %u", minor) == 1;
}

int conn_record(int lockfd, unsigned minor)
{
	char text[64];
	int n = snprintf(text, sizeof(text), "%d\nfuse %u\n", (int)getpid(), minor);
	if (pwrite(lockfd, text, (size_t)n, 0) != n)
		return -errno;
	return 0;
}

int conn_recover_lock(int lockfd, const char *mountpoint, conn_say_fn *say, char *why, size_t why_size)
{
	struct stat lst;
	if (fstat(lockfd, &lst) < 0)
		return -errno;
	pid_t filepid;
	bool recorded;
	unsigned recmin = 0;
	lock_read(lockfd, &filepid, &recorded, &recmin);
	pid_t holder = locks_holder(&lst);
	if (!holder)
		holder = filepid;
	if (holder <= 0) {
		snprintf(why, why_size, "pid unknown");
		return -EBUSY;
	}
	snprintf(why, why_size, "pid %d", (int)holder);
	char lead = task_state(holder, holder);
	/* killed a moment ago (kill -9, then a start at once): its threads
	 * are still on their way out; wait until it is gone, or its main
	 * thread dead with another held in the kernel (below) */
	for (int64_t t0 = clock_mono_ms(); lead && lead != 'Z' && lead != 'X' && task_dying(holder) &&
					   clock_mono_ms() - t0 < RECOVER_WAIT_MS;
	     lead = task_state(holder, holder)) {
		if (flock(lockfd, LOCK_EX | LOCK_NB) == 0) {
			sayf(say, "orchfs pid %d, killed, is gone (after %lld ms): the state directory is ours",
			     (int)holder, (long long)(clock_mono_ms() - t0));
			return 0;
		}
		sleep_ms(10);
	}
	if (lead && lead != 'Z' && lead != 'X')
		return -EBUSY;	/* alive: in use */

	/* its main thread is dead: a daemon that was killed, still going or
	 * held in the kernel */
	struct holder h;
	holder_scan(holder, &lst, &h);
	bool aborted = false;
	unsigned minor = 0;
	if (h.tid && h.has_lock) {
		sayf(say, "the state directory's lock is held by orchfs pid %d, whose main thread is dead: thread %d "
			  "is %s%s%s%s", (int)holder, (int)h.tid, h.state == 'D' ? "held in the kernel" : "still there",
		     *h.wchan && strcmp(h.wchan, "0") ? " (" : "", *h.wchan && strcmp(h.wchan, "0") ? h.wchan : "",
		     *h.wchan && strcmp(h.wchan, "0") ? ")" : "");
		if (h.has_fuse) {
			/* which connection: the one it recorded (the lock file is its
			 * own), unless that number is mounted as something else now;
			 * else the orchfs mounted on our mountpoint */
			bool found = false;
			struct mnt_other o = { .mountpoint = mountpoint };
			if (recorded && filepid == holder) {
				o.minor = recmin;
				if (mnt_each(mnt_other_cb, &o) == 1)
					sayf(say, "its recorded FUSE connection %u is now %s: not touching it", recmin, o.what);
				else
					found = true, minor = recmin;
			}
			dev_t dev;
			char fstype[64];
			if (!found && !conn_mount_at(mountpoint, &dev, fstype, sizeof(fstype)) &&
			    !strcmp(fstype, "fuse.orchfs") && major(dev) == 0) {
				found = true;
				minor = minor(dev);
			}
			int r = found ? conn_fusectl(say) : -ENOENT;
			if (!r)
				r = abort_minor(minor);
			if (!r) {
				aborted = true;
				sayf(say, "aborted FUSE connection %u (%s) of the dead orchfs pid %d, so that its thread "
					  "held by a request in flight returns", minor, mountpoint, (int)holder);
			} else if (found) {
				sayf(say, "cannot abort FUSE connection %u of the dead orchfs pid %d: %s", minor,
				     (int)holder, strerror(-r));
			}
		}
	}

	/* it goes within milliseconds once nothing holds it; another start
	 * waiting for it too may take the lock first: then a live orchfs
	 * holds it, and this start refuses as for any directory in use */
	int64_t t0 = clock_mono_ms();
	while (clock_mono_ms() - t0 < RECOVER_WAIT_MS) {
		if (flock(lockfd, LOCK_EX | LOCK_NB) == 0) {
			sayf(say, "orchfs pid %d is gone (after %lld ms): the state directory is ours", (int)holder,
			     (long long)(clock_mono_ms() - t0));
			return 0;
		}
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		pid_t now = locks_holder(&lst);
		char s = now > 0 && now != holder ? task_state(now, now) : 0;
		if (s && s != 'Z' && s != 'X') {
			snprintf(why, why_size, "pid %d", (int)now);
			return -EBUSY;
		}
		sleep_ms(20);
	}
	holder_scan(holder, &lst, &h);
	if (!h.tid)
		snprintf(why, why_size, "pid %d, whose main thread is dead, still holds it %d s later", (int)holder,
			 RECOVER_WAIT_MS / 1000);
	else if (aborted)
		snprintf(why, why_size, "pid %d, whose main thread is dead, still holds it %d s after its FUSE "
			 "connection %u was aborted: thread %d in state %c (%s)", (int)holder, RECOVER_WAIT_MS / 1000,
			 minor, (int)h.tid, h.state, h.wchan);
	else
		snprintf(why, why_size, "pid %d, whose main thread is dead, still holds it %d s later: thread %d in "
			 "state %c (%s)%s", (int)holder, RECOVER_WAIT_MS / 1000, (int)h.tid, h.state, h.wchan,
			 h.has_fuse ? "; its FUSE connection was not found: as root, echo 1 > " FUSECTL_DIR
				      "/N/abort (N: its mount's minor device number) frees it" : "");
	return -ETIMEDOUT;
}

static int unmount_detach(const char *mountpoint)
{
	if (geteuid() == 0)
		return umount2(mountpoint, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 ? -errno : 0;
	/* a user's mount: fusermount3 checks that it is theirs */
	char *argv[] = { "fusermount3", "-u", "-z", "-q", "--", (char *)mountpoint, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int e = posix_spawnp(&pid, "fusermount3", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e)
		return -e;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EPERM;
}

int conn_clear_dead_mount(const char *mountpoint, conn_say_fn *say, char *why, size_t why_size)
{
	/* mounts may be stacked: one dead orchfs on another */
	for (int i = 0; i < 16; i++) {
		dev_t dev;
		char fstype[64];
		if (conn_mount_at(mountpoint, &dev, fstype, sizeof(fstype)) || strcmp(fstype, "fuse.orchfs"))
			return 0;
		/* asked for real: attributes cached by the kernel would answer
		 * for a dead one too */
		struct statx stx;
		if (statx(AT_FDCWD, mountpoint, AT_STATX_FORCE_SYNC, STATX_TYPE, &stx) == 0 ||
		    (errno != ENOTCONN && errno != ECONNABORTED))
			return 0;	/* it answers (someone else's), or the caller will say */
		int r = unmount_detach(mountpoint);
		if (r) {
			snprintf(why, why_size, "a dead mount of orchfs (FUSE connection %u) is in the way and cannot be "
				 "unmounted: %s", minor(dev), strerror(-r));
			return r;
		}
		sayf(say, "cleared the dead mount of orchfs on %s (FUSE connection %u, whose daemon is gone)",
		     mountpoint, minor(dev));
	}
	snprintf(why, why_size, "dead mounts of orchfs keep coming back");
	return -ELOOP;
}
