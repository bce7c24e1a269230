/* tests/test_ident.c — user names and group membership (core/ident.h), from a
 * passwd and a group file of the test's own in a temporary directory: names,
 * "uid N" for a uid the file does not know, the cache dropped when the
 * passwd file changes, entries longer than a first buffer, and membership by
 * primary gid, by a supplementary gid and by the group file's member list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/ident.h"
#include "core/util.h"

struct fx {
	char dir[64];
	char passwd[96];
	char group[96];
	struct ident id;
};

static const char passwd_text[] =
	"root:x:0:0:root:/root:/bin/bash\n"
	"alice:x:1000:1000:Alice A.:/home/alice:/bin/sh\n"
	"bob:x:1064:100::/home/bob:/bin/sh\n"		/* 1000 + IDENT_HASH: alice's bucket */
	"svc$:x:2000:2000::/:/usr/sbin/nologin\n";

static const char group_text[] =
	"root:x:0:\n"
	"users:x:100:\n"
	"ops:x:500:bob,carol\n"
	"dev:x:1000:\n"
	"audit:x:600:\n"
	"empty:x:700:\n";

/* Write TEXT to PATH through a new file renamed onto it (a new inode, as
 * useradd and vipw replace /etc/passwd). */
static void replace_file(const char *path, const char *text)
{
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/* Write TEXT over PATH in place (the same inode). */
static void rewrite_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(close(fd), 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/orchfs-test-ident.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->passwd, sizeof(f->passwd), "%s/passwd", f->dir);
	snprintf(f->group, sizeof(f->group), "%s/group", f->dir);
	replace_file(f->passwd, passwd_text);
	replace_file(f->group, group_text);
	ident_init(&f->id, f->passwd, f->group);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	ident_release(&f->id);
	rm_rf(f->dir);
	free(f);
	return 0;
}

/* The cache re-checks the passwd file at most once a second. Rather than
 * sleep, the tests say when the last check was: 0 makes the next call
 * check, an hour ahead makes it trust the cache. */
static void check_now(struct ident *id) { id->checked_ms = 0; }
static void check_not_due(struct ident *id) { id->checked_ms = clock_mono_ms() + 3600 * 1000; }

static void test_ident__defaults(void **state)
{
	struct ident id;
	ident_init(&id, NULL, NULL);
	assert_string_equal(id.passwd, "/etc/passwd");
	assert_string_equal(id.group, "/etc/group");
	/* every system has a root */
	assert_string_equal(ident_user(&id, 0), "root");
	ident_release(&id);
}

static void test_ident__names(void **state)
{
	struct fx *f = *state;

	assert_string_equal(ident_user(&f->id, 0), "root");
	assert_string_equal(ident_user(&f->id, 1000), "alice");
	assert_string_equal(ident_user(&f->id, 1064), "bob");
	assert_string_equal(ident_user(&f->id, 2000), "svc$");
	assert_string_equal(ident_user(&f->id, 4242), "uid 4242");
	assert_string_equal(ident_user(&f->id, 4294967294u), "uid 4294967294");
	/* a gid is no uid */
	assert_string_equal(ident_user(&f->id, 100), "uid 100");
	/* the second time from the cache, the same name */
	const char *a = ident_user(&f->id, 1000);
	assert_string_equal(a, "alice");
	assert_ptr_equal(ident_user(&f->id, 1000), a);
	assert_string_equal(ident_user(&f->id, 1064), "bob");
	assert_string_equal(ident_user(&f->id, 4242), "uid 4242");
}

/* Lines the file may hold besides users: skipped, the users after them found. */
static void test_ident__odd_lines(void **state)
{
	struct fx *f = *state;

	replace_file(f->passwd,
		     "# users\n"
		     "\n"
		     "garbage line\n"
		     "short:x:3\n"
		     "alice:x:1000:1000::/:/bin/sh\n"
		     "toolong_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx:x:3000:3000::/:/bin/sh\n"
		     "last:x:4000:4000::/:/bin/sh");	/* no final newline */
	check_now(&f->id);
	assert_string_equal(ident_user(&f->id, 1000), "alice");
	assert_string_equal(ident_user(&f->id, 4000), "last");
	/* a name too long for IDENT_NAME_MAX is not cut: the uid instead */
	assert_string_equal(ident_user(&f->id, 3000), "uid 3000");
}

/* An entry longer than the first buffer (a long GECOS field, a group of many
 * members) hides none of the entries after it. */
static void test_ident__long_entries(void **state)
{
	struct fx *f = *state;
	struct sbuf pw = SBUF_INIT, gr = SBUF_INIT;

	sbuf_adds(&pw, "root:x:0:0:root:/root:/bin/bash\nlong:x:7:7:");
	for (int i = 0; i < 5000; i++)
		sbuf_adds(&pw, "G");
	sbuf_adds(&pw, ":/:/bin/sh\nalice:x:1000:1000::/:/bin/sh\n");
	assert_false(sbuf_failed(&pw));
	replace_file(f->passwd, sbuf_str(&pw));
	check_now(&f->id);
	/* no memory for the larger buffer: no name this time, and none kept */
	orch_alloc_fail_after(1);
	assert_string_equal(ident_user(&f->id, 1000), "uid 1000");
	orch_alloc_fail_after(0);
	check_not_due(&f->id);
	assert_string_equal(ident_user(&f->id, 1000), "alice");
	assert_string_equal(ident_user(&f->id, 7), "long");

	/* 20,000 members: some 200 KB in one line */
	sbuf_adds(&gr, "big:x:800:");
	for (int i = 0; i < 20000; i++)
		sbuf_addf(&gr, "%suser%05d", i ? "," : "", i);
	sbuf_adds(&gr, "\nops:x:500:carol\n");
	assert_false(sbuf_failed(&gr));
	replace_file(f->group, sbuf_str(&gr));
	assert_true(ident_in_group(&f->id, "user19999", 1, NULL, 0, "big"));
	assert_false(ident_in_group(&f->id, "user20000", 1, NULL, 0, "big"));
	assert_true(ident_in_group(&f->id, "carol", 1, NULL, 0, "ops"));
	assert_true(ident_in_group(&f->id, "dave", 500, NULL, 0, "ops"));
	sbuf_release(&pw);
	sbuf_release(&gr);
}

/* The passwd file there but not readable now (no descriptor left): "uid N"
 * this time, not kept for the next call. */
static void test_ident__unreadable_not_cached(void **state)
{
	struct fx *f = *state;
	struct rlimit old, low;

	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	int fd = dup(0);
	assert_true(fd >= 0);
	close(fd);
	low = old;
	low.rlim_cur = (rlim_t)fd;	/* the lowest free descriptor: none to open */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	const char *a = ident_user(&f->id, 1000);
	bool in = ident_in_group(&f->id, "alice", 1000, NULL, 0, "dev");
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_string_equal(a, "uid 1000");
	assert_false(in);
	check_not_due(&f->id);
	assert_string_equal(ident_user(&f->id, 1000), "alice");
	assert_true(ident_in_group(&f->id, "alice", 1000, NULL, 0, "dev"));
}

static void test_ident__no_passwd_file(void **state)
{
	struct fx *f = *state;
	struct ident id;
	char path[128];

	snprintf(path, sizeof(path), "%s/missing", f->dir);
	ident_init(&id, path, path);
	assert_string_equal(ident_user(&id, 0), "uid 0");
	assert_string_equal(ident_user(&id, 1000), "uid 1000");
	assert_false(ident_in_group(&id, "alice", 1000, NULL, 0, "dev"));
	ident_release(&id);
}

/* The names are cached until the passwd file changes: replaced (a new
 * inode), rewritten in place (its size), removed. */
static void test_ident__cache_dropped_on_change(void **state)
{
	struct fx *f = *state;

	assert_string_equal(ident_user(&f->id, 1000), "alice");
	assert_string_equal(ident_user(&f->id, 3000), "uid 3000");

	/* renamed: alice is alicia now, and uid 3000 is carol */
	replace_file(f->passwd,
		     "root:x:0:0:root:/root:/bin/bash\n"
		     "alicia:x:1000:1000::/home/alice:/bin/sh\n"
		     "carol:x:3000:3000::/home/carol:/bin/sh\n");
	/* within the second: the cache, as it was (and so no read per call) */
	check_not_due(&f->id);
	assert_string_equal(ident_user(&f->id, 1000), "alice");
	assert_string_equal(ident_user(&f->id, 3000), "uid 3000");
	/* once checked: the new names, known and unknown alike */
	check_now(&f->id);
	assert_string_equal(ident_user(&f->id, 1000), "alicia");
	assert_string_equal(ident_user(&f->id, 3000), "carol");
	assert_string_equal(ident_user(&f->id, 1064), "uid 1064");

	/* checked again with nothing changed: still the cache */
	check_now(&f->id);
	const char *c = ident_user(&f->id, 3000);
	check_now(&f->id);
	assert_ptr_equal(ident_user(&f->id, 3000), c);

	/* the same inode, rewritten to another size */
	rewrite_file(f->passwd, "al:x:1000:1000::/:/bin/sh\n");
	check_now(&f->id);
	assert_string_equal(ident_user(&f->id, 1000), "al");
	assert_string_equal(ident_user(&f->id, 3000), "uid 3000");

	/* removed: nobody has a name any more */
	assert_int_equal(unlink(f->passwd), 0);
	check_now(&f->id);
	assert_string_equal(ident_user(&f->id, 1000), "uid 1000");
	/* and back */
	replace_file(f->passwd, passwd_text);
	check_now(&f->id);
	assert_string_equal(ident_user(&f->id, 1000), "alice");
}

static void test_ident__in_group(void **state)
{
	struct fx *f = *state;
	gid_t audit[] = { 100, 600 };

	/* by the primary gid: dev is 1000, alice's */
	assert_true(ident_in_group(&f->id, "alice", 1000, NULL, 0, "dev"));
	/* by a supplementary gid: audit is 600 */
	assert_true(ident_in_group(&f->id, "alice", 1000, audit, 2, "audit"));
	assert_false(ident_in_group(&f->id, "alice", 1000, audit, 1, "audit"));
	/* by the member list: ops lists bob and carol, whatever their gids */
	assert_true(ident_in_group(&f->id, "bob", 100, NULL, 0, "ops"));
	assert_true(ident_in_group(&f->id, "carol", 3000, audit, 2, "ops"));
	/* not a member */
	assert_false(ident_in_group(&f->id, "alice", 1000, audit, 2, "ops"));
	assert_false(ident_in_group(&f->id, "car", 3000, NULL, 0, "ops"));
	assert_false(ident_in_group(&f->id, "carol2", 3000, NULL, 0, "ops"));
	assert_false(ident_in_group(&f->id, "alice", 1000, NULL, 0, "empty"));
	assert_false(ident_in_group(&f->id, "", 1000, NULL, 0, "empty"));
	/* no name (a uid the passwd file does not know): by gids only */
	assert_false(ident_in_group(&f->id, NULL, 3000, NULL, 0, "ops"));
	assert_true(ident_in_group(&f->id, NULL, 500, NULL, 0, "ops"));
	/* a group the file does not know: never, whatever the gids */
	assert_false(ident_in_group(&f->id, "alice", 1000, audit, 2, "nope"));
	assert_false(ident_in_group(&f->id, "alice", 1000, NULL, 0, "de"));
	assert_false(ident_in_group(&f->id, "alice", 1000, NULL, 0, "Dev"));
	assert_false(ident_in_group(&f->id, "alice", 1000, NULL, 0, ""));

	/* the group file is read each time: a change counts at once */
	replace_file(f->group, "ops:x:500:bob,carol,alice\n");
	assert_true(ident_in_group(&f->id, "alice", 1000, NULL, 0, "ops"));
	assert_false(ident_in_group(&f->id, "alice", 1000, NULL, 0, "dev"));
}

/* Out of memory: the name all the same (not cached), never a crash or a
 * leak; short entries take no allocation but the cache's. */
static void test_ident__alloc_failures(void **state)
{
	struct fx *f = *state;

	for (long n = 1; n <= 3; n++) {
		struct ident id;
		ident_init(&id, f->passwd, f->group);
		orch_alloc_fail_after(n);
		const char *a = ident_user(&id, 1000);
		const char *b = ident_user(&id, 4242);
		bool in = ident_in_group(&id, "bob", 100, NULL, 0, "ops");
		orch_alloc_fail_after(0);
		assert_string_equal(a, "alice");
		assert_string_equal(b, "uid 4242");
		assert_true(in);
		assert_string_equal(ident_user(&id, 1000), "alice");
		assert_string_equal(ident_user(&id, 4242), "uid 4242");
		ident_release(&id);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ident__defaults),
		cmocka_unit_test_setup_teardown(test_ident__names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__odd_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__long_entries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__unreadable_not_cached, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__no_passwd_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__cache_dropped_on_change, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__in_group, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__alloc_failures, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
