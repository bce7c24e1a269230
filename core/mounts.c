/* core/mounts.c — the host's FUSE mounts (see mounts.h). */
#include "core/mounts.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "core/util.h"

/* Unescape a mountinfo path field (\040 for space and friends) in place. */
static void unescape(char *s)
{
	char *o = s;
	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*o++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
}

/* Split LINE into *M. Fields are separated by one space each: an empty one
 * (a mount whose source is "") stays a field. */
static bool parse(char *line, struct mount_line *m)
{
	char *f[5], *end, *tok;
	for (int k = 0; k < 5; k++)
		if (!(f[k] = strsep(&line, " ")))
			return false;
	/* OPTIONS, then optional fields ("shared:1"...) up to "-" */
	while ((tok = strsep(&line, " ")) && strcmp(tok, "-"))
		;
	m->fstype = strsep(&line, " ");
	char *source = strsep(&line, " ");
	m->super = strsep(&line, " ");
	long id = strtol(f[0], &end, 10);
	unsigned maj, min;
	if (!tok || !m->fstype || !source || end == f[0] || *end || id < 0 || id > INT_MAX ||
	    sscanf(f[2], "%u:%u", &maj, &min) != 2)
		return false;
	m->id = (int)id;
	m->dev = makedev(maj, min);
	unescape(f[4]);
	m->mountpoint = f[4];
	return true;
}

bool mounts_next(char **pos, struct mount_line *m)
{
	while (*pos && **pos) {
		char *line = *pos, *nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		*pos = nl;
		if (parse(line, m))
			return true;
	}
	return false;
}

bool mounts_is_fuse(const char *fstype)
{
	return !strcmp(fstype, "fuse") || !strcmp(fstype, "fuseblk") || !strncmp(fstype, "fuse.", 5);
}

long mounts_user_id(const char *opts)
{
	for (const char *p = opts; p && *p;) {
		size_t len = strcspn(p, ",");
		if (!strncmp(p, "user_id=", 8)) {
			char *end;
			long u = strtol(p + 8, &end, 10);
			return end == p + len && end > p + 8 && u >= 0 ? u : -1;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return -1;
}

/* May UID/GID use a FUSE mount with super options OPTS (the kernel's
 * fuse_allow_current_process(): root is no exception)? */
static bool usable(const char *opts, uid_t uid, gid_t gid)
{
	bool other = false;
	long u = -1, g = -1;
	for (const char *p = opts; p && *p;) {
		size_t len = strcspn(p, ",");
		if (len == 11 && !strncmp(p, "allow_other", 11))
			other = true;
		else if (!strncmp(p, "user_id=", 8))
			u = strtol(p + 8, NULL, 10);
		else if (!strncmp(p, "group_id=", 9))
			g = strtol(p + 9, NULL, 10);
		p += len;
		if (*p == ',')
			p++;
	}
	return other || (u == (long)uid && g == (long)gid);
}

/* Is PATH beneath (not at) mount point DIR? */
static bool beneath(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	if (n == 1)	/* "/" */
		return path[1] != '\0';
	return !strncmp(path, dir, n) && path[n] == '/';
}

void mounts_free(char **v)
{
	for (char **p = v; p && *p; p++)
		orch_free(*p);
	orch_free(v);
}

int mounts_fuse(char *text, uid_t uid, gid_t gid, const char *const *skip, char ***out, size_t *np)
{
	/* every FUSE mount point first (usable or not: what lies beneath any
	 * of them is left out), then the usable ones */
	size_t n = 0, cap = 0;
	struct fm { char *path; bool ok; } *all = NULL;
	struct mount_line m;
	for (char *pos = text; mounts_next(&pos, &m);) {
		if (!mounts_is_fuse(m.fstype))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			struct fm *na = orch_reallocarray(all, nc, sizeof(*na));
			if (!na) {
				orch_free(all);
				return -ENOMEM;
			}
			all = na;
			cap = nc;
		}
		all[n].path = m.mountpoint;
		all[n].ok = usable(m.super, uid, gid);
		for (const char *const *d = skip; d && *d && all[n].ok; d++)
			if (!strcmp(m.mountpoint, *d) || beneath(m.mountpoint, *d))
				all[n].ok = false;
		n++;
	}
	char **v = orch_calloc(n + 1, sizeof(char *));
	size_t got = 0;
	for (size_t i = 0; v && i < n; i++) {
		bool keep = all[i].ok;
		for (size_t k = 0; keep && k < n; k++)
			if (beneath(all[i].path, all[k].path))
				keep = false;
		for (size_t k = 0; keep && k < got; k++)
			if (!strcmp(all[i].path, v[k]))
				keep = false;	/* mounted over again */
		if (keep && !(v[got++] = orch_strdup(all[i].path))) {
			mounts_free(v);
			v = NULL;
		}
	}
	orch_free(all);
	if (!v)
		return -ENOMEM;
	*out = v;
	*np = got;
	return 0;
}
