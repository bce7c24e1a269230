/* core/proc.c — posix_spawn, pidfd and process identity helpers. */
#include "core/proc.h"

#include <dirent.h>
#include <elf.h>
#include <limits.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The signals this process ignores (SIGPIPE...): exec resets handled ones
 * by itself, ignored ones it keeps, so only these need resetting in the
 * child (each reset is a syscall there, before the exec). Dispositions are
 * set once at start-up. */
static sigset_t ignored;
static pthread_once_t ignored_once = PTHREAD_ONCE_INIT;

static void find_ignored(void)
{
	sigemptyset(&ignored);
	for (int sig = 1; sig < NSIG; sig++) {
		struct sigaction sa;
		if (sig != SIGKILL && sig != SIGSTOP && sigaction(sig, NULL, &sa) == 0 &&
		    sa.sa_handler == SIG_IGN)
			sigaddset(&ignored, sig);
	}
}

static int spawn(const struct proc_spec *spec, pid_t *pidp, int *pidfdp);

int proc_spawn(const struct proc_spec *spec, pid_t *pidp, int *pidfdp)
{
	/* the child's fds 0-4 are made in order: a source among them (an fd of
	 * a caller started with few open) must not be overwritten before its
	 * turn. Moved out of the way first, the rare time it is there */
	struct proc_spec s = *spec;
	int *fd[] = { &s.out_fd, &s.err_fd, &s.env_fd, &s.cwd_fd }, tmp[4] = { -1, -1, -1, -1 }, r = 0;
	for (size_t i = 0; i < ARRAY_SIZE(fd) && !r; i++)
		if (*fd[i] >= 0 && *fd[i] < 5 && (*fd[i] = tmp[i] = fcntl(*fd[i], F_DUPFD_CLOEXEC, 5)) < 0)
			r = -errno;
	if (!r)
		r = spawn(&s, pidp, pidfdp);
	for (size_t i = 0; i < ARRAY_SIZE(fd); i++)
		if (tmp[i] >= 0)
			close(tmp[i]);
	return r;
}

static int spawn(const struct proc_spec *spec, pid_t *pidp, int *pidfdp)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t empty;
	int r;

	if ((r = posix_spawn_file_actions_init(&fa)))
		return -r;
	if ((r = posix_spawnattr_init(&at))) {
		posix_spawn_file_actions_destroy(&fa);
		return -r;
	}
	sigemptyset(&empty);
	/* every signal back to its default: the daemon ignores SIGPIPE and
	 * blocks the ones it reads through signalfd */
	pthread_once(&ignored_once, find_ignored);
	r = posix_spawnattr_setflags(&at, (spec->new_session ? POSIX_SPAWN_SETSID : POSIX_SPAWN_SETPGROUP) |
					      POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (!r && !spec->new_session)
		r = posix_spawnattr_setpgroup(&at, 0);
	if (!r)
		r = posix_spawnattr_setsigmask(&at, &empty);
	if (!r)
		r = posix_spawnattr_setsigdefault(&at, &ignored);
	if (!r)
		r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, spec->out_fd, 1);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, spec->out_fd, 2);
	if (!r && spec->err_fd >= 0)
		r = posix_spawn_file_actions_adddup2(&fa, spec->err_fd, 3);
	if (!r && spec->env_fd >= 0)
		r = posix_spawn_file_actions_adddup2(&fa, spec->env_fd, 4);
	if (!r && spec->cwd_fd >= 0)
		r = posix_spawn_file_actions_addfchdir_np(&fa, spec->cwd_fd);
	else if (!r && spec->cwd)
		r = posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
	/* every fd of ours is close-on-exec; this is for those of a library
	 * that forgot (one close_range in the child,
	 * after the fchdir to cwd_fd) */
	if (!r)
		r = posix_spawn_file_actions_addclosefrom_np(&fa, spec->env_fd >= 0 ? 5
								 : spec->err_fd >= 0 ? 4 : 3);
	pid_t pid = -1;
	if (!r)
		r = posix_spawn(&pid, spec->path, &fa, &at, spec->argv, spec->envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r)
		return -r;
	int pfd = pidfd_open(pid);
	if (pfd < 0 && errno != ENOSYS) {
		int e = -errno;
		kill(pid, SIGKILL);
		if (spec->no_wait)
			*pidp = pid;	/* the caller reaps it */
		else
			waitpid(pid, NULL, 0);
		return e;
	}
	*pidp = pid;
	*pidfdp = pfd;
	return 0;
}

int proc_resolve(const char *cmd, const char *path_env, char **out) { return proc_resolve_in(cmd, path_env, NULL, out); }

int proc_resolve_in(const char *cmd, const char *path_env, const char *cwd, char **out)
{
	if (!*cmd)
		return -ENOENT;
	if (strchr(cmd, '/')) {
		*out = orch_strdup(cmd);
		return *out ? 0 : -ENOMEM;
	}
	const char *path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
	int err = -ENOENT;
	size_t clen = strlen(cmd);
	for (const char *p = path;;) {
		const char *colon = strchr(p, ':');
		size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
		/* a relative entry (or the empty one, the current directory) is
		 * relative to where the command will run, as execvp there would see it */
		bool rel = !dlen || p[0] != '/';
		size_t wlen = rel && cwd ? strlen(cwd) + 1 : 0;
		size_t sz = wlen + dlen + clen + 3;
		char *cand = orch_malloc(sz);
		if (!cand)
			return -ENOMEM;
		if (dlen)
			snprintf(cand, sz, "%s%s%.*s/%s", wlen ? cwd : "", wlen ? "/" : "", (int)dlen, p, cmd);
		else
			snprintf(cand, sz, "%s%s./%s", wlen ? cwd : "", wlen ? "/" : "", cmd);
		struct stat st;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0) {
				*out = cand;
				return 0;
			}
			err = -EACCES;
		}
		orch_free(cand);
		if (!colon)
			break;
		p = colon + 1;
	}
	return err;
}

int proc_wait_any(pid_t *pid, int *status)
{
	int st;
	pid_t p = waitpid(-1, &st, WNOHANG);
	if (p < 0)
		return errno == ECHILD ? 0 : -errno;
	if (p == 0)
		return 0;
	*pid = p;
	*status = st;
	return 1;
}

bool proc_exited(int pidfd)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	return waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       si.si_pid != 0;
}

int proc_reap(int pidfd, int *status)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0)
		return -errno;
	if (si.si_pid == 0)
		return -EAGAIN;
	switch (si.si_code) {
	case CLD_EXITED:
		*status = W_EXITCODE(si.si_status, 0);
		break;
	case CLD_KILLED:
		*status = si.si_status;
		break;
	case CLD_DUMPED:
		*status = si.si_status | 0x80;
		break;
	default:
		*status = W_EXITCODE(255, 0);
	}
	return 0;
}

void proc_kill_group(pid_t pgid, int sig)
{
	if (pgid <= 1)
		return;
	kill(-pgid, sig);
	kill(pgid, sig);
}

/* Append the children of every thread of PID to *KIDS. */
static void children_of(pid_t pid, pid_t **kids, size_t *n, size_t *cap)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char cpath[320], buf[4096];
		snprintf(cpath, sizeof(cpath), "/proc/%d/task/%s/children", (int)pid, de->d_name);
		int fd = open(cpath, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		for (char *p = buf, *end; *p; p = end) {
			long k = strtol(p, &end, 10);
			if (end == p)
				break;
			if (*n == *cap) {
				size_t nc = *cap ? *cap * 2 : 32;
				pid_t *nk = orch_reallocarray(*kids, nc, sizeof(pid_t));
				if (!nk)
					break;
				*kids = nk;
				*cap = nc;
			}
			(*kids)[(*n)++] = (pid_t)k;
		}
	}
	closedir(d);
}

static bool comm_is(pid_t pid, const char *name)
{
	char path[64], buf[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return false;
	buf[r] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return !strcmp(buf, name);
}

int proc_signal_tree(pid_t root, int sig, const char *skip_comm)
{
	pid_t *kids = NULL;
	size_t n = 0, cap = 0, done = 0;
	int count = 0;
	children_of(root, &kids, &n, &cap);
	/* breadth first; the list grows as we go */
	while (done < n) {
		pid_t k = kids[done++];
		children_of(k, &kids, &n, &cap);
		if (skip_comm && comm_is(k, skip_comm))
			continue;
		if (kill(k, sig) == 0)
			count++;
	}
	orch_free(kids);
	return count;
}

pid_t proc_parent(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return 0;
	buf[r] = '\0';
	char *p = strrchr(buf, ')');
	int ppid = 0;
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

/* Field 5 of /proc/PID/stat: the process group. -1 when unknown. */
static pid_t proc_pgrp(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return -1;
	buf[r] = '\0';
	char *p = strrchr(buf, ')');
	int ppid, pgrp;
	if (!p || sscanf(p + 1, " %*c %d %d", &ppid, &pgrp) != 2)
		return -1;
	return (pid_t)pgrp;
}

static bool environ_has(pid_t pid, const char *const *marks, size_t n)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	char *env;
	size_t len;
	if (read_file(path, 1 << 20, &env, &len))
		return false;
	size_t found = 0;
	for (size_t k = 0; k < n; k++)
		for (size_t off = 0; off < len; off += strlen(env + off) + 1)
			if (!strcmp(env + off, marks[k])) {
				found++;
				break;
			}
	orch_free(env);
	return found == n;
}

int proc_kill_marked(pid_t pgid, const char *const *marks, size_t nmarks)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	int n = 0;
	pid_t self = getpid();
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 1 || pid == self)
			continue;
		if ((pgid <= 0 || proc_pgrp((pid_t)pid) == pgid) && environ_has((pid_t)pid, marks, nmarks) &&
		    kill((pid_t)pid, SIGKILL) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* File systems on this machine's own storage or memory: an exec on one
 * cannot wait for a server (FUSE, NFS, SMB, 9p... are not here). */
static bool local_fs(const char *path)
{
	static const unsigned long types[] = {
		0xEF53,		/* ext2, ext3, ext4 */
		0x58465342,	/* xfs */
		0x9123683E,	/* btrfs */
		0x01021994,	/* tmpfs */
		0x858458F6,	/* ramfs */
		0x794C7630,	/* overlayfs */
		0x73717368,	/* squashfs */
		0xE0F5E1E2,	/* erofs */
		0xF2F52010,	/* f2fs */
		0x2FC12FC1,	/* zfs */
		0x52654973,	/* reiserfs */
		0x3153464A,	/* jfs */
	};
	struct statfs sf;
	if (statfs(path, &sf) < 0)
		return false;
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if ((unsigned long)sf.f_type == types[i])
			return true;
	return false;
}

/* Owned by root and writable by no one else (a symlink's own mode means
 * nothing: only its directory guards it). */
static bool root_only(const struct stat *st)
{
	return st->st_uid == 0 && (S_ISLNK(st->st_mode) || !(st->st_mode & (S_IWGRP | S_IWOTH)));
}

/* Walk PATH (absolute) the way the kernel will at the exec: every directory
 * passed through, every symlink followed (their targets walked in turn, at
 * most *LINKS more) and the file at the end must be root_only() and on a
 * local_fs(). Then no one but root can make PATH lead elsewhere later, and
 * resolving it waits for no server. True when PATH ends at a regular file. */
static bool walk_trusted(const char *path, int *links)
{
	char cur[PATH_MAX], next[PATH_MAX], target[PATH_MAX];
	struct stat st;
	if (path[0] != '/' || lstat("/", &st) < 0 || !root_only(&st) || !local_fs("/"))
		return false;
	cur[0] = '\0';	/* "/" */
	for (const char *p = path;;) {
		while (*p == '/')
			p++;
		if (!*p)
			break;
		size_t len = strcspn(p, "/");
		if (len == 1 && p[0] == '.') {
			p += len;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			char *slash = strrchr(cur, '/');
			if (slash)
				*slash = '\0';	/* already walked */
			p += len;
			continue;
		}
		int n = snprintf(next, sizeof(next), "%s/%.*s", cur, (int)len, p);
		if (n < 0 || (size_t)n >= sizeof(next) || lstat(next, &st) < 0 || !root_only(&st))
			return false;
		p += len;
		if (S_ISLNK(st.st_mode)) {
			if (++*links > 40)
				return false;
			ssize_t t = readlink(next, target, sizeof(target) - 1);
			if (t <= 0)
				return false;
			target[t] = '\0';
			/* the rest of the path, after the link's target */
			char rest[PATH_MAX];
			n = target[0] == '/' ? snprintf(rest, sizeof(rest), "%s/%s", target, p)
					     : snprintf(rest, sizeof(rest), "%s/%s/%s", cur, target, p);
			if (n < 0 || (size_t)n >= sizeof(rest))
				return false;
			return walk_trusted(rest[0] ? rest : "/", links);
		}
		if (!local_fs(next))
			return false;
		if (!S_ISDIR(st.st_mode)) {
			/* a file ends the path; anything after it is ENOTDIR */
			while (*p == '/')
				p++;
			return !*p && S_ISREG(st.st_mode);
		}
		memcpy(cur, next, (size_t)n + 1);
	}
	return false;	/* a directory */
}

#if defined(__x86_64__)
#define HOST_EM EM_X86_64
#elif defined(__aarch64__)
#define HOST_EM EM_AARCH64
#endif

/* The ELF interpreter FD names (PT_INTERP) into BUF: 1, 0 when it has none
 * (static), -1 when FD is no executable 64-bit ELF file of this machine
 * (binfmt_misc could hand anything else to a program of its own) or its
 * interpreter is no absolute path. */
static int elf_interp(int fd, char *buf, size_t size)
{
#ifndef HOST_EM
	(void)fd, (void)buf, (void)size;
	return -1;
#else
	Elf64_Ehdr eh;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != HOST_EM ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    eh.e_phnum > 256)
		return -1;
	for (unsigned i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != (ssize_t)sizeof(ph))
			return -1;
		if (ph.p_type != PT_INTERP)
			continue;
		if (ph.p_filesz < 2 || ph.p_filesz > size ||
		    pread(fd, buf, ph.p_filesz, (off_t)ph.p_offset) != (ssize_t)ph.p_filesz ||
		    buf[ph.p_filesz - 1] != '\0' || buf[0] != '/')
			return -1;
		return 1;
	}
	return 0;
#endif
}

bool proc_exe_trusted(const char *exe)
{
	int links = 0;
	if (!walk_trusted(exe, &links))
		return false;
	int fd = open(exe, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return false;
	char interp[PATH_MAX];
	int k = elf_interp(fd, interp, sizeof(interp));
	close(fd);
	links = 0;
	return k == 0 || (k == 1 && walk_trusted(interp, &links));
}
