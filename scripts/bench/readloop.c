/* scripts/bench/readloop.c — the reader of the `read` benchmark.
 *
 *     readloop N P PATH
 *
 * starts P reader processes (forked before the clock starts), each of which
 * does N times: open(PATH, O_RDONLY), read() into a 64 KiB buffer until EOF,
 * close(). The clock runs from the moment the readers are released together
 * to the moment the last of them has finished. Prints one line:
 *     <wall seconds> <ns per operation over all P*N operations> <bytes of one read-through>
 * Exits non-zero (with a message) if any open, read or close fails, or if a
 * read-through returns no bytes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int reader(long n, const char *path, int go_fd, int res_fd)
{
	static char buf[65536];
	char c;
	if (read(go_fd, &c, 1) < 0)	/* EOF when the parent releases us */
		return 2;
	long bytes = -1;
	for (long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY);
		if (fd < 0) {
			fprintf(stderr, "readloop: open %s: %s (op %ld)\n", path, strerror(errno), i);
			return 1;
		}
		long got = 0;
		for (;;) {
			ssize_t r = read(fd, buf, sizeof(buf));
			if (r < 0) {
				fprintf(stderr, "readloop: read %s: %s (op %ld)\n", path, strerror(errno), i);
				return 1;
			}
			if (r == 0)
				break;
			got += r;
		}
		if (close(fd) < 0) {
			fprintf(stderr, "readloop: close %s: %s (op %ld)\n", path, strerror(errno), i);
			return 1;
		}
		if (got == 0) {
			fprintf(stderr, "readloop: %s read empty (op %ld)\n", path, i);
			return 1;
		}
		bytes = got;
	}
	if (write(res_fd, &bytes, sizeof(bytes)) != sizeof(bytes))
		return 2;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: readloop N P PATH\n");
		return 2;
	}
	long n = atol(argv[1]);
	int p = atoi(argv[2]);
	const char *path = argv[3];
	if (n <= 0 || p <= 0 || p > 64) {
		fprintf(stderr, "readloop: bad N or P\n");
		return 2;
	}
	int go[2], res[2];
	if (pipe(go) || pipe(res)) {
		perror("readloop: pipe");
		return 2;
	}
	pid_t pids[64];
	for (int i = 0; i < p; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("readloop: fork");
			return 2;
		}
		if (pids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);	/* die with the benchmark */
			close(go[1]);
			close(res[0]);
			_exit(reader(n, path, go[0], res[1]));
		}
	}
	close(go[0]);
	close(res[1]);
	usleep(20000);		/* let every reader reach its read() of go */
	double t0 = now();
	close(go[1]);		/* release them all */
	int bad = 0;
	for (int i = 0; i < p; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			bad = 1;
	}
	double t1 = now();
	long bytes = 0;
	if (read(res[0], &bytes, sizeof(bytes)) != sizeof(bytes))
		bad = 1;
	if (bad) {
		fprintf(stderr, "readloop: a reader failed\n");
		return 1;
	}
	printf("%.6f %.1f %ld\n", t1 - t0, (t1 - t0) * 1e9 / ((double)n * p), bytes);
	return 0;
}
