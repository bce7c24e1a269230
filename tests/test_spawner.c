/* tests/test_spawner.c — the spawner threads (core/spawner.c) and the WAL
 * syncer (core/syncer.c): real processes, a real file, jobs coming back
 * through a real event loop. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/proc.h"
#include "core/spawner.h"
#include "core/syncer.h"
#include "core/util.h"

static struct spawn_job *back[16];
static int nback;

static void job_back(struct loop_work *w, void *ctx) { back[nback++] = (struct spawn_job *)w; }

static char **strv(const char *a, const char *b, const char *c)
{
	char **v = calloc(4, sizeof(char *));
	v[0] = a ? strdup(a) : NULL;
	v[1] = b ? strdup(b) : NULL;
	v[2] = c ? strdup(c) : NULL;
	return v;
}

static struct spawn_job *job(char **argv, const char *path, const char *cwd, int out_fd)
{
	struct spawn_job *j = calloc(1, sizeof(*j));
	j->argv = argv;
	j->envp = orch_strv_pack((char *[]){ "A=1" }, 1);
	j->path = path ? strdup(path) : NULL;
	j->cwd = cwd ? strdup(cwd) : NULL;
	j->out_fd = out_fd;
	j->err_fd = -1;
	j->env_fd = -1;
	j->done.fn = job_back;
	return j;
}

static int wait_exit(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void wait_back(struct loop *l, int n)
{
	for (int i = 0; i < 200 && nback < n; i++)
		assert_int_equal(loop_turn(l, 50), 0);
	assert_int_equal(nback, n);
}

/* jobs come back with their process, in its cwd, output on the given fd */
static void test_spawner__starts_jobs_and_posts_them_back(void **state)
{
	struct loop l;
	struct spawner s;
	assert_int_equal(loop_init(&l, NULL), 0);
	assert_int_equal(spawner_start(&s, &l), 0);
	char dir[] = "/tmp/orch-spawner.XXXXXX";
	assert_non_null(mkdtemp(dir));
	nback = 0;
	for (int i = 0; i < 4; i++) {
		int p[2];
		assert_int_equal(pipe(p), 0);
		spawner_submit(&s, job(strv("sh", "-c", "pwd; echo $A"), "/usr/bin:/bin", dir, p[1]));
		wait_back(&l, i + 1);
		struct spawn_job *j = back[i];
		assert_int_equal(j->err, 0);
		assert_true(j->pid > 0);
		assert_int_equal(wait_exit(j->pid), 0);
		char buf[256] = { 0 };
		assert_true(read(p[0], buf, sizeof(buf) - 1) > 0);
		char want[300];
		snprintf(want, sizeof(want), "%s\n1\n", dir);
		assert_string_equal(buf, want);
		close(p[0]);
		if (j->pidfd >= 0)
			close(j->pidfd);
		spawn_job_free(j);
	}
	spawner_stop(&s);
	rmdir(dir);
	loop_release(&l);
}

/* a command not found fails the job with ENOENT; one found once and then
 * removed is searched for again (the PATH cache never runs a stale path) */
static void test_spawner__not_found_and_stale_cache(void **state)
{
	struct loop l;
	struct spawner s;
	assert_int_equal(loop_init(&l, NULL), 0);
	assert_int_equal(spawner_start(&s, &l), 0);
	char d1[] = "/tmp/orch-spawner1.XXXXXX", d2[] = "/tmp/orch-spawner2.XXXXXX";
	assert_non_null(mkdtemp(d1));
	assert_non_null(mkdtemp(d2));
	char path[128], exe1[128], exe2[128];
	snprintf(path, sizeof(path), "%s:%s", d1, d2);
	snprintf(exe1, sizeof(exe1), "%s/orch-t", d1);
	snprintf(exe2, sizeof(exe2), "%s/orch-t", d2);
	FILE *f = fopen(exe1, "w");
	fputs("#!/bin/sh\nexit 3\n", f);
	fclose(f);
	chmod(exe1, 0755);
	f = fopen(exe2, "w");
	fputs("#!/bin/sh\nexit 4\n", f);
	fclose(f);
	chmod(exe2, 0755);

	nback = 0;
	int devnull = open("/dev/null", O_WRONLY);
	/* run it on both threads, so that both caches hold the first one */
	for (int i = 0; i < 4; i++)
		spawner_submit(&s, job(strv("orch-t", NULL, NULL), path, NULL, dup(devnull)));
	wait_back(&l, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(back[i]->err, 0);
		assert_int_equal(wait_exit(back[i]->pid), 3);
		if (back[i]->pidfd >= 0)
			close(back[i]->pidfd);
		spawn_job_free(back[i]);
	}
	unlink(exe1);
	nback = 0;
	for (int i = 0; i < 4; i++)
		spawner_submit(&s, job(strv("orch-t", NULL, NULL), path, NULL, dup(devnull)));
	wait_back(&l, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(back[i]->err, 0);
		assert_int_equal(wait_exit(back[i]->pid), 4);
		if (back[i]->pidfd >= 0)
			close(back[i]->pidfd);
		spawn_job_free(back[i]);
	}
	unlink(exe2);
	nback = 0;
	spawner_submit(&s, job(strv("orch-t", NULL, NULL), path, NULL, dup(devnull)));
	wait_back(&l, 1);
	assert_int_equal(back[0]->err, -ENOENT);
	spawn_job_free(back[0]);
	close(devnull);
	spawner_stop(&s);
	rmdir(d1);
	rmdir(d2);
	loop_release(&l);
}

/* what execvp does and posix_spawn does not: a script without #! runs
 * with /bin/sh; a relative PATH entry is relative to the step's cwd */
static void test_spawner__scripts_and_relative_path(void **state)
{
	struct loop l;
	struct spawner s;
	assert_int_equal(loop_init(&l, NULL), 0);
	assert_int_equal(spawner_start(&s, &l), 0);
	char dir[] = "/tmp/orch-spawner3.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char bin[160], exe[200];
	snprintf(bin, sizeof(bin), "%s/bin", dir);
	assert_int_equal(mkdir(bin, 0755), 0);
	snprintf(exe, sizeof(exe), "%s/noshebang", bin);
	FILE *f = fopen(exe, "w");
	fputs("exit 7\n", f);	/* no #! line */
	fclose(f);
	chmod(exe, 0755);
	int devnull = open("/dev/null", O_WRONLY);
	nback = 0;
	/* PATH "bin": found only relative to the step's cwd (DIR) */
	for (int i = 0; i < 3; i++)
		spawner_submit(&s, job(strv("noshebang", NULL, NULL), "bin:/usr/bin:/bin", dir, dup(devnull)));
	wait_back(&l, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(back[i]->err, 0);
		assert_int_equal(wait_exit(back[i]->pid), 7);
		if (back[i]->pidfd >= 0)
			close(back[i]->pidfd);
		spawn_job_free(back[i]);
	}
	/* elsewhere, the same PATH finds nothing (nothing was cached for it) */
	nback = 0;
	spawner_submit(&s, job(strv("noshebang", NULL, NULL), "bin:/usr/bin:/bin", "/", dup(devnull)));
	wait_back(&l, 1);
	assert_int_equal(back[0]->err, -ENOENT);
	spawn_job_free(back[0]);
	close(devnull);
	spawner_stop(&s);
	unlink(exe);
	rmdir(bin);
	rmdir(dir);
	loop_release(&l);
}

static int synced_calls;
static void on_synced(struct loop_work *w, void *ctx) { synced_calls++; }

/* every request gets a generation; the work posted back reports them done,
 * several requests made during one sync share the next */
/* What the engine may spawn on its own thread (proc_exe_trusted): a
 * root-owned chain on local file systems to a host ELF file, every symlink
 * on the way included; nothing a user could redirect, nothing on a file
 * system that is not local (here /proc), no script. */
static int sh(const char *fmt, const char *a, const char *b)
{
	char *cmd = orch_asprintf(fmt, a, b);
	int rc = cmd ? system(cmd) : -1;
	orch_free(cmd);
	return rc;
}

static void test_spawner__trusted_commands(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	assert_true(proc_exe_trusted("/bin/sh"));	/* through /bin -> usr/bin on merged /usr */
	assert_true(proc_exe_trusted("/usr/bin/true"));
	assert_false(proc_exe_trusted("/usr/bin"));	/* a directory */
	assert_false(proc_exe_trusted("/nonexistent/true"));
	assert_false(proc_exe_trusted("/proc/self/exe"));	/* procfs is not a local disk */
	assert_false(proc_exe_trusted("usr/bin/true"));	/* relative */

	/* a root-owned directory of our own: trusted while no one else may
	 * write to it, and only for ELF executables of this machine */
	char dir[] = "/var/tmp/orchfs-trust.XXXXXX";
	if (!mkdtemp(dir)) {
		skip();
		return;
	}
	/* /var/tmp is sticky and world-writable: nothing under it is trusted */
	char path[128], link[128], script[128];
	snprintf(path, sizeof(path), "%s/t", dir);
	assert_int_equal(sh("cp /usr/bin/true %s%s", path, ""), 0);
	assert_false(proc_exe_trusted(path));
	char rdir[] = "/var/lib/orchfs-trust.XXXXXX";
	assert_non_null(mkdtemp(rdir));
	assert_int_equal(chmod(rdir, 0755), 0);
	snprintf(path, sizeof(path), "%s/t", rdir);
	snprintf(link, sizeof(link), "%s/l", rdir);
	snprintf(script, sizeof(script), "%s/s", rdir);
	assert_int_equal(sh("cp /usr/bin/true %s && chmod 755 %s", path, path), 0);
	assert_true(proc_exe_trusted(path));
	assert_int_equal(symlink("t", link), 0);
	assert_true(proc_exe_trusted(link));
	assert_int_equal(chmod(path, 0775), 0);	/* group-writable */
	assert_false(proc_exe_trusted(path));
	assert_false(proc_exe_trusted(link));
	assert_int_equal(chmod(path, 0755), 0);
	assert_int_equal(chmod(rdir, 0757), 0);	/* the directory writable by others */
	assert_false(proc_exe_trusted(path));
	assert_int_equal(chmod(rdir, 0755), 0);
	/* a link leading out of the chain, into the world-writable dir */
	assert_int_equal(unlink(link), 0);
	snprintf(path, sizeof(path), "%s/t", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_false(proc_exe_trusted(link));
	/* a script, even a root-owned one */
	FILE *f = fopen(script, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\nexit 0\n", f);
	fclose(f);
	assert_int_equal(chmod(script, 0755), 0);
	assert_false(proc_exe_trusted(script));
	assert_int_equal(rm_rf(dir), 0);
	assert_int_equal(rm_rf(rdir), 0);
}

/* the descriptors handed to the child may be any of 0-4 (a caller with few
 * open): each reaches its place, none is overwritten before its turn */
static void test_spawner__low_fds(void **state)
{
	int save0 = dup(0), save1 = dup(1), p[2];
	int env = memfd_create("env", 0);
	assert_true(save0 >= 0 && save1 >= 0 && env >= 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(env, "A=1", 4), 4);
	assert_int_equal(lseek(env, 0, SEEK_SET), 0);
	assert_int_equal(dup2(p[1], 0), 0);
	assert_int_equal(dup2(env, 1), 1);
	close(p[1]);
	close(env);
	char *argv[] = { "sh", "-c", "echo out; tr '\\0' '\\n' <&4", NULL };
	char *envp[] = { NULL };
	struct proc_spec spec = { .path = "/bin/sh", .argv = argv, .envp = envp, .out_fd = 0,
				  .err_fd = -1, .env_fd = 1, .cwd = NULL, .cwd_fd = -1 };
	pid_t pid = -1;
	int pidfd = -1;
	int rc = proc_spawn(&spec, &pid, &pidfd);
	dup2(save0, 0);
	dup2(save1, 1);
	close(save0);
	close(save1);
	assert_int_equal(rc, 0);
	assert_int_equal(wait_exit(pid), 0);
	if (pidfd >= 0)
		close(pidfd);
	char buf[64] = { 0 };
	size_t got = 0;
	ssize_t n;
	while (got < sizeof(buf) - 1 && (n = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(p[0]);
	assert_string_equal(buf, "out\nA=1\n");
}

static void test_syncer__generations(void **state)
{
	struct loop l;
	struct syncer sy;
	char path[] = "/tmp/orch-syncer.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(loop_init(&l, NULL), 0);
	assert_int_equal(syncer_start(&sy, &l, path, on_synced), 0);
	synced_calls = 0;
	uint64_t last = 0;
	for (int i = 0; i < 50; i++) {
		assert_int_equal(write(fd, "0123456789\n", 11), 11);
		last = syncer_request(&sy);
	}
	assert_int_equal(last, 50);
	int err = 0;
	uint64_t done = 0;
	for (int i = 0; i < 200 && done < last; i++) {
		assert_int_equal(loop_turn(&l, 50), 0);
		if (synced_calls)
			done = syncer_done(&sy, &err);
	}
	assert_int_equal(done, last);
	assert_int_equal(err, 0);
	assert_true(synced_calls <= 50);
	syncer_stop(&sy);
	/* a missing file has nothing to sync: not an error */
	unlink(path);
	assert_int_equal(syncer_start(&sy, &l, path, on_synced), 0);
	last = syncer_request(&sy);
	synced_calls = 0;
	done = 0;
	for (int i = 0; i < 200 && done < last; i++) {
		assert_int_equal(loop_turn(&l, 50), 0);
		if (synced_calls)
			done = syncer_done(&sy, &err);
	}
	assert_int_equal(done, last);
	assert_int_equal(err, 0);
	syncer_stop(&sy);
	close(fd);
	loop_release(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spawner__starts_jobs_and_posts_them_back),
		cmocka_unit_test(test_spawner__not_found_and_stale_cache),
		cmocka_unit_test(test_spawner__scripts_and_relative_path),
		cmocka_unit_test(test_spawner__trusted_commands),
		cmocka_unit_test(test_spawner__low_fds),
		cmocka_unit_test(test_syncer__generations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
