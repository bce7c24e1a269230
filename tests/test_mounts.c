/* tests/test_mounts.c — the FUSE mounts a bwrap sandbox hides: which of a
 * mount table's FUSE mounts a user can reach, nested ones and those the
 * sandbox hides anyway left out, escaped paths read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <cmocka.h>

#include "core/mounts.h"
#include "core/util.h"

static const char table[] =
	"22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
	"30 22 0:26 / /proc rw - proc proc rw\n"
	/* root's, others may not */
	"40 22 0:40 / /mnt/rootonly rw,nosuid,nodev shared:20 - fuse.sshfs host: rw,user_id=0,group_id=0\n"
	/* root's, allow_other */
	"41 22 0:41 / /mnt/shared rw - fuse orchfs rw,user_id=0,group_id=0,default_permissions,allow_other\n"
	/* user 1000's own */
	"42 22 0:42 / /home/u/my\\040files rw - fuse.rclone r: rw,user_id=1000,group_id=1000\n"
	/* beneath another FUSE mount: hidden with it */
	"43 41 0:43 / /mnt/shared/inner rw - fuse x rw,user_id=0,group_id=0,allow_other\n"
	/* mounted over again at the same place */
	"44 22 0:44 / /mnt/shared rw - fuseblk /dev/sdb1 rw,user_id=0,group_id=0,allow_other\n"
	/* under /tmp (the sandbox's own /tmp hides it) */
	"45 22 0:45 / /tmp/t/mnt rw - fuse orchfs rw,user_id=0,group_id=0,allow_other\n"
	/* not FUSE */
	"46 22 0:46 / /mnt/fusey rw - tmpfs fuse rw\n"
	/* an optional field that says "-" nowhere, and a user 1000 mount in another group */
	"47 22 0:47 / /srv/g rw master:3 - fuse y rw,user_id=1000,group_id=5\n";

static char **list(uid_t uid, gid_t gid, const char *const *skip, size_t *n)
{
	char *text = strdup(table);
	char **v = NULL;
	assert_int_equal(mounts_fuse(text, uid, gid, skip, &v, n), 0);
	free(text);
	assert_non_null(v);
	assert_null(v[*n]);
	return v;
}

static void test_mounts__root_reaches_its_own_and_allow_other(void **state)
{
	static const char *const skip[] = { "/tmp", NULL };
	size_t n;
	char **v = list(0, 0, skip, &n);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "/mnt/rootonly");
	assert_string_equal(v[1], "/mnt/shared");
	mounts_free(v);
}

static void test_mounts__user_reaches_allow_other_and_its_own(void **state)
{
	size_t n;
	char **v = list(1000, 1000, NULL, &n);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "/mnt/shared");
	assert_string_equal(v[1], "/home/u/my files");
	assert_string_equal(v[2], "/tmp/t/mnt");
	mounts_free(v);
	/* another user: only allow_other */
	v = list(1001, 1001, NULL, &n);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "/mnt/shared");
	assert_string_equal(v[1], "/tmp/t/mnt");
	mounts_free(v);
}

static void test_mounts__skip_at_and_beneath(void **state)
{
	static const char *const skip[] = { "/mnt/shared", "/tmp", NULL };
	size_t n;
	char **v = list(0, 0, skip, &n);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "/mnt/rootonly");
	mounts_free(v);
}

static void test_mounts__none_and_out_of_memory(void **state)
{
	char text[] = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n";
	char **v;
	size_t n = 99;
	assert_int_equal(mounts_fuse(text, 0, 0, NULL, &v, &n), 0);
	assert_int_equal(n, 0);
	assert_null(v[0]);
	mounts_free(v);
	for (long k = 1; k < 6; k++) {
		char *t = strdup(table);
		orch_alloc_fail_after(k);
		int rc = mounts_fuse(t, 0, 0, NULL, &v, &n);
		orch_alloc_fail_after(0);
		free(t);
		if (rc == 0)
			mounts_free(v);
		else
			assert_int_equal(rc, -12);	/* ENOMEM, nothing leaked (ASan) */
	}
}

/* the lines themselves: every field, escapes read back, an empty source
 * kept as a field, what is no mountinfo line skipped */
static void test_mounts__lines(void **state)
{
	char text[] = "not a mountinfo line\n"
		      "61 22 0:53 / /mnt/a\\040b\\134c rw,nosuid shared:20 master:3 - fuse.sshfs h:/x "
		      "rw,user_id=0,group_id=0\n"
		      "\n"
		      "45 27 0:40 / /tmp/e rw,relatime - tmpfs  rw\n"
		      "46 27 8:1 / /no/separator rw\n"
		      "x 27 8:1 / /bad/id rw - ext4 /dev/sda1 rw\n"
		      "47 27 259:3 / / rw - ext4 /dev/nvme0n1p3 rw";
	struct mount_line m;
	char *pos = text;
	assert_true(mounts_next(&pos, &m));
	assert_int_equal(m.id, 61);
	assert_int_equal(major(m.dev), 0);
	assert_int_equal(minor(m.dev), 53);
	assert_string_equal(m.mountpoint, "/mnt/a b\\c");
	assert_string_equal(m.fstype, "fuse.sshfs");
	assert_string_equal(m.super, "rw,user_id=0,group_id=0");
	assert_true(mounts_is_fuse(m.fstype));
	assert_true(mounts_next(&pos, &m));
	assert_int_equal(m.id, 45);
	assert_string_equal(m.fstype, "tmpfs");
	assert_string_equal(m.super, "rw");	/* not taken for the source */
	assert_false(mounts_is_fuse(m.fstype));
	assert_true(mounts_next(&pos, &m));
	assert_int_equal(m.id, 47);
	assert_int_equal(major(m.dev), 259);
	assert_string_equal(m.mountpoint, "/");
	assert_false(mounts_next(&pos, &m));
	assert_false(mounts_next(&pos, &m));
	assert_true(mounts_is_fuse("fuse") && mounts_is_fuse("fuseblk"));
	assert_false(mounts_is_fuse("fusectl"));
}

/* Who mounted a FUSE file system: its user_id= (a start leaves another
 * user's "fuse.orchfs" alone: fs/conn.c) */
static void test_mounts__user_id(void **state)
{
	assert_int_equal(mounts_user_id("rw,user_id=0,group_id=0"), 0);
	assert_int_equal(mounts_user_id("rw,fd=7,rootmode=40000,user_id=1001,group_id=1001,allow_other"), 1001);
	assert_int_equal(mounts_user_id("user_id=3000000001"), 3000000001L);
	assert_int_equal(mounts_user_id("rw,group_id=0"), -1);
	assert_int_equal(mounts_user_id("rw,user_id=,group_id=0"), -1);
	assert_int_equal(mounts_user_id("rw,user_id=12x"), -1);
	assert_int_equal(mounts_user_id(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mounts__root_reaches_its_own_and_allow_other),
		cmocka_unit_test(test_mounts__user_reaches_allow_other_and_its_own),
		cmocka_unit_test(test_mounts__skip_at_and_beneath),
		cmocka_unit_test(test_mounts__none_and_out_of_memory),
		cmocka_unit_test(test_mounts__lines),
		cmocka_unit_test(test_mounts__user_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
