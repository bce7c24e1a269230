/* scripts/bench/dispatch_driver.c — the two sides of scripts/bench/dispatch.sh
 * (built at run time into the benchmark's scratch directory, never
 * committed). Each prints one latency per line, in nanoseconds: from a
 * CLOCK_REALTIME reading taken by the driver to the one STAMP (the program
 * of dispatch_stamp.c) takes first thing in its main().
 *
 *   dispatch_driver spawn N STAMP DIR
 *	N times: read the clock, posix_spawn STAMP DIR/aI, waitpid it.
 *   dispatch_driver submit N STAMP MOUNT DIR PREFIX
 *	N times, one after another: write the one-step plan PREFIXI.json
 *	({"sandbox": {"isolation": "none"}, "steps": [{"id": "s", "command":
 *	STAMP, "args": [DIR/PREFIXI]}]}) into MOUNT/plans with open, write,
 *	close; read the clock as soon as close() returns; wait (inotify on DIR,
 *	so nothing touches the daemon meanwhile) for the stamp file; then wait
 *	for the run to finish (its status polled every millisecond) before the
 *	next plan, so each submission meets an otherwise idle daemon.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ns(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "dispatch_driver: %s %s: %s\n", what, path ? path : "", strerror(errno));
	exit(1);
}

/* the whole (small) file at PATH into BUF; its length, or -1 */
static ssize_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	ssize_t n;
	while (len < size - 1 && (n = read(fd, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = 0;
	return (ssize_t)len;
}

static long long read_stamp(const char *path)
{
	char buf[64];
	if (slurp(path, buf, sizeof(buf)) <= 0)
		die("no stamp in", path);
	return atoll(buf);
}

static int spawn_side(int n, const char *stamp, const char *dir)
{
	char path[PATH_MAX];
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/a%d", dir, i);
		char *argv[] = { (char *)stamp, path, NULL };
		pid_t pid;
		long long t = now_ns(CLOCK_REALTIME);
		int rc = posix_spawn(&pid, stamp, NULL, NULL, argv, environ);
		if (rc) {
			errno = rc;
			die("posix_spawn", stamp);
		}
		int st;
		while (waitpid(pid, &st, 0) < 0)
			if (errno != EINTR)
				die("waitpid", NULL);
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			fprintf(stderr, "dispatch_driver: %s failed\n", stamp);
			return 1;
		}
		printf("%lld\n", read_stamp(path) - t);
	}
	return 0;
}

/* wait for an IN_CLOSE_WRITE of NAME in the watched directory */
static void wait_stamp(int in, const char *name)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	long long deadline = now_ns(CLOCK_MONOTONIC) + 60000000000LL;
	for (;;) {
		struct pollfd p = { .fd = in, .events = POLLIN };
		int left = (int)((deadline - now_ns(CLOCK_MONOTONIC)) / 1000000);
		if (left <= 0 || poll(&p, 1, left) == 0) {
			fprintf(stderr, "dispatch_driver: no stamp %s after 60 s\n", name);
			exit(1);
		}
		ssize_t len = read(in, buf, sizeof(buf));
		if (len < 0) {
			if (errno == EINTR)
				continue;
			die("read inotify", NULL);
		}
		for (char *p = buf; p < buf + len;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->len && !strcmp(ev->name, name))
				return;
			p += sizeof(*ev) + ev->len;
		}
	}
}

/* poll the run's status every millisecond until it has finished */
static void wait_run(const char *status)
{
	char buf[4096];
	struct timespec ms = { 0, 1000000 };
	long long deadline = now_ns(CLOCK_MONOTONIC) + 60000000000LL;
	for (;;) {
		if (slurp(status, buf, sizeof(buf)) > 0) {
			if (strstr(buf, "\"state\": \"succeeded\""))
				return;
			if (strstr(buf, "\"state\": \"failed\"") || strstr(buf, "\"state\": \"cancelled\"")) {
				fprintf(stderr, "dispatch_driver: the run failed: %s\n", buf);
				exit(1);
			}
		}
		if (now_ns(CLOCK_MONOTONIC) > deadline) {
			fprintf(stderr, "dispatch_driver: %s: no end after 60 s\n", status);
			exit(1);
		}
		nanosleep(&ms, NULL);
	}
}

static int submit_side(int n, const char *stamp, const char *mount, const char *dir,
		       const char *prefix)
{
	int in = inotify_init1(IN_CLOEXEC);
	if (in < 0 || inotify_add_watch(in, dir, IN_CLOSE_WRITE) < 0)
		die("inotify", dir);
	char plan[PATH_MAX + 256], path[PATH_MAX], status[PATH_MAX], name[128], sname[128];
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s%d", prefix, i);
		snprintf(sname, sizeof(sname), "p%d", i);
		int len = snprintf(plan, sizeof(plan),
				   "{\"sandbox\": {\"isolation\": \"none\"}, \"steps\": [{\"id\": \"s\", "
				   "\"command\": \"%s\", \"args\": [\"%s/%s\"]}]}\n",
				   stamp, dir, sname);
		snprintf(path, sizeof(path), "%s/plans/%s.json", mount, name);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die("open", path);
		if (write(fd, plan, (size_t)len) != len)
			die("write", path);
		int rc = close(fd);
		long long t = now_ns(CLOCK_REALTIME);
		if (rc)
			die("close (the submission)", path);
		wait_stamp(in, sname);
		snprintf(path, sizeof(path), "%s/%s", dir, sname);
		printf("%lld\n", read_stamp(path) - t);
		snprintf(status, sizeof(status), "%s/runs/%s-1/status", mount, name);
		wait_run(status);
	}
	close(in);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "spawn"))
		return spawn_side(atoi(argv[2]), argv[3], argv[4]);
	if (argc == 7 && !strcmp(argv[1], "submit"))
		return submit_side(atoi(argv[2]), argv[3], argv[4], argv[5], argv[6]);
	fprintf(stderr, "usage: dispatch_driver spawn N STAMP DIR | submit N STAMP MOUNT DIR PREFIX\n");
	return 2;
}
