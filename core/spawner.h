/* core/spawner.h — the thread that starts step processes for the engine.
 * posix_spawn() holds its caller until the child has exec'd, and the
 * command, its cwd or a PATH entry may lie inside the engine's own mount:
 * held there, the engine thread could never answer the FUSE request that
 * lets the exec go on. This thread may be held instead (the Redis bio.c
 * pattern): the engine hands it a job that owns everything it needs, and it
 * posts the job back to the engine's loop once the process exists.
 * spawner_* are called by the engine thread; the thread touches nothing but
 * its queue and the jobs it holds. */
#ifndef ORCH_SPAWNER_H
#define ORCH_SPAWNER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/loop.h"

struct spawn_job {
	struct loop_work done;	/* first: posted back to the engine's loop */
	struct spawn_job *next;	/* the spawner's queue */
	/* what to start, all owned by the job */
	char **argv;		/* NULL-terminated; argv[0] is searched along path */
	char **envp;		/* NULL-terminated, one allocation (orch_strv_pack) */
	char *path;		/* the PATH to search argv[0] along (NULL: default) */
	char *cwd;		/* NULL: the daemon's */
	char *cwd_rel;		/* NULL, or where to run beneath cwd (the workspace):
				 * resolved without leaving it (RESOLVE_BENEATH) */
	int out_fd;		/* stdout and stderr; the spawner closes it */
	int err_fd;		/* fd 3 of the child, or -1; the spawner closes it */
	int env_fd;		/* fd 4 of the child, or -1; the spawner closes it */
	bool reap;		/* not a start: wait for process pid to end (see run.c) */
	bool want_trust;	/* see whether the engine may spawn argv[0] itself */
	bool new_session;	/* proc_spec.new_session */
	/* the result */
	pid_t pid;
	int pidfd;		/* -1 without pidfd support */
	int err;		/* 0, or -errno (the command not found, exec failed...) */
	char *trusted_exe;	/* what argv[0] resolves to, when proc_exe_trusted() */
	void *owner;		/* the engine's */
};

/* Commands found along a PATH, so that a DAG of one command searches its
 * PATH once (a stat per directory per step otherwise). The spawner thread's. */
#define SPAWNER_CACHE 32
struct spawn_cached {
	char *cmd, *path, *exe;
	int64_t at;		/* the engine's: when the spawner found it trusted */
};

/* Two threads: posix_spawn holds its thread until the child has exec'd,
 * and two steps ending together start their successors side by side. */
#define SPAWNER_THREADS 2

struct spawn_untrusted {
	char *exe;
	int64_t at;
};

struct spawner_thread {
	struct spawner *s;
	pthread_t thread;
	struct spawn_cached cache[SPAWNER_CACHE];
	unsigned next_slot;
	struct spawn_untrusted untrusted[SPAWNER_CACHE];	/* found so lately */
	unsigned next_untrusted;
};

struct spawner {
	struct spawner_thread t[SPAWNER_THREADS];
	unsigned nthreads;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct spawn_job *head, *tail;
	bool quit;
	struct loop *loop;
	/* the engine thread's: commands a spawner thread found it may spawn
	 * itself (proc_exe_trusted), for SPAWNER_TRUST_MS */
	struct spawner_thread here;
};

/* Start the threads; jobs come back as work posted to LOOP. 0 or -errno. */
int spawner_start(struct spawner *s, struct loop *loop);
/* Queue J (taken until it comes back through LOOP). */
void spawner_submit(struct spawner *s, struct spawn_job *j);
/* Finish the queued jobs and end the threads. */
void spawner_stop(struct spawner *s);
/* The engine thread's trusted commands: the path CMD found along PATH is
 * known to be, or NULL; spawner_trust() records one, spawner_distrust()
 * forgets one (its spawn failed). */
#define SPAWNER_TRUST_MS 2000
const char *spawner_trusted(struct spawner *s, const char *cmd, const char *path, int64_t now);
void spawner_trust(struct spawner *s, const char *cmd, const char *path, const char *exe, int64_t now);
void spawner_distrust(struct spawner *s, const char *cmd, const char *path);
/* Free what a job owns (after it came back). */
void spawn_job_free(struct spawn_job *j);
/* Close the descriptors J hands its child (once it is spawned, or will not
 * be), leaving them -1. */
void spawn_job_close_fds(struct spawn_job *j);

#endif
