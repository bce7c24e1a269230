/* core/syncer.h — group commit: the thread that makes the WAL durable.
 * The engine commits a turn's transaction (the WAL written, not yet synced)
 * and goes on serving requests; this thread fdatasync()s the WAL file, and
 * every durable change committed before that call began is then durable.
 * Changes committed while a sync is in flight share the next one. The
 * acknowledgements wait for it (engine.c), nothing else does.
 * syncer_* are called by the engine thread. */
#ifndef ORCH_SYNCER_H
#define ORCH_SYNCER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/loop.h"

struct syncer {
	struct loop_work work;	/* posted to the engine's loop when a sync ends */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t want;		/* the newest generation asked for */
	uint64_t done;		/* synced up to here */
	int err;		/* 0, or -errno of the last sync that failed */
	bool posted, quit;
	int fd;			/* the WAL file, opened on first need */
	char *path;
	struct loop *loop;
};

/* Start the thread for the WAL file PATH; FN runs on LOOP's thread after each
 * sync. 0 or -errno. */
int syncer_start(struct syncer *s, struct loop *loop, const char *path, void (*fn)(struct loop_work *, void *));
/* Ask for a sync covering everything committed so far: its generation. */
uint64_t syncer_request(struct syncer *s);
/* Synced so far (and the error of a failed sync, once): on FN's thread. */
uint64_t syncer_done(struct syncer *s, int *err);
/* Finish what was asked and end the thread. */
void syncer_stop(struct syncer *s);

#endif
