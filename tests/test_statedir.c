/* tests/test_statedir.c — the fd-relative helpers of core/statedir.c with
 * symlinks, FIFOs, hard links and directories planted at each level, the
 * owner rule of removals, the trash. Real files in /tmp. An alarm ends a
 * test that would block. */
#include <dirent.h>
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

#include "core/statedir.h"
#include "core/util.h"

struct fx {
	char dir[64];	/* the test's directory: top/ (trusted) and out/ (what must stay) */
	char top[96], out[96];
	int topfd;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/orchfs-test-statedir.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->top, sizeof(f->top), "%s/top", f->dir);
	snprintf(f->out, sizeof(f->out), "%s/out", f->dir);
	mkdir(f->top, 0755);
	mkdir(f->out, 0755);
	f->topfd = open(f->top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	*state = f;
	alarm(20);	/* a FIFO opened by mistake would block forever */
	return f->topfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	alarm(0);
	close(f->topfd);
	rm_rf(f->dir);
	free(f);
	return 0;
}

static void put(const char *dir, const char *name, const char *text)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, text, strlen(text)), 0);
	close(fd);
}

static bool exists(const char *dir, const char *name)
{
	char p[2048];
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return lstat(p, &st) == 0;
}

static void mk(const char *dir, const char *name)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(mkdir(p, 0755), 0);
}

static void lnk(const char *target, const char *dir, const char *name)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(symlink(target, p), 0);
}

static void fifo(const char *dir, const char *name)
{
	char p[2048];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	assert_int_equal(mkfifo(p, 0644), 0);
}

/* sd_open: a symlink anywhere on the way, or at the end, is refused; so is
 * leaving the directory */
static void test_statedir__open_refuses_symlinks_at_every_level(void **state)
{
	struct fx *f = *state;
	mk(f->top, "a");
	mk(f->top, "a/b");
	put(f->top, "a/b/file", "x");
	put(f->out, "secret", "s");
	lnk(f->out, f->top, "a/link");		/* a directory's place */
	lnk("../../out/secret", f->top, "a/b/flink");	/* a file's place */
	int fd = sd_open(f->topfd, "a/b/file", O_RDONLY, 0);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sd_open(f->topfd, "a/link/secret", O_RDONLY, 0), -ELOOP);
	assert_int_equal(sd_open(f->topfd, "a/b/flink", O_RDONLY, 0), -ELOOP);
	assert_int_equal(sd_open(f->topfd, "a/b/flink", O_PATH, 0), -ELOOP);
	assert_int_equal(sd_opendir(f->topfd, "a/link"), -ELOOP);
	assert_int_equal(sd_open(f->topfd, "../out/secret", O_RDONLY, 0), -EXDEV);
	assert_int_equal(sd_open(f->topfd, "/etc/passwd", O_RDONLY, 0), -EINVAL);
	/* creating through a symlink makes nothing where it points */
	assert_true(sd_open(f->topfd, "a/link/new", O_WRONLY | O_CREAT, 0644) < 0);
	assert_false(exists(f->out, "new"));
}

/* sd_open_reg opens regular files only: a FIFO (it would block), a
 * symlink, a directory, a hard link are never opened */
static void test_statedir__open_reg_refuses_what_is_not_a_file(void **state)
{
	struct fx *f = *state;
	put(f->out, "secret", "s");
	put(f->top, "ok", "fine");
	fifo(f->top, "fifo");
	lnk("../out/secret", f->top, "link");
	mk(f->top, "dir");
	char a[256], b[256];
	snprintf(a, sizeof(a), "%s/secret", f->out);
	snprintf(b, sizeof(b), "%s/hard", f->top);
	assert_int_equal(link(a, b), 0);
	mode_t found;
	bool made;
	int fd = sd_open_reg(f->topfd, "ok", O_RDONLY, 0, &found, &made);
	assert_true(fd >= 0);
	assert_false(made);
	close(fd);
	/* for writing too, and with O_CREAT (the FIFO has no reader: a
	 * blocking open would never return) */
	static const int flags[] = { O_RDONLY, O_WRONLY | O_APPEND, O_WRONLY | O_APPEND | O_CREAT };
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(sd_open_reg(f->topfd, "fifo", flags[i], 0644, &found, NULL), -EIO);
		assert_true(S_ISFIFO(found));
		assert_int_equal(sd_open_reg(f->topfd, "link", flags[i], 0644, &found, NULL), -EIO);
		assert_true(S_ISLNK(found));
		assert_int_equal(sd_open_reg(f->topfd, "dir", flags[i], 0644, &found, NULL), -EIO);
		assert_true(S_ISDIR(found));
		assert_int_equal(sd_open_reg(f->topfd, "hard", flags[i], 0644, &found, NULL), -EIO);
		assert_true(S_ISREG(found));
	}
	assert_string_equal(sd_type_name(S_IFIFO), "a FIFO");
	/* O_TRUNC through a symlink truncates nothing */
	assert_int_equal(sd_open_reg(f->topfd, "link", O_WRONLY | O_TRUNC, 0, NULL, NULL), -EIO);
	struct stat st;
	assert_int_equal(stat(a, &st), 0);
	assert_int_equal(st.st_size, 1);
	/* a new one is made */
	fd = sd_open_reg(f->topfd, "new", O_WRONLY | O_CREAT, 0600, NULL, &made);
	assert_true(fd >= 0);
	assert_true(made);
	close(fd);
	assert_int_equal(sd_open_reg(f->topfd, "a/b", O_RDONLY, 0, NULL, NULL), -EINVAL);
}

static void test_statedir__mkdirs_does_not_follow(void **state)
{
	struct fx *f = *state;
	assert_int_equal(sd_mkdirs(f->topfd, "x/y/z", 0755), 0);
	assert_true(exists(f->top, "x/y/z"));
	lnk(f->out, f->top, "x/l");
	assert_int_equal(sd_mkdirs(f->topfd, "x/l/evil", 0755), -ELOOP);
	assert_false(exists(f->out, "evil"));
	put(f->top, "x/file", "");
	assert_int_equal(sd_mkdirs(f->topfd, "x/file/d", 0755), -ENOTDIR);
}

/* a tree with symlinks to the outside at every level, FIFOs, and 120
 * nested directories: everything in it goes, nothing outside it */
static void test_statedir__rm_tree_never_follows(void **state)
{
	struct fx *f = *state;
	put(f->out, "keep1", "1");
	mk(f->out, "keepdir");
	put(f->out, "keepdir/keep2", "2");
	char p[1024] = "t";
	mk(f->top, "t");
	for (int i = 0; i < 120; i++) {
		char name[1100];
		snprintf(name, sizeof(name), "%s/out", p);
		lnk(f->out, f->top, name);	/* to the outside, absolute */
		snprintf(name, sizeof(name), "%s/f", p);
		fifo(f->top, name);
		snprintf(name, sizeof(name), "%s/k", p);
		lnk("../../../../../out/keepdir", f->top, name);
		strcat(p, "/d");
		mk(f->top, p);
	}
	struct sd_rm_stats st;
	assert_int_equal(sd_rm_tree(f->topfd, "t", geteuid(), NULL, &st), 0);
	assert_int_equal(st.left, 0);
	assert_false(exists(f->top, "t"));
	assert_true(exists(f->out, "keep1"));
	assert_true(exists(f->out, "keepdir/keep2"));
	/* a symlink as the tree itself goes as a symlink */
	lnk(f->out, f->top, "l");
	assert_int_equal(sd_rm_tree(f->topfd, "l", geteuid(), NULL, NULL), 0);
	assert_true(exists(f->out, "keep1"));
}

/* the owner rule: a directory of someone else's is not entered (root only) */
static void test_statedir__rm_tree_enters_only_the_owners(void **state)
{
	struct fx *f = *state;
	if (geteuid() != 0)
		skip();
	mk(f->top, "ws");
	mk(f->top, "ws/mine");
	put(f->top, "ws/mine/a", "a");
	mk(f->top, "ws/roots");
	put(f->top, "ws/roots/b", "b");
	put(f->top, "ws/rootfile", "c");
	char p[2048];
	uid_t u = 54321;
	snprintf(p, sizeof(p), "%s/ws", f->top);
	assert_int_equal(chown(p, u, u), 0);
	snprintf(p, sizeof(p), "%s/ws/mine", f->top);
	assert_int_equal(chown(p, u, u), 0);
	snprintf(p, sizeof(p), "%s/ws/mine/a", f->top);
	assert_int_equal(chown(p, u, u), 0);
	struct sd_rm_stats st;
	assert_int_equal(sd_rm_tree(f->topfd, "ws", u, NULL, &st), -EPERM);
	assert_false(exists(f->top, "ws/mine"));
	assert_false(exists(f->top, "ws/rootfile"));	/* in the owner's directory: theirs to remove */
	assert_true(exists(f->top, "ws/roots/b"));	/* not the owner's directory: kept */
	assert_int_equal(st.left, 2);			/* ws/roots and ws */
}

static void test_statedir__trash_removes_in_the_background(void **state)
{
	struct fx *f = *state;
	mk(f->top, "trash");
	mk(f->top, "old");
	put(f->top, "trash/0.left-by-a-previous-daemon", "x");
	put(f->top, "old/f", "x");
	lnk(f->out, f->top, "old/l");
	put(f->out, "keep", "k");
	struct sd_trash t = { .fd = -1 };
	int tfd = open(f->top, O_RDONLY | O_DIRECTORY);
	int trash = openat(tfd, "trash", O_RDONLY | O_DIRECTORY);
	assert_int_equal(sd_trash_start(&t, trash), 0);
	assert_int_equal(sd_trash_put(&t, tfd, "old", geteuid()), 0);
	assert_false(exists(f->top, "old"));	/* out of the way at once */
	assert_int_equal(sd_trash_put(&t, tfd, "missing", geteuid()), 0);
	sd_trash_drain(&t);
	sd_trash_stop(&t);
	close(tfd);
	DIR *d = opendir(f->top);
	char path[128];
	snprintf(path, sizeof(path), "%s/trash", f->top);
	closedir(d);
	d = opendir(path);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 0);
	assert_true(exists(f->out, "keep"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_statedir__open_refuses_symlinks_at_every_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statedir__open_reg_refuses_what_is_not_a_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statedir__mkdirs_does_not_follow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statedir__rm_tree_never_follows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statedir__rm_tree_enters_only_the_owners, setup, teardown),
		cmocka_unit_test_setup_teardown(test_statedir__trash_removes_in_the_background, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
