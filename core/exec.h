/* core/exec.h — the step trampoline, for steps that run as another user
 * (a root daemon running an ordinary user's plan): posix_spawn cannot drop
 * privileges, so the spawner (core/spawner.h) starts this fixed program
 * instead, which runs in the child:
 *
 *   HELPER --exec-step PPID UID GID CWD -- ARGV...
 *
 * It drops to UID/GID ("-": keep), sets HOME, USER and LOGNAME for a new
 * user, dies with process PPID ("-": bubblewrap sees to it), changes to CWD
 * and execs ARGV[0] along the PATH of its environment (the step's). When
 * that fails it says why on stderr (the step's log), writes the errno to fd
 * EXEC_ERR_FD and exits 127 (not found) or 126. */
#ifndef ORCH_EXEC_H
#define ORCH_EXEC_H

#define EXEC_STEP_FLAG "--exec-step"
#define EXEC_ERR_FD 3

/* main() for `--exec-step`: never returns. */
int orch_exec_step(int argc, char **argv) __attribute__((noreturn));

#endif
