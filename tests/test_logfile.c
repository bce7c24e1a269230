/* tests/test_logfile.c — capped logs (core/logfile.c): the disk a flood
 * costs, what readers get (cat from the top, a follower that fell behind, a
 * tail), the copying fallback where holes cannot be punched. Real files. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/logfile.h"
#include "core/util.h"

struct fx {
	char dir[64];
	int topfd;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/orchfs-test-logfile.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->topfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = f;
	return f->topfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	close(f->topfd);
	logfile_force_copy(false);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static int64_t allocated(int fd)
{
	struct stat st;
	fstat(fd, &st);
	return (int64_t)st.st_blocks * 512;
}

static int64_t fsize(int fd)
{
	struct stat st;
	fstat(fd, &st);
	return st.st_size;
}

/* lines "NNNNNNNN xxxx...\n" of 100 bytes, numbered from FIRST */
static void flood(int fd, struct logw *w, int64_t cap, int first, int n)
{
	char line[128];
	for (int i = first; i < first + n; i++) {
		snprintf(line, sizeof(line), "%08d %090d\n", i, 0);
		assert_int_equal(logfile_append(fd, w, line, 100, cap, NULL), 0);
	}
}

/* read everything a reader gets from offset AT on, as cat does */
static char *read_all(int fd, struct logview *v, int64_t at, size_t *len, int64_t cap)
{
	struct sbuf sb = SBUF_INIT;
	char buf[7000];	/* an odd size: reads end mid-line */
	for (;;) {
		ssize_t n = logview_read(fd, v, buf, sizeof(buf), at, cap);
		assert_true(n >= 0);
		if (n == 0)
			break;
		sbuf_add(&sb, buf, (size_t)n);
		at += n;
	}
	return sbuf_detach(&sb, len);
}

static void test_logfile__cap_keeps_the_tail_in_bounded_disk(void **state)
{
	struct fx *f = *state;
	int64_t cap = LOG_CAP_MIN;	/* 256 KiB */
	int fd = openat(f->topfd, "log", O_RDWR | O_APPEND | O_CREAT, 0644);
	struct logw w = { 0 };
	flood(fd, &w, cap, 0, 30000);	/* 3 MB */
	assert_true(fsize(fd) == 3000000 || fsize(fd) < cap * 2);	/* holes keep the size */
	assert_true(allocated(fd) <= cap + cap / 4 + cap / 16 + (64 << 10) + 4096);
	/* cat: the marker, then whole lines up to the last */
	struct logview v = LOGVIEW_INIT;
	size_t len;
	char *all = read_all(fd, &v, 0, &len, cap);
	assert_true(len >= (size_t)cap && len <= (size_t)(cap + cap / 4 + cap / 16 + 200));
	assert_memory_equal(all, "=== orchfs: ", 12);
	assert_non_null(strstr(all, " bytes dropped (log cap 256 KiB) ===\n"));
	char *second = strchr(all, '\n') + 1;
	assert_int_equal(strlen(second) % 100, 0);	/* from a line's start */
	assert_memory_equal(all + len - 100, "00029999 ", 9);
	free(all);
	close(fd);
}

/* a follower (tail -f) that read up to some offset, then the head was
 * dropped past it: it gets the marker and goes on from the kept tail; its
 * offsets never pass the file's size, so it never takes the log for
 * truncated, and it never reads a line twice */
static void test_logfile__follower_goes_on_after_a_trim(void **state)
{
	struct fx *f = *state;
	int64_t cap = LOG_CAP_MIN;
	int fd = openat(f->topfd, "log", O_RDWR | O_APPEND | O_CREAT, 0644);
	struct logw w = { 0 };
	struct logview v = LOGVIEW_INIT;
	flood(fd, &w, cap, 0, 100);
	size_t len;
	char *first = read_all(fd, &v, 0, &len, cap);
	assert_int_equal(len, 10000);
	free(first);
	int64_t at = (int64_t)len;
	/* a follower that keeps up sees every line once */
	flood(fd, &w, cap, 100, 1000);
	char *next = read_all(fd, &v, at, &len, cap);
	assert_int_equal(len, 100000);
	assert_memory_equal(next, "00000100 ", 9);
	at += (int64_t)len;
	free(next);
	/* now it falls far behind */
	flood(fd, &w, cap, 1100, 20000);
	char *rest = read_all(fd, &v, at, &len, cap);
	assert_memory_equal(rest, "=== orchfs: ", 12);
	assert_memory_equal(rest + len - 100, "00021099 ", 9);
	at += (int64_t)len;
	assert_true(at <= fsize(fd));
	/* the lines it got after the marker follow each other */
	char *p = strchr(rest, '\n') + 1;
	int prev = atoi(p);
	for (p = strchr(p, '\n') + 1; p < rest + len; p = strchr(p, '\n') + 1) {
		assert_int_equal(atoi(p), prev + 1);
		prev = atoi(p);
	}
	free(rest);
	/* and it goes on with what comes next */
	flood(fd, &w, cap, 21100, 10);
	char *more = read_all(fd, &v, at, &len, cap);
	assert_int_equal(len, 1000);
	assert_memory_equal(more, "00021100 ", 9);
	free(more);
	/* tail: a read near the end is plain */
	char buf[200];
	assert_int_equal(logview_read(fd, &v, buf, 100, fsize(fd) - 100, cap), 100);
	assert_memory_equal(buf, "00021109 ", 9);
	close(fd);
}

/* where holes cannot be punched: the tail is copied to the top behind a
 * marker that counts all that was dropped, and the file shrinks */
static void test_logfile__copy_fallback(void **state)
{
	struct fx *f = *state;
	int64_t cap = LOG_CAP_MIN;
	logfile_force_copy(true);
	int fd = openat(f->topfd, "log", O_RDWR | O_APPEND | O_CREAT, 0644);
	struct logw w = { 0 };
	flood(fd, &w, cap, 0, 20000);	/* 2 MB */
	assert_true(fsize(fd) <= cap + cap / 4 + cap / 16 + 200);
	struct logview v = LOGVIEW_INIT;
	size_t len;
	char *all = read_all(fd, &v, 0, &len, cap);
	assert_int_equal((int64_t)len, fsize(fd));
	long long dropped = 0;
	assert_int_equal(sscanf(all, "=== orchfs: %lld bytes dropped (log cap 256 KiB) ===", &dropped), 1);
	char *second = strchr(all, '\n') + 1;
	/* every byte is either dropped or kept */
	assert_int_equal(dropped + (long long)strlen(second), 2000000);
	assert_int_equal(atoi(second) * 100, dropped);
	assert_memory_equal(all + len - 100, "00019999 ", 9);
	free(all);
	close(fd);
}

/* reads shorter than the marker line get it in pieces, then the tail */
static void test_logfile__short_reads_through_the_marker(void **state)
{
	struct fx *f = *state;
	int64_t cap = LOG_CAP_MIN;
	int fd = openat(f->topfd, "log", O_RDWR | O_APPEND | O_CREAT, 0644);
	struct logw w = { 0 };
	flood(fd, &w, cap, 0, 5000);
	struct logview v = LOGVIEW_INIT, whole = LOGVIEW_INIT;
	size_t len;
	char *ref = read_all(fd, &whole, 0, &len, cap);
	struct sbuf got = SBUF_INIT;
	char buf[16];
	for (int64_t at = 0; got.len < 300;) {
		ssize_t n = logview_read(fd, &v, buf, 7, at, cap);
		assert_true(n > 0);
		sbuf_add(&got, buf, (size_t)n);
		at += n;
	}
	assert_memory_equal(got.buf, ref, 300);
	sbuf_release(&got);
	free(ref);
	close(fd);
}

static void test_logfile__cap_text(void **state)
{
	char b[32];
	logfile_cap_text((int64_t)64 << 20, b, sizeof(b));
	assert_string_equal(b, "64 MiB");
	logfile_cap_text((int64_t)3 << 19, b, sizeof(b));
	assert_string_equal(b, "1.5 MiB");
	logfile_cap_text(1000, b, sizeof(b));
	assert_string_equal(b, "1000 bytes");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_logfile__cap_keeps_the_tail_in_bounded_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logfile__follower_goes_on_after_a_trim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logfile__copy_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logfile__short_reads_through_the_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(test_logfile__cap_text, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
