/* core/cgroup.c — resource limits with cgroups (see cgroup.h). */
#include "core/cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

static const char *const ctrl_names[CG_NCTRL] = { "memory", "pids", "cpu", "cpuacct", "freezer" };

/* ---- pure ---- */

/* Is NAME one of the comma-separated words of LIST (LEN bytes)? */
static bool has_word(const char *list, size_t len, const char *name)
{
	size_t n = strlen(name);
	const char *p = list, *end = list + len;
	while (p < end) {
		const char *c = memchr(p, ',', (size_t)(end - p));
		size_t w = c ? (size_t)(c - p) : (size_t)(end - p);
		if (w == n && !memcmp(p, name, n))
			return true;
		p += w + 1;
	}
	return false;
}

/* The group directory of a process whose group is CG (absolute, in its
 * hierarchy) below a mount of that hierarchy at MNT whose root is ROOT,
 * into *OUT: NULL when CG is not below ROOT (a group of another
 * namespace). 0 or -ENOMEM. */
static int group_dir(const char *mnt, const char *root, const char *cg, char **out)
{
	*out = NULL;
	size_t rl = strlen(root);
	if (!strcmp(root, "/"))
		rl = 0;
	if (strncmp(cg, root, rl) || (cg[rl] && cg[rl] != '/'))
		return 0;
	const char *rest = cg + rl;
	if (!strcmp(rest, "/"))
		rest = "";
	*out = orch_asprintf("%s%s", mnt, rest);
	return *out ? 0 : -ENOMEM;
}

/* A mountinfo line's root, mount point, super options and type. */
struct mnt {
	char root[4096], point[4096], opts[1024], fstype[64];
};

/* The next line of mountinfo from *POS into M (lines with an escaped path
 * are skipped): false at the end. */
static bool next_mount(const char **pos, struct mnt *m)
{
	while (**pos) {
		const char *line = *pos, *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		*pos = nl ? nl + 1 : line + len;
		char *copy = orch_strndup(line, len);
		if (!copy)
			return false;
		/* ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER */
		char *f[6], *save = NULL, *t = strtok_r(copy, " ", &save);
		size_t k = 0;
		while (t && k < 6) {
			f[k++] = t;
			t = strtok_r(NULL, " ", &save);
		}
		while (t && strcmp(t, "-"))
			t = strtok_r(NULL, " ", &save);
		char *fstype = t ? strtok_r(NULL, " ", &save) : NULL;
		char *source = fstype ? strtok_r(NULL, " ", &save) : NULL;
		char *super = source ? strtok_r(NULL, " ", &save) : NULL;
		bool ok = k == 6 && super && !strchr(f[3], '\\') && !strchr(f[4], '\\') &&
			  strlen(f[3]) < sizeof(m->root) && strlen(f[4]) < sizeof(m->point) &&
			  strlen(super) < sizeof(m->opts) && strlen(fstype) < sizeof(m->fstype);
		if (ok) {
			strcpy(m->root, f[3]);
			strcpy(m->point, f[4]);
			strcpy(m->opts, super);
			strcpy(m->fstype, fstype);
		}
		orch_free(copy);
		if (ok)
			return true;
	}
	return false;
}

int cg_layout_parse(const char *self_cgroup, const char *mountinfo, struct cg_layout *l)
{
	memset(l, 0, sizeof(*l));
	struct mnt *m = orch_malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	int rc = 0;
	for (const char *p = self_cgroup; *p && !rc;) {
		/* HIERARCHY-ID:CONTROLLERS:PATH */
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char *line = orch_strndup(p, len);
		p = nl ? nl + 1 : p + len;
		if (!line) {
			rc = -ENOMEM;
			break;
		}
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2 || c2[1] != '/') {
			orch_free(line);
			continue;
		}
		*c1 = *c2 = '\0';
		const char *ctrls = c1 + 1, *path = c2 + 1;
		bool v2 = !strcmp(line, "0") && !*ctrls;
		for (const char *mp = mountinfo; next_mount(&mp, m);) {
			if (v2 && !strcmp(m->fstype, "cgroup2")) {
				if (!l->v2)
					rc = group_dir(m->point, m->root, path, &l->v2);
				break;
			}
			if (v2 || strcmp(m->fstype, "cgroup"))
				continue;
			/* the mount of this hierarchy: it has one of its controllers */
			bool mine = false;
			for (int c = 0; c < CG_NCTRL; c++)
				if (has_word(ctrls, strlen(ctrls), ctrl_names[c]) &&
				    has_word(m->opts, strlen(m->opts), ctrl_names[c]))
					mine = true;
			if (!mine)
				continue;
			for (int c = 0; c < CG_NCTRL && !rc; c++)
				if (has_word(ctrls, strlen(ctrls), ctrl_names[c]) && !l->v1[c])
					rc = group_dir(m->point, m->root, path, &l->v1[c]);
			break;
		}
		orch_free(line);
	}
	orch_free(m);
	if (rc)
		cg_layout_release(l);
	return rc;
}

void cg_layout_release(struct cg_layout *l)
{
	for (int c = 0; c < CG_NCTRL; c++)
		orch_free(l->v1[c]);
	orch_free(l->v2);
	memset(l, 0, sizeof(*l));
}

int cg_fmt_memory(char *buf, size_t n, long long mb)
{
	return snprintf(buf, n, "%lld", mb * 1024 * 1024);
}

int cg_fmt_cpus(char *buf, size_t n, double cpus, int version)
{
	long long q = (long long)(cpus * CG_CPU_PERIOD_US + 0.5);
	if (q < 1000)
		q = 1000;	/* the kernel's least: 1 ms */
	return version == 2 ? snprintf(buf, n, "%lld %d", q, CG_CPU_PERIOD_US) : snprintf(buf, n, "%lld", q);
}

long long cg_keyed(const char *text, const char *key)
{
	size_t n = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	return -1;
}

/* ---- cgroupfs ---- */

static int put(const char *dir, const char *file, const char *val)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = write(fd, val, strlen(val)) < 0 ? -errno : 0;
	close(fd);
	return rc;
}

/* A small file of DIR into BUF: its length, or -errno. */
static ssize_t get(const char *dir, const char *file, char *buf, size_t n)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t r = read(fd, buf, n - 1);
	int err = errno;
	close(fd);
	if (r < 0)
		return -err;
	buf[r] = '\0';
	return r;
}

static long long get_num(const char *dir, const char *file, const char *key)
{
	char buf[1024];
	if (get(dir, file, buf, sizeof(buf)) < 0)
		return -1;
	return key ? cg_keyed(buf, key) : strtoll(buf, NULL, 10);
}

/* Kill every process of group DIR (v1 and v2 alike: each pid of
 * cgroup.procs), thawed first if a pause froze it (a frozen v1 process
 * dies only once thawed; the files of other controllers are not there). */
static void kill_all(const char *dir)
{
	put(dir, "freezer.state", "THAWED");
	put(dir, "cgroup.freeze", "0");
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path))
		return;
	FILE *f = fopen(path, "re");
	if (!f)
		return;
	long pid;
	while (fscanf(f, "%ld", &pid) == 1)
		if (pid > 1)
			kill((pid_t)pid, SIGKILL);
	fclose(f);
}

/* Remove DIR and the groups below it, killing what is in them: 0, or
 * -errno of the first rmdir that failed (processes still leaving). */
static int remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char *sub = orch_asprintf("%s/%s", dir, de->d_name);
		int r = sub ? remove_tree(sub) : -ENOMEM;
		orch_free(sub);
		if (r && !rc)
			rc = r;
	}
	closedir(d);
	kill_all(dir);
	if (rmdir(dir) < 0 && errno != ENOENT && !rc)
		rc = -errno;
	return rc;
}

static void pending_arm(struct cg *cg)
{
	if (cg->npending && cg->loop && !loop_timer_armed(&cg->retry) && cg->tries < CG_RETRY_MAX)
		loop_timer_set(cg->loop, &cg->retry, clock_mono_ms() + CG_RETRY_MS);
}

static void pending_add(struct cg *cg, const char *dir)
{
	for (size_t i = 0; i < cg->npending; i++)
		if (!strcmp(cg->pending[i], dir))
			return;
	char **v = cg->npending < 4096 ? orch_reallocarray(cg->pending, cg->npending + 1, sizeof(char *)) : NULL;
	if (!v)
		return;	/* left for the next open */
	cg->pending = v;
	if ((v[cg->npending] = orch_strdup(dir)))
		cg->npending++;
	cg->tries = 0;
	pending_arm(cg);
}

/* Try the pending removals again. */
static void pending_retry(struct cg *cg)
{
	size_t k = 0;
	for (size_t i = 0; i < cg->npending; i++) {
		if (remove_tree(cg->pending[i]) == 0) {
			/* and its sandbox's group, unless another attempt uses it */
			char *slash = strrchr(cg->pending[i], '/');
			if (slash && !strncmp(slash + 1, "s", 1) && strncmp(slash + 1, "sb-", 3)) {
				*slash = '\0';
				rmdir(cg->pending[i]);
			}
			orch_free(cg->pending[i]);
		}
		else
			cg->pending[k++] = cg->pending[i];
	}
	cg->npending = k;
}

static void retry_cb(struct loop_timer *t)
{
	struct cg *cg = t->data;
	cg->tries++;
	pending_retry(cg);
	pending_arm(cg);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void why(struct cg *cg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why(struct cg *cg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cg->why, sizeof(cg->why), fmt, ap);
	va_end(ap);
}

/* v2: may the daemon's group OWN give its children memory and pids? */
static bool v2_usable(const char *own)
{
	char buf[512];
	if (get(own, "cgroup.controllers", buf, sizeof(buf)) < 0)
		return false;
	if (!strstr(buf, "memory") || !strstr(buf, "pids"))
		return false;
	if (get(own, "cgroup.subtree_control", buf, sizeof(buf)) < 0)
		return false;
	if (strstr(buf, "memory") && strstr(buf, "pids"))
		return true;
	/* a group with processes of its own may not enable them (but the root) */
	return put(own, "cgroup.subtree_control", "+memory +pids") == 0;
}

void cg_open(struct cg *cg, const char *state_dir, struct loop *loop)
{
	memset(cg, 0, sizeof(*cg));
	cg->loop = loop;
	cg->retry = (struct loop_timer)LOOP_TIMER_INIT(retry_cb, cg);
	const char *env = getenv("ORCHFS_CGROUPS");
	if (env && !strcmp(env, "none")) {
		why(cg, "cgroups are turned off (ORCHFS_CGROUPS=none in the daemon's environment)");
		return;
	}
	if (geteuid() != 0) {
		why(cg, "the daemon does not run as root");
		return;
	}
	char *self = NULL, *mi = NULL;
	size_t len;
	struct cg_layout l;
	if (read_file("/proc/self/cgroup", 1 << 20, &self, &len) < 0 ||
	    read_file("/proc/self/mountinfo", 64 << 20, &mi, &len) < 0 || cg_layout_parse(self, mi, &l) < 0) {
		why(cg, "cannot read /proc/self/cgroup and /proc/self/mountinfo");
		orch_free(self);
		orch_free(mi);
		return;
	}
	orch_free(self);
	orch_free(mi);
	char tag[32];
	snprintf(tag, sizeof(tag), "orchfs-%016llx", (unsigned long long)fnv1a(state_dir));
	if (l.v2 && v2_usable(l.v2)) {
		cg->version = 2;
		char buf[512];
		bool cpu = get(l.v2, "cgroup.subtree_control", buf, sizeof(buf)) > 0 &&
			   (strstr(buf, "cpu ") || strstr(buf, "cpu\n") ||
			    put(l.v2, "cgroup.subtree_control", "+cpu") == 0);
		for (int c = 0; c < CG_NCTRL; c++)
			if (c != CG_CPU || cpu)
				cg->base[c] = orch_asprintf("%s/%s", l.v2, tag);
	} else {
		for (int c = 0; c < CG_NCTRL; c++)
			if (l.v1[c] && access(l.v1[c], W_OK) == 0) {
				cg->base[c] = orch_asprintf("%s/%s", l.v1[c], tag);
				cg->version = 1;
			}
	}
	cg_layout_release(&l);
	if (cg->base[CG_MEMORY])
		cg->avail |= PLAN_LIMIT_MEMORY;
	if (cg->base[CG_PIDS])
		cg->avail |= PLAN_LIMIT_PIDS;
	if (cg->base[CG_CPU])
		cg->avail |= PLAN_LIMIT_CPUS;
	if (!cg->version)
		why(cg, "no cgroup v2 with memory and pids for the daemon's group, nor a v1 controller mounted");
	else
		why(cg, "the machine's cgroup v%d has no such controller for orchfs", cg->version);
	cg->gen = (uint64_t)clock_wall_ms();
	/* what a daemon of this state directory left (run_kill_stale kills its
	 * steps' processes: the groups go too): its leaves, each removed or
	 * tried again later, then its sandboxes' groups when empty. Never the
	 * base nor a sandbox's group as a whole: this daemon's resumed steps
	 * make their leaves there (under names no old leaf has: gen) before a
	 * pending removal comes round again. */
	for (int c = 0; c < CG_NCTRL; c++) {
		if (!cg->base[c] || (c > 0 && cg->base[c - 1] && !strcmp(cg->base[c], cg->base[c - 1])))
			continue;
		DIR *d = opendir(cg->base[c]);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_type != DT_DIR || strncmp(de->d_name, "sb-", 3))
				continue;
			char *sb = orch_asprintf("%s/%s", cg->base[c], de->d_name);
			DIR *sd = sb ? opendir(sb) : NULL;
			struct dirent *le;
			while (sd && (le = readdir(sd))) {
				if (le->d_type != DT_DIR || le->d_name[0] != 's')
					continue;
				char *leaf = orch_asprintf("%s/%s", sb, le->d_name);
				if (leaf && remove_tree(leaf) < 0)
					pending_add(cg, leaf);
				orch_free(leaf);
			}
			if (sd)
				closedir(sd);
			if (sb)
				rmdir(sb);	/* busy: its last pending leaf's removal takes it */
			orch_free(sb);
		}
		if (d)
			closedir(d);
	}
}

void cg_close(struct cg *cg)
{
	if (cg->loop)
		loop_timer_cancel(cg->loop, &cg->retry);
	/* the daemon is stopping, its steps killed: what they left in their
	 * groups is leaving (a second at most; else the next open removes it) */
	pending_retry(cg);
	for (int k = 0; cg->npending && k < 100; k++) {
		usleep(10000);
		pending_retry(cg);
	}
	for (size_t i = 0; i < cg->npending; i++)
		orch_free(cg->pending[i]);
	orch_free(cg->pending);
	for (int c = 0; c < CG_NCTRL; c++) {
		if (cg->base[c])
			rmdir(cg->base[c]);	/* empty by now, or left for the next open */
		orch_free(cg->base[c]);
	}
	memset(cg, 0, sizeof(*cg));
}

/* The controllers G uses (v2: one hierarchy, the first base). */
static bool ctrl_used(const struct cg *cg, int c)
{
	if (!cg->base[c])
		return false;
	if (cg->version == 2)
		for (int k = 0; k < c; k++)
			if (cg->base[k])
				return false;	/* the same directory as k's */
	return true;
}

/* Write the limits L to group DIR of controller C. */
static int set_limits(const struct cg *cg, int c, const char *dir, const struct plan_limits *l)
{
	char v[64];
	int rc = 0;
	if (l->memory_mb && (c == CG_MEMORY || cg->version == 2)) {
		cg_fmt_memory(v, sizeof(v), l->memory_mb);
		if (cg->version == 2) {
			rc = put(dir, "memory.max", v);
			if (!rc)
				put(dir, "memory.swap.max", "0");
		} else {
			/* memory.memsw (memory and swap, where the kernel
			 * counts swap) may not be below it: raising a group's
			 * limit raises that first */
			rc = put(dir, "memory.limit_in_bytes", v);
			if (rc == -EINVAL && !put(dir, "memory.memsw.limit_in_bytes", v))
				rc = put(dir, "memory.limit_in_bytes", v);
			if (!rc)
				put(dir, "memory.memsw.limit_in_bytes", v);	/* no swap past it */
		}
	}
	if (!rc && l->pids && (c == CG_PIDS || cg->version == 2)) {
		snprintf(v, sizeof(v), "%lld", l->pids);
		rc = put(dir, "pids.max", v);
	}
	if (!rc && l->cpus > 0 && (c == CG_CPU || cg->version == 2) && cg->base[CG_CPU]) {
		cg_fmt_cpus(v, sizeof(v), l->cpus, cg->version);
		if (cg->version == 1)
			put(dir, "cpu.cfs_period_us", "100000");
		rc = put(dir, cg->version == 2 ? "cpu.max" : "cpu.cfs_quota_us", v);
	}
	return rc;
}

static int mkgroup(const char *dir)
{
	return mkdir(dir, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* v2: let DIR's children have the controllers */
static void v2_delegate(const struct cg *cg, const char *dir)
{
	put(dir, "cgroup.subtree_control", cg->base[CG_CPU] ? "+memory +pids +cpu" : "+memory +pids");
}

int cg_attempt_make(struct cg *cg, int64_t sb, const struct plan_limits *sbl, int64_t step, unsigned attempt,
		    const struct plan_limits *l, struct cg_group *g)
{
	/* a leaf of its own: no leftover of a killed daemon, nor of a run
	 * undone by a failed commit whose rowids came back, has this name */
	g->rel = orch_asprintf("sb-%lld/s%lld-%u-%llx-%llx", (long long)sb, (long long)step, attempt,
			       (unsigned long long)cg->gen, (unsigned long long)cg->seq++);
	g->sb = sb;
	if (!g->rel)
		return -ENOMEM;
	if (!cg->version) {
		orch_free(g->rel);
		g->rel = NULL;
		return -ENOTSUP;
	}
	/* v1 refuses a child's cpu quota above its parent's (v2 takes it and
	 * holds the parent's): the leaf gets the lesser */
	struct plan_limits eff = *l;
	if (sbl->cpus > 0 && eff.cpus > sbl->cpus)
		eff.cpus = sbl->cpus;
	int rc = 0;
	for (int c = 0; c < CG_NCTRL && !rc; c++) {
		if (!ctrl_used(cg, c))
			continue;
		char *sbdir = orch_asprintf("%s/sb-%lld", cg->base[c], (long long)sb);
		char *leaf = orch_asprintf("%s/%s", cg->base[c], g->rel);
		if (!sbdir || !leaf)
			rc = -ENOMEM;
		if (!rc && !(rc = mkgroup(cg->base[c])) && cg->version == 2)
			v2_delegate(cg, cg->base[c]);
		if (!rc && !(rc = mkgroup(sbdir))) {
			if (cg->version == 2)
				v2_delegate(cg, sbdir);
			rc = set_limits(cg, c, sbdir, sbl);
		}
		if (!rc && !(rc = mkdir(leaf, 0755) < 0 ? -errno : 0))
			rc = set_limits(cg, c, leaf, &eff);
		orch_free(sbdir);
		orch_free(leaf);
	}
	if (rc)
		cg_attempt_end(cg, g);
	return rc;
}

char **cg_procs_files(const struct cg *cg, const struct cg_group *g, size_t *n)
{
	char **v = orch_calloc(CG_NCTRL, sizeof(char *));
	*n = 0;
	if (!v)
		return NULL;
	for (int c = 0; c < CG_NCTRL; c++) {
		if (!ctrl_used(cg, c))
			continue;
		if (!(v[*n] = orch_asprintf("%s/%s/cgroup.procs", cg->base[c], g->rel))) {
			for (size_t i = 0; i < *n; i++)
				orch_free(v[i]);
			orch_free(v);
			return NULL;
		}
		(*n)++;
	}
	return v;
}

/* v1: did group DIR's memory reach its limit (its peak within 4 MiB of
 * it)? memory.failcnt does not count the charge the OOM kill answers. */
static bool v1_at_limit(const char *dir)
{
	long long lim = get_num(dir, "memory.limit_in_bytes", NULL);
	long long peak = get_num(dir, "memory.max_usage_in_bytes", NULL);
	return lim > 0 && peak >= 0 && lim < (1LL << 50) && peak >= lim - (4LL << 20);
}

void cg_usage_read(const struct cg *cg, const struct cg_group *g, struct cg_usage *u)
{
	memset(u, 0, sizeof(*u));
	if (!g->rel)
		return;
	char dir[4096];
	long long v;
	if (cg->base[CG_MEMORY]) {
		snprintf(dir, sizeof(dir), "%s/%s", cg->base[CG_MEMORY], g->rel);
		v = get_num(dir, cg->version == 2 ? "memory.peak" : "memory.max_usage_in_bytes", NULL);
		if (v >= 0) {
			u->have_mem = true;
			u->memory_peak = v;
		}
		/* an OOM kill in the leaf that a limit of ours caused: the leaf's
		 * or its sandbox's group reached its limit (v2 "oom", v1 its
		 * peak at the limit); a kill of the machine's or an outer group's OOM
		 * is no limit:memory */
		if (get_num(dir, cg->version == 2 ? "memory.events" : "memory.oom_control", "oom_kill") > 0) {
			char sbdir[4096];
			snprintf(sbdir, sizeof(sbdir), "%s/sb-%lld", cg->base[CG_MEMORY], (long long)g->sb);
			u->oom = cg->version == 2 ? get_num(dir, "memory.events", "oom") > 0 ||
							    get_num(sbdir, "memory.events", "oom") > 0
						  : v1_at_limit(dir) || v1_at_limit(sbdir);
		}
	}
	if (cg->base[CG_PIDS]) {
		snprintf(dir, sizeof(dir), "%s/%s", cg->base[CG_PIDS], g->rel);
		u->pids_max = get_num(dir, "pids.events", "max") > 0;
	}
	if (cg->version == 2 && cg->base[CG_MEMORY]) {
		snprintf(dir, sizeof(dir), "%s/%s", cg->base[CG_MEMORY], g->rel);
		v = get_num(dir, "cpu.stat", "usage_usec");
		if (v >= 0) {
			u->have_cpu = true;
			u->cpu_ns = v * 1000;
		}
	} else if (cg->base[CG_CPUACCT]) {
		snprintf(dir, sizeof(dir), "%s/%s", cg->base[CG_CPUACCT], g->rel);
		v = get_num(dir, "cpuacct.usage", NULL);
		if (v >= 0) {
			u->have_cpu = true;
			u->cpu_ns = v;
		}
	}
}

int cg_freeze(const struct cg *cg, const struct cg_group *g, bool on)
{
	if (!g->rel)
		return -ENOTSUP;
	int c = cg->version == 2 ? -1 : CG_FREEZER;
	for (int k = 0; c < 0 && k < CG_NCTRL; k++)
		if (ctrl_used(cg, k))
			c = k;	/* v2: the one hierarchy */
	if (c < 0 || !cg->base[c])
		return -ENOTSUP;
	char dir[4096];
	if ((size_t)snprintf(dir, sizeof(dir), "%s/%s", cg->base[c], g->rel) >= sizeof(dir))
		return -ENAMETOOLONG;
	int rc = cg->version == 2 ? put(dir, "cgroup.freeze", on ? "1" : "0")
				  : put(dir, "freezer.state", on ? "FROZEN" : "THAWED");
	/* a kernel without v2's cgroup.freeze (before 5.2) has no freezer */
	return rc == -ENOENT ? -ENOTSUP : rc;
}

void cg_attempt_end(struct cg *cg, struct cg_group *g)
{
	if (!g->rel)
		return;
	for (int c = 0; c < CG_NCTRL; c++) {
		if (!ctrl_used(cg, c))
			continue;
		char *leaf = orch_asprintf("%s/%s", cg->base[c], g->rel);
		char *sbdir = orch_asprintf("%s/sb-%lld", cg->base[c], (long long)g->sb);
		if (leaf && remove_tree(leaf) < 0)
			pending_add(cg, leaf);
		/* the sandbox's group goes with its last attempt (another one
		 * running keeps it busy: EBUSY, nothing to do) */
		if (sbdir)
			rmdir(sbdir);
		orch_free(leaf);
		orch_free(sbdir);
	}
	orch_free(g->rel);
	g->rel = NULL;
}
