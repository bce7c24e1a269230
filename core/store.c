/* core/store.c — SQLite access for the engine. Schema version 8 (older
 * databases are migrated at open: migrate_1_2, migrate_2_3, migrate_3_4,
 * migrate_4_5, migrate_ports_activity to 6, migrate_schedules to 7,
 * migrate_windows to 8). */
#include "core/store.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVENTS_TABLE(name)                                                                   \
	"CREATE TABLE IF NOT EXISTS " #name "(g_off INTEGER PRIMARY KEY, seq INTEGER NOT NULL,"      \
	" ts INTEGER NOT NULL, type TEXT NOT NULL, run INTEGER, sandbox INTEGER, line TEXT NOT NULL," \
	" r_off INTEGER, s_off INTEGER);\n"

/* Webhooks (SPEC §11, core/webhook.h): each subscriber URL ever configured,
 * and the events still to post to each, in seq order (an event's line is
 * its row in events, by g_off; next_at: wall ms of a retry's turn). */
#define WEBHOOK_TABLES                                                                          \
	"CREATE TABLE IF NOT EXISTS webhook_subs(id INTEGER PRIMARY KEY AUTOINCREMENT,"           \
	" url TEXT NOT NULL UNIQUE);\n"                                                           \
	"CREATE TABLE IF NOT EXISTS webhook_queue(id INTEGER PRIMARY KEY AUTOINCREMENT,"          \
	" sub INTEGER NOT NULL, seq INTEGER NOT NULL, g_off INTEGER NOT NULL,"                   \
	" attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, error TEXT);\n" \
	"CREATE INDEX IF NOT EXISTS webhook_queue_sub ON webhook_queue(sub, id);\n"

static const char schema[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;\n"
	/* one row per plan NAME ever submitted: numbering, newest run, last error */
	"CREATE TABLE IF NOT EXISTS plan_names(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE, next_n INTEGER NOT NULL DEFAULT 1, newest_run TEXT,"
	" error TEXT, error_at INTEGER, uid INTEGER, gid INTEGER);\n"
	/* the files in plans/: content lives in STATE/plans/<id> */
	"CREATE TABLE IF NOT EXISTS plan_files(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE, uid INTEGER, gid INTEGER, mode INTEGER);\n"
	"CREATE TABLE IF NOT EXISTS sandboxes(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE, state TEXT NOT NULL DEFAULT 'ready', isolation INTEGER,"
	" network INTEGER, nports INTEGER, created_at INTEGER, uid INTEGER, gid INTEGER,"
	" owner_run TEXT, last_heartbeat INTEGER, restarts INTEGER NOT NULL DEFAULT 0,"
	" ev_bytes INTEGER NOT NULL DEFAULT 0, health TEXT);\n"
	/* TCP ports held by sandboxes: no two live sandboxes share one */
	"CREATE TABLE IF NOT EXISTS ports(port INTEGER PRIMARY KEY, sandbox INTEGER NOT NULL);\n"
	"CREATE INDEX IF NOT EXISTS ports_sb ON ports(sandbox);\n"
	"CREATE TABLE IF NOT EXISTS runs(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE, plan_name TEXT NOT NULL, plan_id TEXT, state TEXT NOT NULL,"
	" sandbox TEXT NOT NULL, created_at INTEGER, started_at INTEGER, finished_at INTEGER,"
	" updated_at INTEGER, plan_json TEXT NOT NULL, uid INTEGER, gid INTEGER,"
	" aborted INTEGER NOT NULL DEFAULT 0, cancelled INTEGER NOT NULL DEFAULT 0,"
	" paused INTEGER NOT NULL DEFAULT 0, ev_bytes INTEGER NOT NULL DEFAULT 0,"
	" cancelled_by INTEGER);\n"
	"CREATE INDEX IF NOT EXISTS runs_unfinished2 ON runs(state)"
	" WHERE state IN ('pending','running','paused','needs_human');\n"
	/* a step's current state. pid/pgid/pstart are no longer written (a restart
	 * finds what a dead daemon left by the mark in its environment): kept so
	 * that older state directories open as they are */
	"CREATE TABLE IF NOT EXISTS steps(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" run INTEGER NOT NULL, idx INTEGER NOT NULL, name TEXT NOT NULL, state TEXT NOT NULL,"
	" attempt INTEGER NOT NULL DEFAULT 0, counted INTEGER NOT NULL DEFAULT 0,"
	" budget INTEGER NOT NULL DEFAULT 0, interrupted INTEGER NOT NULL DEFAULT 0,"
	" exit_code INTEGER, signal INTEGER, reason TEXT, started_at INTEGER, finished_at INTEGER,"
	" duration_ms INTEGER, retry_at INTEGER, pid INTEGER, pgid INTEGER, pstart INTEGER,"
	" sup TEXT, UNIQUE(run, name));\n"
	"CREATE INDEX IF NOT EXISTS steps_live ON steps(pid) WHERE pid IS NOT NULL;\n"
	/* one row per attempt that ended (a running one is its step's row) */
	"CREATE TABLE IF NOT EXISTS attempts(step INTEGER NOT NULL, k INTEGER NOT NULL,"
	" state TEXT NOT NULL, started_at INTEGER, finished_at INTEGER, exit_code INTEGER,"
	" signal INTEGER, reason TEXT, PRIMARY KEY(step, k)) WITHOUT ROWID;\n"
	/* messages to the worker of a sandbox, FIFO by id; len and off: its
	 * line in the sandbox's messages view, which never changes length (msgq.c;
	 * their index, messages_off, is made after the migrations) */
	"CREATE TABLE IF NOT EXISTS messages(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" sandbox INTEGER NOT NULL, ts INTEGER NOT NULL, type TEXT NOT NULL, content TEXT NOT NULL,"
	" state TEXT NOT NULL DEFAULT 'queued', delivered_at INTEGER, len INTEGER NOT NULL DEFAULT 0,"
	" off INTEGER NOT NULL DEFAULT 0);\n"
	"CREATE INDEX IF NOT EXISTS messages_sb ON messages(sandbox, state, id);\n"
	/* every event once, rendered; offsets place it in the three JSONL views.
	 * Events are never deleted, and seq and the offset in the global view
	 * grow together: the offset is the key (the global view needs no index
	 * of its own), and the last row holds the highest seq. events_s has
	 * every row, so that count(*) need not read the table. */
	EVENTS_TABLE(events)
	"CREATE INDEX IF NOT EXISTS events_r ON events(run, r_off) WHERE run IS NOT NULL;\n"
	"CREATE INDEX IF NOT EXISTS events_s ON events(sandbox, s_off);\n"
	WEBHOOK_TABLES
	/* triggers (SPEC §9, core/triggers.c): each plan NAME registered with
	 * "on" rules, its submitter and NAME.trigger's counts */
	"CREATE TABLE IF NOT EXISTS triggers(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE, uid INTEGER, gid INTEGER, on_rules TEXT NOT NULL,"
	" created_at INTEGER, fired INTEGER NOT NULL DEFAULT 0, last_at INTEGER, last_run TEXT);\n"
	"INSERT OR IGNORE INTO meta(key, value) VALUES('schema', 5);\n";

/* Version 1 kept events by seq, AUTOINCREMENT, with an index on g_off:
 * two more b-trees written at every event. Rewrite the table in the new
 * layout, in one transaction: a crash leaves version 1 as it was. */
static const char migrate_1_2[] =
	"BEGIN IMMEDIATE;\n"
	"DROP TABLE IF EXISTS events_v2;\n"
	EVENTS_TABLE(events_v2)
	"INSERT INTO events_v2(g_off, seq, ts, type, run, sandbox, line, r_off, s_off)"
	" SELECT g_off, seq, ts, type, run, sandbox, line, r_off, s_off FROM events ORDER BY g_off;\n"
	"DROP TABLE events;\n"
	"ALTER TABLE events_v2 RENAME TO events;\n"
	"CREATE INDEX events_r ON events(run, r_off) WHERE run IS NOT NULL;\n"
	"CREATE INDEX events_s ON events(sandbox, s_off);\n"
	"UPDATE meta SET value = 2 WHERE key = 'schema';\n"
	"COMMIT;\n";

/* Version 2 rendered a queued message's line 3 bytes shorter than a
 * delivered one, so lines moved as messages were delivered and the view
 * was rendered whole at each open. Every line now has the delivered
 * length (len + 3) and its offset in the view (off): in one transaction. */
static const char migrate_2_3_column[] = "ALTER TABLE messages ADD COLUMN off INTEGER NOT NULL DEFAULT 0;";
static const char migrate_2_3[] =
	"UPDATE messages SET len = len + 3;\n"
	"CREATE TEMP TABLE msg_off AS SELECT id, coalesce(sum(len) OVER (PARTITION BY sandbox ORDER BY id"
	" ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS o FROM messages;\n"
	"UPDATE messages SET off = msg_off.o FROM msg_off WHERE msg_off.id = messages.id;\n"
	"DROP TABLE msg_off;\n"
	"UPDATE meta SET value = 3 WHERE key = 'schema';\n";

/* Version 4 (supervision, SPEC §8): a step's supervision state (sup, JSON:
 * core/supervise.h), who cancelled a run, and a run state needs_human that
 * the index of unfinished runs must cover. Columns are added only where
 * missing (a database made by this version's schema has them). */
static const char migrate_3_4[] =
	"DROP INDEX IF EXISTS runs_unfinished;\n"
	"CREATE INDEX IF NOT EXISTS runs_unfinished2 ON runs(state)"
	" WHERE state IN ('pending','running','paused','needs_human');\n"
	"UPDATE meta SET value = 4 WHERE key = 'schema';\n";

/* Version 5 (integration, SPEC §11): the webhook tables (the schema made
 * them) and a sandbox's health check (health, JSON: core/health.h), added
 * where missing. */
static const char migrate_4_5[] = "UPDATE meta SET value = 5 WHERE key = 'schema';\n";
/* Named ports and workspace activity (SPEC §11): a sandbox's port names
 * (sandboxes.port_names, "api,web"; NULL: its ports have none), each
 * port's place among its sandbox's (ports.idx: PORT0, PORT1...; NULL in
 * rows made before, which keep the order of their numbers), and the
 * sandbox's workspace activity (activity_at: wall ms of the last
 * workspace.changed; activity_changes: the changes it counted in all).
 * Self-contained: the tables made by the schema above lack these columns
 * too, and this adds them, once, wherever missing. */
#define SCHEMA_PORTS_ACTIVITY 6
static const struct {
	const char *table, *column, *decl;
} ports_activity_cols[] = {
	{ "sandboxes", "port_names", "TEXT" },
	{ "ports", "idx", "INTEGER" },
	{ "sandboxes", "activity_at", "INTEGER" },
	{ "sandboxes", "activity_changes", "INTEGER NOT NULL DEFAULT 0" },
};

static int migrate_ports_activity(struct store *s, char **msg)
{
	int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, msg);
	for (size_t i = 0; rc == SQLITE_OK && i < sizeof(ports_activity_cols) / sizeof(ports_activity_cols[0]);
	     i++) {
		char *q = sqlite3_mprintf("SELECT count(*) FROM pragma_table_info(%Q) WHERE name = %Q",
					  ports_activity_cols[i].table, ports_activity_cols[i].column);
		sqlite3_stmt *st = NULL;
		int have = -1;
		if (!q)
			rc = SQLITE_NOMEM;
		else if ((rc = sqlite3_prepare_v2(s->db, q, -1, &st, NULL)) == SQLITE_OK &&
			 sqlite3_step(st) == SQLITE_ROW)
			have = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		sqlite3_free(q);
		if (rc == SQLITE_OK && have == 0) {
			q = sqlite3_mprintf("ALTER TABLE \"%w\" ADD COLUMN \"%w\" %s;", ports_activity_cols[i].table,
					    ports_activity_cols[i].column, ports_activity_cols[i].decl);
			rc = q ? sqlite3_exec(s->db, q, NULL, NULL, msg) : SQLITE_NOMEM;
			sqlite3_free(q);
		} else if (rc == SQLITE_OK && have < 0) {
			rc = SQLITE_ERROR;
		}
	}
	if (rc == SQLITE_OK) {
		char *q = sqlite3_mprintf("UPDATE meta SET value = %d WHERE key = 'schema';", SCHEMA_PORTS_ACTIVITY);
		rc = q ? sqlite3_exec(s->db, q, NULL, NULL, msg) : SQLITE_NOMEM;
		sqlite3_free(q);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, msg);
	if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Version 7 (schedules, SPEC §9, core/schedules.c): each plan NAME
 * registered with a "schedule", its submitter, its spec (the "schedule"
 * object, JSON), the anchor of every_sec's times (its registration), and
 * plans/NAME.schedule's times: next_at, last_at (wall ms; NULL: never),
 * last_run. queued: overlap "queue" holds one time that found the last run
 * unfinished (1), and that run has ended since (2: due now). The index
 * finds the earliest next_at, the one loop timer's deadline. */
#define SCHEMA_SCHEDULES 7
static const char migrate_schedules[] =
	"CREATE TABLE IF NOT EXISTS schedules(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE, uid INTEGER, gid INTEGER, spec TEXT NOT NULL,"
	" anchor INTEGER NOT NULL, next_at INTEGER NOT NULL, last_at INTEGER, last_run TEXT,"
	" queued INTEGER NOT NULL DEFAULT 0);\n"
	"CREATE INDEX IF NOT EXISTS schedules_next ON schedules(next_at);\n"
	"CREATE INDEX IF NOT EXISTS schedules_queued ON schedules(queued) WHERE queued = 2;\n"
	"UPDATE meta SET value = 7 WHERE key = 'schema';\n";

/* Version 8, windows (SPEC §9, core/windows.c): one row per sandbox that
 * has a window, its whole state (wall ms; spec, extensions and hits as
 * JSON). Self-contained, from version 6 or 7 alike (schedules are 7). */
#define SCHEMA_WINDOWS 8
static const char migrate_windows[] =
	"BEGIN IMMEDIATE;\n"
	"CREATE TABLE IF NOT EXISTS windows(sandbox INTEGER PRIMARY KEY, name TEXT NOT NULL,"
	" spec TEXT NOT NULL, opened_at INTEGER NOT NULL, deadline INTEGER NOT NULL,"
	" max_deadline INTEGER NOT NULL, extensions TEXT, ext_dropped INTEGER NOT NULL DEFAULT 0,"
	" ended_at INTEGER, end_reason TEXT, paused INTEGER NOT NULL DEFAULT 0);\n"
	/* the events an extend_when rule of a window counted: one row each */
	"CREATE TABLE IF NOT EXISTS window_hits(id INTEGER PRIMARY KEY, sandbox INTEGER NOT NULL,"
	" rule INTEGER NOT NULL, at INTEGER NOT NULL);\n"
	"CREATE INDEX IF NOT EXISTS window_hits_rule ON window_hits(sandbox, rule, at);\n"
	/* the runs a window's pause paused (its resume resumes those only) */
	"CREATE TABLE IF NOT EXISTS window_paused_runs(run INTEGER PRIMARY KEY, sandbox INTEGER NOT NULL);\n"
	"UPDATE meta SET value = 8 WHERE key = 'schema';\n"
	"COMMIT;\n";

/* Unexpected SQLite failures say what and where on stderr (the daemon's log). */
static void store_complain(struct store *s, int rc, const char *sql)
{
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return;
	fprintf(stderr, "orchfs: sqlite: %s (%s) in: %.200s\n", sqlite3_errmsg(s->db),
		sqlite3_errstr(rc), sql);
}

int store_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_TOOBIG:
		return -EFBIG;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	default:
		return -EIO;
	}
}

/* The WAL's frames go one after another from its start until a checkpoint
 * lets SQLite start over from the top. While the file grows, every sync of
 * a durable commit writes the inode too (its size changed): a second
 * synchronous write. So the engine writes zeros ahead of the frames, a
 * chunk at a time, on its own thread right after a durable commit (nothing
 * of SQLite's is past the end of the file then; commits that are never
 * synced, a DAG's, do not pay for it). Zeros are no valid frame: a
 * recovery stops at them, as at any end of the log. */
#define STORE_CHECKPOINT_FRAMES 8192	/* PRAGMA wal_autocheckpoint */
#define STORE_WAL_AHEAD (2 << 20)
#define STORE_ZEROS (64 << 10)
#define STORE_WAL_AHEAD_MAX (48LL << 20)	/* under journal_size_limit */

static void wal_ahead(struct store *s, int nframe)
{
	int64_t end = 32 + (int64_t)nframe * (s->page_size + 24);
	if (end + STORE_WAL_AHEAD / 2 <= s->wal_ready)
		return;
	sqlite3_file *wal = NULL;
	sqlite3_int64 size = 0;
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal) != SQLITE_OK ||
	    !wal || !wal->pMethods || wal->pMethods->xFileSize(wal, &size) != SQLITE_OK)
		return;
	s->wal_ready = size;
	if (end + STORE_WAL_AHEAD / 2 <= size || size >= STORE_WAL_AHEAD_MAX)
		return;
	if (!s->zeros && !(s->zeros = calloc(1, STORE_ZEROS)))
		return;
	/* (the unix VFS writes at most 128 KiB - 1 at a time.) A failure
	 * (ENOSPC) leaves the file to grow with the frames. */
	for (int64_t off = 0; off < STORE_WAL_AHEAD; off += STORE_ZEROS) {
		if (wal->pMethods->xWrite(wal, s->zeros, STORE_ZEROS, size + off) != SQLITE_OK)
			return;
		s->wal_ready = size + off + STORE_ZEROS;
	}
}

/* after each commit, with the frames the WAL holds */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int nframe)
{
	struct store *s = arg;
	if (nframe >= STORE_CHECKPOINT_FRAMES) {
		int log = -1, done = -2;
		if (sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &done) == SQLITE_OK &&
		    log == done)
			nframe = 0;	/* all copied: the next commit starts the log over */
	}
	s->wal_frames = nframe;
	return SQLITE_OK;
}

int store_open(struct store *s, const char *path, struct sbuf *err)
{
	memset(s, 0, sizeof(*s));
	int rc = sqlite3_open_v2(path, &s->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		sbuf_addf(err, "cannot open database %s: %s", path,
			  s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		sqlite3_close(s->db);
		s->db = NULL;
		return store_errno(rc);
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* Only this daemon uses the database (the lock file sees to it), so
	 * it holds it exclusively: no file lock taken and dropped around every
	 * transaction, and the WAL index lives in memory (no -shm file). An
	 * sqlite3 shell may open it once the daemon is gone. */
	sqlite3_busy_timeout(s->db, 2000);
	char *msg = NULL;
	rc = sqlite3_exec(s->db,
			  "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			  " PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
			  " PRAGMA cache_size=-16000;"
			  /* checkpoint every 32 MiB of log rather than 4: a checkpoint
			   * syncs twice on the engine's thread and rewrites each page
			   * changed since the last one, and the hot pages of a busy
			   * engine change many times in between; the log is kept to 64
			   * MiB on disk */
			  " PRAGMA wal_autocheckpoint=8192; PRAGMA journal_size_limit=67108864;",
			  NULL, NULL, &msg);
	/* group commit syncs the WAL: without one there is no durability to
	 * offer, so a journal mode SQLite would not change is an error */
	if (rc == SQLITE_OK) {
		sqlite3_stmt *jm = NULL;
		const unsigned char *mode = NULL;
		if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &jm, NULL) == SQLITE_OK &&
		    sqlite3_step(jm) == SQLITE_ROW)
			mode = sqlite3_column_text(jm, 0);
		if (!mode || strcmp((const char *)mode, "wal")) {
			sbuf_addf(err, "cannot set up database %s: its journal is %s, not a WAL", path,
				  mode ? (const char *)mode : "unknown");
			sqlite3_finalize(jm);
			store_close(s);
			return -EIO;
		}
		sqlite3_finalize(jm);
		rc = sqlite3_exec(s->db, schema, NULL, NULL, &msg);
	}
	if (rc == SQLITE_OK && store_int(s, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL) < 2) {
		fprintf(stderr, "orchfs: %s: rewriting the events table in the layout of version 2"
				" (once; it may take a while)\n", path);
		rc = sqlite3_exec(s->db, migrate_1_2, NULL, NULL, &msg);
		if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		/* the old table's pages are free now: give them back to the
		 * file system (a failure leaves them free, and is no error) */
		if (rc == SQLITE_OK)
			sqlite3_exec(s->db, "VACUUM", NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK && store_int(s, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL) < 3) {
		fprintf(stderr, "orchfs: %s: placing the lines of the messages views (version 3; once)\n",
			path);
		rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
		/* (a version-1 database had no messages: the schema just made
		 * the table, with its column) */
		if (rc == SQLITE_OK &&
		    !store_int(s, "SELECT count(*) FROM pragma_table_info('messages') WHERE name = 'off'", 0, NULL))
			rc = sqlite3_exec(s->db, migrate_2_3_column, NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, migrate_2_3, NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg);
		if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK && store_int(s, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL) < 4) {
		rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
		if (rc == SQLITE_OK &&
		    !store_int(s, "SELECT count(*) FROM pragma_table_info('steps') WHERE name = 'sup'", 0, NULL))
			rc = sqlite3_exec(s->db, "ALTER TABLE steps ADD COLUMN sup TEXT;", NULL, NULL, &msg);
		if (rc == SQLITE_OK &&
		    !store_int(s, "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'cancelled_by'",
			       0, NULL))
			rc = sqlite3_exec(s->db, "ALTER TABLE runs ADD COLUMN cancelled_by INTEGER;", NULL, NULL,
					  &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, migrate_3_4, NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg);
		if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK && store_int(s, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL) < 5) {
		rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
		if (rc == SQLITE_OK &&
		    !store_int(s, "SELECT count(*) FROM pragma_table_info('sandboxes') WHERE name = 'health'", 0,
			       NULL))
			rc = sqlite3_exec(s->db, "ALTER TABLE sandboxes ADD COLUMN health TEXT;", NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, migrate_4_5, NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg);
		if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK &&
	    store_int(s, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL) < SCHEMA_PORTS_ACTIVITY)
		rc = migrate_ports_activity(s, &msg);
	if (rc == SQLITE_OK &&
	    store_int(s, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL) < SCHEMA_SCHEDULES) {
		rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, migrate_schedules, NULL, NULL, &msg);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, &msg);
		if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK &&
	    store_int(s, "SELECT value FROM meta WHERE key = 'schema'", 0, NULL) < SCHEMA_WINDOWS) {
		rc = sqlite3_exec(s->db, migrate_windows, NULL, NULL, &msg);
		if (rc != SQLITE_OK && !sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(s->db, "CREATE INDEX IF NOT EXISTS messages_off ON messages(sandbox, off);",
				  NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		sbuf_addf(err, "cannot set up database %s: %s", path, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		int e = store_errno(rc);
		store_close(s);
		return e ? e : -EIO;
	}
	/* a durable commit must also be durable against power loss in WAL mode */
	sqlite3_exec(s->db, "PRAGMA fullfsync=OFF;", NULL, NULL, NULL);
	s->page_size = store_int(s, "PRAGMA page_size", 4096, NULL);
	sqlite3_wal_hook(s->db, wal_hook, s);
	return 0;
}

void store_close(struct store *s)
{
	if (!s->db)
		return;
	if (s->in_tx)
		store_commit(s);
	for (size_t i = 0; i < STORE_STMT_SLOTS; i++)
		if (s->stmts[i].st)
			sqlite3_finalize(s->stmts[i].st);
	sqlite3_close(s->db);
	free(s->zeros);
	memset(s, 0, sizeof(*s));
}

/* The statement cache: open addressing on the address of the SQL literal. */
static sqlite3_stmt *stmt_get(struct store *s, const char *sql, int *rc)
{
	size_t h = ((uintptr_t)sql >> 3) % STORE_STMT_SLOTS;
	for (size_t n = 0; n < STORE_STMT_SLOTS; n++, h = (h + 1) % STORE_STMT_SLOTS) {
		if (s->stmts[h].sql == sql) {
			*rc = 0;
			return s->stmts[h].st;
		}
		if (!s->stmts[h].sql)
			break;
	}
	sqlite3_stmt *st = NULL;
	int r = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (r != SQLITE_OK) {
		store_complain(s, r, sql);
		*rc = store_errno(r);
		return NULL;
	}
	*rc = 0;
	if (!s->stmts[h].sql) {
		s->stmts[h].sql = sql;
		s->stmts[h].st = st;
	}
	/* a full cache would leak st: it never fills (SQL literals are few) */
	return st;
}

static int bind_args(sqlite3_stmt *st, const char *fmt, va_list ap)
{
	int idx = 1, rc = SQLITE_OK;
	for (const char *f = fmt; f && *f && rc == SQLITE_OK; f++, idx++) {
		switch (*f) {
		case 'i':
			rc = sqlite3_bind_int64(st, idx, va_arg(ap, int64_t));
			break;
		case 'I': {	/* an id: 0 binds NULL */
			int64_t v = va_arg(ap, int64_t);
			rc = v ? sqlite3_bind_int64(st, idx, v) : sqlite3_bind_null(st, idx);
			break;
		}
		case 'd':
			rc = sqlite3_bind_double(st, idx, va_arg(ap, double));
			break;
		case 's': {
			const char *t = va_arg(ap, const char *);
			rc = t ? sqlite3_bind_text(st, idx, t, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(st, idx);
			break;
		}
		case 'b': {
			const void *b = va_arg(ap, const void *);
			int n = va_arg(ap, int);
			rc = sqlite3_bind_blob(st, idx, b, n, SQLITE_TRANSIENT);
			break;
		}
		case 'n':
			rc = sqlite3_bind_null(st, idx);
			break;
		default:
			rc = SQLITE_MISUSE;
		}
	}
	return rc;
}

int store_list(struct store *s, const char *sql, int64_t after,
	       int (*cb)(void *ctx, int64_t id, const char *name), void *ctx)
{
	int rc;
	sqlite3_stmt *q = store_query(s, sql, &rc, "i", after);
	if (!q)
		return rc;
	do {
		if (cb(ctx, sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1)))
			break;
	} while (store_next(q));
	store_done(q);
	return 0;
}

/* BEGIN and COMMIT, once a turn: prepared once (sqlite3_exec would parse
 * them every time). An SQLite result code. */
static int step_once(struct store *s, const char *sql)
{
	int rc;
	sqlite3_stmt *st = stmt_get(s, sql, &rc);
	if (!st)
		return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	int r = sqlite3_step(st);
	sqlite3_reset(st);
	return r == SQLITE_DONE || r == SQLITE_ROW ? SQLITE_OK : r;
}

int store_begin(struct store *s)
{
	if (s->in_tx)
		return 0;
	int rc = step_once(s, "BEGIN");
	if (rc != SQLITE_OK) {
		store_complain(s, rc, "BEGIN");
		return store_errno(rc);
	}
	s->in_tx = true;
	return 0;
}

/* Savepoints nest inside the batch transaction (a SAVEPOINT outside one
 * would start a transaction of its own and end it at RELEASE). */
int store_savepoint(struct store *s, const char *name)
{
	int rc = store_begin(s);
	if (rc)
		return rc;
	char sql[96];
	snprintf(sql, sizeof(sql), "SAVEPOINT %s", name);
	rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		store_complain(s, rc, sql);
	return store_errno(rc);
}

void store_release(struct store *s, const char *name, bool keep)
{
	char sql[128];
	if (!keep) {
		snprintf(sql, sizeof(sql), "ROLLBACK TO %s", name);
		sqlite3_exec(s->db, sql, NULL, NULL, NULL);
		s->rollbacks++;
	}
	snprintf(sql, sizeof(sql), "RELEASE %s", name);
	sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

void store_mark_durable(struct store *s) { s->durable = true; }

int store_exec(struct store *s, const char *sql, const char *fmt, ...)
{
	int rc;
	sqlite3_stmt *st = stmt_get(s, sql, &rc);
	if (!st)
		return rc;
	if (!sqlite3_stmt_readonly(st) && (rc = store_begin(s)))
		return rc;
	va_list ap;
	va_start(ap, fmt);
	int r = bind_args(st, fmt, ap);
	va_end(ap);
	if (r == SQLITE_OK) {
		while ((r = sqlite3_step(st)) == SQLITE_ROW)
			;
	}
	if (r != SQLITE_DONE && r != SQLITE_OK)
		store_complain(s, r, sql);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return (r == SQLITE_DONE || r == SQLITE_OK) ? 0 : store_errno(r) ? store_errno(r) : -EIO;
}

sqlite3_stmt *store_query(struct store *s, const char *sql, int *rcp, const char *fmt, ...)
{
	int rc;
	sqlite3_stmt *st = stmt_get(s, sql, &rc);
	*rcp = rc;
	if (!st)
		return NULL;
	va_list ap;
	va_start(ap, fmt);
	int r = bind_args(st, fmt, ap);
	va_end(ap);
	if (r == SQLITE_OK)
		r = sqlite3_step(st);
	if (r == SQLITE_ROW)
		return st;
	if (r != SQLITE_DONE)
		store_complain(s, r, sql);
	*rcp = (r == SQLITE_DONE) ? 0 : (store_errno(r) ? store_errno(r) : -EIO);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return NULL;
}

bool store_next(sqlite3_stmt *st) { return sqlite3_step(st) == SQLITE_ROW; }

void store_done(sqlite3_stmt *st)
{
	if (!st)
		return;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

int64_t store_int(struct store *s, const char *sql, int64_t dflt, const char *fmt, ...)
{
	int rc;
	sqlite3_stmt *st = stmt_get(s, sql, &rc);
	if (!st)
		return dflt;
	va_list ap;
	va_start(ap, fmt);
	int r = bind_args(st, fmt, ap);
	va_end(ap);
	int64_t v = dflt;
	if (r == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return v;
}

/* Make the WAL durable: what a commit with synchronous=FULL would do. The
 * batch may only be known to need it after it began, and SQLite refuses a
 * change of synchronous inside a transaction: commits run with NORMAL and
 * the durable ones sync the WAL themselves. */
static int sync_wal(struct store *s)
{
	sqlite3_file *wal = NULL;
	int rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	if (rc != SQLITE_OK || !wal || !wal->pMethods)
		return rc == SQLITE_OK ? -EIO : store_errno(rc);
	rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK)
		store_complain(s, rc, "sync of the WAL");
	return store_errno(rc);
}

int store_commit(struct store *s)
{
	bool durable = false;
	int rc = store_commit_nosync(s, &durable);
	return !rc && durable ? sync_wal(s) : rc;
}

int store_sync(struct store *s) { return sync_wal(s); }

int store_commit_nosync(struct store *s, bool *durable_out)
{
	*durable_out = false;
	if (!s->in_tx)
		return 0;
	bool durable = s->durable;
	int rc = step_once(s, "COMMIT");
	s->in_tx = false;
	s->durable = false;
	if (rc != SQLITE_OK) {
		int e = store_errno(rc);
		store_complain(s, rc, "COMMIT");
		/* SQLite may have rolled back already; otherwise do it */
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		s->rollbacks++;
		return e ? e : -EIO;
	}
	s->commits++;
	if (durable) {
		s->durable_commits++;
		wal_ahead(s, s->wal_frames);
	}
	*durable_out = durable;
	return 0;
}

int store_rollback(struct store *s)
{
	if (!s->in_tx)
		return 0;
	int rc = sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	s->in_tx = false;
	s->durable = false;
	s->rollbacks++;
	return store_errno(rc);
}
