/* core/mounts.c — the host's FUSE mounts (see mounts.h). */
#include "core/mounts.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

static bool is_fuse(const char *fstype)
{
	return !strcmp(fstype, "fuse") || !strcmp(fstype, "fuseblk") || !strncmp(fstype, "fuse.", 5);
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
	for (char *line = text, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		/* id parent maj:min root MOUNTPOINT opts [optional...] - FSTYPE source SUPER */
		char *f[5] = { 0 }, *save = NULL, *tok = strtok_r(line, " ", &save);
		for (int k = 0; tok && k < 5; k++, tok = strtok_r(NULL, " ", &save))
			f[k] = tok;
		char *fstype = NULL, *super = NULL;
		for (; tok; tok = strtok_r(NULL, " ", &save))
			if (!strcmp(tok, "-")) {
				fstype = strtok_r(NULL, " ", &save);
				if (fstype && strtok_r(NULL, " ", &save))
					super = strtok_r(NULL, " ", &save);
				break;
			}
		if (!f[4] || !fstype || !is_fuse(fstype))
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
		unescape(f[4]);
		all[n].path = f[4];
		all[n].ok = usable(super, uid, gid);
		for (const char *const *d = skip; d && *d && all[n].ok; d++)
			if (!strcmp(f[4], *d) || beneath(f[4], *d))
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
