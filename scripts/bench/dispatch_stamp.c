/* scripts/bench/dispatch_stamp.c — the step of scripts/bench/dispatch.sh:
 * its first act is reading CLOCK_REALTIME, which it then writes (in
 * nanoseconds, one line) to the file named by its argument. Built at run
 * time into the benchmark's scratch directory, never committed. */
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (argc != 2)
		return 2;
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, buf, (size_t)n) != n || close(fd))
		return 1;
	return 0;
}
