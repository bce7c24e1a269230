/* scripts/bench/latloop.c — the reader of the `flood` benchmark.
 *
 *     latloop N GAP_US PATH
 *
 * does N times: open(PATH, O_RDONLY), read() into a 64 KiB buffer until EOF,
 * close(), timing each (CLOCK_MONOTONIC), then sleeps GAP_US microseconds,
 * so that the samples spread over what else happens meanwhile. Prints one
 * line: <p50 ms> <p99 ms> <max ms> <samples>. Exits non-zero (with a
 * message) if an open, read or close fails. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static char buf[65536];
	if (argc != 4) {
		fprintf(stderr, "usage: latloop N GAP_US PATH\n");
		return 2;
	}
	long n = atol(argv[1]), gap = atol(argv[2]);
	if (n <= 0)
		return 2;
	double *t = calloc((size_t)n, sizeof(*t));
	if (!t)
		return 2;
	for (long i = 0; i < n; i++) {
		double t0 = now_ms();
		int fd = open(argv[3], O_RDONLY);
		if (fd < 0) {
			fprintf(stderr, "latloop: open %s: %s\n", argv[3], strerror(errno));
			return 1;
		}
		ssize_t r;
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			;
		if (r < 0 || close(fd) < 0) {
			fprintf(stderr, "latloop: read %s: %s\n", argv[3], strerror(errno));
			return 1;
		}
		t[i] = now_ms() - t0;
		if (gap > 0)
			usleep((useconds_t)gap);
	}
	qsort(t, (size_t)n, sizeof(*t), cmp);
	long p99 = (long)(0.99 * (double)(n - 1) + 0.5);
	printf("%.3f %.3f %.3f %ld\n", t[(n - 1) / 2], t[p99], t[n - 1], n);
	free(t);
	return 0;
}
