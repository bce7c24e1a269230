/* core/exec.h — the step trampoline, for steps that run as another user
 * (a root daemon running an ordinary user's plan): posix_spawn cannot drop
 * privileges, so the spawner (core/spawner.h) starts this fixed program
 * instead, which runs in the child:
 *
 *   HELPER --exec-step PPID UID GID WORKSPACE CWD HIDE [OPTION...] -- ARGV...
 *
 * It starts as root, so it gets nothing of the step's: its environment is
 * orchfs's own (exec_clean_env()), and the step's arrives on fd EXEC_ENV_FD
 * ("K=V" strings, each ended by a NUL; a sealed memfd), read only once the
 * process is the user's. In order it: closes every fd above EXEC_ENV_FD;
 * drops to UID/GID ("-": keep) with their groups and checks that the switch
 * stuck; dies with process PPID ("-": does not); takes the step's
 * environment, plus HOME, USER and LOGNAME of a new user and PWD; changes to
 * CWD (relative; "." for the workspace itself) beneath WORKSPACE, never
 * leaving it (openat2 RESOLVE_BENEATH, as the user); when HIDE is a number
 * N, puts "--tmpfs MOUNTPOINT" for each FUSE mount the user can reach
 * (core/mounts.h) before ARGV[N] (ARGV is bubblewrap's command line);
 * sets "--rlimit-cpu N" (RLIMIT_CPU, soft N, hard N+1) and "--rlimit-nofile
 * N" (RLIMIT_NOFILE, soft and hard); and execs ARGV[0] along the PATH of the step's environment. When anything
 * fails it says why on stderr (the step's log), writes the errno to fd
 * EXEC_ERR_FD and exits 127 (not found) or 126. */
#ifndef ORCH_EXEC_H
#define ORCH_EXEC_H

#include <stddef.h>

#define EXEC_STEP_FLAG "--exec-step"
#define EXEC_ERR_FD 3
#define EXEC_ENV_FD 4
#define EXEC_OPT_CGROUP "--cgroup"
#define EXEC_OPT_RLIMIT_CPU "--rlimit-cpu"
#define EXEC_OPT_RLIMIT_NOFILE "--rlimit-nofile"

/* The PATH of every process orchfs starts with privilege, before the switch. */
#define EXEC_CLEAN_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* main() for `--exec-step`: never returns. */
int orch_exec_step(int argc, char **argv) __attribute__((noreturn));

/* The environment of a privileged helper (the trampoline before it drops
 * privileges): EXEC_CLEAN_PATH, then the marks by which the next daemon and
 * the tests find a step's processes (ORCHFS_STEP_OF=STATE_DIR,
 * ORCHFS_RUN_ID=RUN, ORCHFS_STEP_ID=STEP; NULL leaves one out), and in a
 * sanitizer build the daemon's own sanitizer options. A new packed array
 * (orch_free()), or NULL when out of memory. */
char **exec_clean_env(const char *state_dir, const char *run, const char *step);

/* A sealed memfd (O_CLOEXEC) holding the N strings of ENV, each ended by a
 * NUL, for fd EXEC_ENV_FD of the trampoline: the fd, or -errno. */
int exec_env_fd(char *const *env, size_t n);

#endif
