/* tests/test_cgroup.c — the pure parts of core/cgroup.h: /proc/self/cgroup
 * and mountinfo into the daemon's group of each hierarchy (v1, combined v1
 * mounts, v2, a mount whose root is a group, another namespace's group),
 * the values written to limit files, and the keyed files read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/cgroup.h"

/* this project's machines: v1 controllers each on its own mount, an empty
 * v2 beside them, the daemon's memory group below the root */
static const char v1_mountinfo[] =
	"23 1 0:21 / / rw,relatime - ext4 /dev/vda rw\n"
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer\n"
	"39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
static const char v1_self[] =
	"9:name=systemd:/\n8:pids:/\n6:freezer:/\n4:memory:/process_api/cf25\n2:cpuacct:/\n1:cpu:/\n0::/\n";

static void test_cgroup__layout_v1(void **state)
{
	(void)state;
	struct cg_layout l;
	assert_int_equal(cg_layout_parse(v1_self, v1_mountinfo, &l), 0);
	assert_string_equal(l.v1[CG_MEMORY], "/sys/fs/cgroup/memory/process_api/cf25");
	assert_string_equal(l.v1[CG_PIDS], "/sys/fs/cgroup/pids");
	assert_string_equal(l.v1[CG_CPU], "/sys/fs/cgroup/cpu");
	assert_string_equal(l.v1[CG_CPUACCT], "/sys/fs/cgroup/cpuacct");
	assert_string_equal(l.v1[CG_FREEZER], "/sys/fs/cgroup/freezer");
	assert_string_equal(l.v2, "/sys/fs/cgroup/unified");
	cg_layout_release(&l);
	assert_null(l.v2);
}

/* cpu and cpuacct mounted together (systemd's way), optional fields in
 * mountinfo, no pids hierarchy */
static void test_cgroup__layout_combined(void **state)
{
	(void)state;
	static const char mi[] =
		"25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
		"26 24 0:23 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory\n";
	static const char self[] = "3:cpu,cpuacct:/system.slice/orchfs.service\n"
				   "2:memory:/system.slice/orchfs.service\n1:name=systemd:/x\n";
	struct cg_layout l;
	assert_int_equal(cg_layout_parse(self, mi, &l), 0);
	assert_string_equal(l.v1[CG_CPU], "/sys/fs/cgroup/cpu,cpuacct/system.slice/orchfs.service");
	assert_string_equal(l.v1[CG_CPUACCT], "/sys/fs/cgroup/cpu,cpuacct/system.slice/orchfs.service");
	assert_string_equal(l.v1[CG_MEMORY], "/sys/fs/cgroup/memory/system.slice/orchfs.service");
	assert_null(l.v1[CG_PIDS]);
	assert_null(l.v2);
	cg_layout_release(&l);
}

/* v2 alone; and a container whose cgroup mount's root is its own group */
static void test_cgroup__layout_v2(void **state)
{
	(void)state;
	static const char mi[] = "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
	struct cg_layout l;
	assert_int_equal(cg_layout_parse("0::/system.slice/orchfs.service\n", mi, &l), 0);
	assert_string_equal(l.v2, "/sys/fs/cgroup/system.slice/orchfs.service");
	for (int c = 0; c < CG_NCTRL; c++)
		assert_null(l.v1[c]);
	cg_layout_release(&l);

	static const char mi2[] = "30 23 0:26 /lxc/c1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
	assert_int_equal(cg_layout_parse("0::/lxc/c1/app\n", mi2, &l), 0);
	assert_string_equal(l.v2, "/sys/fs/cgroup/app");
	cg_layout_release(&l);
	assert_int_equal(cg_layout_parse("0::/lxc/c1\n", mi2, &l), 0);
	assert_string_equal(l.v2, "/sys/fs/cgroup");
	cg_layout_release(&l);
	/* a group outside the mount's root (another namespace's): none */
	assert_int_equal(cg_layout_parse("0::/other\n", mi2, &l), 0);
	assert_null(l.v2);
	/* "/lxc/c10" is not below "/lxc/c1" */
	assert_int_equal(cg_layout_parse("0::/lxc/c10\n", mi2, &l), 0);
	assert_null(l.v2);
	/* nothing mounted, or garbage */
	assert_int_equal(cg_layout_parse("0::/\n4:memory:/x\n", "", &l), 0);
	assert_null(l.v2);
	assert_null(l.v1[CG_MEMORY]);
	assert_int_equal(cg_layout_parse("junk\n::\n4:memory\n", "1 2 3\n - -\n", &l), 0);
	assert_null(l.v1[CG_MEMORY]);
	/* an escaped mount point (\040 is a space) is skipped, not misread */
	assert_int_equal(cg_layout_parse("4:memory:/\n",
					 "35 31 0:32 / /sys/fs/cg\\040x rw - cgroup cgroup rw,memory\n", &l), 0);
	assert_null(l.v1[CG_MEMORY]);
}

static void test_cgroup__values(void **state)
{
	(void)state;
	char b[64];
	cg_fmt_memory(b, sizeof(b), 64);
	assert_string_equal(b, "67108864");
	cg_fmt_memory(b, sizeof(b), 1LL << 30);
	assert_string_equal(b, "1125899906842624");
	cg_fmt_cpus(b, sizeof(b), 1.5, 1);
	assert_string_equal(b, "150000");
	cg_fmt_cpus(b, sizeof(b), 0.5, 2);
	assert_string_equal(b, "50000 100000");
	cg_fmt_cpus(b, sizeof(b), 0.01, 1);
	assert_string_equal(b, "1000");
	cg_fmt_cpus(b, sizeof(b), 1024, 2);
	assert_string_equal(b, "102400000 100000");
}

static void test_cgroup__keyed(void **state)
{
	(void)state;
	assert_int_equal(cg_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"), 3);
	assert_int_equal(cg_keyed("low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 0\n", "max"), 7);
	assert_int_equal(cg_keyed("max 0\n", "max"), 0);
	assert_int_equal(cg_keyed("maximum 5\n", "max"), -1);
	assert_int_equal(cg_keyed("", "oom_kill"), -1);
	assert_int_equal(cg_keyed("usage_usec 1234\nuser_usec 1000\n", "usage_usec"), 1234);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cgroup__layout_v1),
		cmocka_unit_test(test_cgroup__layout_combined),
		cmocka_unit_test(test_cgroup__layout_v2),
		cmocka_unit_test(test_cgroup__values),
		cmocka_unit_test(test_cgroup__keyed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
