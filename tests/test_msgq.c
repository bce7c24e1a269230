/* tests/test_msgq.c — a sandbox's message queue: FIFO order, leases to one
 * open inbox at a time, hand-back, delivered marking, and durability across
 * reopening the engine (a real SQLite file). */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "core/engine_i.h"
#include "tests/engine_fixture.h"

static int setup(void **state)
{
	struct fixture *f = fixture_new("msgq", 32000, 32099);
	if (!f)
		return -1;
	struct orch_sandbox_attr a;
	if (orch_sandbox_create(f->e, "box", getuid(), getgid(), &a))
		return -1;
	f->sb = a.rowid;
	*state = f;
	return 0;
}

static int teardown(void **state) { return fixture_teardown(state); }

/* Queue messages given as (type, content) pairs, then commit. */
static void send(struct fixture *f, size_t n, const enum msg_type *types, const char *const *texts)
{
	struct msg_line m[8];
	for (size_t i = 0; i < n; i++) {
		m[i].type = types ? types[i] : MSG_USER_MESSAGE;
		m[i].content = (char *)texts[i];
	}
	struct line_batch b = { n, m, NULL };
	assert_int_equal(orch_messages_append(f->e, f->sb, &b), 0);
	assert_int_equal(orch_engine_turn(f->e, 0), 0);
}

/* The contents of a JSONL text of messages, comma-joined. */
static void contents(const char *jsonl, char *out, size_t n)
{
	out[0] = '\0';
	char *copy = strdup(jsonl);
	for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		strncat(out, json_string_value(json_object_get(o, "content")), n - strlen(out) - 2);
		strcat(out, ",");
		json_decref(o);
	}
	free(copy);
}

static void take(struct fixture *f, uint64_t *lease, char *got, size_t n)
{
	struct sbuf sb = SBUF_INIT;
	assert_int_equal(orch_inbox_take(f->e, f->sb, lease, &sb), 0);
	contents(sbuf_str(&sb), got, n);
	sbuf_release(&sb);
}

static void test_msgq__fifo_and_delivery(void **state)
{
	struct fixture *f = *state;
	const char *t[] = { "first", "second", "third" };
	send(f, 3, NULL, t);
	uint64_t l;
	char got[256];
	take(f, &l, got, sizeof(got));
	assert_string_equal(got, "first,second,third,");
	assert_int_not_equal(l, 0);
	assert_int_equal(orch_inbox_done(f->e, f->sb, l, true), 0);
	orch_engine_turn(f->e, 0);
	uint64_t l2;
	take(f, &l2, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(l2, 0);	/* nothing queued: no lease */
	struct sbuf all = SBUF_INIT;
	assert_int_equal(orch_messages_render(f->e, f->sb, &all), 0);
	assert_non_null(strstr(sbuf_str(&all), "\"state\":\"delivered\""));
	assert_null(strstr(sbuf_str(&all), "\"state\":\"queued\""));
	sbuf_release(&all);
}

static void test_msgq__one_open_inbox_at_a_time(void **state)
{
	struct fixture *f = *state;
	const char *t1[] = { "a", "b" };
	send(f, 2, NULL, t1);
	uint64_t la, lb;
	char got[256];
	take(f, &la, got, sizeof(got));
	assert_string_equal(got, "a,b,");
	const char *t2[] = { "c" };
	send(f, 1, NULL, t2);
	take(f, &lb, got, sizeof(got));	/* a and b are held by the first inbox */
	assert_string_equal(got, "c,");
	/* the first closes early: a and b go back, and come first again */
	assert_int_equal(orch_inbox_done(f->e, f->sb, la, false), 0);
	uint64_t lc;
	take(f, &lc, got, sizeof(got));
	assert_string_equal(got, "a,b,");
	assert_int_equal(orch_inbox_done(f->e, f->sb, lb, true), 0);
	assert_int_equal(orch_inbox_done(f->e, f->sb, lc, true), 0);
	assert_int_equal(orch_inbox_done(f->e, f->sb, lc, true), 0);	/* settled twice: no-op */
}

static void test_msgq__types_kept(void **state)
{
	struct fixture *f = *state;
	const enum msg_type ty[] = { MSG_INTERRUPT, MSG_GUARDIAN_INTERVENTION };
	const char *t[] = { "STOP", "check tests" };
	send(f, 2, ty, t);
	struct sbuf all = SBUF_INIT;
	orch_messages_render(f->e, f->sb, &all);
	char *second = strchr(sbuf_str(&all), '\n');
	assert_non_null(strstr(sbuf_str(&all), "\"message_type\":\"interrupt\""));
	assert_non_null(second && strstr(second, "\"message_type\":\"guardian_intervention\""));
	sbuf_release(&all);
}

static void test_msgq__durable_across_reopen(void **state)
{
	struct fixture *f = *state;
	const char *t[] = { "m1", "m2", "m3", "m4" };
	send(f, 4, NULL, t);
	uint64_t l;
	char got[256];
	take(f, &l, got, sizeof(got));	/* leased, then the engine dies: leases are forgotten */
	fixture_reopen(f);
	take(f, &l, got, sizeof(got));
	assert_string_equal(got, "m1,m2,m3,m4,");
	assert_int_equal(orch_inbox_done(f->e, f->sb, l, true), 0);
	fixture_reopen(f);
	take(f, &l, got, sizeof(got));
	assert_string_equal(got, "");
	struct sbuf st = SBUF_INIT;
	assert_int_equal(orch_sandbox_render(f->e, f->sb, &st), 0);
	json_t *j = json_loads(sbuf_str(&st), 0, NULL);
	json_t *m = json_object_get(j, "messages");
	assert_int_equal(json_integer_value(json_object_get(m, "queued")), 0);
	assert_int_equal(json_integer_value(json_object_get(m, "delivered")), 4);
	json_decref(j);
	sbuf_release(&st);
}

static void test_msgq__events_for_queue_and_delivery(void **state)
{
	struct fixture *f = *state;
	const char *t[] = { "x" };
	send(f, 1, NULL, t);
	uint64_t l;
	char got[64];
	take(f, &l, got, sizeof(got));
	orch_inbox_done(f->e, f->sb, l, true);
	orch_engine_turn(f->e, 0);
	struct sbuf ev = SBUF_INIT;
	assert_int_equal(orch_events_read(f->e, EV_SANDBOX, f->sb, 0, 1 << 20, &ev), 0);
	assert_non_null(strstr(sbuf_str(&ev), "\"type\":\"message.queued\""));
	assert_non_null(strstr(sbuf_str(&ev), "\"type\":\"message.delivered\""));
	sbuf_release(&ev);
}

static void assert_size_matches(struct fixture *f)
{
	struct sbuf all = SBUF_INIT;
	assert_int_equal(orch_messages_render(f->e, f->sb, &all), 0);
	assert_int_equal(orch_messages_size(f->e, f->sb), (int64_t)all.len);
	sbuf_release(&all);
}

static void test_msgq__view_size_known_without_rendering(void **state)
{
	struct fixture *f = *state;
	assert_size_matches(f);
	const char *t[] = { "plain", "with \"quotes\" and \\ and \t", "\xc3\xa9t\xc3\xa9" };
	send(f, 3, NULL, t);
	assert_size_matches(f);
	uint64_t l;
	char got[256];
	take(f, &l, got, sizeof(got));
	orch_inbox_done(f->e, f->sb, l, true);
	orch_engine_turn(f->e, 0);
	assert_size_matches(f);
	send(f, 1, NULL, t);
	fixture_reopen(f);	/* rebuilt from the stored line lengths */
	assert_size_matches(f);
}

/* Queue N messages "m0".."m<N-1>" (from FIRST on), eight per append. */
static void send_many(struct fixture *f, int first, int n)
{
	char texts[8][16];
	struct msg_line m[8];
	for (int i = 0; i < n;) {
		size_t k = 0;
		for (; k < 8 && i < n; k++, i++) {
			snprintf(texts[k], sizeof(texts[k]), "m%d", first + i);
			m[k] = (struct msg_line){ MSG_USER_MESSAGE, texts[k] };
		}
		struct line_batch b = { k, m, NULL };
		assert_int_equal(orch_messages_append(f->e, f->sb, &b), 0);
	}
	assert_int_equal(orch_engine_turn(f->e, 0), 0);
}

/* Take a lease; its contents' numbers ("m12" -> 12) into NUMS, their count. */
static size_t take_nums(struct fixture *f, uint64_t *lease, int *nums, size_t max)
{
	struct sbuf sb = SBUF_INIT;
	assert_int_equal(orch_inbox_take(f->e, f->sb, lease, &sb), 0);
	size_t n = 0;
	char *copy = strdup(sbuf_str(&sb));
	for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		assert_true(n < max);
		nums[n++] = atoi(json_string_value(json_object_get(o, "content")) + 1);
		json_decref(o);
	}
	free(copy);
	sbuf_release(&sb);
	return n;
}

static void assert_run(const int *nums, size_t n, int from, int to)
{
	assert_int_equal(n, (size_t)(to - from));
	for (size_t i = 0; i < n; i++)
		assert_int_equal(nums[i], from + (int)i);
}

/* An open takes at most INBOX_BATCH_MSGS; leases handed back come first
 * again, in order; every message is delivered once. */
static void test_msgq__batches(void **state)
{
	struct fixture *f = *state;
	enum { N = 2 * INBOX_BATCH_MSGS + 100 };
	static int nums[INBOX_BATCH_MSGS + 1];
	send_many(f, 0, N);
	uint64_t l1, l2, l3, l4, l5, l6, l7;
	assert_run(nums, take_nums(f, &l1, nums, INBOX_BATCH_MSGS + 1), 0, INBOX_BATCH_MSGS);
	assert_run(nums, take_nums(f, &l2, nums, INBOX_BATCH_MSGS + 1), INBOX_BATCH_MSGS, 2 * INBOX_BATCH_MSGS);
	/* the second closes early: its messages come before the rest */
	assert_int_equal(orch_inbox_done(f->e, f->sb, l2, false), 0);
	assert_run(nums, take_nums(f, &l3, nums, INBOX_BATCH_MSGS + 1), INBOX_BATCH_MSGS, 2 * INBOX_BATCH_MSGS);
	send_many(f, N, 10);
	assert_run(nums, take_nums(f, &l4, nums, INBOX_BATCH_MSGS + 1), 2 * INBOX_BATCH_MSGS, N + 10);
	/* two hand-backs at once: oldest first, across both */
	assert_int_equal(orch_inbox_done(f->e, f->sb, l3, false), 0);
	assert_int_equal(orch_inbox_done(f->e, f->sb, l1, false), 0);
	assert_run(nums, take_nums(f, &l5, nums, INBOX_BATCH_MSGS + 1), 0, INBOX_BATCH_MSGS);
	assert_run(nums, take_nums(f, &l6, nums, INBOX_BATCH_MSGS + 1), INBOX_BATCH_MSGS, 2 * INBOX_BATCH_MSGS);
	assert_int_equal(take_nums(f, &l7, nums, INBOX_BATCH_MSGS + 1), 0);
	assert_int_equal(l7, 0);
	assert_int_equal(orch_inbox_done(f->e, f->sb, l5, true), 0);
	assert_int_equal(orch_inbox_done(f->e, f->sb, l6, true), 0);
	assert_int_equal(orch_inbox_done(f->e, f->sb, l4, true), 0);
	assert_int_equal(orch_engine_turn(f->e, 0), 0);
	assert_int_equal(take_nums(f, &l7, nums, INBOX_BATCH_MSGS + 1), 0);
	/* each delivered exactly once */
	struct sbuf ev = SBUF_INIT;
	assert_int_equal(orch_events_read(f->e, EV_SANDBOX, f->sb, 0, 64 << 20, &ev), 0);
	size_t delivered = 0;
	for (const char *p = sbuf_str(&ev); (p = strstr(p, "\"type\":\"message.delivered\"")); p++)
		delivered++;
	assert_int_equal(delivered, N + 10);
	sbuf_release(&ev);
}

/* An open takes at most INBOX_BATCH_BYTES, but always one message. */
static void test_msgq__batch_bytes(void **state)
{
	struct fixture *f = *state;
	size_t big = 60 << 10;
	char *text = malloc(big + 1);
	memset(text, 'x', big);
	text[big] = '\0';
	struct msg_line m[6];
	for (int i = 0; i < 6; i++)
		m[i] = (struct msg_line){ MSG_USER_MESSAGE, text };
	struct line_batch b = { 6, m, NULL };
	assert_int_equal(orch_messages_append(f->e, f->sb, &b), 0);
	/* one whose line is longer than a batch: control bytes come out as \u0001 */
	memset(text, 1, big);
	b.n = 1;
	assert_int_equal(orch_messages_append(f->e, f->sb, &b), 0);
	assert_int_equal(orch_engine_turn(f->e, 0), 0);
	uint64_t l1, l2, l3;
	struct sbuf o = SBUF_INIT;
	assert_int_equal(orch_inbox_take(f->e, f->sb, &l1, &o), 0);
	assert_true(o.len <= INBOX_BATCH_BYTES);
	assert_int_equal(o.len / (big + 100), INBOX_BATCH_BYTES / (big + 100));	/* as many as fit */
	sbuf_reset(&o);
	assert_int_equal(orch_inbox_take(f->e, f->sb, &l2, &o), 0);	/* the other two 60 KiB ones */
	assert_true(o.len > 2 * big && o.len < 3 * big);
	sbuf_reset(&o);
	assert_int_equal(orch_inbox_take(f->e, f->sb, &l3, &o), 0);	/* the long one, alone */
	assert_true(o.len > INBOX_BATCH_BYTES);
	assert_int_not_equal(l3, 0);
	sbuf_release(&o);
	free(text);
}

/* The whole view, read in parts of N bytes through orch_messages_read. */
static void read_view(struct fixture *f, size_t n, struct sbuf *out)
{
	sbuf_reset(out);
	for (;;) {
		size_t before = out->len;
		assert_int_equal(orch_messages_read(f->e, f->sb, (int64_t)out->len, n, out), 0);
		assert_true(out->len - before <= n);
		if (out->len == before)
			break;
	}
}

static void assert_view_reads(struct fixture *f)
{
	struct sbuf all = SBUF_INIT, got = SBUF_INIT;
	assert_int_equal(orch_messages_render(f->e, f->sb, &all), 0);
	assert_int_equal(orch_messages_size(f->e, f->sb), (int64_t)all.len);
	static const size_t parts[] = { 1, 7, 100, 4096, 1 << 20 };
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		read_view(f, parts[i], &got);
		assert_int_equal(got.len, all.len);
		assert_memory_equal(got.buf, all.buf, all.len);
	}
	/* a read from the middle of a line */
	if (all.len > 20) {
		sbuf_reset(&got);
		assert_int_equal(orch_messages_read(f->e, f->sb, 13, 50, &got), 0);
		assert_memory_equal(got.buf, all.buf + 13, got.len);
	}
	sbuf_release(&all);
	sbuf_release(&got);
}

/* The view is read a part at a time, renders only what a read covers, and
 * its lines keep their length and place when delivered (a queued line ends
 * in 3 spaces). */
static void test_msgq__view_read_in_parts(void **state)
{
	struct fixture *f = *state;
	assert_view_reads(f);
	const char *t[] = { "plain", "with \"quotes\" and \\ and \t", "\xc3\xa9t\xc3\xa9", "" };
	send(f, 3, NULL, t);
	send_many(f, 0, 40);
	struct sbuf before = SBUF_INIT, after = SBUF_INIT;
	assert_int_equal(orch_messages_render(f->e, f->sb, &before), 0);
	assert_non_null(strstr(sbuf_str(&before), "\"state\":\"queued\"}   \n"));
	assert_view_reads(f);
	uint64_t l;
	int nums[64];
	char got[256];
	take(f, &l, got, sizeof(got));	/* the 3 and the first 40: one batch */
	(void)nums;
	assert_int_equal(orch_inbox_done(f->e, f->sb, l, true), 0);
	assert_int_equal(orch_engine_turn(f->e, 0), 0);
	assert_int_equal(orch_messages_render(f->e, f->sb, &after), 0);
	assert_int_equal(after.len, before.len);	/* no line moved */
	assert_null(strstr(sbuf_str(&after), "\"state\":\"queued\""));
	assert_view_reads(f);
	send_many(f, 40, 5);
	fixture_reopen(f);
	assert_view_reads(f);
	sbuf_release(&before);
	sbuf_release(&after);
}

/* A version-2 state directory (lines of queued messages 3 bytes shorter,
 * no offsets) opens with its views in place. */
static void test_msgq__migrated_from_version_2(void **state)
{
	struct fixture *f = *state;
	send_many(f, 0, 30);
	uint64_t l;
	char got[512];
	take(f, &l, got, sizeof(got));
	assert_int_equal(orch_inbox_done(f->e, f->sb, l, true), 0);
	send_many(f, 30, 7);
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_create(f->e, "box2", getuid(), getgid(), &a), 0);
	int64_t sb1 = f->sb;
	f->sb = a.rowid;
	send_many(f, 100, 5);
	f->sb = sb1;
	struct sbuf want = SBUF_INIT;
	assert_int_equal(orch_messages_render(f->e, f->sb, &want), 0);
	orch_engine_turn(f->e, 0);
	orch_engine_close(f->e);
	/* back to version 2 as it was */
	char path[160];
	snprintf(path, sizeof(path), "%s/orchfs.db", f->state);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "DROP INDEX messages_off; ALTER TABLE messages DROP COLUMN off;"
				      " UPDATE messages SET len = len - 3;"
				      " UPDATE meta SET value = 2 WHERE key = 'schema';",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	f->e = fixture_open(f);
	struct sbuf now = SBUF_INIT;
	assert_int_equal(orch_messages_render(f->e, f->sb, &now), 0);
	assert_int_equal(now.len, want.len);
	assert_memory_equal(now.buf, want.buf, want.len);
	assert_view_reads(f);
	f->sb = a.rowid;
	assert_view_reads(f);
	send_many(f, 105, 3);
	assert_view_reads(f);
	f->sb = sb1;
	sbuf_release(&want);
	sbuf_release(&now);
}

int main(int argc, char **argv)
{
	FIXTURE_MAIN_PROLOGUE(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_msgq__fifo_and_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msgq__one_open_inbox_at_a_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msgq__types_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msgq__durable_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msgq__events_for_queue_and_delivery, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msgq__view_size_known_without_rendering, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msgq__batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msgq__batch_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msgq__view_read_in_parts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_msgq__migrated_from_version_2, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
