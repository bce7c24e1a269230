/* core/proc.h — starting and signalling step processes.
 * A spec is built completely first, then one posix_spawn() starts the child
 * in a process group of its own with a clean signal state; exits are watched
 * through a pidfd. Called on the engine thread only (no shared state). */
#ifndef ORCH_PROC_H
#define ORCH_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct proc_spec {
	const char *path;	/* the executable: the trampoline, bubblewrap, or the
				 * command of a step of the daemon's own user as found */
	char *const *argv;
	char *const *envp;
	int out_fd;		/* becomes stdout and stderr; stdin is /dev/null */
	int err_fd;		/* becomes fd 3 (EXEC_ERR_FD); -1: none */
	int env_fd;		/* becomes fd 4 (EXEC_ENV_FD); -1: none. Every
				 * other fd is closed in the child */
	const char *cwd;	/* changed to in the child; NULL: the caller's */
	int cwd_fd;		/* or this directory (>= 0), taken before cwd */
	bool no_wait;		/* started but not followable (no pidfd): killed,
				 * its pid left in *pid for the caller to reap */
	bool new_session;	/* a session of its own (hence a process group of
				 * its own, and no controlling terminal) */
};

/* Spawn SPEC in a process group of its own (a session of its own with
 * new_session), every signal at its default and unblocked. posix_spawn
 * returns once the child has exec'd PATH (after its chdir to CWD): on the
 * engine's thread neither may be a path of its own mount (core/spawner.c
 * calls it from a thread that may wait). 0 with *pid and *pidfd (O_CLOEXEC;
 * readable once the child has exited), or -errno. Where the kernel (or
 * valgrind) has no pidfd_open, *pidfd is -1: the caller learns of the exit
 * from SIGCHLD and proc_wait_any(). */
int proc_spawn(const struct proc_spec *spec, pid_t *pid, int *pidfd);

/* May the engine's thread itself spawn EXE (an absolute path found for a
 * command) without the risk that the exec waits for its own mount, or for
 * any file server? Yes when every directory the path passes through, every
 * symlink it follows and the file at its end are root's and writable by no
 * one else (only root could make them lead elsewhere later), all on local
 * file systems (never FUSE, so never the mount), and the file is an ELF
 * executable of this machine whose interpreter passes the same walk. Not
 * for the engine thread: it stats and reads EXE. */
bool proc_exe_trusted(const char *exe);

/* Find CMD the way execvp would, along PATH_ENV (a PATH value; NULL means
 * the default path). CMD containing '/' is taken as is. 0 with a new string
 * in *out, or -errno (-ENOENT, -EACCES). Not for the engine thread: it stats
 * paths a plan may control. */
int proc_resolve(const char *cmd, const char *path_env, char **out);
/* The same, relative PATH entries taken relative to CWD (NULL: ours). */
int proc_resolve_in(const char *cmd, const char *path_env, const char *cwd, char **out);

/* Reap one child that has exited, without blocking: 1 with *pid and *status,
 * 0 when none has, or -errno. For the no-pidfd case only. */
int proc_wait_any(pid_t *pid, int *status);

/* Has the child behind PIDFD exited (without reaping it)? */
bool proc_exited(int pidfd);
/* Reap a child whose pidfd is readable: 0 with the wait status in *status,
 * -EAGAIN when it has not exited, or -errno. */
int proc_reap(int pidfd, int *status);

/* Signal the process group PGID (and PGID itself, in case it left the group). */
void proc_kill_group(pid_t pgid, int sig);

/* Signal every descendant of ROOT (not ROOT itself) whose command name is not
 * SKIP_COMM (NULL: none skipped). For sandboxed steps: bubblewrap neither
 * forwards signals nor shares the step's process group, so a step's own
 * processes are found by walking /proc/PID/task/TID/children. Returns how many
 * processes were signalled. */
int proc_signal_tree(pid_t root, int sig, const char *skip_comm);

/* SIGKILL every process (of group PGID; any when PGID <= 0) but ourselves
 * whose environment holds every one of MARKS ("KEY=VALUE"): what a dead
 * daemon's steps left behind. Returns how many. */
int proc_kill_marked(pid_t pgid, const char *const *marks, size_t nmarks);

/* The parent of PID, or 0 when unknown. */
pid_t proc_parent(pid_t pid);

#endif
