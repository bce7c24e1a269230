/* tests/test_ident.c — user names and group membership from a passwd and a
 * group file of the test's own (core/ident.h): names by uid, "uid N" for a
 * uid the file does not know, the cache dropped when the file changes, and
 * membership by primary gid, by supplementary gid and by the member list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "core/ident.h"
#include "core/util.h"

struct files {
	char dir[64], passwd[96], group[96];
};

/* Write TEXT to PATH through a new file renamed over it, as useradd does. */
static void put(const char *path, const char *text)
{
	char tmp[128];
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	FILE *f = fopen(tmp, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static int setup(void **state)
{
	struct files *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -1;
	snprintf(fs->dir, sizeof(fs->dir), "/tmp/orchfs-test-ident.XXXXXX");
	if (!mkdtemp(fs->dir)) {
		free(fs);
		return -1;
	}
	snprintf(fs->passwd, sizeof(fs->passwd), "%s/passwd", fs->dir);
	snprintf(fs->group, sizeof(fs->group), "%s/group", fs->dir);
	put(fs->passwd,
	    "root:x:0:0:root:/root:/bin/sh\n"
	    "alice:x:1001:1001::/home/alice:/bin/sh\n"
	    "bob:x:1002:1002::/home/bob:/bin/sh\n"
	    "a-very-long-name-that-no-event-can-hold-whole:x:1003:1003::/:/bin/sh\n");
	put(fs->group,
	    "root:x:0:\n"
	    "alice:x:1001:\n"
	    "ops:x:2000:bob,carol\n"
	    "dev:x:2001:\n");
	*state = fs;
	return 0;
}

static int teardown(void **state)
{
	struct files *fs = *state;
	rm_rf(fs->dir);
	free(fs);
	return 0;
}

static void test_ident__names(void **state)
{
	struct files *fs = *state;
	struct ident id;
	ident_init(&id, fs->passwd, fs->group);
	assert_string_equal(ident_user(&id, 0), "root");
	assert_string_equal(ident_user(&id, 1001), "alice");
	assert_string_equal(ident_user(&id, 1002), "bob");
	assert_string_equal(ident_user(&id, 1001 + IDENT_HASH), "uid 1065");	/* same bucket */
	assert_string_equal(ident_user(&id, 1001), "alice");
	assert_string_equal(ident_user(&id, 4294967294u), "uid 4294967294");
	/* a name longer than a name may be is no name: the uid is said instead */
	assert_string_equal(ident_user(&id, 1003), "uid 1003");
	ident_release(&id);
}

static void test_ident__no_file(void **state)
{
	struct files *fs = *state;
	char none[128];
	snprintf(none, sizeof(none), "%s/none", fs->dir);
	struct ident id;
	ident_init(&id, none, none);
	assert_string_equal(ident_user(&id, 0), "uid 0");
	assert_false(ident_in_group(&id, "root", 0, NULL, 0, "root"));
	ident_release(&id);
}

static void test_ident__file_changes(void **state)
{
	struct files *fs = *state;
	struct ident id;
	ident_init(&id, fs->passwd, fs->group);
	assert_string_equal(ident_user(&id, 1001), "alice");
	assert_string_equal(ident_user(&id, 1004), "uid 1004");
	/* alice renamed, a new user 1004 */
	put(fs->passwd,
	    "root:x:0:0:root:/root:/bin/sh\n"
	    "alicia:x:1001:1001::/home/alice:/bin/sh\n"
	    "dave:x:1004:1004::/:/bin/sh\n");
	/* the file is looked at again at most once a second: as if that
	 * second had passed (no test waits for a clock) */
	id.checked_ms = 0;
	assert_string_equal(ident_user(&id, 1001), "alicia");
	assert_string_equal(ident_user(&id, 1004), "dave");
	assert_string_equal(ident_user(&id, 1002), "uid 1002");	/* bob is gone */
	/* looked at again, unchanged: the names stay */
	id.checked_ms = 0;
	assert_string_equal(ident_user(&id, 1004), "dave");
	assert_string_equal(ident_user(&id, 0), "root");
	ident_release(&id);
}

static void test_ident__groups(void **state)
{
	struct files *fs = *state;
	struct ident id;
	ident_init(&id, fs->passwd, fs->group);
	gid_t sup[] = { 5, 2001 };
	/* primary gid */
	assert_true(ident_in_group(&id, "alice", 2000, NULL, 0, "ops"));
	/* a supplementary gid */
	assert_true(ident_in_group(&id, "alice", 1001, sup, 2, "dev"));
	assert_false(ident_in_group(&id, "alice", 1001, sup, 1, "dev"));
	/* the member list, whatever the process's groups */
	assert_true(ident_in_group(&id, "bob", 1002, NULL, 0, "ops"));
	assert_true(ident_in_group(&id, "carol", 9, NULL, 0, "ops"));
	/* not a member */
	assert_false(ident_in_group(&id, "alice", 1001, sup, 2, "ops"));
	assert_false(ident_in_group(&id, NULL, 1001, NULL, 0, "ops"));
	assert_false(ident_in_group(&id, "bobby", 1001, NULL, 0, "ops"));
	/* a group the file does not know: no one is in it, not even by gid */
	assert_false(ident_in_group(&id, "bob", 2000, NULL, 0, "nosuch"));
	assert_false(ident_in_group(&id, "bob", 2000, NULL, 0, ""));
	ident_release(&id);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ident__names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__no_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__file_changes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ident__groups, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
