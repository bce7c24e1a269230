/* core/util.c — allocation hook, sbuf, clocks, identifiers and small file helpers. */
#include "core/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Atomic long fail_countdown;

void orch_alloc_fail_after(long n) { atomic_store(&fail_countdown, n); }

/* true when the injected failure fires for this allocation */
static bool inject_failure(void)
{
	long n = atomic_load(&fail_countdown);
	if (n <= 0)
		return false;
	if (atomic_fetch_sub(&fail_countdown, 1) == 1)
		return true;
	return false;
}

void *orch_malloc(size_t n)
{
	if (inject_failure())
		return NULL;
	return malloc(n ? n : 1);
}

void *orch_calloc(size_t nmemb, size_t size)
{
	if (inject_failure())
		return NULL;
	return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *orch_realloc(void *p, size_t n)
{
	if (inject_failure())
		return NULL;
	return realloc(p, n ? n : 1);
}

void *orch_reallocarray(void *p, size_t nmemb, size_t size)
{
	if (size && nmemb > SIZE_MAX / size) {
		errno = ENOMEM;
		return NULL;
	}
	return orch_realloc(p, nmemb * size);
}

char *orch_strndup(const char *s, size_t n)
{
	char *d = orch_malloc(n + 1);
	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *orch_strdup(const char *s) { return s ? orch_strndup(s, strlen(s)) : NULL; }

char *orch_asprintf(const char *fmt, ...)
{
	struct sbuf sb = SBUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	sbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	if (sbuf_failed(&sb)) {
		sbuf_release(&sb);
		return NULL;
	}
	return sbuf_detach(&sb, NULL);
}

char **orch_strv_pack(char *const *v, size_t n)
{
	size_t bytes = (n + 1) * sizeof(char *);
	for (size_t i = 0; i < n; i++)
		bytes += strlen(v[i]) + 1;
	char **out = orch_malloc(bytes);
	if (!out)
		return NULL;
	char *at = (char *)(out + n + 1);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(v[i]) + 1;
		memcpy(at, v[i], len);
		out[i] = at;
		at += len;
	}
	out[n] = NULL;
	return out;
}

void orch_free(void *p) { free(p); }

static void *jansson_malloc(size_t n) { return orch_malloc(n); }
void orch_alloc_setup_jansson(void) { json_set_alloc_funcs(jansson_malloc, free); }

/* sbuf */

static bool sbuf_grow(struct sbuf *sb, size_t extra)
{
	if (sb->oom)
		return false;
	if (sb->len + extra + 1 <= sb->cap)
		return true;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < sb->len + extra + 1) {
		if (cap > SIZE_MAX / 2) {
			sb->oom = true;
			return false;
		}
		cap *= 2;
	}
	char *nb = orch_realloc(sb->buf, cap);
	if (!nb) {
		sb->oom = true;
		return false;
	}
	sb->buf = nb;
	sb->cap = cap;
	return true;
}

void sbuf_add(struct sbuf *sb, const void *data, size_t n)
{
	if (!sbuf_grow(sb, n))
		return;
	if (n)
		memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
}

void sbuf_adds(struct sbuf *sb, const char *s) { sbuf_add(sb, s, strlen(s)); }
void sbuf_addc(struct sbuf *sb, char c) { sbuf_add(sb, &c, 1); }

void sbuf_vaddf(struct sbuf *sb, const char *fmt, va_list ap)
{
	char small[256];
	va_list cp;
	va_copy(cp, ap);
	int n = vsnprintf(small, sizeof(small), fmt, cp);
	va_end(cp);
	if (n < 0) {
		sb->oom = true;
		return;
	}
	if ((size_t)n < sizeof(small)) {
		sbuf_add(sb, small, (size_t)n);
		return;
	}
	if (!sbuf_grow(sb, (size_t)n))
		return;
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
}

void sbuf_addf(struct sbuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	sbuf_vaddf(sb, fmt, ap);
	va_end(ap);
}

void sbuf_add_json_str(struct sbuf *sb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	sbuf_addc(sb, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"': sbuf_add(sb, "\\\"", 2); break;
		case '\\': sbuf_add(sb, "\\\\", 2); break;
		case '\n': sbuf_add(sb, "\\n", 2); break;
		case '\t': sbuf_add(sb, "\\t", 2); break;
		case '\r': sbuf_add(sb, "\\r", 2); break;
		default:
			if (*p < 0x20) {
				char u[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
				sbuf_add(sb, u, 6);
			} else {
				sbuf_addc(sb, (char)*p);
			}
		}
	}
	sbuf_addc(sb, '"');
}

void sbuf_reset(struct sbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

void sbuf_release(struct sbuf *sb)
{
	free(sb->buf);
	*sb = (struct sbuf)SBUF_INIT;
}

char *sbuf_detach(struct sbuf *sb, size_t *len)
{
	char *b = sb->buf;
	if (len)
		*len = sb->len;
	if (!b)
		b = orch_strdup("");
	*sb = (struct sbuf)SBUF_INIT;
	return b;
}

/* clocks */

int64_t clock_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t clock_wall_to_mono_ms(int64_t wall_ms)
{
	int64_t mono = clock_mono_ms(), wall = clock_wall_ms(), d;
	if (__builtin_sub_overflow(wall_ms, wall, &d) || __builtin_add_overflow(mono, d, &d))
		return wall_ms > wall ? INT64_MAX : 0;
	return d < 0 ? 0 : d;
}

void fmt_iso8601(int64_t ms, char out[ISO8601_LEN])
{
	if (ms < 0)
		ms = 0;
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(out, ISO8601_LEN, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, ISO8601_LEN - n, ".%03uZ", (unsigned)(ms % 1000));
}

bool id_valid(const char *s, size_t maxlen)
{
	size_t n = 0;
	if (!s)
		return false;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
		if (n >= maxlen)
			return false;
	}
	return n > 0;
}

size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

unsigned cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = read_fd(fd, max, out, len);
	close(fd);
	return rc;
}

int read_fd(int fd, size_t max, char **out, size_t *len)
{
	struct sbuf sb = SBUF_INIT;
	char chunk[65536];
	int ret = 0;
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if (r == 0)
			break;
		if (sb.len + (size_t)r > max) {
			ret = -EFBIG;
			break;
		}
		sbuf_add(&sb, chunk, (size_t)r);
	}
	if (!ret && sbuf_failed(&sb))
		ret = -ENOMEM;
	if (ret) {
		sbuf_release(&sb);
		return ret;
	}
	*out = sbuf_detach(&sb, len);
	return *out ? 0 : -ENOMEM;
}

int mkdir_p(const char *path, unsigned mode)
{
	char buf[4096];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int rm_rf_at(int dfd, const char *name)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = -errno;
		close(fd);
		return e;
	}
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int r = rm_rf_at(dirfd(d), de->d_name);
		if (r && !ret)
			ret = r;
	}
	closedir(d);
	if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !ret)
		ret = -errno;
	return ret;
}

int rm_rf(const char *path) { return rm_rf_at(AT_FDCWD, path); }

/* Copy user text S (LEN bytes, valid UTF-8) into BUF (SIZE bytes) for a
 * reason: cut at a character boundary, control characters (C0, DEL, C1) as
 * '?'. Returns BUF. */
/* Length of the valid UTF-8 sequence at S (N bytes left), 0 when invalid
 * (overlong, surrogate, beyond U+10FFFF, truncated). */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2, cp = c & 0x1F;
	else if (c >= 0xE0 && c <= 0xEF)
		len = 3, cp = c & 0x0F;
	else if (c >= 0xF0 && c <= 0xF4)
		len = 4, cp = c & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3F);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return len;
}

const char *text_show(char *buf, size_t size, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq_len(u + i, len - i);
		bool control = n == 1 ? (u[i] < 0x20 || u[i] == 0x7F)
				      : (n == 2 && u[i] == 0xC2 && u[i + 1] <= 0x9F);	/* C1 */
		size_t out = n == 0 || control ? 1 : n;	/* '?' for a bad byte or a control */
		if (o + out > size - 1)
			break;	/* cut at a character boundary */
		if (n == 0 || control)
			buf[o++] = '?';
		else
			for (size_t k = 0; k < n; k++)
				buf[o++] = (char)u[i + k];
		i += n ? n : 1;
	}
	buf[o] = '\0';
	return buf;
}

const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER:
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

bool json_deeper_than(const json_t *v, int limit)
{
	if (!json_is_object(v) && !json_is_array(v))
		return false;
	if (limit <= 0)
		return true;
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			if (json_deeper_than(json_array_get(v, i), limit - 1))
				return true;
		return false;
	}
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)v, k, x)
		if (json_deeper_than(x, limit - 1))
			return true;
	return false;
}

int sbuf_put_json(struct sbuf *sb, json_t *o)
{
	if (!o)
		return -ENOMEM;
	char *txt = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (!txt)
		return -ENOMEM;
	sbuf_adds(sb, txt);
	sbuf_addc(sb, '\n');
	free(txt);
	return sbuf_failed(sb) ? -ENOMEM : 0;
}
