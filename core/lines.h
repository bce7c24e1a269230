/* core/lines.h — the JSON-lines formats appended to a sandbox's messages and
 * events files (SPEC §5), and the assembly of lines across the write() calls
 * of one open file. Pure (no engine state, no I/O): any thread; one
 * struct line_asm belongs to one open file (its caller serializes use). */
#ifndef ORCH_LINES_H
#define ORCH_LINES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/util.h"

#define LINE_MAX_BYTES 65536	/* a line, without its '\n', is at most this long */

enum msg_type { MSG_USER_MESSAGE, MSG_INTERRUPT, MSG_GUARDIAN_INTERVENTION, MSG_HUMAN_ANSWER };
const char *msg_type_name(enum msg_type t);
int msg_type_parse(const char *name);	/* -1 when unknown */

struct msg_line {
	enum msg_type type;
	char *content;		/* new, NUL-terminated (contains no NUL) */
};

/* Parse one message line (LEN bytes, no '\n'). A line starting with '{' must
 * be a JSON object with a string "content" and an optional "message_type"
 * (user_message, interrupt, guardian_intervention, human_answer) and nothing else; any other
 * line is the content of a user_message. Returns 1 with *OUT filled, 0 for an
 * empty line (ignored), or -EINVAL with the reason appended to ERR. */
int msg_line_parse(const char *line, size_t len, struct msg_line *out, struct sbuf *err);

/* Parse one event line: a JSON object with a string "event_type", an optional
 * object "event_data" and an optional string "source", nothing else.
 * Returns 1 with *OUT a new object holding those fields in that order, 0 for
 * an empty line (ignored), or -EINVAL with the reason appended to ERR. */
int event_line_parse(const char *line, size_t len, json_t **out, struct sbuf *err);

/* Is BUF valid UTF-8 without NUL bytes? */
bool utf8_valid(const char *buf, size_t len);

enum line_kind { LINES_MESSAGES, LINES_EVENTS };

/* The lines one write() (or the closing flush) completed, parsed. */
struct line_batch {
	size_t n;
	struct msg_line *msgs;	/* LINES_MESSAGES: n entries */
	json_t **events;	/* LINES_EVENTS: n entries, each a new reference */
};
#define LINE_BATCH_INIT { 0, NULL, NULL }
void line_batch_release(struct line_batch *b);	/* frees everything, back to INIT */

/* Line assembly for one open file. */
struct line_asm {
	enum line_kind kind;
	struct sbuf partial;	/* the unterminated rest of earlier writes */
};
#define LINE_ASM_INIT(k) { (k), SBUF_INIT }

/* Feed the bytes of one write(). Every line it completes is parsed; if all are
 * valid, returns 0 with them appended to BATCH (empty lines skipped) and the
 * unterminated rest kept for the next write. If any is invalid, or the
 * unterminated rest is already longer than LINE_MAX_BYTES, returns -EINVAL:
 * BATCH gets nothing, the assembly is as it was before this write, and ERR
 * says which line of the write (1-based) and why, e.g.
 * `line 2: "message_type" must be one of user_message, interrupt,
 * guardian_intervention, human_answer`. -ENOMEM likewise leaves everything as it was. */
int line_asm_write(struct line_asm *a, const char *data, size_t len, struct line_batch *batch,
		   struct sbuf *err);
/* The same, taking at most MAX_LINES lines into BATCH. Every line is
 * checked as above (one invalid line refuses the whole write); when more
 * than MAX_LINES are valid, only the first MAX_LINES are taken, *USED says
 * how many bytes of DATA they end at (else it is LEN), and nothing after
 * them is kept: the caller answers a short write and the writer sends the
 * rest again, as its own write. */
int line_asm_write_some(struct line_asm *a, const char *data, size_t len, size_t max_lines,
			struct line_batch *batch, struct sbuf *err, size_t *used);
/* At close: the unterminated rest, if any, is the last line. 0 (with it in
 * BATCH unless empty) or -EINVAL, and the rest is consumed; -ENOMEM keeps it
 * (a later close may try again). */
int line_asm_close(struct line_asm *a, struct line_batch *batch, struct sbuf *err);
void line_asm_release(struct line_asm *a);

#endif
