/* scripts/bench/dag_time.c — the stopwatch of scripts/bench/dag.sh (built
 * into the benchmark's scratch directory at run time, never committed).
 *
 *   dag_time cmd PROG ARGS...
 *	runs PROG (stdout to /dev/null) and prints its wall time in seconds;
 *	fails when it does not exit 0.
 *   dag_time plan PLAN DEST EVENTS
 *	starts the clock, runs `cp PLAN DEST` (DEST is MOUNT/plans/NAME.json),
 *	then follows EVENTS (MOUNT/runs/NAME-1/events) from its start until the
 *	run.succeeded line appears, and prints the time from just before the
 *	cp to that line in seconds; fails on run.failed or run.cancelled. At
 *	the end of the file it sleeps $DAG_POLL_US microseconds (default 10000)
 *	before reading again: the events file does not block at its end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* run ARGV with stdout on /dev/null; its exit status, or -1 */
static int run(char **argv)
{
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		fprintf(stderr, "dag_time: %s: %s\n", argv[0], strerror(rc));
		return -1;
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* 1 on run.succeeded, -1 on another end of the run, 0 otherwise */
static int verdict(const char *line)
{
	if (strstr(line, "\"type\":\"run.succeeded\""))
		return 1;
	if (strstr(line, "\"type\":\"run.failed\"") || strstr(line, "\"type\":\"run.cancelled\""))
		return -1;
	return 0;
}

static int follow(const char *path, double t0)
{
	const char *e = getenv("DAG_POLL_US");
	long poll_us = e ? atol(e) : 10000;
	struct timespec nap = { poll_us / 1000000, (poll_us % 1000000) * 1000 };
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "dag_time: %s: %s\n", path, strerror(errno));
		return -1;
	}
	static char buf[1 << 20];
	size_t len = 0;	/* bytes of an incomplete line kept at buf */
	for (;;) {
		if (len == sizeof(buf) - 1)
			len = 0;	/* no event line is that long: drop it */
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "dag_time: read %s: %s\n", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (n == 0) {
			if (now() - t0 > 3600) {
				fprintf(stderr, "dag_time: %s: no end of the run after an hour\n", path);
				close(fd);
				return -1;
			}
			nanosleep(&nap, NULL);
			continue;
		}
		len += (size_t)n;
		buf[len] = 0;
		char *p = buf, *nl;
		while ((nl = memchr(p, '\n', len - (size_t)(p - buf)))) {
			*nl = 0;
			int v = verdict(p);
			if (v) {
				close(fd);
				if (v < 0)
					fprintf(stderr, "dag_time: the run did not succeed: %s\n", p);
				return v > 0 ? 0 : -1;
			}
			p = nl + 1;
		}
		len -= (size_t)(p - buf);
		memmove(buf, p, len);
	}
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "cmd")) {
		double t0 = now();
		int rc = run(argv + 2);
		double t1 = now();
		if (rc) {
			fprintf(stderr, "dag_time: %s exited %d\n", argv[2], rc);
			return 1;
		}
		printf("%.6f\n", t1 - t0);
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "plan")) {
		char *cp[] = { "cp", argv[2], argv[3], NULL };
		double t0 = now();
		int rc = run(cp);
		if (rc) {
			fprintf(stderr, "dag_time: cp %s %s exited %d\n", argv[2], argv[3], rc);
			return 1;
		}
		if (follow(argv[4], t0))
			return 1;
		printf("%.6f\n", now() - t0);
		return 0;
	}
	fprintf(stderr, "usage: dag_time cmd PROG ARGS... | dag_time plan PLAN DEST EVENTS\n");
	return 2;
}
