/* core/util.h — allocation (with a failure-injection hook), growable strings,
 * clocks and identifier checks shared by every core module.
 * Pure helpers: any thread may call them; the injection hook is for tests. */
#ifndef ORCH_UTIL_H
#define ORCH_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Allocation: these return NULL on failure, never abort. Tests may make the
 * Nth allocation from now fail with orch_alloc_fail_after(N) (0 turns it off). */
void *orch_malloc(size_t n);
void *orch_calloc(size_t nmemb, size_t size);
void *orch_realloc(void *p, size_t n);
void *orch_reallocarray(void *p, size_t nmemb, size_t size);
char *orch_strdup(const char *s);
/* The first N strings of V copied into one allocation, the NULL-terminated
 * pointer array first, then the strings: one orch_free() frees it all.
 * NULL when out of memory. */
char **orch_strv_pack(char *const *v, size_t n);
char *orch_strndup(const char *s, size_t n);
char *orch_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void orch_free(void *p);
void orch_alloc_fail_after(long n);
/* Route jansson's allocations through the hook above (call once at start). */
void orch_alloc_setup_jansson(void);

/* A growable NUL-terminated byte string. Allocation failure is sticky: after
 * one, every append is a no-op and sbuf_failed() says so; check once at the end. */
struct sbuf {
	char *buf;	/* always NUL-terminated once anything was added */
	size_t len;
	size_t cap;
	bool oom;
};
#define SBUF_INIT { NULL, 0, 0, false }

void sbuf_add(struct sbuf *sb, const void *data, size_t n);
void sbuf_adds(struct sbuf *sb, const char *s);
void sbuf_addc(struct sbuf *sb, char c);
void sbuf_addf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_vaddf(struct sbuf *sb, const char *fmt, va_list ap);
/* Append S as a JSON string literal, quotes included. */
void sbuf_add_json_str(struct sbuf *sb, const char *s);
void sbuf_reset(struct sbuf *sb);		/* len = 0, keeps the memory */
void sbuf_release(struct sbuf *sb);		/* frees; back to SBUF_INIT */
char *sbuf_detach(struct sbuf *sb, size_t *len);/* new: caller frees; "" when empty */
static inline bool sbuf_failed(const struct sbuf *sb) { return sb->oom; }
static inline const char *sbuf_str(const struct sbuf *sb) { return sb->buf ? sb->buf : ""; }

/* Clocks. Wall time is for timestamps people read; monotonic time is for every
 * deadline (timeouts, grace periods, retry delays). */
int64_t clock_wall_ms(void);
int64_t clock_mono_ms(void);
/* The monotonic time at which the wall clock reads WALL_MS, as the clocks
 * stand now: a durable wall-clock deadline (windows, schedules: SPEC §9)
 * armed on the loop's monotonic timers. Saturates instead of overflowing. */
int64_t clock_wall_to_mono_ms(int64_t wall_ms);
/* ISO 8601 UTC with milliseconds: 2026-11-22T10:15:30.123Z (24 chars + NUL). */
#define ISO8601_LEN 32
void fmt_iso8601(int64_t wall_ms, char out[ISO8601_LEN]);

/* An identifier of SPEC §2: 1..maxlen characters of [A-Za-z0-9_-]. */
bool id_valid(const char *s, size_t maxlen);
#define PLAN_NAME_MAX 64
#define STEP_ID_MAX 64
#define RUN_ID_MAX 80
#define SANDBOX_ID_MAX 80

/* Levenshtein distance, for "did you mean" suggestions (short strings only). */
size_t edit_distance(const char *a, const char *b);

/* Copy user text S (LEN bytes, any bytes) into BUF (SIZE bytes) for a
 * message: cut at a character boundary, control characters (C0, DEL, C1) and
 * bytes that are not valid UTF-8 as '?', so one problem stays one clean line.
 * Returns BUF. */
const char *text_show(char *buf, size_t size, const char *s, size_t len);

/* "an object", "an array", "null"...: what a JSON value is, for messages. */
struct json_t;
const char *json_kind(const struct json_t *v);

/* JSON that users hand us is nested at most this deep: whatever orchfs
 * shows again (events, plan.json) stays readable by every tool (jq 1.6
 * gives up past 256). */
#define JSON_DEPTH_MAX 64
bool json_deeper_than(const struct json_t *v, int limit);

/* Append O (stolen) as indented JSON and a newline: 0 or -ENOMEM. */
int sbuf_put_json(struct sbuf *sb, struct json_t *o);

/* Number of online CPUs, at least 1. */
unsigned cpu_count(void);

/* Write all of BUF to FD, retrying short writes and EINTR: 0 or -errno. */
int write_all(int fd, const void *buf, size_t n);
/* Read a whole file (up to MAX bytes) into a new NUL-terminated buffer:
 * 0 or -errno (-EFBIG when larger than MAX). */
int read_file(const char *path, size_t max, char **out, size_t *len);
/* The same from FD, read from where it stands (not closed). */
int read_fd(int fd, size_t max, char **out, size_t *len);
/* mkdir -p: 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);
/* rm -rf: 0 or -errno of the first failure (keeps going). */
int rm_rf(const char *path);

#endif
