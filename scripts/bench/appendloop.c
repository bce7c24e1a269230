/* scripts/bench/appendloop.c — the writer of the `append` benchmark.
 *
 *     appendloop N P KIND PATH
 *
 * starts P writer processes (forked before the clock starts) which share N
 * appends between them (as redis-benchmark -n N -c P shares N requests among
 * P clients); each append is what `printf '%s\n' JSON >> PATH` does:
 * open(PATH, O_WRONLY|O_APPEND), one write() of one line, close(). KIND is
 * "messages" ({"content":"bench W-I","message_type":"user_message"}) or
 * "events" ({"event_type":"bench","event_data":{"i":I}}). The clock runs from
 * the moment the writers are released together to the moment the last one
 * has finished; every append counted has been acknowledged (write and close
 * returned success). Prints: <wall seconds> <appends per second>.
 * Exits non-zero (with a message) on any failure. */
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

static int writer(int w, long n, int events, const char *path, int go_fd)
{
	char line[256], c;
	if (read(go_fd, &c, 1) < 0)
		return 2;
	for (long i = 0; i < n; i++) {
		int len = events
			? snprintf(line, sizeof(line), "{\"event_type\":\"bench\",\"event_data\":{\"i\":%ld}}\n", i)
			: snprintf(line, sizeof(line), "{\"content\":\"bench %d-%ld\",\"message_type\":\"user_message\"}\n", w, i);
		int fd = open(path, O_WRONLY | O_APPEND);
		if (fd < 0) {
			fprintf(stderr, "appendloop: open %s: %s (append %ld)\n", path, strerror(errno), i);
			return 1;
		}
		ssize_t r = write(fd, line, len);
		if (r != len) {
			fprintf(stderr, "appendloop: write %s: %s (append %ld)\n", path,
				r < 0 ? strerror(errno) : "short write", i);
			return 1;
		}
		/* APPENDLOOP_FSYNC=1: the disk's floor, an fdatasync per append */
		if (getenv("APPENDLOOP_FSYNC") && fdatasync(fd) < 0) {
			fprintf(stderr, "appendloop: fdatasync %s: %s\n", path, strerror(errno));
			return 1;
		}
		if (close(fd) < 0) {
			fprintf(stderr, "appendloop: close %s: %s (append %ld)\n", path, strerror(errno), i);
			return 1;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: appendloop N P messages|events PATH\n");
		return 2;
	}
	long n = atol(argv[1]);
	int p = atoi(argv[2]);
	int events = !strcmp(argv[3], "events");
	const char *path = argv[4];
	if (n <= 0 || p <= 0 || p > 256 || (!events && strcmp(argv[3], "messages"))) {
		fprintf(stderr, "appendloop: bad arguments\n");
		return 2;
	}
	int go[2];
	if (pipe(go)) {
		perror("appendloop: pipe");
		return 2;
	}
	pid_t pids[256];
	for (int i = 0; i < p; i++) {
		long share = n / p + (i < n % p);
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("appendloop: fork");
			return 2;
		}
		if (pids[i] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);	/* die with the benchmark */
			close(go[1]);
			_exit(writer(i, share, events, path, go[0]));
		}
	}
	close(go[0]);
	usleep(20000);		/* let every writer reach its read() of go */
	double t0 = now();
	close(go[1]);
	int bad = 0;
	for (int i = 0; i < p; i++) {
		int st;
		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			bad = 1;
	}
	double t1 = now();
	if (bad) {
		fprintf(stderr, "appendloop: a writer failed\n");
		return 1;
	}
	printf("%.6f %.1f\n", t1 - t0, n / (t1 - t0));
	return 0;
}
