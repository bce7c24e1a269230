/* tests/fuzz/fuzz_lines.h — the body of fuzz_msgline.c and fuzz_eventline.c:
 * one file, two harnesses, LINE_KIND telling which (LINES_MESSAGES or
 * LINES_EVENTS must be #defined before including this).
 *
 * An input is one line for msg_line_parse()/event_line_parse() as a whole,
 * and then a sequence of write()s: its first byte is a separator, and the
 * rest, cut at each separator, gives the bytes of each write, fed to one
 * struct line_asm, then line_asm_close(). So the fuzzer picks the cuts as
 * freely as the bytes.
 *
 * Beside each call runs a model: the unterminated rest kept here on its own,
 * and every completed line parsed alone with the single-line parser. Each
 * write must then do what the model says: all its lines in the batch, in
 * order and equal, the new rest kept; or -EINVAL naming the first bad line
 * ("line K: why", WHY being what the single-line parser said), the batch and
 * a->partial byte for byte as before. Every item parsed is checked for the
 * shape the header promises, and printed and parsed again. */
#include <errno.h>
#include <jansson.h>

#include "core/lines.h"
#include "tests/fuzz/fuzz.h"

#ifndef LINE_KIND
#error "define LINE_KIND before including fuzz_lines.h"
#endif

/* More writes than that adds nothing the first ones did not try, and each
 * write compares the whole rest: the last write takes all that is left. */
#define MAX_WRITES 1024

/* A byte buffer of the model, apart from core's sbuf. */
struct buf {
	char *p;
	size_t len, cap;
};

static void buf_set(struct buf *b, const char *s, size_t n, bool append)
{
	size_t need = (append ? b->len : 0) + n;

	if (need + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < need + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (!b->p)
			abort();
		b->cap = cap;
	}
	if (!append)
		b->len = 0;
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len = need;
	b->p[need] = '\0';
}

/* One parsed line: a message or an event. */
struct item {
	enum msg_type type;
	char *content;
	json_t *ev;
};

static void item_release(struct item *it)
{
	free(it->content);
	json_decref(it->ev);
	*it = (struct item){ 0 };
}

static bool line_empty(const char *line, size_t len)
{
	return len == 0 || (len == 1 && line[0] == '\r');
}

static int parse_line(const char *line, size_t len, struct item *it, struct sbuf *why,
		      bool again);

/* The shape lines.h promises for a message. */
static void check_msg(const struct msg_line *m)
{
	CHECK("msg-type", (unsigned)m->type <= MSG_GUARDIAN_INTERVENTION);
	CHECK("msg-type", msg_type_parse(msg_type_name(m->type)) == (int)m->type);
	if (!CHECK("msg-content", m->content != NULL))
		return;
	CHECK("msg-content", utf8_valid(m->content, strlen(m->content)));
}

/* The shape lines.h promises for an event: event_type (a non-empty string),
 * then event_data (an object) and source (a string) when present, in that
 * order and nothing else. */
static void check_event(json_t *ev)
{
	static const char *const order[] = { "event_type", "event_data", "source" };
	const char *key;
	json_t *val;
	size_t at = 0;

	if (!CHECK("event-shape", json_is_object(ev)))
		return;
	CHECK("event-shape", json_is_string(json_object_get(ev, "event_type")));
	CHECK("event-shape", json_string_length(json_object_get(ev, "event_type")) > 0);
	json_object_foreach(ev, key, val) {
		while (at < ARRAY_SIZE(order) && strcmp(key, order[at]))
			at++;
		if (!CHECK("event-shape", at < ARRAY_SIZE(order)))
			return;
		if (at == 1)
			CHECK("event-shape", json_is_object(val));
		else
			CHECK("event-shape", json_is_string(val));
		at++;
	}
	/* no NUL may get in (jansson refuses \u0000 without JSON_ALLOW_NUL) */
	val = json_object_get(ev, "event_type");
	CHECK("event-shape", strlen(json_string_value(val)) == json_string_length(val));
}

static bool item_equal(const struct item *a, const struct item *b)
{
	if (LINE_KIND == LINES_MESSAGES)
		return a->type == b->type && !strcmp(a->content, b->content);
	return json_equal(a->ev, b->ev);
}

/* An item printed as a line and parsed again gives the same item. */
static void check_roundtrip(const struct item *it)
{
	json_t *o = it->ev;
	struct item again = { 0 };
	struct sbuf why = SBUF_INIT;
	char *line;

	if (LINE_KIND == LINES_MESSAGES)
		o = json_pack("{s:s,s:s}", "content", it->content, "message_type",
			      msg_type_name(it->type));
	line = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (LINE_KIND == LINES_MESSAGES)
		json_decref(o);
	if (!CHECK("roundtrip-dump", line != NULL))
		return;
	/* printing may lengthen a line (1e5 is 100000.0): only what fits */
	if (strlen(line) <= LINE_MAX_BYTES) {
		int r = parse_line(line, strlen(line), &again, &why, true);
		if (r != 1)
			NOTE("%s does not parse again: %s\n", line, sbuf_str(&why));
		if (CHECK("roundtrip", r == 1))
			CHECK("roundtrip", item_equal(it, &again));
	}
	item_release(&again);
	sbuf_release(&why);
	free(line);
}

/* The single-line parser of LINE_KIND, with the checks any line gets: the
 * result is one of 1, 0, -EINVAL; 0 exactly for an empty line; bytes that
 * are not UTF-8 (or hold a NUL) and lines over LINE_MAX_BYTES are refused; a
 * message not starting with '{' is its content unchanged; a reason is one
 * clean line. AGAIN: LINE is an item printed, do not print it once more. */
static int parse_line(const char *line, size_t len, struct item *it, struct sbuf *why,
		      bool again)
{
	bool utf8 = fuzz_utf8(line, len);
	int r;

	*it = (struct item){ 0 };
	sbuf_reset(why);
	CHECK("utf8-valid", utf8_valid(line, len) == utf8);
	if (LINE_KIND == LINES_MESSAGES) {
		struct msg_line m = { 0 };
		r = msg_line_parse(line, len, &m, why);
		if (r == 1) {
			check_msg(&m);
			it->type = m.type;
			it->content = m.content;
		}
	} else {
		r = event_line_parse(line, len, &it->ev, why);
		if (r == 1)
			check_event(it->ev);
		else
			it->ev = NULL;
	}
	CHECK("line-result", r == 1 || r == 0 || r == -EINVAL);
	CHECK("line-empty", (r == 0) == line_empty(line, len));
	if (!line_empty(line, len) && (!utf8 || len > LINE_MAX_BYTES))
		CHECK("line-bytes", r == -EINVAL);
	if (LINE_KIND == LINES_MESSAGES && r >= 0 && !line_empty(line, len) && line[0] != '{') {
		CHECK("msg-plain", r == 1);
		if (r == 1)
			CHECK("msg-plain", strlen(it->content) == len &&
						   !memcmp(it->content, line, len));
	}
	if (r == -EINVAL) {
		CHECK("reason", why->len > 0);
		CHECK("reason-text", text_clean(why->buf, why->len, false));
		CHECK("reason-utf8", fuzz_utf8(why->buf, why->len));
	} else {
		CHECK("reason", why->len == 0);
	}
	if (r == 1 && !again && (LINE_KIND == LINES_EVENTS || line[0] == '{'))
		check_roundtrip(it);
	return r;
}

/* What the model expects of one write. */
struct expect {
	struct item *items;	/* the lines it completes, parsed */
	size_t n, cap;
	unsigned bad;		/* 0, or the 1-based line of the write that is refused */
	struct sbuf why;	/* ... and why */
};

static void expect_clear(struct expect *x)
{
	for (size_t i = 0; i < x->n; i++)
		item_release(&x->items[i]);
	x->n = 0;
	x->bad = 0;
	sbuf_reset(&x->why);
}

/* Line K (LEN bytes at LINE) of a write, as the model sees it: false once a
 * line is refused. */
static bool expect_line(struct expect *x, unsigned k, const char *line, size_t len)
{
	struct item it;
	int r = parse_line(line, len, &it, &x->why, false);

	if (r < 0) {
		x->bad = k;
		return false;
	}
	if (r == 1) {
		if (x->n == x->cap) {
			x->cap = x->cap ? 2 * x->cap : 16;
			x->items = realloc(x->items, x->cap * sizeof(*x->items));
			if (!x->items)
				abort();
		}
		x->items[x->n++] = it;
	}
	return true;
}

struct state {
	struct line_asm a;
	struct line_batch batch;
	struct buf rest;	/* the model's unterminated rest */
	struct buf first;	/* scratch: the rest and the first line of a write */
	struct expect x;
	struct sbuf err;
};

/* The batch from N0 on against the model's items. */
static void check_batch(struct state *s, size_t n0)
{
	if (!CHECK("asm-batch", s->batch.n == n0 + s->x.n))
		return;
	for (size_t i = 0; i < s->x.n; i++) {
		struct item got = { 0 };
		if (LINE_KIND == LINES_MESSAGES) {
			check_msg(&s->batch.msgs[n0 + i]);
			got.type = s->batch.msgs[n0 + i].type;
			got.content = s->batch.msgs[n0 + i].content;
		} else {
			check_event(s->batch.events[n0 + i]);
			got.ev = s->batch.events[n0 + i];
		}
		CHECK("asm-batch", item_equal(&got, &s->x.items[i]));
	}
}

/* a->partial holds exactly the model's rest. */
static void check_partial(struct state *s, const char *tag)
{
	const struct sbuf *pt = &s->a.partial;

	if (!CHECK(tag, pt->len == s->rest.len))
		return;
	if (pt->len) {
		CHECK(tag, pt->buf && !memcmp(pt->buf, s->rest.p, pt->len));
		CHECK(tag, pt->buf[pt->len] == '\0');
	}
}

static void do_write(struct state *s, const char *data, size_t len)
{
	const size_t n0 = s->batch.n;
	const char *p = data, *end = data + len, *nl;
	unsigned k = 0;
	size_t restlen;
	int r;

	expect_clear(&s->x);
	sbuf_reset(&s->err);
	/* the model: the lines this write completes, then its new rest */
	nl = memchr(p, '\n', len);
	if (nl) {
		buf_set(&s->first, s->rest.p, s->rest.len, false);
		buf_set(&s->first, p, (size_t)(nl - p), true);
		if (expect_line(&s->x, ++k, s->first.p, s->first.len)) {
			for (p = nl + 1; (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1)
				if (!expect_line(&s->x, ++k, p, (size_t)(nl - p)))
					break;
		}
		restlen = (size_t)(end - p);
	} else {
		restlen = s->rest.len + len;
	}
	if (!s->x.bad && restlen > LINE_MAX_BYTES) {
		s->x.bad = k + 1;
		sbuf_reset(&s->x.why);
		sbuf_addf(&s->x.why, "longer than %d bytes", LINE_MAX_BYTES);
	}

	r = line_asm_write(&s->a, data, len, &s->batch, &s->err);

	if (s->x.bad) {
		struct sbuf want = SBUF_INIT;

		sbuf_addf(&want, "line %u: %s", s->x.bad, sbuf_str(&s->x.why));
		CHECK("asm-refused", r == -EINVAL);
		CHECK("asm-batch-kept", s->batch.n == n0);
		check_partial(s, "asm-partial-kept");
		if (strcmp(sbuf_str(&s->err), sbuf_str(&want)))
			NOTE("reason \"%s\", the model says \"%s\"\n", sbuf_str(&s->err),
			     sbuf_str(&want));
		CHECK("asm-reason", !strcmp(sbuf_str(&s->err), sbuf_str(&want)));
		sbuf_release(&want);
		return;
	}
	CHECK("asm-accepted", r == 0);
	CHECK("asm-reason", s->err.len == 0);
	if (r)
		return;
	check_batch(s, n0);
	if (memchr(data, '\n', len))
		buf_set(&s->rest, p, restlen, false);
	else
		buf_set(&s->rest, data, len, true);
	check_partial(s, "asm-rest");
	/* "idle handles hold none" */
	if (len && !s->rest.len)
		CHECK("asm-idle-free", s->a.partial.buf == NULL);
}

static void do_close(struct state *s)
{
	const size_t n0 = s->batch.n;
	int r, want = 0;

	expect_clear(&s->x);
	sbuf_reset(&s->err);
	if (s->rest.len && !expect_line(&s->x, 1, s->rest.p, s->rest.len))
		want = -EINVAL;
	r = line_asm_close(&s->a, &s->batch, &s->err);
	CHECK("close-result", r == want);
	if (want) {
		struct sbuf w = SBUF_INIT;
		sbuf_addf(&w, "last line: %s", sbuf_str(&s->x.why));
		CHECK("close-reason", !strcmp(sbuf_str(&s->err), sbuf_str(&w)));
		sbuf_release(&w);
		CHECK("close-batch", s->batch.n == n0);
	} else {
		CHECK("close-reason", s->err.len == 0);
		check_batch(s, n0);
	}
	CHECK("close-released", s->a.partial.len == 0 && s->a.partial.buf == NULL);
	/* a second close has nothing left to give */
	expect_clear(&s->x);
	sbuf_reset(&s->err);
	CHECK("close-again", line_asm_close(&s->a, &s->batch, &s->err) == 0);
	check_batch(s, s->batch.n);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_setup();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *p, *end = in + size;
	struct state s = { .a = LINE_ASM_INIT(LINE_KIND), .batch = LINE_BATCH_INIT,
			   .x = { .why = SBUF_INIT }, .err = SBUF_INIT };
	struct item it;
	unsigned writes = 0;

	/* the whole input as one line */
	parse_line(in, size, &it, &s.err, false);
	item_release(&it);
	if (!size)
		goto out;

	buf_set(&s.rest, "", 0, false);
	for (p = in + 1;;) {
		const char *cut = ++writes < MAX_WRITES ? memchr(p, in[0], (size_t)(end - p)) : NULL;
		size_t n = cut ? (size_t)(cut - p) : (size_t)(end - p);

		do_write(&s, p, n);
		if (!cut)
			break;
		p = cut + 1;
	}
	do_close(&s);
out:
	expect_clear(&s.x);
	free(s.x.items);
	sbuf_release(&s.x.why);
	sbuf_release(&s.err);
	line_batch_release(&s.batch);
	line_asm_release(&s.a);
	free(s.rest.p);
	free(s.first.p);
	return 0;
}
