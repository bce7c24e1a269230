/* tests/test_webhook.c — webhooks (core/webhook.h): the configuration and
 * its messages, event type globs, the retry schedule, HMAC-SHA256 against
 * the test vectors of RFC 4231 and the signature header; then in an engine:
 * an event is queued in the transaction that records it, the queue survives
 * a reopen, is dropped with its URL's subscriber, and a dropped delivery
 * emits one webhook.dropped that is not queued again for its subscriber. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/engine_i.h"
#include "core/webhook.h"
#include "tests/engine_fixture.h"

/* ---- configuration ---- */

static int parse(const char *text, struct webhook_cfg **c, size_t *n, struct sbuf *err)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	assert_non_null(v);
	sbuf_reset(err);
	int rc = webhook_cfg_parse(v, c, n, err);
	json_decref(v);
	return rc;
}

static void test_webhook__config(void **state)
{
	struct webhook_cfg *c;
	size_t n;
	struct sbuf err = SBUF_INIT;
	assert_int_equal(parse("[{\"url\": \"http://127.0.0.1:9/h\", \"secret\": \"s\", \"events\": [\"run.*\"]},"
			       " {\"url\": \"https://example.com/x?k=1\", \"secret\": \"t\", \"events\": [\"*\"],"
			       " \"retry_sec\": [1, 0.5]}]",
			       &c, &n, &err),
			 0);
	assert_int_equal(n, 2);
	assert_string_equal(c[0].url, "http://127.0.0.1:9/h");
	assert_string_equal(c[0].secret, "s");
	assert_int_equal(c[0].nevents, 1);
	assert_int_equal(c[0].nretry, 5);	/* SPEC: 30, 60, 120, 300, 600 */
	assert_int_equal(c[1].nretry, 2);
	webhook_cfg_free(c, n);
	assert_int_equal(parse("[]", &c, &n, &err), 0);
	assert_int_equal(n, 0);
	webhook_cfg_free(c, n);

	static const struct { const char *text, *msg; } bad[] = {
		{ "{}", "\"webhooks\" must be a list of {\"url\", \"secret\", \"events\"} objects, not an object" },
		{ "[1]", "webhooks[0] must be an object with \"url\", \"secret\" and \"events\", not a number" },
		{ "[{\"secret\": \"s\", \"events\": [\"*\"]}]", "webhooks[0].url is required" },
		{ "[{\"url\": \"ftp://h/\", \"secret\": \"s\", \"events\": [\"*\"]}]",
		  "webhooks[0].url must be an http:// or https:// URL (at most 2048 bytes), not \"ftp://h/\"" },
		{ "[{\"url\": \"http://\", \"secret\": \"s\", \"events\": [\"*\"]}]",
		  "webhooks[0].url must be an http:// or https:// URL (at most 2048 bytes), not \"http://\"" },
		{ "[{\"url\": 5, \"secret\": \"s\", \"events\": [\"*\"]}]", "webhooks[0].url must be a string, not a number" },
		{ "[{\"url\": \"http://a/\", \"secret\": \"s\", \"events\": [\"*\"]},"
		  " {\"url\": \"http://a/\", \"secret\": \"s\", \"events\": [\"*\"]}]",
		  "webhooks[1].url is the url of webhooks[0]: list each URL once (one subscriber takes every event type"
		  " it wants)" },
		{ "[{\"url\": \"http://a/\", \"events\": [\"*\"]}]",
		  "webhooks[0].secret is required (the key of the X-Orchfs-Signature HMAC)" },
		{ "[{\"url\": \"http://a/\", \"secret\": \"\", \"events\": [\"*\"]}]",
		  "webhooks[0].secret must be a non-empty string without NUL bytes" },
		{ "[{\"url\": \"http://a/\", \"secret\": \"s\"}]",
		  "webhooks[0].events is required: a list of event type globs such as [\"run.*\", \"step.failed\"]"
		  " ([\"*\"]: every event)" },
		{ "[{\"url\": \"http://a/\", \"secret\": \"s\", \"events\": \"run.*\"}]",
		  "webhooks[0].events must be a list of 1 to 256 event type globs such as [\"run.*\"]" },
		{ "[{\"url\": \"http://a/\", \"secret\": \"s\", \"events\": [\"\"]}]",
		  "webhooks[0].events[0] must be a non-empty glob such as \"run.*\", not that string" },
		{ "[{\"url\": \"http://a/\", \"secret\": \"s\", \"events\": [\"*\"], \"retry_sec\": 30}]",
		  "webhooks[0].retry_sec must be a list of at most 32 delays in seconds such as [30, 60, 120] ([]: no"
		  " retry), not a number" },
		{ "[{\"url\": \"http://a/\", \"secret\": \"s\", \"events\": [\"*\"], \"retry_sec\": [1, 0]}]",
		  "webhooks[0].retry_sec[1] must be a number of seconds greater than 0 and at most 86400" },
		{ "[{\"url\": \"http://a/\", \"secret\": \"s\", \"events\": [\"*\"], \"evnts\": []}]",
		  "webhooks[0]: unknown field \"evnts\" (known: url, secret, events, retry_sec)" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(parse(bad[i].text, &c, &n, &err), -EINVAL);
		assert_null(c);
		assert_string_equal(sbuf_str(&err), bad[i].msg);
	}
	sbuf_release(&err);
}

static void test_webhook__globs(void **state)
{
	char *ev[] = { "run.*", "step.failed", "agent.?urn" };
	struct webhook_cfg c = { .events = ev, .nevents = 3 };
	assert_true(webhook_wants(&c, "run.created"));
	assert_true(webhook_wants(&c, "run.succeeded"));
	assert_true(webhook_wants(&c, "step.failed"));
	assert_true(webhook_wants(&c, "agent.turn"));
	assert_false(webhook_wants(&c, "step.started"));
	assert_false(webhook_wants(&c, "xrun.created"));
	assert_false(webhook_wants(&c, "run"));
	assert_false(webhook_wants(&c, "step.failed2"));
	char *all[] = { "*" };
	struct webhook_cfg a = { .events = all, .nevents = 1 };
	assert_true(webhook_wants(&a, "webhook.dropped"));
	assert_true(webhook_wants(&a, "x"));
}

static void test_webhook__retry_schedule(void **state)
{
	struct webhook_cfg *c;
	size_t n;
	struct sbuf err = SBUF_INIT;
	assert_int_equal(parse("[{\"url\": \"http://a/\", \"secret\": \"s\", \"events\": [\"*\"]},"
			       " {\"url\": \"http://b/\", \"secret\": \"s\", \"events\": [\"*\"], \"retry_sec\": [1, 2.5]},"
			       " {\"url\": \"http://c/\", \"secret\": \"s\", \"events\": [\"*\"], \"retry_sec\": []}]",
			       &c, &n, &err),
			 0);
	static const int64_t want[] = { 30000, 60000, 120000, 300000, 600000 };
	for (unsigned k = 1; k <= 5; k++)
		assert_int_equal(webhook_retry_ms(&c[0], k), want[k - 1]);
	assert_int_equal(webhook_retry_ms(&c[0], 6), -1);	/* then dropped */
	assert_int_equal(webhook_retry_ms(&c[1], 1), 1000);
	assert_int_equal(webhook_retry_ms(&c[1], 2), 2500);
	assert_int_equal(webhook_retry_ms(&c[1], 3), -1);
	assert_int_equal(webhook_retry_ms(&c[2], 1), -1);	/* no retry at all */
	webhook_cfg_free(c, n);
	sbuf_release(&err);
}

static void hex(const unsigned char *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* RFC 4231, section 4: test cases 1 to 7 (5 is truncated to 128 bits) */
static void test_webhook__hmac_sha256_rfc4231(void **state)
{
	unsigned char k0b[20], kaa20[20], kaa131[131], k25[25], k0c[20], ddd[50], cdd[50];
	memset(k0b, 0x0b, 20);
	memset(kaa20, 0xaa, 20);
	memset(kaa131, 0xaa, 131);
	memset(k0c, 0x0c, 20);
	memset(ddd, 0xdd, 50);
	memset(cdd, 0xcd, 50);
	for (int i = 0; i < 25; i++)
		k25[i] = (unsigned char)(i + 1);
	static const char big[] = "This is a test using a larger than block-size key and a larger than block-size data."
				  " The key needs to be hashed before being used by the HMAC algorithm.";
	const struct { const void *key; size_t klen; const void *msg; size_t mlen; const char *mac; size_t cmp; } v[] = {
		{ k0b, 20, "Hi There", 8, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32 },
		{ "Jefe", 4, "what do ya want for nothing?", 28,
		  "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32 },
		{ kaa20, 20, ddd, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32 },
		{ k25, 25, cdd, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32 },
		{ k0c, 20, "Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b", 16 },
		{ kaa131, 131, "Test Using Larger Than Block-Size Key - Hash Key First", 54,
		  "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32 },
		{ kaa131, 131, big, sizeof(big) - 1, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		unsigned char mac[32];
		char h[65];
		assert_int_equal(webhook_hmac_sha256(v[i].key, v[i].klen, v[i].msg, v[i].mlen, mac), 0);
		hex(mac, v[i].cmp, h);
		assert_string_equal(h, v[i].mac);
	}
	/* the header value: the same over the exact body, with the secret */
	char sig[WEBHOOK_SIG_LEN];
	assert_int_equal(webhook_sign("Jefe", "what do ya want for nothing?", 28, sig), 0);
	assert_string_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	assert_int_equal(webhook_sign("Jefe", "what do ya want for nothing?\n", 29, sig), 0);
	assert_string_not_equal(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_webhook__url_shown(void **state)
{
	char *s = webhook_url_shown("https://user:pw@hooks.example.com:8443/a/b?token=x#f");
	assert_string_equal(s, "https://hooks.example.com:8443/a/b");
	orch_free(s);
	s = webhook_url_shown("http://127.0.0.1");
	assert_string_equal(s, "http://127.0.0.1/");
	orch_free(s);
}

/* ---- in an engine ---- */

/* A loopback port no one listens on (bound, then let go). */
static int dead_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	socklen_t al = sizeof(a);
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd);
	return ntohs(a.sin_port);
}

static struct orch_engine *open_with(struct fixture *f, const struct webhook_cfg *c, size_t n)
{
	struct orch_config cfg = { .exec_helper = "/proc/self/exe", .state_dir = f->state, .mountpoint = f->mnt,
				   .port_min = f->port_min, .port_max = f->port_max, .webhooks = c, .nwebhooks = n };
	struct sbuf err = SBUF_INIT;
	struct orch_engine *e = orch_engine_open(&cfg, &err);
	if (!e)
		fail_msg("engine did not open: %s", sbuf_str(&err));
	sbuf_release(&err);
	return e;
}

static int64_t queued(struct orch_engine *e)
{
	return store_int(&e->st, "SELECT count(*) FROM webhook_queue", -1, NULL);
}

static void test_webhook__queue_is_durable_with_its_event(void **state)
{
	struct fixture *f = fixture_new("webhook", 47100, 47199);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/h", dead_port());
	char *ev[] = { "sandbox.*" };
	double retry[] = { 3600 };
	struct webhook_cfg c = { .url = url, .secret = "s", .events = ev, .nevents = 1, .retry_sec = retry, .nretry = 1 };
	orch_engine_close(f->e);
	f->e = open_with(f, &c, 1);
	struct orch_sandbox_attr a;

	/* queued in the transaction of the event: undone with it */
	assert_int_equal(orch_sandbox_create(f->e, "gone", 0, 0, &a), 0);
	assert_int_equal(queued(f->e), 1);
	store_rollback(&f->e->st);
	assert_int_equal(queued(f->e), 0);
	assert_int_equal(store_int(&f->e->st, "SELECT count(*) FROM events WHERE type = 'sandbox.created'", -1, NULL), 0);
	sb_forget(f->e, sb_get(f->e, "gone"));

	/* only what the globs want */
	assert_int_equal(orch_sandbox_create(f->e, "box", 0, 0, &a), 0);
	assert_int_equal(orch_sandbox_ctl(f->e, a.rowid, "stop\n", 5), 0);
	assert_int_equal(queued(f->e), 2);
	int64_t seq = store_int(&f->e->st, "SELECT seq FROM events WHERE type = 'sandbox.created'", -1, NULL);
	assert_int_equal(store_int(&f->e->st, "SELECT min(seq) FROM webhook_queue", -1, NULL), seq);
	/* the first post fails (no one listens): attempt 1 is recorded, its retry an hour away */
	int64_t end = clock_mono_ms() + 10000;
	while (store_int(&f->e->st, "SELECT max(attempts) FROM webhook_queue", 0, NULL) < 1 && clock_mono_ms() < end)
		orch_engine_turn(f->e, 50);
	orch_engine_turn(f->e, 0);
	assert_int_equal(store_int(&f->e->st, "SELECT attempts FROM webhook_queue WHERE seq = ?", -1, "i", seq), 1);
	assert_int_equal(store_int(&f->e->st, "SELECT attempts FROM webhook_queue WHERE seq > ?", -1, "i", seq), 0);
	assert_true(store_int(&f->e->st, "SELECT next_at FROM webhook_queue WHERE seq = ?", 0, "i", seq) >
		    clock_wall_ms() + 3000000);
	struct sbuf m = SBUF_INIT;
	assert_int_equal(orch_render_metrics(f->e, &m), 0);
	assert_non_null(strstr(sbuf_str(&m), "orchfs_webhook_deliveries_total{result=\"failed\"} 1\n"));
	assert_non_null(strstr(sbuf_str(&m), "orchfs_webhook_deliveries_total{result=\"ok\"} 0\n"));
	sbuf_release(&m);

	/* a new engine (as after kill -9) finds both, attempts kept */
	orch_engine_close(f->e);
	f->e = open_with(f, &c, 1);
	assert_int_equal(queued(f->e), 2);
	assert_int_equal(store_int(&f->e->st, "SELECT attempts FROM webhook_queue WHERE seq = ?", -1, "i", seq), 1);

	/* the URL no longer configured: its queue goes */
	orch_engine_close(f->e);
	f->e = open_with(f, NULL, 0);
	assert_int_equal(queued(f->e), 0);
	assert_int_equal(store_int(&f->e->st, "SELECT count(*) FROM webhook_subs", -1, NULL), 0);
	fixture_teardown((void **)&f);
}

static void test_webhook__dropped_once_not_to_itself(void **state)
{
	struct fixture *f = fixture_new("webhook-drop", 47200, 47299);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/h", dead_port());
	char *ev[] = { "*" };
	struct webhook_cfg c = { .url = url, .secret = "s", .events = ev, .nevents = 1, .retry_sec = NULL, .nretry = 0 };
	orch_engine_close(f->e);
	f->e = open_with(f, &c, 1);
	struct orch_sandbox_attr a;
	assert_int_equal(orch_sandbox_create(f->e, "box", 0, 0, &a), 0);
	int64_t end = clock_mono_ms() + 10000;
	while (store_int(&f->e->st, "SELECT count(*) FROM events WHERE type = 'webhook.dropped'", 0, NULL) < 1 &&
	       clock_mono_ms() < end)
		orch_engine_turn(f->e, 50);
	for (int i = 0; i < 5; i++)
		orch_engine_turn(f->e, 20);
	assert_int_equal(store_int(&f->e->st, "SELECT count(*) FROM events WHERE type = 'webhook.dropped'", 0, NULL), 1);
	assert_int_equal(queued(f->e), 0);
	int rc;
	sqlite3_stmt *q = store_query(&f->e->st, "SELECT line FROM events WHERE type = 'webhook.dropped'", &rc, NULL);
	assert_non_null(q);
	json_t *o = json_loads((const char *)sqlite3_column_text(q, 0), 0, NULL);
	store_done(q);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "event_type")), "sandbox.created");
	assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 1);
	char shown[64];
	snprintf(shown, sizeof(shown), "%s", url);
	assert_string_equal(json_string_value(json_object_get(o, "url")), shown);
	assert_non_null(strstr(json_string_value(json_object_get(o, "error")), "onnect"));
	json_decref(o);
	fixture_teardown((void **)&f);
}

int main(int argc, char **argv)
{
	FIXTURE_MAIN_PROLOGUE(argc, argv);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_webhook__config),
		cmocka_unit_test(test_webhook__globs),
		cmocka_unit_test(test_webhook__retry_schedule),
		cmocka_unit_test(test_webhook__hmac_sha256_rfc4231),
		cmocka_unit_test(test_webhook__url_shown),
		cmocka_unit_test(test_webhook__queue_is_durable_with_its_event),
		cmocka_unit_test(test_webhook__dropped_once_not_to_itself),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
