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
	const char *path;	/* executable, resolved (proc_resolve) */
	char *const *argv;
	char *const *envp;
	const char *cwd;	/* NULL: inherit */
	int out_fd;		/* becomes stdout and stderr; stdin is /dev/null */
};

/* Spawn SPEC. 0 with *pid and *pidfd (O_CLOEXEC; readable once the child has
 * exited), or -errno (exec and chdir failures included: posix_spawn reports them). */
int proc_spawn(const struct proc_spec *spec, pid_t *pid, int *pidfd);

/* Find CMD the way execvp would, along PATH_ENV (a PATH value; NULL means
 * the default path). CMD containing '/' is taken as is. 0 with a new string
 * in *out, or -errno (-ENOENT, -EACCES). */
int proc_resolve(const char *cmd, const char *path_env, char **out);

/* Reap a child whose pidfd is readable: 0 with the wait status in *status,
 * -EAGAIN when it has not exited, or -errno. */
int proc_reap(int pidfd, int *status);

/* The start time of PID (field 22 of /proc/PID/stat), which tells a process
 * from a later one that reused its PID. 0 when unknown. */
uint64_t proc_start_time(pid_t pid);

/* Signal the process group PGID (and PGID itself, in case it left the group). */
void proc_kill_group(pid_t pgid, int sig);

/* Signal every descendant of ROOT (not ROOT itself) whose command name is not
 * SKIP_COMM (NULL: none skipped). For sandboxed steps: bubblewrap neither
 * forwards signals nor shares the step's process group, so a step's own
 * processes are found by walking /proc/PID/task/TID/children. Returns how many
 * processes were signalled. */
int proc_signal_tree(pid_t root, int sig, const char *skip_comm);

/* The parent of PID, or 0 when unknown. */
pid_t proc_parent(pid_t pid);

#endif
