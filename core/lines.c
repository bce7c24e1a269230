/* core/lines.c — check and parse the JSON lines appended to a sandbox's
 * messages and events files (SPEC §5), and assemble lines across write()s.
 *
 * Every append runs this on the engine thread, so the common case is one pass:
 * line_asm_write() walks the data once, finding each '\n' while it checks the
 * bytes for UTF-8 and NUL, and hands each complete line to its parser. Only a
 * line completed from an earlier write's unterminated rest is checked as a
 * whole, because a UTF-8 sequence may be split between the two writes; that
 * line is assembled in place at the end of a->partial and cut back if anything
 * fails, so a refused write leaves the assembly byte for byte as it was.
 * Nothing is committed (batch items kept, new rest stored) until every line
 * of the write is valid: the only step that can fail after the parsing is
 * storing the new rest, and it undoes the batch when it does.
 *
 * Reasons are built in a fixed buffer and written to ERR once, with the line
 * number, so only the first problem is reported and an out-of-memory failure
 * leaves ERR untouched. Text from the user is cut to SHOW_MAX bytes at a
 * character boundary with control characters shown as '?', so a reason stays
 * one readable line.
 *
 * jansson caveat (2.14): its lexer ignores a failure to grow its token
 * buffer and usually reports the damage as a syntax error; load_object()
 * parses again before believing a syntax error, which tells a passing
 * shortage from a mistake. A token of 16 bytes or more can also come out one
 * byte short with no error at all; nothing outside jansson can see that. */
#include "core/lines.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SHOW_MAX 64		/* bytes of user text quoted in a reason */
#define WHY_MAX 256		/* a reason: the longest is ~200 bytes */
#define BATCH_MIN 8		/* first capacity of a batch's array */

static const char *const msg_type_names[] = {
	[MSG_USER_MESSAGE] = "user_message",
	[MSG_INTERRUPT] = "interrupt",
	[MSG_GUARDIAN_INTERVENTION] = "guardian_intervention",
	[MSG_HUMAN_ANSWER] = "human_answer",
};

/* What a byte check found: the first problem of the line, if any. */
enum bytes_verdict { BYTES_UNCHECKED, BYTES_OK, BYTES_BAD_UTF8, BYTES_NUL };

const char *msg_type_name(enum msg_type t)
{
	if ((unsigned)t >= ARRAY_SIZE(msg_type_names))
		return "user_message";
	return msg_type_names[t];
}

int msg_type_parse(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(msg_type_names); i++)
		if (!strcmp(name, msg_type_names[i]))
			return (int)i;
	return -1;
}

/* Check bytes from P (N of them) for strict UTF-8 and NUL, stopping early at
 * a '\n' when STOP_NL. Returns the offset where it stopped (the '\n', N, or
 * the start of the first bad sequence) with the verdict in *V. */
static size_t check_bytes(const char *p, size_t n, bool stop_nl, enum bytes_verdict *v)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i];
		unsigned lo = 0x80, hi = 0xBF;	/* the range of the second byte */
		size_t more;

		if (c < 0x80) {
			if (c == '\n' && stop_nl)
				break;
			if (c == 0) {
				*v = BYTES_NUL;
				return i;
			}
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF) {
			more = 1;
		} else if (c >= 0xE0 && c <= 0xEF) {
			more = 2;
			if (c == 0xE0)
				lo = 0xA0;	/* overlong below U+0800 */
			else if (c == 0xED)
				hi = 0x9F;	/* U+D800..DFFF are surrogates */
		} else if (c >= 0xF0 && c <= 0xF4) {
			more = 3;
			if (c == 0xF0)
				lo = 0x90;	/* overlong below U+10000 */
			else if (c == 0xF4)
				hi = 0x8F;	/* above U+10FFFF */
		} else {
			*v = BYTES_BAD_UTF8;	/* continuation byte, C0/C1 overlong, F5..FF */
			return i;
		}
		if (n - i <= more || s[i + 1] < lo || s[i + 1] > hi) {
			*v = BYTES_BAD_UTF8;
			return i;
		}
		for (size_t k = 2; k <= more; k++) {
			if ((s[i + k] & 0xC0) != 0x80) {
				*v = BYTES_BAD_UTF8;
				return i;
			}
		}
		i += more + 1;
	}
	*v = BYTES_OK;
	return i;
}

bool utf8_valid(const char *buf, size_t len)
{
	enum bytes_verdict v;

	check_bytes(buf, len, false, &v);
	return v == BYTES_OK;
}

/* The length of the line at P (N bytes available) up to its '\n', or N when
 * there is none, with the verdict on its bytes in *V: one pass in the common
 * case; after a problem only the '\n' is looked for. */
static size_t scan_line(const char *p, size_t n, enum bytes_verdict *v)
{
	size_t i = check_bytes(p, n, true, v);
	const char *nl;

	if (*v == BYTES_OK)
		return i;
	nl = memchr(p + i, '\n', n - i);
	return nl ? (size_t)(nl - p) : n;
}

/* Empty lines ("" and "\r") are ignored in both files. */
static bool line_empty(const char *line, size_t len)
{
	return len == 0 || (len == 1 && line[0] == '\r');
}

/* The reason for a line over LINE_MAX_BYTES: -EINVAL. */
static int too_long(char *why)
{
	snprintf(why, WHY_MAX, "longer than %d bytes", LINE_MAX_BYTES);
	return -EINVAL;
}

/* The checks every line gets before any parsing: length, then bytes (V, or
 * checked here when BYTES_UNCHECKED). 0 or -EINVAL with WHY filled. */
static int check_raw(const char *line, size_t len, enum bytes_verdict v, char *why)
{
	if (len > LINE_MAX_BYTES)
		return too_long(why);
	if (v == BYTES_UNCHECKED)
		check_bytes(line, len, false, &v);
	if (v == BYTES_BAD_UTF8) {
		snprintf(why, WHY_MAX, "not valid UTF-8");
		return -EINVAL;
	}
	if (v == BYTES_NUL) {
		snprintf(why, WHY_MAX, "contains a NUL byte");
		return -EINVAL;
	}
	return 0;
}

/* Parse LINE as a JSON object. Returns it (new), or NULL with *RET -EINVAL
 * (WHY filled) or -ENOMEM. */
static json_t *load_object(const char *line, size_t len, char *why, int *ret)
{
	const size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY;
	char text[JSON_ERROR_TEXT_LENGTH];
	json_error_t jerr;
	json_t *doc;

	doc = json_loadb(line, len, flags, &jerr);
	/* jansson leaves the text empty when an allocation fails outside its
	 * lexer, but inside it a lost byte or token reads as a syntax error.
	 * So a syntax error is believed when a second parse agrees; when the two
	 * disagree one of them was a shortage and a third decides. Only the
	 * error path pays. */
	if (!doc && jerr.text[0]) {
		json_error_t again;

		doc = json_loadb(line, len, flags, &again);
		if (!doc && again.text[0] &&
		    (strcmp(again.text, jerr.text) || again.column != jerr.column))
			doc = json_loadb(line, len, flags, &again);
		jerr = again;
	}
	if (!doc) {
		enum json_error_code code = json_error_code(&jerr);

		if (!jerr.text[0] || code == json_error_out_of_memory) {
			*ret = -ENOMEM;
			return NULL;
		}
		*ret = -EINVAL;
		/* jansson's own wording names a flag; say it in our terms */
		if (code == json_error_null_character || code == json_error_null_byte_in_key)
			snprintf(why, WHY_MAX, "contains a NUL byte (\\u0000)");
		else
			snprintf(why, WHY_MAX, "not a JSON object: %s (column %d)",
				 text_show(text, sizeof(text), jerr.text, strlen(jerr.text)), jerr.column);
		return NULL;
	}
	if (!json_is_object(doc)) {
		snprintf(why, WHY_MAX, "not a JSON object: it is %s", json_kind(doc));
		json_decref(doc);
		*ret = -EINVAL;
		return NULL;
	}
	if (json_deeper_than(doc, JSON_DEPTH_MAX)) {
		/* every reader (jq among them) must be able to read it back */
		snprintf(why, WHY_MAX, "nested deeper than %d levels", JSON_DEPTH_MAX);
		json_decref(doc);
		*ret = -EINVAL;
		return NULL;
	}
	return doc;
}

/* The first key of OBJ not in NAMES (N of them), or NULL. */
static const char *unknown_key(json_t *obj, const char *const *names, size_t n)
{
	const char *key;
	json_t *val;

	json_object_foreach(obj, key, val) {
		size_t i = 0;

		while (i < n && strcmp(key, names[i]))
			i++;
		if (i == n)
			return key;
	}
	return NULL;
}

/* msg_line_parse() with the bytes' verdict V (or BYTES_UNCHECKED); the reason
 * goes to WHY. */
static int msg_parse(const char *line, size_t len, enum bytes_verdict v, struct msg_line *out,
		     char *why)
{
	static const char *const fields[] = { "content", "message_type" };
	char shown[SHOW_MAX + 1];
	json_t *doc, *content, *type;
	const char *key;
	int type_id = MSG_USER_MESSAGE;
	int r;

	if (line_empty(line, len))
		return 0;
	r = check_raw(line, len, v, why);
	if (r)
		return r;
	if (line[0] != '{') {
		out->content = orch_strndup(line, len);
		if (!out->content)
			return -ENOMEM;
		out->type = MSG_USER_MESSAGE;
		return 1;
	}
	doc = load_object(line, len, why, &r);
	if (!doc)
		return r;
	r = -EINVAL;
	key = unknown_key(doc, fields, ARRAY_SIZE(fields));
	if (key) {
		snprintf(why, WHY_MAX, "unknown field \"%s\" (a message has content and message_type)",
			 text_show(shown, sizeof(shown), key, strlen(key)));
		goto out;
	}
	content = json_object_get(doc, "content");
	if (!content) {
		snprintf(why, WHY_MAX, "\"content\" is required");
		goto out;
	}
	if (!json_is_string(content)) {
		snprintf(why, WHY_MAX, "\"content\" must be a string");
		goto out;
	}
	type = json_object_get(doc, "message_type");
	if (type && !json_is_string(type)) {
		snprintf(why, WHY_MAX, "\"message_type\" must be a string");
		goto out;
	}
	if (type) {
		type_id = msg_type_parse(json_string_value(type));
		if (type_id < 0) {
			snprintf(why, WHY_MAX,
				 "\"message_type\" must be one of user_message, interrupt, "
				 "guardian_intervention, human_answer, not \"%s\"",
				 text_show(shown, sizeof(shown), json_string_value(type),
				      json_string_length(type)));
			goto out;
		}
	}
	out->content = orch_strndup(json_string_value(content), json_string_length(content));
	if (!out->content) {
		r = -ENOMEM;
		goto out;
	}
	out->type = (enum msg_type)type_id;
	r = 1;
out:
	json_decref(doc);
	return r;
}

/* event_line_parse() with the bytes' verdict V (or BYTES_UNCHECKED); the
 * reason goes to WHY. */
static int event_parse(const char *line, size_t len, enum bytes_verdict v, json_t **out, char *why)
{
	static const char *const fields[] = { "event_type", "event_data", "source" };
	char shown[SHOW_MAX + 1];
	json_t *doc, *type, *data, *source, *ev = NULL;
	const char *key;
	int r;

	if (line_empty(line, len))
		return 0;
	r = check_raw(line, len, v, why);
	if (r)
		return r;
	doc = load_object(line, len, why, &r);
	if (!doc)
		return r;
	r = -EINVAL;
	key = unknown_key(doc, fields, ARRAY_SIZE(fields));
	if (key) {
		snprintf(why, WHY_MAX,
			 "unknown field \"%s\" (an event has event_type, event_data and source)",
			 text_show(shown, sizeof(shown), key, strlen(key)));
		goto out;
	}
	type = json_object_get(doc, "event_type");
	data = json_object_get(doc, "event_data");
	source = json_object_get(doc, "source");
	if (!type) {
		snprintf(why, WHY_MAX, "\"event_type\" is required");
		goto out;
	}
	if (!json_is_string(type) || json_string_length(type) == 0) {
		snprintf(why, WHY_MAX, "\"event_type\" must be a non-empty string");
		goto out;
	}
	if (data && !json_is_object(data)) {
		snprintf(why, WHY_MAX, "\"event_data\" must be an object");
		goto out;
	}
	if (source && !json_is_string(source)) {
		snprintf(why, WHY_MAX, "\"source\" must be a string");
		goto out;
	}
	/* a new object, so the order is ours whatever the line's was */
	r = -ENOMEM;
	ev = json_object();
	if (!ev || json_object_set(ev, "event_type", type) ||
	    (data && json_object_set(ev, "event_data", data)) ||
	    (source && json_object_set(ev, "source", source))) {
		json_decref(ev);
		goto out;
	}
	*out = ev;
	r = 1;
out:
	json_decref(doc);
	return r;
}

int msg_line_parse(const char *line, size_t len, struct msg_line *out, struct sbuf *err)
{
	char why[WHY_MAX];
	int r = msg_parse(line, len, BYTES_UNCHECKED, out, why);

	if (r == -EINVAL && err)
		sbuf_adds(err, why);
	return r;
}

int event_line_parse(const char *line, size_t len, json_t **out, struct sbuf *err)
{
	char why[WHY_MAX];
	int r = event_parse(line, len, BYTES_UNCHECKED, out, why);

	if (r == -EINVAL && err)
		sbuf_adds(err, why);
	return r;
}

/* Batches. The struct has no capacity field: an array of N items has room
 * for batch_cap(N) (0, then BATCH_MIN, doubling), so it is full exactly when
 * N is 0 or a power of two from BATCH_MIN up. Cutting N back after a failure
 * keeps that true, since the array never shrinks. */
static bool batch_full(size_t n)
{
	return n == 0 || (n >= BATCH_MIN && !(n & (n - 1)));
}

/* ARR (N items of SIZE bytes) with room for one more: ARR itself, a moved
 * copy, or NULL when out of memory (ARR still valid). */
static void *batch_room(void *arr, size_t n, size_t size)
{
	if (!batch_full(n))
		return arr;
	return orch_reallocarray(arr, n ? n * 2 : BATCH_MIN, size);
}

/* Free the items of B from N0 on and cut it back to N0 items. */
static void batch_cut(struct line_batch *b, size_t n0)
{
	for (size_t i = n0; i < b->n; i++) {
		if (b->msgs)
			orch_free(b->msgs[i].content);
		if (b->events)
			json_decref(b->events[i]);
	}
	b->n = n0;
}

void line_batch_release(struct line_batch *b)
{
	batch_cut(b, 0);
	orch_free(b->msgs);
	orch_free(b->events);
	*b = (struct line_batch)LINE_BATCH_INIT;
}

/* Parse one line of KIND and append it to B unless empty: 0, -EINVAL (WHY
 * filled) or -ENOMEM; B gets nothing on failure. */
static int take_line(enum line_kind kind, const char *line, size_t len, enum bytes_verdict v,
		     struct line_batch *b, char *why)
{
	int r;

	if (kind == LINES_MESSAGES) {
		struct msg_line m;
		struct msg_line *arr;

		r = msg_parse(line, len, v, &m, why);
		if (r <= 0)
			return r;
		arr = batch_room(b->msgs, b->n, sizeof(*arr));
		if (!arr) {
			orch_free(m.content);
			return -ENOMEM;
		}
		b->msgs = arr;
		b->msgs[b->n++] = m;
	} else {
		json_t *ev;
		json_t **arr;

		r = event_parse(line, len, v, &ev, why);
		if (r <= 0)
			return r;
		arr = batch_room(b->events, b->n, sizeof(*arr));
		if (!arr) {
			json_decref(ev);
			return -ENOMEM;
		}
		b->events = arr;
		b->events[b->n++] = ev;
	}
	return 0;
}

/* Append N bytes to SB: 0, or -ENOMEM with SB as it was. */
static int partial_add(struct sbuf *sb, const char *s, size_t n)
{
	if (!n)
		return 0;
	sbuf_add(sb, s, n);
	if (sbuf_failed(sb)) {
		sb->oom = false;	/* sbuf_add changed nothing else */
		return -ENOMEM;
	}
	return 0;
}

/* Make SB hold exactly the N bytes at S (not inside SB): 0, or -ENOMEM with
 * SB as it was. Frees SB's memory when N is 0, so idle handles hold none. */
static int partial_set(struct sbuf *sb, const char *s, size_t n)
{
	if (!n) {
		sbuf_release(sb);
		return 0;
	}
	if (n >= sb->cap) {
		size_t cap = 64;
		char *nb;

		while (cap <= n)
			cap *= 2;
		nb = orch_malloc(cap);
		if (!nb)
			return -ENOMEM;
		orch_free(sb->buf);
		sb->buf = nb;
		sb->cap = cap;
	}
	memcpy(sb->buf, s, n);
	sb->buf[n] = '\0';
	sb->len = n;
	return 0;
}

int line_asm_write(struct line_asm *a, const char *data, size_t len, struct line_batch *batch,
		   struct sbuf *err)
{
	return line_asm_write_some(a, data, len, SIZE_MAX, batch, err, NULL);
}

int line_asm_write_some(struct line_asm *a, const char *data, size_t len, size_t max_lines,
			struct line_batch *batch, struct sbuf *err, size_t *used)
{
	struct sbuf *pt = &a->partial;
	const size_t old = pt->len, n0 = batch->n;
	const char *p = data, *end = data + len;
	enum bytes_verdict v;
	char why[WHY_MAX];
	unsigned k = 0;		/* the line of this write being looked at */
	size_t n, cut = len;	/* CUT: the end of the last line taken (max_lines) */
	int r;

	if (used)
		*used = len;
	if (!len)
		return 0;
	if (old) {
		/* the first line ends an earlier one: check it whole, in place */
		const char *nl = memchr(data, '\n', len);

		k = 1;
		n = nl ? (size_t)(nl - data) : len;
		if (n > LINE_MAX_BYTES - old) {
			r = too_long(why);
			goto fail;
		}
		if (partial_add(pt, data, n))
			return -ENOMEM;
		if (!nl)
			return 0;
		r = take_line(a->kind, pt->buf, pt->len, BYTES_UNCHECKED, batch, why);
		if (r)
			goto fail;
		p = nl + 1;
		if (batch->n - n0 == max_lines)
			cut = (size_t)(p - data);
	}
	for (;;) {
		k++;
		n = scan_line(p, (size_t)(end - p), &v);
		if (p + n == end)
			break;
		r = take_line(a->kind, p, n, v, batch, why);
		if (r)
			goto fail;
		p += n + 1;
		if (batch->n - n0 == max_lines && cut == len)
			cut = (size_t)(p - data);
	}
	/* P..END is the new unterminated rest */
	if (n > LINE_MAX_BYTES) {
		r = too_long(why);
		goto fail;
	}
	if (batch->n - n0 > max_lines) {
		/* every line is valid, and more than one write takes: the
		 * first MAX_LINES go, the rest is the caller's to send again
		 * (a short write), nothing of it kept */
		batch_cut(batch, n0 + max_lines);
		sbuf_release(pt);
		if (used)
			*used = cut;
		return 0;
	}
	r = partial_set(pt, p, n);
	if (r)
		goto fail;
	return 0;

fail:
	batch_cut(batch, n0);
	if (pt->len != old) {
		pt->len = old;
		pt->buf[old] = '\0';
	}
	if (r == -EINVAL && err)
		sbuf_addf(err, "line %u: %s", k, why);
	return r;
}

int line_asm_close(struct line_asm *a, struct line_batch *batch, struct sbuf *err)
{
	struct sbuf *pt = &a->partial;
	char why[WHY_MAX];
	int r;

	if (!pt->len) {
		sbuf_release(pt);
		return 0;
	}
	r = take_line(a->kind, pt->buf, pt->len, BYTES_UNCHECKED, batch, why);
	/* out of memory keeps the rest, like a failed write: a retry may work */
	if (r == -ENOMEM)
		return r;
	if (r == -EINVAL && err)
		sbuf_addf(err, "last line: %s", why);
	sbuf_release(pt);
	return r;
}

void line_asm_release(struct line_asm *a)
{
	sbuf_release(&a->partial);
}
