/* core/store.h — the SQLite database of one state directory: schema,
 * cached prepared statements, and the engine's batched transaction.
 * Owned by the engine thread; nothing else touches the sqlite3 handle.
 *
 * Writes open a transaction lazily; the engine commits once per loop turn.
 * Commits run with synchronous=NORMAL; one whose batch holds an acknowledged
 * change (store_mark_durable()) then syncs the WAL, as FULL would: everyone
 * whose change landed in that batch shares one fsync — group commit. */
#ifndef ORCH_STORE_H
#define ORCH_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/util.h"

#define STORE_STMT_SLOTS 256

struct store {
	sqlite3 *db;
	bool in_tx;
	bool durable;		/* the open transaction must be fsynced */
	int64_t commits, durable_commits;
	int64_t rollbacks;	/* changes undone so far: caches of the store compare this */
	int64_t page_size;
	int64_t wal_ready;	/* the WAL file's bytes written ahead of its frames, up to */
	int wal_frames;		/* frames in the WAL after the last commit */
	char *zeros;		/* 64 KiB of them, once needed */
	struct { const char *sql; sqlite3_stmt *st; } stmts[STORE_STMT_SLOTS];
};

/* Open (creating if needed) the database at PATH, in WAL mode, with the schema.
 * 0 or -errno; on failure a message naming PATH goes to ERR. */
int store_open(struct store *s, const char *path, struct sbuf *err);
void store_close(struct store *s);

/* Map an SQLite result code to -errno (SQLITE_FULL -> -ENOSPC, ...). */
int store_errno(int rc);

/* Bind and step a cached statement for SQL (a string literal: it is cached
 * by address). FMT gives one letter per parameter: 'i' int64_t, 'I' int64_t id (0 binds NULL), 'd' double,
 * 's' const char * (NULL binds NULL), 'b' (const void *, int len) blob,
 * 'n' NULL. A write opens the batch transaction first.
 * store_exec: runs to completion; 0 or -errno.
 * store_query: returns the statement positioned on its first row (or NULL
 * when there is none or on error, with *rc set to 0 or -errno); read with
 * sqlite3_column_*(), advance with store_next(), finish with store_done(). */
int store_exec(struct store *s, const char *sql, const char *fmt, ...);
sqlite3_stmt *store_query(struct store *s, const char *sql, int *rc, const char *fmt, ...);
bool store_next(sqlite3_stmt *st);
void store_done(sqlite3_stmt *st);
/* Single-value helpers: the first column of the first row, or DFLT. */
int64_t store_int(struct store *s, const char *sql, int64_t dflt, const char *fmt, ...);

/* Run SQL (one parameter: AFTER) and call CB with each row's two columns
 * (an id and a name) until it returns non-zero: 0 or -errno. */
int store_list(struct store *s, const char *sql, int64_t after,
	       int (*cb)(void *ctx, int64_t id, const char *name), void *ctx);

int store_begin(struct store *s);	/* 0 or -errno; no-op inside a batch */
void store_mark_durable(struct store *s);
/* A savepoint NAME inside the batch: 0 or -errno. store_release() ends it,
 * keeping its changes (KEEP) or undoing them. */
int store_savepoint(struct store *s, const char *name);
void store_release(struct store *s, const char *name, bool keep);
/* Commit the batch if one is open: 0 or -errno (then it was rolled back). */
int store_commit(struct store *s);
/* COMMIT without the sync a durable batch needs: *DURABLE says whether it
 * needs one (store_sync(), or the syncer thread on the WAL file). */
int store_commit_nosync(struct store *s, bool *durable);
int store_sync(struct store *s);
int store_rollback(struct store *s);

#endif
