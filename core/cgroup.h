/* core/cgroup.h — the cgroup half of resource limits (SPEC §10).
 *
 * At engine open, cg_open() finds what the machine gives orchfs: cgroup v2
 * where the daemon's own group there offers (or may enable) the memory and
 * pids controllers, else the v1 memory, pids, cpu and cpuacct hierarchies
 * that are mounted. orchfs's groups live below the daemon's own group of
 * each hierarchy, in ORCHFS_DIR = "orchfs-" and 16 hex digits of a hash of
 * the state directory (two daemons never share one):
 *
 *   <own group>/orchfs-XXXX/sb-<sandbox rowid>/s<step rowid>-<attempt>
 *
 * A step attempt gets a group (its leaf) when it or its sandbox has limits
 * (v1: also a leaf in the freezer hierarchy, for a sandbox's pause);
 * the sandbox's group carries the sandbox's limits (all its steps
 * together), the leaf the step's own, and it is where the usage and the
 * limit events are read when the attempt ends. The trampoline (core/exec.h)
 * writes its own pid to each leaf's cgroup.procs before it execs: the step
 * never runs outside its group. A plan without limits makes no group and
 * reads nothing.
 *
 * ORCHFS_CGROUPS=none in the daemon's environment hides every cgroup (as on
 * a machine without them: a plan asking for memory_mb, pids or cpus is
 * invalid); cpu_sec and open_files are setrlimit()'s and work everywhere.
 *
 * Owns struct cg (the layout) and struct cg_group (one attempt's groups).
 * cg_layout_parse(), cg_fmt_*() are pure (any thread); the rest is called
 * by the engine thread: small writes and reads of cgroupfs, a mkdir or an
 * rmdir each, and never a wait for a process. */
#ifndef ORCH_CGROUP_H
#define ORCH_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/loop.h"
#include "core/plan.h"

/* CG_FREEZER: v1's freezer hierarchy (v2 has cgroup.freeze in every
 * group): a sandbox's pause freezes its attempts' leaves (cg_freeze) */
enum cg_ctrl { CG_MEMORY, CG_PIDS, CG_CPU, CG_CPUACCT, CG_FREEZER, CG_NCTRL };

/* The daemon's own group in each hierarchy, from /proc/self/cgroup and
 * /proc/self/mountinfo: v1[c] the directory of controller c's (NULL: not
 * mounted), v2 the one of the unified hierarchy (NULL: none). */
struct cg_layout {
	char *v1[CG_NCTRL];
	char *v2;
};

/* Parse SELF_CGROUP (the text of /proc/self/cgroup) and MOUNTINFO (of
 * /proc/self/mountinfo) into L (zeroed first). 0 or -ENOMEM. */
int cg_layout_parse(const char *self_cgroup, const char *mountinfo, struct cg_layout *l);
void cg_layout_release(struct cg_layout *l);

struct cg {
	int version;		/* 0: no cgroup to manage, 1 or 2 */
	/* the orchfs directory of each controller (v2: the same for all);
	 * NULL where the controller is not offered */
	char *base[CG_NCTRL];
	unsigned avail;		/* PLAN_LIMIT_* bits */
	char why[200];		/* why a PLAN_LIMIT_* is missing, for plan messages */
	bool made;		/* base directories made (lazily, at the first group) */
	char **pending;		/* groups whose rmdir failed (processes still
				 * leaving): tried again on a timer */
	size_t npending;
	struct loop *loop;
	struct loop_timer retry;
	unsigned tries;		/* retries since the last success */
	uint64_t gen;		/* this open's mark in leaf names (never a leftover's) */
	uint64_t seq;		/* leaves made since */
};
#define CG_RETRY_MS 250
#define CG_RETRY_MAX 240	/* then at the next attempt's end, or the next open */

/* What an attempt used and ran into, read from its leaf. */
struct cg_usage {
	bool have_mem, have_cpu;
	int64_t memory_peak;	/* bytes */
	int64_t cpu_ns;
	bool oom;		/* the memory limit killed a process of it */
	bool pids_max;		/* a fork failed at the pids limit */
};

/* One attempt's groups: the name below base, "sb-N/sM-A". */
struct cg_group {
	char *rel;
	int64_t sb;
};

/* Find what the machine offers (reads /proc/self/cgroup, mountinfo and a
 * few cgroupfs files; makes nothing) and remove the groups a previous
 * daemon of STATE_DIR left (killing what is in them). Never fails: without
 * cgroups cg->version is 0 and cg->why says why. What cannot be removed
 * yet (killed processes still leaving) is tried again on a timer of LOOP. */
void cg_open(struct cg *cg, const char *state_dir, struct loop *loop);
void cg_close(struct cg *cg);

/* Make the groups of an attempt (step ROWID, ATTEMPT) in sandbox SB with
 * the sandbox's limits SBL and the step's L: 0 with G filled, or -errno
 * (nothing left made). */
int cg_attempt_make(struct cg *cg, int64_t sb, const struct plan_limits *sbl, int64_t step, unsigned attempt,
		    const struct plan_limits *l, struct cg_group *g);
/* The cgroup.procs files of G, for the trampoline: N paths (orch_free each
 * and the array), or NULL when out of memory. */
char **cg_procs_files(const struct cg *cg, const struct cg_group *g, size_t *n);
/* Read G's usage (small reads; fine while it runs). */
void cg_usage_read(const struct cg *cg, const struct cg_group *g, struct cg_usage *u);
/* Freeze (ON) or thaw G's processes, all at once (v1 freezer.state, v2
 * cgroup.freeze): 0, -ENOTSUP without a freezer for G (the caller stops
 * them with signals instead), or -errno. Freezing completes in the kernel
 * after the write returns. */
int cg_freeze(const struct cg *cg, const struct cg_group *g, bool on);
/* The attempt ended: kill whatever is left in G, remove G (and its
 * sandbox's group if no other attempt uses it); what cannot be removed yet
 * is tried again at a later end. G is released. */
void cg_attempt_end(struct cg *cg, struct cg_group *g);

/* Pure: the contents of the files a limit is written to. */
/* memory: v1 memory.limit_in_bytes and v2 memory.max, in bytes */
int cg_fmt_memory(char *buf, size_t n, long long mb);
/* cpus as a quota per 100 ms period: v1 cpu.cfs_quota_us ("QUOTA"),
 * v2 cpu.max ("QUOTA 100000") */
int cg_fmt_cpus(char *buf, size_t n, double cpus, int version);
#define CG_CPU_PERIOD_US 100000
/* Read the number after KEY ("oom_kill", "max") in TEXT (a flat keyed
 * file such as memory.events): the value, or -1. */
long long cg_keyed(const char *text, const char *key);

#endif
