/* tests/test_store.c — the SQLite store: schema, bindings, savepoints,
 * batched and durable commits, persistence across reopening. Real files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/store.h"

struct fixture {
	char dir[64];
	char path[96];
	struct store st;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/orchfs-test-store.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/db", f->dir);
	struct sbuf err = SBUF_INIT;
	if (store_open(&f->st, f->path, &err)) {
		fprintf(stderr, "%s\n", sbuf_str(&err));
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(&f->st);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void reopen(struct fixture *f)
{
	struct sbuf err = SBUF_INIT;
	store_close(&f->st);
	assert_int_equal(store_open(&f->st, f->path, &err), 0);
	sbuf_release(&err);
}

static void test_store__schema_and_wal(void **state)
{
	struct fixture *f = *state;
	int rc;
	sqlite3_stmt *q = store_query(&f->st, "PRAGMA journal_mode", &rc, NULL);
	assert_non_null(q);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	store_done(q);
	assert_int_equal(store_int(&f->st, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL), 8);
	static const char *const tables[] = { "runs", "steps", "attempts", "events", "plan_files",
					      "plan_names", "sandboxes", "ports", "schedules", "windows" };
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		assert_int_equal(store_int(&f->st, "SELECT count(*) FROM sqlite_master WHERE name = ?", 0,
					   "s", tables[i]),
				 1);
}

static void test_store__round_trip_after_reopen(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_exec(&f->st,
				    "INSERT INTO runs(name, plan_name, state, sandbox, plan_json, created_at)"
				    " VALUES(?, ?, ?, ?, ?, ?)",
				    "sssssi", "r-1", "r", "running", "r-1", "{}", (int64_t)1234),
			 0);
	assert_true(f->st.in_tx);	/* a write opens the batch */
	store_mark_durable(&f->st);
	assert_int_equal(store_commit(&f->st), 0);
	assert_false(f->st.in_tx);
	assert_int_equal(f->st.durable_commits, 1);
	reopen(f);
	int rc;
	sqlite3_stmt *q = store_query(&f->st, "SELECT name, state, created_at FROM runs WHERE name = ?",
				      &rc, "s", "r-1");
	assert_non_null(q);
	assert_string_equal((const char *)sqlite3_column_text(q, 1), "running");
	assert_int_equal(sqlite3_column_int64(q, 2), 1234);
	assert_false(store_next(q));
	store_done(q);
}

static void test_store__uncommitted_batch_is_lost(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_exec(&f->st, "INSERT INTO meta(key, value) VALUES('k', 1)", NULL), 0);
	assert_int_equal(store_int(&f->st, "SELECT value FROM meta WHERE key = 'k'", 0, NULL), 1);
	assert_int_equal(store_rollback(&f->st), 0);
	assert_int_equal(store_int(&f->st, "SELECT value FROM meta WHERE key = 'k'", -1, NULL), -1);
}

static void test_store__savepoint_undo_keeps_batch(void **state)
{
	struct fixture *f = *state;
	store_exec(&f->st, "INSERT INTO meta(key, value) VALUES('before', 1)", NULL);
	assert_int_equal(store_savepoint(&f->st, "sp"), 0);
	store_exec(&f->st, "INSERT INTO meta(key, value) VALUES('inside', 1)", NULL);
	store_release(&f->st, "sp", false);
	assert_true(f->st.in_tx);	/* the batch is still open */
	assert_int_equal(store_commit(&f->st), 0);
	assert_int_equal(store_int(&f->st, "SELECT count(*) FROM meta WHERE key = 'before'", 0, NULL), 1);
	assert_int_equal(store_int(&f->st, "SELECT count(*) FROM meta WHERE key = 'inside'", 0, NULL), 0);
	/* a savepoint outside a batch opens one rather than committing by itself */
	assert_int_equal(store_savepoint(&f->st, "sp2"), 0);
	store_exec(&f->st, "INSERT INTO meta(key, value) VALUES('kept', 1)", NULL);
	store_release(&f->st, "sp2", true);
	assert_true(f->st.in_tx);
	assert_int_equal(store_commit(&f->st), 0);
	reopen(f);
	assert_int_equal(store_int(&f->st, "SELECT count(*) FROM meta WHERE key = 'kept'", 0, NULL), 1);
}

static void test_store__errors_map_to_errno(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_exec(&f->st, "INSERT INTO plan_files(name) VALUES(?)", "s", "x"), 0);
	assert_int_equal(store_exec(&f->st, "INSERT INTO plan_files(name) VALUES(?)", "s", "x"), -EEXIST);
	assert_int_equal(store_errno(SQLITE_FULL), -ENOSPC);
	assert_int_equal(store_errno(SQLITE_NOMEM), -ENOMEM);
	assert_int_equal(store_errno(SQLITE_OK), 0);
	store_commit(&f->st);
}

static void test_store__null_ids_and_no_rows(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_exec(&f->st,
				    "INSERT INTO events(seq, ts, type, run, sandbox, line, g_off) VALUES(1, 0, 't', ?, ?, 'x', 0)",
				    "II", (int64_t)0, (int64_t)7),
			 0);
	assert_int_equal(store_int(&f->st, "SELECT count(*) FROM events WHERE run IS NULL", 0, NULL), 1);
	assert_int_equal(store_int(&f->st, "SELECT sandbox FROM events WHERE seq = 1", 0, NULL), 7);
	int rc = -1;
	assert_null(store_query(&f->st, "SELECT 1 FROM runs WHERE name = ?", &rc, "s", "none"));
	assert_int_equal(rc, 0);
	store_commit(&f->st);
}

/* A state directory of schema version 1 (events keyed by an AUTOINCREMENT
 * seq, with an index on g_off) opens as version 3 (2, then 3) with every
 * event and offset as it was, and the views read the same. */
static void test_store__migrates_events_from_version_1(void **state)
{
	(void)state;
	char dir[] = "/tmp/orchfs-test-store-v1.XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/db", dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db,
			     "PRAGMA journal_mode=WAL;"
			     "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
			     "INSERT INTO meta VALUES('schema', 1);"
			     "CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
			     " ts INTEGER NOT NULL, type TEXT NOT NULL, run INTEGER, sandbox INTEGER,"
			     " line TEXT NOT NULL, g_off INTEGER NOT NULL, r_off INTEGER, s_off INTEGER);"
			     "CREATE INDEX events_g ON events(g_off);"
			     "CREATE INDEX events_r ON events(run, r_off) WHERE run IS NOT NULL;"
			     "CREATE INDEX events_s ON events(sandbox, s_off) WHERE sandbox IS NOT NULL;"
			     "INSERT INTO events VALUES(1, 10, 'a', 1, 5, '{\"seq\":1}', 0, 0, 0);"
			     "INSERT INTO events VALUES(2, 11, 'b', NULL, 5, '{\"seq\":2}', 10, NULL, 10);"
			     "INSERT INTO events VALUES(4, 12, 'c', 1, NULL, '{\"seq\":4}', 20, 10, NULL);",
			     NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);

	struct store st;
	struct sbuf err = SBUF_INIT;
	assert_int_equal(store_open(&st, path, &err), 0);
	assert_int_equal(store_int(&st, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL), 8);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM sqlite_master WHERE name = 'events_g'", -1, NULL), 0);
	assert_int_equal(store_int(&st, "PRAGMA freelist_count", -1, NULL), 0);	/* vacuumed */
	assert_int_equal(store_int(&st, "SELECT count(*) FROM events", 0, NULL), 3);
	/* g_off is the key now, and the highest seq sits in the last row */
	assert_int_equal(store_int(&st, "SELECT seq FROM events ORDER BY g_off DESC LIMIT 1", 0, NULL), 4);
	assert_int_equal(store_int(&st, "SELECT rowid FROM events WHERE seq = 2", 0, NULL), 10);
	assert_int_equal(store_int(&st, "SELECT max(r_off) FROM events WHERE run = 1", 0, NULL), 10);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM events WHERE sandbox = 5", 0, NULL), 2);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM events WHERE sandbox IS NULL", 0, NULL), 1);
	/* a new event goes on after them */
	assert_int_equal(store_exec(&st,
				    "INSERT INTO events(seq, ts, type, line, g_off) VALUES(5, 13, 'd', 'x', 30)",
				    NULL),
			 0);
	assert_int_equal(store_commit(&st), 0);
	store_close(&st);
	/* and it opens again without migrating twice */
	assert_int_equal(store_open(&st, path, &err), 0);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM events", 0, NULL), 4);
	int rc;
	sqlite3_stmt *q = store_query(&st, "PRAGMA integrity_check", &rc, NULL);
	assert_non_null(q);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
	store_done(q);
	store_close(&st);
	sbuf_release(&err);
	rm_rf(dir);
}

/* A state directory of schema version 3 (steps without sup, runs without
 * cancelled_by, the index of unfinished runs without needs_human) opens as
 * version 4 with its rows as they were, and the new columns usable. */
static void test_store__migrates_supervision_from_version_3(void **state)
{
	(void)state;
	char dir[] = "/tmp/orchfs-test-store-v3.XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/db", dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db,
			     "PRAGMA journal_mode=WAL;"
			     "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
			     "INSERT INTO meta VALUES('schema', 3);"
			     "CREATE TABLE runs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
			     " name TEXT NOT NULL UNIQUE, plan_name TEXT NOT NULL, plan_id TEXT, state TEXT NOT NULL,"
			     " sandbox TEXT NOT NULL, created_at INTEGER, started_at INTEGER, finished_at INTEGER,"
			     " updated_at INTEGER, plan_json TEXT NOT NULL, uid INTEGER, gid INTEGER,"
			     " aborted INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0,"
			     " paused INTEGER NOT NULL DEFAULT 0, ev_bytes INTEGER NOT NULL DEFAULT 0);"
			     "CREATE INDEX runs_unfinished ON runs(state) WHERE state IN ('pending','running','paused');"
			     "CREATE TABLE steps(id INTEGER PRIMARY KEY AUTOINCREMENT,"
			     " run INTEGER NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,"
			     " attempt INTEGER NOT NULL DEFAULT 0, counted INTEGER NOT NULL DEFAULT 0,"
			     " budget INTEGER NOT NULL DEFAULT 0, interrupted INTEGER NOT NULL DEFAULT 0,"
			     " exit_code INTEGER, signal INTEGER, reason TEXT, started_at INTEGER, finished_at INTEGER,"
			     " duration_ms INTEGER, retry_at INTEGER, pid INTEGER, pgid INTEGER, pstart INTEGER,"
			     " UNIQUE(run, name));"
			     "INSERT INTO runs(name, plan_name, state, sandbox, plan_json) VALUES('a-1', 'a', 'running', 'a-1', '{}');"
			     "INSERT INTO steps(run, idx, name, state) VALUES(1, 0, 's', 'running');",
			     NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);

	struct store st;
	struct sbuf err = SBUF_INIT;
	assert_int_equal(store_open(&st, path, &err), 0);
	assert_int_equal(store_int(&st, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL), 8);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM sqlite_master WHERE name = 'runs_unfinished'", -1, NULL), 0);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM sqlite_master WHERE name = 'runs_unfinished2'", -1, NULL), 1);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM steps WHERE name = 's' AND sup IS NULL", 0, NULL), 1);
	assert_int_equal(store_exec(&st, "UPDATE steps SET sup = '{\"turns\":2}' WHERE id = 1", NULL), 0);
	assert_int_equal(store_exec(&st, "UPDATE runs SET cancelled_by = 1000, state = 'needs_human'", NULL), 0);
	assert_int_equal(store_commit(&st), 0);
	store_close(&st);
	/* opens again without migrating twice */
	assert_int_equal(store_open(&st, path, &err), 0);
	assert_int_equal(store_int(&st, "SELECT cancelled_by FROM runs WHERE state = 'needs_human'", 0, NULL), 1000);
	assert_int_equal(store_int(&st, "SELECT json_extract(sup, '$.turns') FROM steps", 0, NULL), 2);
	store_close(&st);
	sbuf_release(&err);
	rm_rf(dir);
}

/* A state directory of schema version 4 (sandboxes without health, no
 * webhook tables) opens as version 5 with its rows as they were, the new
 * column and tables usable. */
static void test_store__migrates_integration_from_version_4(void **state)
{
	(void)state;
	char dir[] = "/tmp/orchfs-test-store-v4.XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/db", dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db,
			     "PRAGMA journal_mode=WAL;"
			     "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
			     "INSERT INTO meta VALUES('schema', 4);"
			     "CREATE TABLE sandboxes(id INTEGER PRIMARY KEY AUTOINCREMENT,"
			     " name TEXT NOT NULL UNIQUE, state TEXT NOT NULL DEFAULT 'ready', isolation INTEGER,"
			     " network INTEGER, nports INTEGER, created_at INTEGER, uid INTEGER, gid INTEGER,"
			     " owner_run TEXT, last_heartbeat INTEGER, restarts INTEGER NOT NULL DEFAULT 0,"
			     " ev_bytes INTEGER NOT NULL DEFAULT 0);"
			     "INSERT INTO sandboxes(name, uid) VALUES('box', 1000);",
			     NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);

	struct store st;
	struct sbuf err = SBUF_INIT;
	assert_int_equal(store_open(&st, path, &err), 0);
	assert_int_equal(store_int(&st, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL), 8);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM sandboxes WHERE name = 'box' AND health IS NULL", 0, NULL), 1);
	assert_int_equal(store_exec(&st, "UPDATE sandboxes SET health = '{\"interval_ms\":1000}'", NULL), 0);
	assert_int_equal(store_exec(&st, "INSERT INTO webhook_subs(url) VALUES('http://a/')", NULL), 0);
	assert_int_equal(store_exec(&st, "INSERT INTO webhook_queue(sub, seq, g_off) VALUES(1, 7, 0)", NULL), 0);
	assert_int_equal(store_commit(&st), 0);
	store_close(&st);
	/* opens again without migrating twice */
	assert_int_equal(store_open(&st, path, &err), 0);
	assert_int_equal(store_int(&st, "SELECT json_extract(health, '$.interval_ms') FROM sandboxes", 0, NULL), 1000);
	assert_int_equal(store_int(&st, "SELECT seq FROM webhook_queue WHERE sub = 1", 0, NULL), 7);
	store_close(&st);
	sbuf_release(&err);
	rm_rf(dir);
}

/* A state directory of schema version 4 (sandboxes without port names nor
 * activity, ports without their place) opens as version 6 (5, then 6) with its rows as
 * they were: no names, no place (the ports keep the order of their
 * numbers), no activity; the new columns usable, and nothing migrated twice. */
static void test_store__migrates_ports_activity_from_version_4(void **state)
{
	(void)state;
	char dir[] = "/tmp/orchfs-test-store-v4.XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/db", dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_exec(db,
			     "PRAGMA journal_mode=WAL;"
			     "CREATE TABLE meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
			     "INSERT INTO meta VALUES('schema', 4);"
			     "CREATE TABLE sandboxes(id INTEGER PRIMARY KEY AUTOINCREMENT,"
			     " name TEXT NOT NULL UNIQUE, state TEXT NOT NULL DEFAULT 'ready', isolation INTEGER,"
			     " network INTEGER, nports INTEGER, created_at INTEGER, uid INTEGER, gid INTEGER,"
			     " owner_run TEXT, last_heartbeat INTEGER, restarts INTEGER NOT NULL DEFAULT 0,"
			     " ev_bytes INTEGER NOT NULL DEFAULT 0);"
			     "CREATE TABLE ports(port INTEGER PRIMARY KEY, sandbox INTEGER NOT NULL);"
			     "INSERT INTO sandboxes(name, nports) VALUES('box', 2);"
			     "INSERT INTO ports VALUES(20001, 1);"
			     "INSERT INTO ports VALUES(20000, 1);",
			     NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);

	struct store st;
	struct sbuf err = SBUF_INIT;
	assert_int_equal(store_open(&st, path, &err), 0);
	assert_int_equal(store_int(&st, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL), 8);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM sandboxes WHERE port_names IS NULL"
				   " AND activity_at IS NULL AND activity_changes = 0", 0, NULL), 1);
	/* version 7: the schedules table, made by its migration */
	assert_int_equal(store_int(&st, "SELECT count(*) FROM sqlite_master WHERE name = 'schedules'", 0, NULL), 1);
	assert_int_equal(store_int(&st, "SELECT count(*) FROM ports WHERE idx IS NULL", 0, NULL), 2);
	assert_int_equal(store_int(&st, "SELECT port FROM ports WHERE sandbox = 1 ORDER BY idx, port LIMIT 1",
				   0, NULL), 20000);
	assert_int_equal(store_exec(&st, "UPDATE sandboxes SET port_names = 'api,web', activity_changes = 7", NULL),
			 0);
	assert_int_equal(store_commit(&st), 0);
	store_close(&st);
	assert_int_equal(store_open(&st, path, &err), 0);
	assert_int_equal(store_int(&st, "SELECT activity_changes FROM sandboxes WHERE port_names = 'api,web'",
				   0, NULL), 7);
	store_close(&st);
	sbuf_release(&err);
	rm_rf(dir);
}

/* Windows (version 8) from version 6, and from 7 (schedules, made beside
 * them): the table made, the version 8, the rest untouched. */
static void test_store__migrates_windows_from_6_and_7(void **state)
{
	(void)state;
	for (int from = 6; from <= 7; from++) {
		char dir[] = "/tmp/orchfs-test-store-v6.XXXXXX", path[64], sql[160];
		assert_non_null(mkdtemp(dir));
		snprintf(path, sizeof(path), "%s/db", dir);
		struct store st;
		struct sbuf err = SBUF_INIT;
		assert_int_equal(store_open(&st, path, &err), 0);
		/* as an older version left it */
		snprintf(sql, sizeof(sql), "DROP TABLE windows; UPDATE meta SET value = %d WHERE key = 'schema';", from);
		assert_int_equal(sqlite3_exec(st.db, sql, NULL, NULL, NULL), SQLITE_OK);
		assert_int_equal(store_exec(&st, "INSERT INTO sandboxes(name) VALUES('box')", NULL), 0);
		assert_int_equal(store_commit(&st), 0);
		store_close(&st);
		assert_int_equal(store_open(&st, path, &err), 0);
		assert_int_equal(store_int(&st, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL), 8);
		assert_int_equal(store_int(&st, "SELECT count(*) FROM sandboxes", 0, NULL), 1);
		assert_int_equal(store_exec(&st, "INSERT INTO windows(sandbox, name, spec, opened_at, deadline,"
					    " max_deadline) VALUES(1, 'box', '{}', 1, 2, 3)", NULL), 0);
		assert_int_equal(store_commit(&st), 0);
		store_close(&st);
		assert_int_equal(store_open(&st, path, &err), 0);
		assert_int_equal(store_int(&st, "SELECT deadline FROM windows WHERE sandbox = 1", 0, NULL), 2);
		store_close(&st);
		sbuf_release(&err);
		rm_rf(dir);
	}
}

static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	assert_non_null(in);
	assert_non_null(out);
	char buf[65536];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* The WAL is written ahead of its frames with zeros after durable commits
 * (their sync then writes no new size), and the files as a kill -9 leaves them,
 * copied while the store is open, recover every committed row: recovery
 * stops at the zeros. */
static void test_store__wal_written_ahead_recovers(void **state)
{
	struct fixture *f = *state;
	char wal[128], cdir[96], cpath[128], cwal[160];
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	struct stat st;
	/* commits that are not synced do not pay for it */
	for (int i = 0; i < 20; i++) {
		assert_int_equal(store_exec(&f->st, "INSERT OR REPLACE INTO meta(key, value) VALUES('n', ?)", "i",
					    (int64_t)i),
				 0);
		assert_int_equal(store_commit(&f->st), 0);
	}
	assert_int_equal(stat(wal, &st), 0);
	assert_true(st.st_size < (1 << 20));
	for (int i = 0; i < 300; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(store_exec(&f->st, "INSERT INTO meta(key, value) VALUES(?, ?)", "si", key,
					    (int64_t)i),
				 0);
		store_mark_durable(&f->st);
		assert_int_equal(store_commit(&f->st), 0);
	}
	assert_int_equal(stat(wal, &st), 0);
	assert_true(st.st_size >= (2 << 20));
	/* its end is zeros, not frames */
	FILE *w = fopen(wal, "rb");
	assert_non_null(w);
	assert_int_equal(fseek(w, -65536, SEEK_END), 0);
	static unsigned char tail[65536];
	assert_int_equal(fread(tail, 1, sizeof(tail), w), sizeof(tail));
	fclose(w);
	for (size_t i = 0; i < sizeof(tail); i++)
		assert_int_equal(tail[i], 0);

	snprintf(cdir, sizeof(cdir), "%s/copy", f->dir);
	assert_int_equal(mkdir(cdir, 0700), 0);
	snprintf(cpath, sizeof(cpath), "%s/db", cdir);
	snprintf(cwal, sizeof(cwal), "%s-wal", cpath);
	copy_file(f->path, cpath);
	copy_file(wal, cwal);
	struct store c;
	struct sbuf err = SBUF_INIT;
	assert_int_equal(store_open(&c, cpath, &err), 0);
	sbuf_release(&err);
	assert_int_equal(store_int(&c, "SELECT count(*) FROM meta WHERE key LIKE 'k%'", -1, NULL), 300);
	assert_int_equal(store_int(&c, "SELECT value FROM meta WHERE key = 'k299'", -1, NULL), 299);
	int rc;
	sqlite3_stmt *q = store_query(&c, "PRAGMA integrity_check", &rc, NULL);
	assert_non_null(q);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
	store_done(q);
	store_close(&c);
}

static void test_store__open_failure_names_path(void **state)
{
	struct store st;
	struct sbuf err = SBUF_INIT;
	assert_true(store_open(&st, "/nonexistent-dir/x/db", &err) < 0);
	assert_non_null(strstr(sbuf_str(&err), "/nonexistent-dir/x/db"));
	sbuf_release(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store__schema_and_wal, setup, teardown),
		cmocka_unit_test(test_store__migrates_supervision_from_version_3),
		cmocka_unit_test(test_store__migrates_integration_from_version_4),
		cmocka_unit_test(test_store__migrates_ports_activity_from_version_4),
		cmocka_unit_test(test_store__migrates_windows_from_6_and_7),
		cmocka_unit_test_setup_teardown(test_store__round_trip_after_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store__uncommitted_batch_is_lost, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store__savepoint_undo_keeps_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store__errors_map_to_errno, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store__null_ids_and_no_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_store__wal_written_ahead_recovers, setup, teardown),
		cmocka_unit_test(test_store__open_failure_names_path),
		cmocka_unit_test(test_store__migrates_events_from_version_1),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
