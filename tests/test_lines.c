/* tests/test_lines.c — the messages and events line formats (SPEC §5): one
 * case per rule with the exact reason, strict UTF-8, the 64 KiB limit, line
 * assembly across write()s (all-or-nothing, line numbers, close), big batches
 * and allocation-failure sweeps (run under ASan: a leak or a crash fails it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lines.h"

/* helpers */

/* Feed the NUL-terminated S as one write(). */
static int feed(struct line_asm *a, const char *s, struct line_batch *b, struct sbuf *err)
{
	return line_asm_write(a, s, strlen(s), b, err);
}

/* LINE (LEN bytes) must be one message of TYPE with CONTENT. */
static void expect_msg_n(const char *line, size_t len, enum msg_type type, const char *content)
{
	struct sbuf err = SBUF_INIT;
	struct msg_line m = { MSG_INTERRUPT, NULL };

	assert_int_equal(msg_line_parse(line, len, &m, &err), 1);
	assert_string_equal(sbuf_str(&err), "");
	assert_int_equal(m.type, type);
	assert_string_equal(m.content, content);
	orch_free(m.content);
	sbuf_release(&err);
}

static void expect_msg(const char *line, enum msg_type type, const char *content)
{
	expect_msg_n(line, strlen(line), type, content);
}

/* LINE (LEN bytes) must be refused with WHY, both alone and as line 1 of a
 * write into messages (KIND) or events. */
static void expect_err_n(enum line_kind kind, const char *line, size_t len, const char *why)
{
	struct sbuf err = SBUF_INIT;
	struct line_asm a = LINE_ASM_INIT(kind);
	struct line_batch b = LINE_BATCH_INIT;
	char *buf = malloc(len + 1);
	int r;

	assert_non_null(buf);
	if (kind == LINES_MESSAGES) {
		struct msg_line m;
		r = msg_line_parse(line, len, &m, &err);
	} else {
		json_t *ev = NULL;
		r = event_line_parse(line, len, &ev, &err);
		assert_null(ev);
	}
	assert_int_equal(r, -EINVAL);
	assert_string_equal(sbuf_str(&err), why);

	sbuf_reset(&err);
	memcpy(buf, line, len);
	buf[len] = '\n';
	assert_int_equal(line_asm_write(&a, buf, len + 1, &b, &err), -EINVAL);
	assert_true(strncmp(sbuf_str(&err), "line 1: ", 8) == 0);
	assert_string_equal(sbuf_str(&err) + 8, why);
	assert_int_equal(b.n, 0);
	assert_int_equal(a.partial.len, 0);

	free(buf);
	line_asm_release(&a);
	line_batch_release(&b);
	sbuf_release(&err);
}

static void expect_msg_err(const char *line, const char *why)
{
	expect_err_n(LINES_MESSAGES, line, strlen(line), why);
}

static void expect_ev_err(const char *line, const char *why)
{
	expect_err_n(LINES_EVENTS, line, strlen(line), why);
}

/* LINE must be one event whose compact dump is WANT. */
static void expect_ev(const char *line, const char *want)
{
	struct sbuf err = SBUF_INIT;
	json_t *ev = NULL;
	char *dump;

	assert_int_equal(event_line_parse(line, strlen(line), &ev, &err), 1);
	assert_string_equal(sbuf_str(&err), "");
	assert_non_null(ev);
	assert_int_equal(ev->refcount, 1);
	dump = json_dumps(ev, JSON_COMPACT);
	assert_non_null(dump);
	assert_string_equal(dump, want);
	free(dump);
	json_decref(ev);
	sbuf_release(&err);
}

/* Event I of B dumps (compact) as WANT. */
static void expect_batch_ev(const struct line_batch *b, size_t i, const char *want)
{
	char *dump = json_dumps(b->events[i], JSON_COMPACT);

	assert_non_null(dump);
	assert_string_equal(dump, want);
	free(dump);
}

/* A copy of an sbuf's bytes, to show a refused write changed nothing. */
struct snap {
	char *bytes;
	size_t len;
};

static struct snap snap_take(const struct sbuf *sb)
{
	struct snap s = { malloc(sb->len + 1), sb->len };

	assert_non_null(s.bytes);
	memcpy(s.bytes, sbuf_str(sb), sb->len + 1);
	return s;
}

static void snap_check(struct snap *s, const struct sbuf *sb)
{
	assert_int_equal(sb->len, s->len);
	assert_memory_equal(sbuf_str(sb), s->bytes, s->len + 1);
	free(s->bytes);
	s->bytes = NULL;
}

/* messages */

static void test_lines__plain_lines(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;

	expect_msg("hello world", MSG_USER_MESSAGE, "hello world");
	expect_msg(" {not json", MSG_USER_MESSAGE, " {not json");
	expect_msg("[1, 2]", MSG_USER_MESSAGE, "[1, 2]");
	expect_msg("\"quoted\"", MSG_USER_MESSAGE, "\"quoted\"");
	expect_msg("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", MSG_USER_MESSAGE,
		   "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

	assert_int_equal(feed(&a, "one\ntwo\nthree\n", &b, &err), 0);
	assert_int_equal(b.n, 3);
	assert_null(b.events);
	assert_string_equal(b.msgs[0].content, "one");
	assert_string_equal(b.msgs[1].content, "two");
	assert_string_equal(b.msgs[2].content, "three");
	for (size_t i = 0; i < b.n; i++)
		assert_int_equal(b.msgs[i].type, MSG_USER_MESSAGE);
	assert_int_equal(a.partial.len, 0);
	assert_string_equal(sbuf_str(&err), "");

	line_batch_release(&b);
	assert_int_equal(b.n, 0);
	assert_null(b.msgs);
	assert_null(b.events);
	line_asm_release(&a);
	sbuf_release(&err);
}

static void test_lines__typed_object(void **state)
{
	expect_msg("{\"content\":\"hi\",\"message_type\":\"interrupt\"}", MSG_INTERRUPT, "hi");
	expect_msg("{ \"message_type\" : \"interrupt\" , \"content\" : \"a\\nb\\u00e9\" }",
		   MSG_INTERRUPT, "a\nb\xc3\xa9");
	expect_msg("{\"content\":\"no type\"}", MSG_USER_MESSAGE, "no type");
}

static void test_lines__each_message_type(void **state)
{
	static const struct {
		const char *name;
		enum msg_type type;
	} types[] = {
		{ "user_message", MSG_USER_MESSAGE },
		{ "interrupt", MSG_INTERRUPT },
		{ "guardian_intervention", MSG_GUARDIAN_INTERVENTION },
		{ "human_answer", MSG_HUMAN_ANSWER },
	};
	char line[128], content[32];

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		snprintf(content, sizeof(content), "c%zu", i);
		snprintf(line, sizeof(line), "{\"content\":\"%s\",\"message_type\":\"%s\"}", content,
			 types[i].name);
		expect_msg(line, types[i].type, content);
		assert_string_equal(msg_type_name(types[i].type), types[i].name);
		assert_int_equal(msg_type_parse(types[i].name), types[i].type);
	}
	assert_int_equal(msg_type_parse("shout"), -1);
	assert_int_equal(msg_type_parse(""), -1);
	assert_int_equal(msg_type_parse("Interrupt"), -1);
}

static void test_lines__empty_lines_ignored(void **state)
{
	static const enum line_kind kinds[] = { LINES_MESSAGES, LINES_EVENTS };
	struct sbuf err = SBUF_INIT;
	struct msg_line m = { MSG_USER_MESSAGE, NULL };
	json_t *ev = NULL;

	assert_int_equal(msg_line_parse("", 0, &m, &err), 0);
	assert_int_equal(msg_line_parse("\r", 1, &m, &err), 0);
	assert_null(m.content);
	assert_int_equal(event_line_parse("", 0, &ev, &err), 0);
	assert_int_equal(event_line_parse("\r", 1, &ev, &err), 0);
	assert_null(ev);
	/* two carriage returns are not empty: a message, and bad for events */
	expect_msg("\r\r", MSG_USER_MESSAGE, "\r\r");
	assert_string_equal(sbuf_str(&err), "");

	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
		struct line_asm a = LINE_ASM_INIT(kinds[i]);
		struct line_batch b = LINE_BATCH_INIT;

		assert_int_equal(feed(&a, "\n\r\n\n\r", &b, &err), 0);
		assert_int_equal(b.n, 0);
		assert_int_equal(line_asm_close(&a, &b, &err), 0);
		assert_int_equal(b.n, 0);
		assert_string_equal(sbuf_str(&err), "");
		line_asm_release(&a);
		line_batch_release(&b);
	}
	sbuf_release(&err);
}

static void test_lines__crlf_content_kept(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_asm e = LINE_ASM_INIT(LINES_EVENTS);
	struct line_batch b = LINE_BATCH_INIT, eb = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;

	assert_int_equal(feed(&a, "plain\r\n{\"content\":\"json\"}\r\n", &b, &err), 0);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.msgs[0].content, "plain\r");
	assert_string_equal(b.msgs[1].content, "json");
	assert_int_equal(feed(&e, "{\"event_type\":\"x\"}\r\n", &eb, &err), 0);
	assert_int_equal(eb.n, 1);
	expect_batch_ev(&eb, 0, "{\"event_type\":\"x\"}");
	assert_string_equal(sbuf_str(&err), "");

	line_asm_release(&a);
	line_asm_release(&e);
	line_batch_release(&b);
	line_batch_release(&eb);
	sbuf_release(&err);
}

static void test_lines__json_content_empty(void **state)
{
	expect_msg("{\"content\":\"\"}", MSG_USER_MESSAGE, "");
	expect_msg("{\"content\":\"\",\"message_type\":\"guardian_intervention\"}",
		   MSG_GUARDIAN_INTERVENTION, "");
}

static void test_lines__unknown_type(void **state)
{
	expect_msg_err("{\"content\":\"x\",\"message_type\":\"shout\"}",
		       "\"message_type\" must be one of user_message, interrupt, "
		       "guardian_intervention, human_answer, not \"shout\"");
	expect_msg_err("{\"content\":\"x\",\"message_type\":\"\"}",
		       "\"message_type\" must be one of user_message, interrupt, "
		       "guardian_intervention, human_answer, not \"\"");
}

static void test_lines__quoted_text_cut(void **state)
{
	char line[512], want[512], type[256], shown[128];
	size_t n = 0;

	/* "a" then 40 two-byte characters: byte 64 is inside the 32nd, so the
	 * quote keeps 63 bytes, "a" and 31 of them */
	type[n++] = 'a';
	for (int i = 0; i < 40; i++) {
		type[n++] = '\xc3';
		type[n++] = '\xa9';
	}
	type[n] = '\0';
	memcpy(shown, type, 63);
	shown[63] = '\0';
	snprintf(line, sizeof(line), "{\"content\":\"x\",\"message_type\":\"%s\"}", type);
	snprintf(want, sizeof(want),
		 "\"message_type\" must be one of user_message, interrupt, "
		 "guardian_intervention, human_answer, not \"%s\"", shown);
	expect_msg_err(line, want);

	/* exactly 64 ASCII bytes are kept whole, the 65th is cut */
	memset(type, 'b', 65);
	type[65] = '\0';
	snprintf(line, sizeof(line), "{\"content\":\"x\",\"%s\":1}", type);
	type[64] = '\0';
	snprintf(want, sizeof(want), "unknown field \"%s\" (a message has content and message_type)",
		 type);
	expect_msg_err(line, want);

	/* control characters (C0, DEL, C1) show as '?' */
	expect_msg_err("{\"content\":\"x\",\"message_type\":\"a\\tb\\nc\\u007fd\\u0085e\"}",
		       "\"message_type\" must be one of user_message, interrupt, "
		       "guardian_intervention, human_answer, not \"a?b?c?d?e\"");
	expect_ev_err("{\"event_type\":\"x\",\"a\\u001bb\":1}",
		      "unknown field \"a?b\" (an event has event_type, event_data and source)");
}

static void test_lines__extra_key(void **state)
{
	expect_msg_err("{\"content\":\"x\",\"priority\":1}",
		       "unknown field \"priority\" (a message has content and message_type)");
	/* an unknown field is named before anything else is checked */
	expect_msg_err("{\"contnet\":\"x\"}",
		       "unknown field \"contnet\" (a message has content and message_type)");
}

static void test_lines__content_missing(void **state)
{
	expect_msg_err("{}", "\"content\" is required");
	expect_msg_err("{\"message_type\":\"interrupt\"}", "\"content\" is required");
}

static void test_lines__content_not_string(void **state)
{
	expect_msg_err("{\"content\":1}", "\"content\" must be a string");
	expect_msg_err("{\"content\":null}", "\"content\" must be a string");
	expect_msg_err("{\"content\":[\"a\"]}", "\"content\" must be a string");
	expect_msg_err("{\"content\":{}}", "\"content\" must be a string");
}

static void test_lines__message_type_not_string(void **state)
{
	expect_msg_err("{\"content\":\"x\",\"message_type\":1}",
		       "\"message_type\" must be a string");
	expect_msg_err("{\"content\":\"x\",\"message_type\":null}",
		       "\"message_type\" must be a string");
}

static void test_lines__duplicate_keys(void **state)
{
	expect_msg_err("{\"content\":\"a\",\"content\":\"b\"}",
		       "not a JSON object: duplicate object key near '\"content\"' (column 24)");
	expect_ev_err("{\"event_type\":\"x\",\"event_data\":{\"a\":1,\"a\":2}}",
		      "not a JSON object: duplicate object key near '\"a\"' (column 41)");
}

static void test_lines__message_bad_json(void **state)
{
	expect_msg_err("{bad", "not a JSON object: string or '}' expected near 'bad' (column 4)");
	expect_msg_err("{\"content\":",
		       "not a JSON object: unexpected token near end of file (column 11)");
	expect_msg_err("{\"content\":\"x\"} trailing",
		       "not a JSON object: end of file expected near 'trailing' (column 24)");
	/* jansson counts columns in characters */
	expect_msg_err("{\"content\":\"\xc3\xa9\",\"x\":tru}",
		       "not a JSON object: invalid token near 'tru' (column 22)");
}

static void test_lines__escaped_nul(void **state)
{
	expect_msg_err("{\"content\":\"a\\u0000b\"}", "contains a NUL byte (\\u0000)");
	expect_ev_err("{\"event_type\":\"x\",\"event_data\":{\"k\\u0000\":1}}",
		      "contains a NUL byte (\\u0000)");
}

/* events */

static void test_lines__event_valid(void **state)
{
	expect_ev("{\"event_type\":\"heartbeat\"}", "{\"event_type\":\"heartbeat\"}");
	expect_ev("{\"event_type\":\"a\",\"source\":\"w\"}", "{\"event_type\":\"a\",\"source\":\"w\"}");
	expect_ev("{\"event_type\":\"a\",\"event_data\":{}}", "{\"event_type\":\"a\",\"event_data\":{}}");
	expect_ev(" { \"event_type\" : \"a\" , \"event_data\" : {\"n\":[1,2.5,null,true]} } ",
		  "{\"event_type\":\"a\",\"event_data\":{\"n\":[1,2.5,null,true]}}");
}

static void test_lines__event_field_order(void **state)
{
	expect_ev("{\"source\":\"w\",\"event_data\":{\"b\":1,\"a\":2},\"event_type\":\"t\"}",
		  "{\"event_type\":\"t\",\"event_data\":{\"b\":1,\"a\":2},\"source\":\"w\"}");
	expect_ev("{\"source\":\"w\",\"event_type\":\"t\"}", "{\"event_type\":\"t\",\"source\":\"w\"}");
}

static void test_lines__event_type_missing(void **state)
{
	expect_ev_err("{}", "\"event_type\" is required");
	expect_ev_err("{\"event_data\":{},\"source\":\"w\"}", "\"event_type\" is required");
}

static void test_lines__event_type_bad(void **state)
{
	expect_ev_err("{\"event_type\":\"\"}", "\"event_type\" must be a non-empty string");
	expect_ev_err("{\"event_type\":1}", "\"event_type\" must be a non-empty string");
	expect_ev_err("{\"event_type\":null}", "\"event_type\" must be a non-empty string");
	expect_ev_err("{\"event_type\":[\"a\"]}", "\"event_type\" must be a non-empty string");
}

static void test_lines__event_data_not_object(void **state)
{
	expect_ev_err("{\"event_type\":\"a\",\"event_data\":[]}", "\"event_data\" must be an object");
	expect_ev_err("{\"event_type\":\"a\",\"event_data\":null}", "\"event_data\" must be an object");
	expect_ev_err("{\"event_type\":\"a\",\"event_data\":\"x\"}", "\"event_data\" must be an object");
}

static void test_lines__source_not_string(void **state)
{
	expect_ev_err("{\"event_type\":\"a\",\"source\":1}", "\"source\" must be a string");
	expect_ev_err("{\"event_type\":\"a\",\"source\":{}}", "\"source\" must be a string");
}

static void test_lines__unknown_event_field(void **state)
{
	expect_ev_err("{\"event_type\":\"a\",\"data\":{}}",
		      "unknown field \"data\" (an event has event_type, event_data and source)");
	expect_ev_err("{\"type\":\"a\"}",
		      "unknown field \"type\" (an event has event_type, event_data and source)");
}

static void test_lines__non_object_json(void **state)
{
	expect_ev_err("[1,2]", "not a JSON object: it is an array");
	expect_ev_err("\"heartbeat\"", "not a JSON object: it is a string");
	expect_ev_err("42", "not a JSON object: it is a number");
	expect_ev_err("-1.5", "not a JSON object: it is a number");
	expect_ev_err("true", "not a JSON object: it is a boolean");
	expect_ev_err("null", "not a JSON object: it is null");
	expect_ev_err("heartbeat", "not a JSON object: invalid token near 'heartbeat' (column 9)");
}

static void test_lines__bad_json_column(void **state)
{
	expect_ev_err("{\"event_type\":}",
		      "not a JSON object: unexpected token near '}' (column 15)");
	expect_ev_err("{\"event_type\":\"a\"",
		      "not a JSON object: '}' expected near end of file (column 17)");
	expect_ev_err("{\"event_type\":\"a\"}{}",
		      "not a JSON object: end of file expected near '{' (column 19)");
}

/* bytes */

static void test_lines__utf8_valid(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "", true },
		{ "plain ascii\ttab\r\n", true },
		{ "\xc2\x80", true },			/* U+0080 */
		{ "\xdf\xbf", true },			/* U+07FF */
		{ "\xe0\xa0\x80", true },		/* U+0800 */
		{ "\xed\x9f\xbf", true },		/* U+D7FF */
		{ "\xee\x80\x80", true },		/* U+E000 */
		{ "\xef\xbf\xbf", true },		/* U+FFFF */
		{ "\xf0\x90\x80\x80", true },		/* U+10000 */
		{ "\xf4\x8f\xbf\xbf", true },		/* U+10FFFF */
		{ "\xc0\x80", false },			/* overlong NUL */
		{ "\xc1\xbf", false },			/* overlong */
		{ "\xe0\x80\x80", false },		/* overlong */
		{ "\xe0\x9f\xbf", false },		/* overlong U+07FF */
		{ "\xf0\x80\x80\x80", false },		/* overlong */
		{ "\xf0\x8f\xbf\xbf", false },		/* overlong U+FFFF */
		{ "\xed\xa0\x80", false },		/* U+D800 */
		{ "\xed\xbf\xbf", false },		/* U+DFFF */
		{ "\xf4\x90\x80\x80", false },		/* U+110000 */
		{ "\xf5\x80\x80\x80", false },
		{ "\xff", false },
		{ "\xfe", false },
		{ "\x80", false },			/* lone continuation */
		{ "a\xc3", false },			/* truncated at the end */
		{ "\xe2\x82", false },
		{ "\xf0\x9f\x98", false },
		{ "\xe2\x82x", false },			/* truncated mid-text */
		{ "\xe2x\xac", false },
		{ "\xc3\xa9\xc3", false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		if (utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].ok)
			fail_msg("case %zu", i);
	assert_false(utf8_valid("a\0b", 3));
	assert_true(utf8_valid("a\0b", 1));
}

static void test_lines__invalid_utf8(void **state)
{
	static const char *const bad[] = {
		"over\xc0\xaflong", "\xe0\x80\xaf", "\xf0\x80\x80\xaf",	/* overlongs */
		"sur\xed\xa0\x80rogate", "\xed\xbf\xbf",		/* surrogates */
		"trunc\xe2\x82", "trunc\xe2\x82 mid", "\xf0\x9f\x98",	/* truncated */
		"\xff", "x\xffy", "\xf4\x90\x80\x80",
	};
	char line[64];

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		expect_msg_err(bad[i], "not valid UTF-8");
		expect_ev_err(bad[i], "not valid UTF-8");
		/* checked before JSON is looked at */
		snprintf(line, sizeof(line), "{\"content\":\"%s\"}", bad[i]);
		expect_msg_err(line, "not valid UTF-8");
		snprintf(line, sizeof(line), "{\"event_type\":\"%s\"}", bad[i]);
		expect_ev_err(line, "not valid UTF-8");
	}
}

static void test_lines__nul_byte(void **state)
{
	static const char msg[] = "a\0b";
	static const char ev[] = "{\"event_type\":\"a\0\"}";

	expect_err_n(LINES_MESSAGES, msg, sizeof(msg) - 1, "contains a NUL byte");
	expect_err_n(LINES_MESSAGES, "\0", 1, "contains a NUL byte");
	expect_err_n(LINES_EVENTS, ev, sizeof(ev) - 1, "contains a NUL byte");
	expect_err_n(LINES_EVENTS, msg, sizeof(msg) - 1, "contains a NUL byte");
}

static void test_lines__max_length(void **state)
{
	const size_t max = LINE_MAX_BYTES;
	char *buf = malloc(max + 3);
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_asm e = LINE_ASM_INIT(LINES_EVENTS);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;
	struct msg_line m;

	assert_non_null(buf);
	memset(buf, 'a', max + 1);
	buf[max + 1] = '\0';
	/* alone */
	assert_int_equal(msg_line_parse(buf, max, &m, &err), 1);
	assert_int_equal(strlen(m.content), max);
	orch_free(m.content);
	expect_err_n(LINES_MESSAGES, buf, max + 1, "longer than 65536 bytes");

	/* in a write */
	buf[max] = '\n';
	assert_int_equal(line_asm_write(&a, buf, max + 1, &b, &err), 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(strlen(b.msgs[0].content), max);
	buf[max] = 'a';
	buf[max + 1] = '\n';
	assert_int_equal(line_asm_write(&a, buf, max + 2, &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 1: longer than 65536 bytes");
	assert_int_equal(b.n, 1);
	sbuf_reset(&err);

	/* completed from a partial line: 65535 bytes, then "a\n" */
	assert_int_equal(line_asm_write(&a, buf, max - 1, &b, &err), 0);
	assert_int_equal(feed(&a, "a\n", &b, &err), 0);
	assert_int_equal(b.n, 2);
	assert_int_equal(strlen(b.msgs[1].content), max);
	/* 65536 bytes, then "\r\n": the '\r' makes 65537 */
	assert_int_equal(line_asm_write(&a, buf, max, &b, &err), 0);
	assert_int_equal(feed(&a, "\r\n", &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 1: longer than 65536 bytes");
	assert_int_equal(a.partial.len, max);
	sbuf_reset(&err);
	line_batch_release(&b);

	/* an event padded with spaces */
	memset(buf, ' ', max + 1);
	memcpy(buf, "{\"event_type\":\"x\"}", 18);
	buf[max] = '\n';
	assert_int_equal(line_asm_write(&e, buf, max + 1, &b, &err), 0);
	assert_int_equal(b.n, 1);
	expect_batch_ev(&b, 0, "{\"event_type\":\"x\"}");
	buf[max] = ' ';
	buf[max + 1] = '\n';
	assert_int_equal(line_asm_write(&e, buf, max + 2, &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 1: longer than 65536 bytes");
	assert_int_equal(b.n, 1);

	free(buf);
	line_asm_release(&a);
	line_asm_release(&e);
	line_batch_release(&b);
	sbuf_release(&err);
}

/* assembly */

static void test_lines__one_byte_writes(void **state)
{
	static const char msgs[] =
		"first\n{\"content\":\"\xc3\xa9 ok\",\"message_type\":\"interrupt\"}\r\n\n"
		"last \xe2\x82\xac\xf0\x9f\x98\x80\n";
	static const char evs[] =
		"{\"event_type\":\"a\",\"event_data\":{\"k\":\"\xc3\xa9\"}}\n\r\n"
		"{\"source\":\"s\",\"event_type\":\"b\"}\n";
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_asm e = LINE_ASM_INIT(LINES_EVENTS);
	struct line_batch b = LINE_BATCH_INIT, eb = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;

	for (size_t i = 0; i < sizeof(msgs) - 1; i++)
		assert_int_equal(line_asm_write(&a, msgs + i, 1, &b, &err), 0);
	assert_int_equal(b.n, 3);
	assert_string_equal(b.msgs[0].content, "first");
	assert_int_equal(b.msgs[1].type, MSG_INTERRUPT);
	assert_string_equal(b.msgs[1].content, "\xc3\xa9 ok");
	assert_string_equal(b.msgs[2].content, "last \xe2\x82\xac\xf0\x9f\x98\x80");
	assert_int_equal(a.partial.len, 0);

	for (size_t i = 0; i < sizeof(evs) - 1; i++)
		assert_int_equal(line_asm_write(&e, evs + i, 1, &eb, &err), 0);
	assert_int_equal(eb.n, 2);
	expect_batch_ev(&eb, 0, "{\"event_type\":\"a\",\"event_data\":{\"k\":\"\xc3\xa9\"}}");
	expect_batch_ev(&eb, 1, "{\"event_type\":\"b\",\"source\":\"s\"}");
	assert_string_equal(sbuf_str(&err), "");

	line_asm_release(&a);
	line_asm_release(&e);
	line_batch_release(&b);
	line_batch_release(&eb);
	sbuf_release(&err);
}

static void test_lines__utf8_split_across_writes(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;
	struct snap s;

	/* a character split between writes is fine once whole */
	assert_int_equal(feed(&a, "caf\xc3", &b, &err), 0);
	assert_int_equal(feed(&a, "\xa9\nnext \xe2\x82", &b, &err), 0);
	assert_int_equal(feed(&a, "\xac\n", &b, &err), 0);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.msgs[0].content, "caf\xc3\xa9");
	assert_string_equal(b.msgs[1].content, "next \xe2\x82\xac");

	/* but a sequence the '\n' cuts short is not */
	assert_int_equal(feed(&a, "bad \xc3", &b, &err), 0);
	s = snap_take(&a.partial);
	assert_int_equal(feed(&a, "\n", &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 1: not valid UTF-8");
	snap_check(&s, &a.partial);
	assert_int_equal(b.n, 2);

	line_asm_release(&a);
	line_batch_release(&b);
	sbuf_release(&err);
}

static void test_lines__valid_then_invalid(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;
	struct snap s;

	assert_int_equal(feed(&a, "keep\nab", &b, &err), 0);
	assert_int_equal(b.n, 1);

	/* the completed "abc" is fine, line 2 is not: nothing recorded */
	s = snap_take(&a.partial);
	assert_int_equal(feed(&a, "c\n{bad\nmore", &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err),
			    "line 2: not a JSON object: string or '}' expected near 'bad' (column 4)");
	snap_check(&s, &a.partial);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.msgs[0].content, "keep");
	sbuf_reset(&err);

	/* the first line itself refused: the partial, grown in place while
	 * checking, is cut back to the same bytes */
	s = snap_take(&a.partial);
	assert_int_equal(feed(&a, "\xff\n", &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 1: not valid UTF-8");
	snap_check(&s, &a.partial);
	sbuf_reset(&err);

	/* several valid lines, then a bad one, with no partial */
	assert_int_equal(feed(&a, "c\n", &b, &err), 0);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.msgs[1].content, "abc");
	assert_int_equal(a.partial.len, 0);
	assert_int_equal(feed(&a, "x\ny\n{\"content\":\"z\",\"message_type\":\"loud\"}\nw\n", &b,
			      &err), -EINVAL);
	assert_string_equal(sbuf_str(&err),
			    "line 3: \"message_type\" must be one of user_message, interrupt, "
			    "guardian_intervention, human_answer, not \"loud\"");
	assert_int_equal(b.n, 2);
	assert_int_equal(a.partial.len, 0);
	assert_string_equal(b.msgs[0].content, "keep");
	assert_string_equal(b.msgs[1].content, "abc");

	line_asm_release(&a);
	line_batch_release(&b);
	sbuf_release(&err);
}

static void test_lines__line_numbers(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_asm e = LINE_ASM_INIT(LINES_EVENTS);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;

	/* the line completed from the earlier write is line 1; empty lines count */
	assert_int_equal(feed(&a, "x", &b, &err), 0);
	assert_int_equal(feed(&a, "y\n\nz\n{\"content\":1}\n", &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 4: \"content\" must be a string");
	sbuf_reset(&err);
	/* the partial "x" was kept: a write starting with '\n' completes it */
	assert_int_equal(feed(&a, "\n\r\n{\"content\":{}}\n", &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 3: \"content\" must be a string");
	sbuf_reset(&err);
	assert_int_equal(feed(&a, "\n", &b, &err), 0);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.msgs[0].content, "x");
	line_batch_release(&b);

	/* no partial: the first line of the write is line 1 */
	assert_int_equal(feed(&e, "{\"event_type\":\"a\"}\n\n{\"event_type\":2}\n", &b, &err),
			 -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 3: \"event_type\" must be a non-empty string");
	assert_int_equal(b.n, 0);

	line_asm_release(&a);
	line_asm_release(&e);
	line_batch_release(&b);
	sbuf_release(&err);
}

static void test_lines__close_valid(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_asm e = LINE_ASM_INIT(LINES_EVENTS);
	struct line_batch b = LINE_BATCH_INIT, eb = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;

	assert_int_equal(feed(&a, "one\n{\"content\":\"by", &b, &err), 0);
	assert_int_equal(feed(&a, "e\",\"message_type\":\"interrupt\"}", &b, &err), 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(line_asm_close(&a, &b, &err), 0);
	assert_int_equal(b.n, 2);
	assert_int_equal(b.msgs[1].type, MSG_INTERRUPT);
	assert_string_equal(b.msgs[1].content, "bye");
	assert_int_equal(a.partial.len, 0);
	/* a second close has nothing left */
	assert_int_equal(line_asm_close(&a, &b, &err), 0);
	assert_int_equal(b.n, 2);

	assert_int_equal(feed(&e, "{\"event_type\":\"done\"}", &eb, &err), 0);
	assert_int_equal(eb.n, 0);
	assert_int_equal(line_asm_close(&e, &eb, &err), 0);
	assert_int_equal(eb.n, 1);
	expect_batch_ev(&eb, 0, "{\"event_type\":\"done\"}");
	assert_string_equal(sbuf_str(&err), "");

	line_asm_release(&a);
	line_asm_release(&e);
	line_batch_release(&b);
	line_batch_release(&eb);
	sbuf_release(&err);
}

static void test_lines__close_invalid(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_asm e = LINE_ASM_INIT(LINES_EVENTS);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;

	assert_int_equal(feed(&a, "ok\n{\"content\":", &b, &err), 0);
	assert_int_equal(line_asm_close(&a, &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err),
			    "last line: not a JSON object: unexpected token near end of file (column 11)");
	assert_int_equal(b.n, 1);
	/* consumed either way */
	assert_int_equal(a.partial.len, 0);
	assert_int_equal(line_asm_close(&a, &b, &err), 0);
	line_batch_release(&b);
	sbuf_reset(&err);

	assert_int_equal(feed(&e, "\xc3", &b, &err), 0);
	assert_int_equal(line_asm_close(&e, &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "last line: not valid UTF-8");
	assert_int_equal(b.n, 0);
	assert_int_equal(e.partial.len, 0);
	sbuf_reset(&err);

	assert_int_equal(feed(&e, "{\"event_type\":\"x\",\"extra\":1}", &b, &err), 0);
	assert_int_equal(line_asm_close(&e, &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "last line: unknown field \"extra\" "
			    "(an event has event_type, event_data and source)");

	line_asm_release(&a);
	line_asm_release(&e);
	line_batch_release(&b);
	sbuf_release(&err);
}

static void test_lines__partial_past_limit(void **state)
{
	const size_t max = LINE_MAX_BYTES;
	char *buf = malloc(max + 1);
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;
	struct snap s;

	assert_non_null(buf);
	memset(buf, 'p', max + 1);
	assert_int_equal(line_asm_write(&a, buf, 65000, &b, &err), 0);
	assert_int_equal(line_asm_write(&a, buf, max - 65000, &b, &err), 0);
	assert_int_equal(a.partial.len, max);
	/* the write that crosses the limit fails, and changes nothing */
	s = snap_take(&a.partial);
	assert_int_equal(feed(&a, "q", &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 1: longer than 65536 bytes");
	snap_check(&s, &a.partial);
	sbuf_reset(&err);
	assert_int_equal(feed(&a, "\n", &b, &err), 0);
	assert_int_equal(b.n, 1);
	assert_int_equal(strlen(b.msgs[0].content), max);
	assert_int_equal(a.partial.len, 0);

	/* one write with no '\n' at all */
	assert_int_equal(line_asm_write(&a, buf, max + 1, &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 1: longer than 65536 bytes");
	assert_int_equal(a.partial.len, 0);
	assert_int_equal(b.n, 1);

	free(buf);
	line_asm_release(&a);
	line_batch_release(&b);
	sbuf_release(&err);
}

static void test_lines__tail_past_limit(void **state)
{
	const size_t max = LINE_MAX_BYTES;
	char *buf = malloc(max + 3);
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;
	struct snap s;

	assert_non_null(buf);
	memset(buf, 't', max + 3);
	buf[0] = 'a';
	buf[1] = '\n';
	/* "a\n" then 65537 bytes: the rest is line 2 and too long */
	assert_int_equal(line_asm_write(&a, buf, max + 3, &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 2: longer than 65536 bytes");
	assert_int_equal(b.n, 0);
	assert_int_equal(a.partial.len, 0);
	sbuf_reset(&err);

	/* same after a partial: "xa\n" completes line 1 */
	assert_int_equal(feed(&a, "x", &b, &err), 0);
	s = snap_take(&a.partial);
	assert_int_equal(line_asm_write(&a, buf, max + 3, &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "line 2: longer than 65536 bytes");
	snap_check(&s, &a.partial);
	assert_int_equal(b.n, 0);

	/* 65536 bytes of rest are kept */
	assert_int_equal(line_asm_write(&a, buf, max + 2, &b, &err), 0);
	assert_int_equal(b.n, 1);
	assert_string_equal(b.msgs[0].content, "xa");
	assert_int_equal(a.partial.len, max);
	assert_int_equal(line_asm_close(&a, &b, &err), 0);
	assert_int_equal(b.n, 2);
	assert_int_equal(strlen(b.msgs[1].content), max);

	free(buf);
	line_asm_release(&a);
	line_batch_release(&b);
	sbuf_release(&err);
}

static void test_lines__err_appended(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;
	struct msg_line m;

	sbuf_adds(&err, "before; ");
	assert_int_equal(feed(&a, "{\"content\":2}\n{\"x\":1}\n", &b, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err), "before; line 1: \"content\" must be a string");
	assert_int_equal(msg_line_parse("{}", 2, &m, &err), -EINVAL);
	assert_string_equal(sbuf_str(&err),
			    "before; line 1: \"content\" must be a string\"content\" is required");
	/* ERR may be NULL */
	assert_int_equal(feed(&a, "{}\n", &b, NULL), -EINVAL);
	assert_int_equal(msg_line_parse("{}", 2, &m, NULL), -EINVAL);

	line_asm_release(&a);
	line_batch_release(&b);
	sbuf_release(&err);
}

/* batches */

static void test_lines__batch_appends(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;
	char line[32];

	/* writes add after what the batch holds, across its growth steps */
	for (int i = 0; i < 40; i++) {
		snprintf(line, sizeof(line), "m%d\n\nm%d.b\n", i, i);
		assert_int_equal(feed(&a, line, &b, &err), 0);
		assert_int_equal(b.n, (size_t)(i + 1) * 2);
		/* a refused write at every size leaves the items alone */
		assert_int_equal(feed(&a, "fine\n{\n", &b, &err), -EINVAL);
		assert_int_equal(b.n, (size_t)(i + 1) * 2);
	}
	for (int i = 0; i < 40; i++) {
		snprintf(line, sizeof(line), "m%d", i);
		assert_string_equal(b.msgs[2 * i].content, line);
		snprintf(line, sizeof(line), "m%d.b", i);
		assert_string_equal(b.msgs[2 * i + 1].content, line);
	}
	line_batch_release(&b);
	assert_int_equal(b.n, 0);
	assert_null(b.msgs);
	line_batch_release(&b);	/* twice is harmless */

	line_asm_release(&a);
	sbuf_release(&err);
}

/* At most MAX lines per write: the rest is left to the writer (a short
 * write), nothing of it kept; lines split across writes still join. */
static void test_lines__write_some(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_batch b = LINE_BATCH_INIT;
	struct sbuf err = SBUF_INIT;
	size_t used;
	const char *w = "l1\n\nl2\nl3\nl4\nta";

	/* 2 lines: stops after l2 (the empty line is free) */
	assert_int_equal(line_asm_write_some(&a, w, strlen(w), 2, &b, &err, &used), 0);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.msgs[1].content, "l2");
	assert_int_equal(used, strlen("l1\n\nl2\n"));
	assert_int_equal(a.partial.len, 0);
	/* the writer sends the rest: 2 more, and no complete line after them,
	 * so the unterminated tail is taken (kept) too */
	w += used;
	assert_int_equal(line_asm_write_some(&a, w, strlen(w), 2, &b, &err, &used), 0);
	assert_int_equal(b.n, 4);
	assert_int_equal(used, strlen(w));
	assert_string_equal(a.partial.buf, "ta");
	/* a line completing the kept rest counts as one; no complete line
	 * after the limit: everything is taken */
	w = "il\nx\ny";
	assert_int_equal(line_asm_write_some(&a, w, strlen(w), 1, &b, &err, &used), 0);
	assert_int_equal(used, strlen("il\n"));
	assert_string_equal(b.msgs[4].content, "tail");
	assert_int_equal(a.partial.len, 0);
	w = "x\ny";
	assert_int_equal(line_asm_write_some(&a, w, strlen(w), 1, &b, &err, &used), 0);
	assert_int_equal(used, strlen(w));
	assert_string_equal(a.partial.buf, "y");
	/* an invalid line before the stop refuses the whole write */
	w = "\n{bad\nz\nz\n";
	assert_int_equal(line_asm_write_some(&a, w, strlen(w), 2, &b, &err, &used), -EINVAL);
	assert_int_equal(b.n, 6);
	assert_string_equal(a.partial.buf, "y");
	line_batch_release(&b);
	line_asm_release(&a);
	sbuf_release(&err);
}

static void test_lines__batch_1000(void **state)
{
	struct line_asm a = LINE_ASM_INIT(LINES_MESSAGES);
	struct line_asm e = LINE_ASM_INIT(LINES_EVENTS);
	struct line_batch b = LINE_BATCH_INIT, eb = LINE_BATCH_INIT;
	struct sbuf data = SBUF_INIT, evs = SBUF_INIT, err = SBUF_INIT;
	char want[64];

	for (int i = 0; i < 1000; i++) {
		sbuf_addf(&data, "line %d\n", i);
		sbuf_addf(&evs, "{\"event_type\":\"e%d\",\"event_data\":{\"i\":%d}}\n", i, i);
	}
	assert_false(sbuf_failed(&data));
	assert_false(sbuf_failed(&evs));
	assert_int_equal(line_asm_write(&a, data.buf, data.len, &b, &err), 0);
	assert_int_equal(line_asm_write(&e, evs.buf, evs.len, &eb, &err), 0);
	assert_int_equal(b.n, 1000);
	assert_int_equal(eb.n, 1000);
	for (int i = 0; i < 1000; i++) {
		snprintf(want, sizeof(want), "line %d", i);
		assert_string_equal(b.msgs[i].content, want);
		snprintf(want, sizeof(want), "{\"event_type\":\"e%d\",\"event_data\":{\"i\":%d}}", i, i);
		expect_batch_ev(&eb, (size_t)i, want);
	}
	assert_string_equal(sbuf_str(&err), "");

	line_asm_release(&a);
	line_asm_release(&e);
	line_batch_release(&b);
	line_batch_release(&eb);
	sbuf_release(&data);
	sbuf_release(&evs);
	sbuf_release(&err);
}

/* allocation failures */

/* After orch_alloc_fail_after(I) and a call: did the injected failure fire
 * during the call? If not, one of the next I allocations fails. Turns the
 * injection off either way. */
static bool injection_fired(long i)
{
	bool fired = true;

	for (long j = 0; j < i; j++) {
		void *p = orch_malloc(1);
		if (!p) {
			fired = false;
			break;
		}
		orch_free(p);
	}
	orch_alloc_fail_after(0);
	return fired;
}

/* One sweep: with the assembly primed by PRE (lines and an unterminated
 * rest, so the batch holds some items), make each allocation of the write of
 * DATA fail in turn. -ENOMEM must leave assembly, batch and ERR as they were;
 * success must give exactly WANT (message contents, or compact event dumps)
 * and the rest REST; -EINVAL (only when WHY is set) must say exactly WHY,
 * unless appending to ERR is the allocation that failed. */
struct sweep {
	enum line_kind kind;
	const char *pre;
	const char *data;
	const char *const *want;
	size_t nwant;
	const char *rest;
	const char *why;
	bool at_close;		/* sweep line_asm_close() after DATA instead */
};

static void check_item(const struct line_batch *b, enum line_kind kind, size_t i,
		       const char *want)
{
	if (kind == LINES_MESSAGES)
		assert_string_equal(b->msgs[i].content, want);
	else
		expect_batch_ev(b, i, want);
}

static void run_sweep(const struct sweep *sw)
{
	unsigned nomem = 0;
	long i;

	for (i = 1; i < 100000; i++) {
		struct line_asm a = LINE_ASM_INIT(sw->kind);
		struct line_batch b = LINE_BATCH_INIT;
		struct sbuf err = SBUF_INIT;
		struct snap s;
		size_t n0;
		bool fired;
		int r;

		assert_int_equal(feed(&a, sw->pre, &b, &err), 0);
		if (sw->at_close)
			assert_int_equal(feed(&a, sw->data, &b, &err), 0);
		n0 = b.n;
		s = snap_take(&a.partial);
		orch_alloc_fail_after(i);
		if (sw->at_close)
			r = line_asm_close(&a, &b, &err);
		else
			r = feed(&a, sw->data, &b, &err);
		fired = injection_fired(i);

		if (r == -ENOMEM) {
			assert_true(fired);
			nomem++;
			snap_check(&s, &a.partial);
			assert_int_equal(b.n, n0);
			assert_int_equal(err.len, 0);
		} else if (r == -EINVAL) {
			assert_non_null(sw->why);
			/* the reason itself may be what ran out of memory */
			if (sbuf_failed(&err))
				assert_true(fired);
			else
				assert_string_equal(sbuf_str(&err), sw->why);
			snap_check(&s, &a.partial);
			assert_int_equal(b.n, n0);
		} else {
			assert_int_equal(r, 0);
			assert_null(sw->why);
			free(s.bytes);
			assert_int_equal(b.n, n0 + sw->nwant);
			for (size_t k = 0; k < sw->nwant; k++)
				check_item(&b, sw->kind, n0 + k, sw->want[k]);
			assert_string_equal(sbuf_str(&a.partial), sw->rest);
			assert_int_equal(err.len, 0);
		}
		/* the earlier items are untouched whatever happened */
		for (size_t k = 0; k < n0; k++)
			check_item(&b, sw->kind, k, sw->kind == LINES_MESSAGES ? "p" : "{\"event_type\":\"p\"}");

		line_asm_release(&a);
		line_batch_release(&b);
		sbuf_release(&err);
		if (!fired)
			break;
	}
	assert_true(i < 100000);
	assert_true(nomem > 0);
}

/* Test strings for the sweeps keep every JSON token under 16 bytes: jansson
 * 2.14's lexer drops a byte when growing its token buffer fails (lex_save()
 * ignores the error), so a longer token can come out damaged, or a lost
 * closing quote can make it read past its buffer. That is jansson's, and
 * only an injected failure of a tiny allocation reaches it. */

static void test_lines__alloc_sweep_messages(void **state)
{
	static const char *const want[] = {
		"abcd",
		"a plain line long enough to need more than the sixty-four bytes of a small buffer",
		"c",
		"",
	};
	const struct sweep sw = {
		.kind = LINES_MESSAGES,
		.pre = "p\np\np\np\np\np\np\np\n{\"content\":\"ab",
		.data = "cd\"}\n"
			"a plain line long enough to need more than the sixty-four bytes of a small buffer\n"
			"{\"content\":\"c\",\"message_type\":\"interrupt\"}\n\r\n"
			"{\"message_type\":\"user_message\",\"content\":\"\"}\r\n"
			"an unterminated rest that is longer than sixty-four bytes, so it moves",
		.want = want,
		.nwant = ARRAY_SIZE(want),
		.rest = "an unterminated rest that is longer than sixty-four bytes, so it moves",
	};

	run_sweep(&sw);
}

static void test_lines__alloc_sweep_events(void **state)
{
	static const char *const want[] = {
		"{\"event_type\":\"ab\",\"source\":\"w\"}",
		"{\"event_type\":\"t\",\"event_data\":{\"k\":[1,2,{\"z\":null}]}}",
		"{\"event_type\":\"u\",\"event_data\":{},\"source\":\"s\"}",
	};
	const struct sweep sw = {
		.kind = LINES_EVENTS,
		.pre = "{\"event_type\":\"p\"}\n{\"event_type\":\"p\"}\n{\"event_type\":\"p\"}\n"
		       "{\"event_type\":\"p\"}\n{\"event_type\":\"p\"}\n{\"event_type\":\"p\"}\n"
		       "{\"event_type\":\"p\"}\n{\"event_type\":\"p\"}\n{\"event_type\":\"a",
		.data = "b\",\"source\":\"w\"}\n"
			"{\"event_data\":{\"k\":[1,2,{\"z\":null}]},\"event_type\":\"t\"}\n\n"
			"{\"event_type\":\"u\",\"source\":\"s\",\"event_data\":{}}\n"
			"{\"event_type\":\"v\"",
		.want = want,
		.nwant = ARRAY_SIZE(want),
		.rest = "{\"event_type\":\"v\"",
	};

	run_sweep(&sw);
}

static void test_lines__alloc_sweep_invalid(void **state)
{
	static const struct sweep sws[] = {
		{
			.kind = LINES_MESSAGES,
			.pre = "p\n{\"content\":",
			.data = "\"x\"}\nok\n{\"content\":\"y\",oops}\nrest",
			.why = "line 3: not a JSON object: string or '}' expected near 'oops' (column 19)",
		},
		{
			.kind = LINES_EVENTS,
			.pre = "{\"event_type\":\"p\"}\n{",
			.data = "\"event_type\":\"x\"}\n{\"event_type\":\"y\",\"source\":[]}\n",
			.why = "line 2: \"source\" must be a string",
		},
	};

	for (size_t i = 0; i < ARRAY_SIZE(sws); i++)
		run_sweep(&sws[i]);
}

static void test_lines__alloc_sweep_close(void **state)
{
	static const char *const want[] = { "{\"event_type\":\"end\",\"source\":\"w\"}" };
	static const char *const mwant[] = { "last" };
	const struct sweep sws[] = {
		{
			.kind = LINES_EVENTS,
			.pre = "{\"event_type\":\"p\"}\n",
			.data = "{\"source\":\"w\",\"event_type\":\"end\"}",
			.want = want,
			.nwant = 1,
			.rest = "",
			.at_close = true,
		},
		{
			.kind = LINES_MESSAGES,
			.pre = "p\n",
			.data = "{\"content\":\"last\"}\r",
			.want = mwant,
			.nwant = 1,
			.rest = "",
			.at_close = true,
		},
	};

	for (size_t i = 0; i < ARRAY_SIZE(sws); i++)
		run_sweep(&sws[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines__plain_lines),
		cmocka_unit_test(test_lines__typed_object),
		cmocka_unit_test(test_lines__each_message_type),
		cmocka_unit_test(test_lines__empty_lines_ignored),
		cmocka_unit_test(test_lines__crlf_content_kept),
		cmocka_unit_test(test_lines__json_content_empty),
		cmocka_unit_test(test_lines__unknown_type),
		cmocka_unit_test(test_lines__quoted_text_cut),
		cmocka_unit_test(test_lines__extra_key),
		cmocka_unit_test(test_lines__content_missing),
		cmocka_unit_test(test_lines__content_not_string),
		cmocka_unit_test(test_lines__message_type_not_string),
		cmocka_unit_test(test_lines__duplicate_keys),
		cmocka_unit_test(test_lines__message_bad_json),
		cmocka_unit_test(test_lines__escaped_nul),
		cmocka_unit_test(test_lines__event_valid),
		cmocka_unit_test(test_lines__event_field_order),
		cmocka_unit_test(test_lines__event_type_missing),
		cmocka_unit_test(test_lines__event_type_bad),
		cmocka_unit_test(test_lines__event_data_not_object),
		cmocka_unit_test(test_lines__source_not_string),
		cmocka_unit_test(test_lines__unknown_event_field),
		cmocka_unit_test(test_lines__non_object_json),
		cmocka_unit_test(test_lines__bad_json_column),
		cmocka_unit_test(test_lines__utf8_valid),
		cmocka_unit_test(test_lines__invalid_utf8),
		cmocka_unit_test(test_lines__nul_byte),
		cmocka_unit_test(test_lines__max_length),
		cmocka_unit_test(test_lines__one_byte_writes),
		cmocka_unit_test(test_lines__utf8_split_across_writes),
		cmocka_unit_test(test_lines__valid_then_invalid),
		cmocka_unit_test(test_lines__line_numbers),
		cmocka_unit_test(test_lines__close_valid),
		cmocka_unit_test(test_lines__close_invalid),
		cmocka_unit_test(test_lines__partial_past_limit),
		cmocka_unit_test(test_lines__tail_past_limit),
		cmocka_unit_test(test_lines__err_appended),
		cmocka_unit_test(test_lines__batch_appends),
		cmocka_unit_test(test_lines__write_some),
		cmocka_unit_test(test_lines__batch_1000),
		cmocka_unit_test(test_lines__alloc_sweep_messages),
		cmocka_unit_test(test_lines__alloc_sweep_events),
		cmocka_unit_test(test_lines__alloc_sweep_invalid),
		cmocka_unit_test(test_lines__alloc_sweep_close),
	};

	orch_alloc_setup_jansson();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
