/* core/logfile.c — capped logs that keep their tail (see logfile.h).
 *
 * Why a hole rather than a shorter file: tail -f follows a file by its size
 * and its own offset. A log rewritten shorter looks truncated to it: it
 * starts again from the top and prints up to a whole cap again, every
 * cap/4 of output. With the head punched out the size only grows and every
 * offset keeps its bytes, so a follower just reads on; the trim costs the
 * kernel a few extents, not a copy of the log on the engine thread. */
#include "core/logfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

/* Holes are punched in whole 64 KiB pieces: a partial block would only be
 * zeroed, and zeros would then read as data. */
#define LOG_ALIGN ((int64_t)64 << 10)
/* How far to look for the end of the first partial line. */
#define LINE_SCAN (64 << 10)

static const char mark_prefix[] = "=== orchfs: ";

static bool force_copy;
void logfile_force_copy(bool on) { force_copy = on; }

void logfile_cap_text(int64_t cap, char *buf, size_t size)
{
	static const struct { int64_t unit; const char *name; } u[] = {
		{ (int64_t)1 << 30, "GiB" }, { (int64_t)1 << 20, "MiB" }, { (int64_t)1 << 10, "KiB" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(u); i++) {
		if (cap < u[i].unit)
			continue;
		if (cap % u[i].unit == 0)
			snprintf(buf, size, "%" PRId64 " %s", cap / u[i].unit, u[i].name);
		else
			snprintf(buf, size, "%.1f %s", (double)cap / (double)u[i].unit, u[i].name);
		return;
	}
	snprintf(buf, size, "%" PRId64 " bytes", cap);
}

static int marker(char *buf, size_t size, int64_t dropped, int64_t cap, bool with_cap)
{
	char ct[32];
	if (!with_cap)
		return snprintf(buf, size, "%s%" PRId64 " bytes dropped ===\n", mark_prefix, dropped);
	logfile_cap_text(cap, ct, sizeof(ct));
	return snprintf(buf, size, "%s%" PRId64 " bytes dropped (log cap %s) ===\n", mark_prefix, dropped, ct);
}

/* The offset of the first line that starts at or after AT (AT itself when
 * no newline comes soon). */
static int64_t line_start(int fd, int64_t at)
{
	char *buf = orch_malloc(LINE_SCAN);
	if (!buf)
		return at;
	ssize_t n = pread(fd, buf, LINE_SCAN, at);
	char *nl = n > 0 ? memchr(buf, '\n', (size_t)n) : NULL;
	int64_t start = nl ? at + (nl - buf) + 1 : at;
	orch_free(buf);
	return start;
}

/* Where a file system cannot punch holes: copy the last CAP bytes (from a
 * line's start) to the top, behind a marker that counts every byte dropped
 * so far, and shrink the file. */
static int64_t trim_copy(int fd, int64_t size, int64_t cap)
{
	char head[128];
	int64_t before = 0, old_mark = 0;
	ssize_t hn = pread(fd, head, sizeof(head) - 1, 0);
	if (hn > 0) {
		head[hn] = '\0';
		char *nl = strchr(head, '\n');
		if (nl && !strncmp(head, mark_prefix, sizeof(mark_prefix) - 1)) {
			before = strtoll(head + sizeof(mark_prefix) - 1, NULL, 10);
			old_mark = nl - head + 1;
		}
	}
	int64_t from = line_start(fd, size - cap);
	if (from >= size)
		from = size - cap;
	char mark[120];
	int mlen = marker(mark, sizeof(mark), before + (from - old_mark), cap, true);
	if (mlen < 0 || (int64_t)mlen >= from)
		return 0;
	/* pwrite on an O_APPEND descriptor appends (Linux): drop the flag meanwhile */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_APPEND) < 0)
		return -errno;
	int rc = 0;
	char *buf = orch_malloc(LOG_ALIGN);
	if (!buf)
		rc = -ENOMEM;
	int64_t to = mlen;
	for (int64_t at = from; !rc && at < size;) {
		ssize_t n = pread(fd, buf, (size_t)(size - at < LOG_ALIGN ? size - at : LOG_ALIGN), at);
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		if (pwrite(fd, buf, (size_t)n, to) != n)
			rc = -errno ? -errno : -EIO;
		at += n;
		to += n;
	}
	orch_free(buf);
	if (!rc && (pwrite(fd, mark, (size_t)mlen, 0) != mlen || ftruncate(fd, to) < 0))
		rc = errno ? -errno : -EIO;
	fcntl(fd, F_SETFL, fl);
	return rc ? rc : from - old_mark;
}

int64_t logfile_trim(int fd, int64_t cap)
{
	if (cap <= 0)
		return 0;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	int64_t size = st.st_size;
	off_t data = lseek(fd, 0, SEEK_DATA);
	if (data < 0)
		data = errno == ENXIO ? size : 0;
	if (size - data < cap + cap / 4)
		return 0;
	int64_t cut = (size - cap) & ~(LOG_ALIGN - 1);
	if (cut <= data)
		return 0;
	if (!force_copy &&
	    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, data, cut - data) == 0)
		return cut - data;
	if (!force_copy && errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	return trim_copy(fd, size, cap);
}

int logfile_append(int fd, struct logw *w, const void *buf, size_t n, int64_t cap, int64_t *trimmed)
{
	if (trimmed)
		*trimmed = 0;
	int rc = write_all(fd, buf, n);
	if (cap <= 0)
		return rc;
	w->unchecked += (int64_t)n;
	if (w->unchecked < cap / 16)
		return rc;
	w->unchecked = 0;
	int64_t t = logfile_trim(fd, cap);
	if (trimmed)
		*trimmed = t;
	return rc;
}

/* ---- reading ---- */

/* The marker line from offset OFF (within it) on. */
static ssize_t mark_read(struct logview *v, char *buf, size_t size, int64_t off)
{
	size_t k = (size_t)(off - v->mark_app);
	size_t n = v->mark_len - k < size ? v->mark_len - k : size;
	memcpy(buf, v->mark + k, n);
	if (k + n == v->mark_len) {
		v->next_app = off + (int64_t)n;
		v->next_abs = v->mark_abs;
	}
	return (ssize_t)n;
}

ssize_t logview_read(int fd, struct logview *v, char *buf, size_t size, int64_t off, int64_t cap)
{
	if (off < 0)
		return -EINVAL;
	if (!size)
		return 0;
	/* the rest of a marker line a short read left (a read at its start
	 * looks at the file again: it may have changed since) */
	if (v->mark_on && off > v->mark_app && off < v->mark_app + v->mark_len)
		return mark_read(v, buf, size, off);
	/* a sequential read goes on where the last one ended in the file;
	 * any other reads at its own offset */
	int64_t abs = off == v->next_app ? v->next_abs : off;
	for (int tries = 0; tries < 2; tries++) {
		ssize_t n = pread(fd, buf, size, abs);
		if (n < 0)
			return -errno;
		/* after the read: a hole punched meanwhile shows here too */
		off_t d = n > 0 ? lseek(fd, abs, SEEK_DATA) : abs;
		if (d == abs || (d < 0 && errno != ENXIO)) {
			/* a read that reached the end stops after the last whole
			 * line: a line being written is never handed out half */
			if ((size_t)n < size && n > 0 && buf[n - 1] != '\n') {
				char *nl = memrchr(buf, '\n', (size_t)n);
				if (nl)
					n = nl - buf + 1;
			}
			v->next_app = off + n;
			v->next_abs = abs + n;
			return n;
		}
		if (d < 0)
			return 0;	/* nothing but a hole after ABS: the end */
		/* ABS was dropped: say so, then go on from the first whole line */
		int64_t start = line_start(fd, d);
		int64_t gap = start - abs;
		char mark[sizeof(v->mark)];
		int mlen = marker(mark, sizeof(mark), gap, cap, true);
		if (mlen > gap)
			mlen = marker(mark, sizeof(mark), gap, cap, false);
		if (mlen > 0 && mlen <= gap && (size_t)mlen < sizeof(v->mark)) {
			/* the reader's offsets stay below the file's: tail -f,
			 * which compares them with the size, sees no truncation */
			memcpy(v->mark, mark, (size_t)mlen);
			v->mark_len = (unsigned)mlen;
			v->mark_app = off;
			v->mark_abs = start;
			v->mark_on = true;
			return mark_read(v, buf, size, off);
		}
		/* a gap shorter than the line: skipped without one */
		abs = start;
	}
	return 0;
}
