/* core/exec.c — the step trampoline (see exec.h). A short-lived process of
 * its own: it may block (on a FUSE path, on NSS) without harming anyone. */
#include "core/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/mounts.h"
#include "core/util.h"

static void fail(const char *what, const char *arg, int err) __attribute__((noreturn));
static void fail(const char *what, const char *arg, int err)
{
	dprintf(2, "orchfs: %s \"%s\": %s\n", what, arg, strerror(err));
	ssize_t w = write(EXEC_ERR_FD, &err, sizeof(err));
	(void)w;
	_exit(err == ENOENT ? 127 : 126);
}

/* S as a number from 0 to MAX, or -1. */
static long num(const char *s, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return (errno || *end || end == s || v < 0 || v > max) ? -1 : v;
}

/* a uid or gid: 32 bits, but for (uid_t)-1, which setuid() takes for "no change" */
#define ID_MAX 0xfffffffeL

/* Become U/G with U's groups, for good. PW: U's entry, or NULL. */
static void switch_user(long u, long g, const struct passwd *pw, const char *uid, const char *gid)
{
	if ((pw ? initgroups(pw->pw_name, (gid_t)g) : setgroups(0, NULL)) < 0)
		fail("cannot set the groups of user", uid, errno);
	if (setgid((gid_t)g) < 0)
		fail("cannot become group", gid, errno);
	if (setuid((uid_t)u) < 0)
		fail("cannot become user", uid, errno);
	/* check that it stuck: every id is the user's, and root's cannot come back */
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) < 0 || getresgid(&rg, &eg, &sg) < 0 || ru != (uid_t)u ||
	    eu != (uid_t)u || su != (uid_t)u || rg != (gid_t)g || eg != (gid_t)g || sg != (gid_t)g)
		fail("did not become user", uid, EPERM);
	if (u != 0 && (setuid(0) == 0 || seteuid(0) == 0))
		fail("could become root again after switching to user", uid, EPERM);
}

/* The step's environment from fd EXEC_ENV_FD into ours (the strings stay
 * in a buffer of their own until the exec). */
static void take_env(void)
{
	struct stat st;
	if (fstat(EXEC_ENV_FD, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 0 ||
	    st.st_size > 64 << 20)
		fail("no step environment on fd", "4", errno ? errno : EINVAL);
	size_t len = (size_t)st.st_size;
	char *buf = malloc(len + 1);
	if (!buf)
		fail("cannot read the step environment from fd", "4", ENOMEM);
	size_t got = 0;
	while (got < len) {
		ssize_t r = pread(EXEC_ENV_FD, buf + got, len - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			fail("cannot read the step environment from fd", "4", r < 0 ? errno : EIO);
		got += (size_t)r;
	}
	buf[len] = '\0';
	close(EXEC_ENV_FD);
	clearenv();
	for (size_t off = 0; off < len; off += strlen(buf + off) + 1)
		if (strchr(buf + off, '=') && buf[off] != '=' && putenv(buf + off) != 0)
			fail("cannot set the step environment", buf + off, errno);
}

/* Change to CWD beneath the directory WS, as the user. */
static void enter(const char *ws, const char *cwd)
{
	int wfd = open(ws, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (wfd < 0)
		fail("cannot open the workspace", ws, errno);
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_BENEATH };
	int dfd = (int)syscall(SYS_openat2, wfd, cwd, &how, sizeof(how));
	if (dfd < 0 && errno == EXDEV) {
		/* a symlink or ".." on the way leads out of the workspace */
		dprintf(2, "orchfs: cwd \"%s\" leads outside the workspace\n", cwd);
		fail("cannot change to directory", cwd, EACCES);
	}
	if (dfd < 0 || fchdir(dfd) < 0)
		fail("cannot change to directory", cwd, errno);
	close(dfd);
	close(wfd);
	char here[PATH_MAX];
	if (getcwd(here, sizeof(here)))
		setenv("PWD", here, 1);
}

/* ARGV with "--tmpfs MOUNTPOINT" for every FUSE mount this user can reach
 * put before ARGV[AT] (a new array, or ARGV when there is none). */
static char **hide_fuse(char **argv, size_t at)
{
	char *text;
	size_t len, n;
	char **mnt;
	int r = read_file("/proc/self/mountinfo", 64 << 20, &text, &len);
	if (r < 0)
		fail("cannot read", "/proc/self/mountinfo", -r);
	static const char *const skip[] = { "/tmp", NULL };	/* the sandbox has its own */
	if (mounts_fuse(text, getuid(), getgid(), skip, &mnt, &n) < 0)
		fail("cannot list the FUSE mounts of", "/proc/self/mountinfo", ENOMEM);
	size_t argc = 0;
	while (argv[argc])
		argc++;
	char **v = calloc(argc + 2 * n + 1, sizeof(char *));
	if (!v)
		fail("cannot list the FUSE mounts of", "/proc/self/mountinfo", ENOMEM);
	size_t k = 0;
	for (size_t i = 0; i < at; i++)
		v[k++] = argv[i];
	for (size_t i = 0; i < n; i++) {
		/* within reach: the walk there is allowed and FUSE lets us in
		 * (AT_STATX_DONT_SYNC: from its cache, without asking its server) */
		struct statx sx;
		if (statx(AT_FDCWD, mnt[i], AT_STATX_DONT_SYNC | AT_NO_AUTOMOUNT | AT_SYMLINK_NOFOLLOW,
			  STATX_TYPE, &sx) < 0 || !S_ISDIR(sx.stx_mode))
			continue;
		v[k++] = "--tmpfs";
		v[k++] = mnt[i];	/* kept until the exec */
	}
	for (size_t i = at; i < argc; i++)
		v[k++] = argv[i];
	return v;
}

int orch_exec_step(int argc, char **argv)
{
	/* argv: HELPER --exec-step PPID UID GID WORKSPACE CWD HIDE [OPTION...] -- ARGV... */
	int dd = 8;
	while (dd < argc && strcmp(argv[dd], "--"))
		dd++;
	if (argc < 10 || dd + 1 >= argc) {
		dprintf(2, "orchfs: %s: usage: PPID UID GID WORKSPACE CWD HIDE [OPTION...] -- COMMAND...\n",
			EXEC_STEP_FLAG);
		_exit(126);
	}
	const char *ppid = argv[2], *uid = argv[3], *gid = argv[4], *ws = argv[5], *cwd = argv[6],
		   *hide = argv[7];
	char **cmd = argv + dd + 1;
	long rl_cpu = -1, rl_nofile = -1;

	/* nothing of the daemon's but what orchfs handed over */
	close_range(EXEC_ENV_FD + 1, ~0U, 0);
	/* into the step's groups first, with the privilege to (SPEC §10): the
	 * step never runs outside them */
	for (int k = 8; k < dd; k += 2) {
		if (k + 1 >= dd)
			fail("option without a value", argv[k], EINVAL);
		if (!strcmp(argv[k], EXEC_OPT_CGROUP)) {
			int fd = open(argv[k + 1], O_WRONLY | O_CLOEXEC);
			if (fd < 0 || write(fd, "0", 1) != 1)
				fail("cannot join the step's cgroup", argv[k + 1], errno ? errno : EIO);
			close(fd);
		} else if (!strcmp(argv[k], EXEC_OPT_RLIMIT_CPU)) {
			if ((rl_cpu = num(argv[k + 1], LONG_MAX)) < 0)
				fail("bad limit", argv[k + 1], EINVAL);
		} else if (!strcmp(argv[k], EXEC_OPT_RLIMIT_NOFILE)) {
			if ((rl_nofile = num(argv[k + 1], LONG_MAX)) < 0)
				fail("bad limit", argv[k + 1], EINVAL);
		} else {
			fail("unknown option", argv[k], EINVAL);
		}
	}
	char *home = NULL, *name = NULL;
	if (strcmp(uid, "-")) {
		long u = num(uid, ID_MAX), g = num(gid, ID_MAX);
		if (u < 0 || g < 0)
			fail("bad user", uid, EINVAL);
		struct passwd *pw = getpwuid((uid_t)u);
		if (pw && (!(home = strdup(pw->pw_dir)) || !(name = strdup(pw->pw_name))))
			fail("cannot look up user", uid, ENOMEM);
		switch_user(u, g, pw, uid, gid);
	}
	if (strcmp(ppid, "-")) {
		/* die with the daemon (a credentials change above clears this:
		 * set it after) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != (pid_t)num(ppid, INT_MAX))
			_exit(126);	/* it is already gone */
	}
	/* only now, as the user, anything of the step's */
	take_env();
	if (name) {
		setenv("HOME", home, 1);
		setenv("USER", name, 1);
		setenv("LOGNAME", name, 1);
	}
	enter(ws, cwd);
	if (strcmp(hide, "-")) {
		long at = num(hide, INT_MAX);
		size_t n = 0;
		while (cmd[n])
			n++;
		if (at < 0 || (size_t)at > n)
			fail("bad position", hide, EINVAL);
		cmd = hide_fuse(cmd, (size_t)at);
	}
	/* closed by a successful exec: fd EXEC_ERR_FD, and anything opened
	 * since the close_range at the start (as root: NSS, initgroups) */
	fcntl(EXEC_ERR_FD, F_SETFD, FD_CLOEXEC);
	close_range(EXEC_ERR_FD + 1, ~0U, CLOSE_RANGE_CLOEXEC);
	/* the setrlimit() limits last, for the step alone: soft and hard
	 * alike, which a user cannot raise again; RLIMIT_CPU's SIGXCPU at
	 * cpu_sec, SIGKILL a second later for a step that ignores it */
	if (rl_nofile >= 0 && setrlimit(RLIMIT_NOFILE, &(struct rlimit){ (rlim_t)rl_nofile, (rlim_t)rl_nofile }) < 0)
		fail("cannot limit open files", "open_files", errno);
	if (rl_cpu >= 0 &&
	    setrlimit(RLIMIT_CPU, &(struct rlimit){ (rlim_t)rl_cpu, (rlim_t)rl_cpu + 1 }) < 0)
		fail("cannot limit CPU time", "cpu_sec", errno);
	execvp(cmd[0], cmd);
	fail("cannot run", cmd[0], errno);
}

char **exec_clean_env(const char *state_dir, const char *run, const char *step)
{
	char *v[8];
	size_t n = 0;
	bool oom = false;
	v[n++] = orch_strdup(EXEC_CLEAN_PATH);
	if (state_dir)
		v[n++] = orch_asprintf("ORCHFS_STEP_OF=%s", state_dir);
	if (run)
		v[n++] = orch_asprintf("ORCHFS_RUN_ID=%s", run);
	if (step)
		v[n++] = orch_asprintf("ORCHFS_STEP_ID=%s", step);
#if defined(__SANITIZE_ADDRESS__)
	/* the daemon's own (where a report goes), not a step's */
	static const char *const san[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" };
	for (size_t i = 0; i < ARRAY_SIZE(san); i++) {
		const char *val = getenv(san[i]);
		if (val)
			v[n++] = orch_asprintf("%s=%s", san[i], val);
	}
#endif
	for (size_t i = 0; i < n; i++)
		oom |= !v[i];
	char **env = oom ? NULL : orch_strv_pack(v, n);
	for (size_t i = 0; i < n; i++)
		orch_free(v[i]);
	return env;
}

int exec_env_fd(char *const *env, size_t n)
{
	int fd = memfd_create("orchfs-step-env", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	struct sbuf sb = SBUF_INIT;
	for (size_t i = 0; i < n; i++)
		sbuf_add(&sb, env[i], strlen(env[i]) + 1);
	int rc = sbuf_failed(&sb) ? -ENOMEM : write_all(fd, sb.buf, sb.len);
	sbuf_release(&sb);
	if (!rc && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		rc = -errno;
	if (rc) {
		close(fd);
		return rc;
	}
	return fd;
}
