/* core/logfile.h — step and sandbox logs with a size cap that keeps the tail.
 *
 * A log is a regular file written by appending. Once what it holds passes
 * cap + cap/4, its head is dropped down to the last CAP bytes (rounded to
 * 64 KiB): by punching a hole (fallocate PUNCH_HOLE), so the file keeps its
 * size and every offset its meaning, and readers that follow it (tail -f)
 * simply go on; the blocks of the hole are freed (du shows what is kept).
 * Where the file system cannot punch holes, the kept tail is copied to the
 * start of the file behind a line saying what was dropped, and the file
 * shrinks (tail -f then says "file truncated" and reads it again).
 *
 * Readers see a log through a struct logview: a read that falls in the
 * dropped head gets one line "=== orchfs: N bytes dropped (log cap C) ==="
 * and then the kept tail from its first whole line, sequential reads going
 * on from there; reads at the end (tail) are plain.
 *
 * Pure functions on descriptors: any thread (the engine's, in orchfs). */
#ifndef ORCH_LOGFILE_H
#define ORCH_LOGFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The default cap of one step's log, and of a sandbox's logs. */
#define LOG_CAP_DEFAULT ((int64_t)64 << 20)
/* The smallest cap there can be (0 means none). */
#define LOG_CAP_MIN ((int64_t)256 << 10)

/* A log's count of bytes appended since its size was last looked at: the
 * size is looked at every cap/16, so a line costs no system call more. One
 * per file, shared by all that write it (a step's attempts, a sandbox's
 * steps): a count of each writer's own would never reach cap/16 when each
 * writes a little less, and the log would grow without bound. */
struct logw {
	int64_t unchecked;
};

/* Append BUF[0..N) to FD (opened O_APPEND) and, now and then, drop the head
 * if the log is over CAP + CAP/4 (CAP 0: no cap). 0 or -errno of the write;
 * *TRIMMED (may be NULL) gets the bytes dropped this time. */
int logfile_append(int fd, struct logw *w, const void *buf, size_t n, int64_t cap, int64_t *trimmed);
/* Drop the head now if the log holds more than CAP + CAP/4: bytes dropped
 * (0: nothing to do), or -errno. */
int64_t logfile_trim(int fd, int64_t cap);
/* Tests: trim by copying, as where holes cannot be punched. */
void logfile_force_copy(bool on);

/* "64 MiB", "1.5 MiB", "300 KiB", "1000 bytes": a cap for people. */
void logfile_cap_text(int64_t cap, char *buf, size_t size);

/* A reader's place in a log (one per open file). */
struct logview {
	int64_t next_app, next_abs;	/* the offset a sequential read comes at, and where it reads */
	int64_t mark_app;		/* where the marker line was handed out */
	int64_t mark_abs;		/* and the offset the kept tail starts at */
	unsigned mark_len;
	bool mark_on;
	char mark[120];
};
#define LOGVIEW_INIT { 0, 0, 0, 0, 0, false, "" }

/* Read up to SIZE bytes at the reader's offset OFF into BUF: bytes, or
 * -errno. CAP is named in the marker line. */
ssize_t logview_read(int fd, struct logview *v, char *buf, size_t size, int64_t off, int64_t cap);

#endif
