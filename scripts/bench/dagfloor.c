/* scripts/bench/dagfloor.c — the floor of the `dag` benchmark, for the
 * record: the least a scheduler keeping orchfs's durability rules can do.
 *
 *     dagfloor SHAPE N JOBS DB
 *
 * runs the DAG SHAPE (flat: N independent steps; chain: each on the one
 * before; fanout: 1 -> N -> 1) of `true` processes, at most JOBS at once,
 * and prints its wall time in seconds. Like orchfs, and unlike make, it
 * records every step in SQLite (the file DB, made anew: WAL, exclusive
 * locking, synchronous=NORMAL, statements prepared once): the steps are
 * inserted first, and each turn of its loop is one transaction holding
 * the steps that ended (their state and a step.succeeded event) and the
 * steps about to start (their state), committed before they are spawned
 * (a crash can never lose the start of a process that ran), with their
 * step.started events riding on the next one. The events table has the
 * two view indexes orchfs keeps (by run and by sandbox). What it leaves
 * out: FUSE, output capture (the steps' stdout and stderr are /dev/null),
 * process groups, pidfds, timeouts, retries, JSON, logs. Children start
 * with posix_spawn and are reaped with waitpid.
 * Built by dag.sh: cc -O2 dagfloor.c -lsqlite3. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static sqlite3 *db;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what)
{
	fprintf(stderr, "dagfloor: %s: %s\n", what, db ? sqlite3_errmsg(db) : strerror(errno));
	exit(1);
}

static void exec_sql(const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		die(sql);
}

static sqlite3_stmt *prep(const char *sql)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		die(sql);
	return st;
}

static void done(sqlite3_stmt *st)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		die(sqlite3_sql(st));
	sqlite3_reset(st);
}

static sqlite3_stmt *st_begin, *st_commit, *st_state, *st_event;
static long long seq;

static void set_state(int id, const char *state)
{
	sqlite3_bind_text(st_state, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st_state, 2, wall_ms());
	sqlite3_bind_int(st_state, 3, id);
	done(st_state);
}

static void event(int id, const char *type)
{
	char line[256];
	long long ts = wall_ms();
	seq++;
	snprintf(line, sizeof(line),
		 "{\"seq\":%lld,\"ts\":%lld,\"type\":\"%s\",\"sandbox\":\"floor\",\"run_id\":\"floor-1\","
		 "\"step_id\":\"s%d\"}",
		 seq, ts, type, id);
	sqlite3_bind_int64(st_event, 1, seq);
	sqlite3_bind_int64(st_event, 2, ts);
	sqlite3_bind_text(st_event, 3, type, -1, SQLITE_STATIC);
	sqlite3_bind_int(st_event, 4, id);
	sqlite3_bind_text(st_event, 5, line, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st_event, 6, seq);
	sqlite3_bind_int64(st_event, 7, seq);
	done(st_event);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: dagfloor flat|chain|fanout N JOBS DB\n");
		return 2;
	}
	const char *shape = argv[1];
	int n = atoi(argv[2]), jobs = atoi(argv[3]);
	int fan = !strcmp(shape, "fanout"), chain = !strcmp(shape, "chain");
	if (n < 1 || jobs < 1 || (!fan && !chain && strcmp(shape, "flat"))) {
		fprintf(stderr, "dagfloor: bad arguments\n");
		return 2;
	}
	int total = fan ? n + 2 : n;
	char *wal;
	if (asprintf(&wal, "%s-wal", argv[4]) < 0)
		return 1;
	unlink(argv[4]);
	unlink(wal);

	double t0 = now();
	if (sqlite3_open(argv[4], &db) != SQLITE_OK)
		die(argv[4]);
	exec_sql("PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
		 " PRAGMA wal_autocheckpoint=8192;"
		 "CREATE TABLE steps(id INTEGER PRIMARY KEY, run INTEGER NOT NULL, name TEXT NOT NULL,"
		 " state TEXT NOT NULL, at INTEGER);"
		 "CREATE TABLE events(g_off INTEGER PRIMARY KEY, seq INTEGER NOT NULL, ts INTEGER NOT NULL,"
		 " type TEXT NOT NULL, run INTEGER, sandbox INTEGER, step INTEGER, line TEXT NOT NULL,"
		 " r_off INTEGER, s_off INTEGER);"
		 "CREATE INDEX events_r ON events(run, r_off) WHERE run IS NOT NULL;"
		 "CREATE INDEX events_s ON events(sandbox, s_off);");
	st_begin = prep("BEGIN");
	st_commit = prep("COMMIT");
	st_state = prep("UPDATE steps SET state = ?, at = ? WHERE id = ?");
	st_event = prep("INSERT INTO events(seq, ts, type, run, sandbox, step, line, r_off, s_off)"
			" VALUES(?, ?, ?, 1, 1, ?, ?, ?, ?)");
	sqlite3_stmt *ins = prep("INSERT INTO steps(id, run, name, state) VALUES(?, 1, ?, 'pending')");
	done(st_begin);
	for (int i = 0; i < total; i++) {
		char name[32];
		snprintf(name, sizeof(name), "s%d", i);
		sqlite3_bind_int(ins, 1, i);
		sqlite3_bind_text(ins, 2, name, -1, SQLITE_TRANSIENT);
		done(ins);
	}
	done(st_commit);

	/* ready: what may start; deps: unfinished dependencies of each step */
	int *ready = malloc(sizeof(int) * (size_t)total), nready = 0;
	int *deps = calloc((size_t)total, sizeof(int));
	pid_t *pids = calloc((size_t)total, sizeof(pid_t));
	if (!ready || !deps || !pids)
		return 1;
	if (fan) {
		for (int i = 1; i <= n; i++)
			deps[i] = 1;
		deps[n + 1] = n;
		ready[nready++] = 0;
	} else if (chain) {
		for (int i = 1; i < n; i++)
			deps[i] = 1;
		ready[nready++] = 0;
	} else {
		for (int i = n - 1; i >= 0; i--)
			ready[nready++] = i;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	char *targv[] = { "true", NULL };
	int running = 0, finished = 0;
	int started[64], nstarted = 0;
	if (jobs > 64)
		jobs = 64;
	while (finished < total) {
		/* one transaction: what ended, what starts; committed, then spawned */
		done(st_begin);
		for (int k = 0; k < nstarted; k++)
			event(started[k], "step.started");
		nstarted = 0;
		int reaped = 0;
		for (;;) {
			int status;
			pid_t pid = waitpid(-1, &status, running && !reaped ? 0 : WNOHANG);
			if (pid <= 0)
				break;
			int id = -1;
			for (int i = 0; i < total && id < 0; i++)
				if (pids[i] == pid)
					id = i;
			if (id < 0 || !WIFEXITED(status) || WEXITSTATUS(status)) {
				fprintf(stderr, "dagfloor: a step failed\n");
				return 1;
			}
			pids[id] = 0;
			running--;
			finished++;
			reaped++;
			set_state(id, "succeeded");
			event(id, "step.succeeded");
			if (fan && id == 0)
				for (int i = n; i >= 1; i--)
					ready[nready++] = i;
			else if (fan && id <= n && --deps[n + 1] == 0)
				ready[nready++] = n + 1;
			else if (chain && id + 1 < n)
				ready[nready++] = id + 1;
		}
		while (running + nstarted < jobs && nready > 0) {
			int id = ready[--nready];
			set_state(id, "running");
			started[nstarted++] = id;
		}
		done(st_commit);
		for (int k = 0; k < nstarted; k++) {
			int r = posix_spawnp(&pids[started[k]], "true", &fa, NULL, targv, environ);
			if (r) {
				errno = r;
				die("posix_spawn true");
			}
			running++;
		}
	}
	printf("%.6f\n", now() - t0);
	sqlite3_close(db);
	return 0;
}
