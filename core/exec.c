/* core/exec.c — the step trampoline (see exec.h). A short-lived process of
 * its own: it may block (on a FUSE path, on NSS) without harming anyone. */
#include "core/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void fail(const char *what, const char *arg, int err) __attribute__((noreturn));
static void fail(const char *what, const char *arg, int err)
{
	dprintf(2, "orchfs: %s \"%s\": %s\n", what, arg, strerror(err));
	ssize_t w = write(EXEC_ERR_FD, &err, sizeof(err));
	(void)w;
	_exit(err == ENOENT ? 127 : 126);
}

static long num(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	return (errno || *end || end == s || v < 0) ? -1 : v;
}

int orch_exec_step(int argc, char **argv)
{
	/* argv: HELPER --exec-step PPID UID GID CWD -- ARGV... */
	if (argc < 8 || strcmp(argv[6], "--")) {
		dprintf(2, "orchfs: %s: usage: PPID UID GID CWD -- COMMAND...\n", EXEC_STEP_FLAG);
		_exit(126);
	}
	const char *ppid = argv[2], *uid = argv[3], *gid = argv[4], *cwd = argv[5];
	char **cmd = argv + 7;

	if (strcmp(uid, "-")) {
		long u = num(uid), g = num(gid);
		if (u < 0 || g < 0)
			fail("bad user", uid, EINVAL);
		struct passwd *pw = getpwuid((uid_t)u);
		if ((pw ? initgroups(pw->pw_name, (gid_t)g) : setgroups(0, NULL)) < 0)
			fail("cannot set the groups of user", uid, errno);
		if (setgid((gid_t)g) < 0)
			fail("cannot become group", gid, errno);
		if (setuid((uid_t)u) < 0)
			fail("cannot become user", uid, errno);
		if (pw) {
			setenv("HOME", pw->pw_dir, 1);
			setenv("USER", pw->pw_name, 1);
			setenv("LOGNAME", pw->pw_name, 1);
		}
	}
	if (strcmp(ppid, "-")) {
		/* die with the daemon (a credentials change above clears this:
		 * set it after) */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != (pid_t)num(ppid))
			_exit(126);	/* it is already gone */
	}
	if (chdir(cwd) < 0)
		fail("cannot change to directory", cwd, errno);
	fcntl(EXEC_ERR_FD, F_SETFD, FD_CLOEXEC);	/* closed by a successful exec */
	execvp(cmd[0], cmd);
	fail("cannot run", cmd[0], errno);
}
