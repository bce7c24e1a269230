/* core/ident.c — user names and group membership from the passwd and group
 * files (ident.h). */
#include "core/ident.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/util.h"

void ident_init(struct ident *id, const char *passwd, const char *group)
{
	memset(id, 0, sizeof(*id));
	id->passwd = passwd ? passwd : "/etc/passwd";
	id->group = group ? group : "/etc/group";
}

static void drop_all(struct ident *id)
{
	for (size_t i = 0; i < IDENT_HASH; i++)
		while (id->tab[i]) {
			struct ident_user *u = id->tab[i];
			id->tab[i] = u->next;
			orch_free(u);
		}
}

void ident_release(struct ident *id) { drop_all(id); }

/* fgetpwent_r() and fgetgrent_r() fail with ERANGE on an entry longer than
 * the buffer (a long GECOS field, a group of many members), back at its
 * start: a new one twice as large, up to 16 MiB. *BUF is STACK or from the
 * heap; false (and *BUF NULL) when out of memory or past the limit. */
static bool grow(char **buf, size_t *cap, char *stack)
{
	char *b = *cap < (16 << 20) ? orch_malloc(*cap * 2) : NULL;
	if (*buf != stack)
		orch_free(*buf);
	*buf = b;
	*cap *= 2;
	return b != NULL;
}

/* Drop the cache when the passwd file is not the one it was read from. */
static void revalidate(struct ident *id)
{
	int64_t now = clock_mono_ms();
	if (id->checked_ms && now - id->checked_ms < 1000)
		return;
	id->checked_ms = now;
	struct stat st;
	if (stat(id->passwd, &st) < 0)
		memset(&st, 0, sizeof(st));
	int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	if (st.st_dev != id->dev || st.st_ino != id->ino || mt != id->mtime_ns || st.st_size != id->size) {
		drop_all(id);
		id->dev = st.st_dev;
		id->ino = st.st_ino;
		id->mtime_ns = mt;
		id->size = st.st_size;
	}
}

const char *ident_user(struct ident *id, uid_t uid)
{
	static char fallback[IDENT_NAME_MAX];
	revalidate(id);
	struct ident_user **slot = &id->tab[uid % IDENT_HASH];
	for (struct ident_user *u = *slot; u; u = u->next)
		if (u->uid == uid)
			return u->name;
	char name[IDENT_NAME_MAX];
	snprintf(name, sizeof(name), "uid %u", (unsigned)uid);
	/* the answer is cached only when sure: the file read to its end or to
	 * UID, or no file (not when out of memory or descriptors) */
	bool sure = false;
	FILE *f = fopen(id->passwd, "re");
	if (f) {
		struct passwd pw, *res;
		char stack[2048], *buf = stack;
		size_t cap = sizeof(stack);
		int r;
		while ((r = fgetpwent_r(f, &pw, buf, cap, &res)) == 0 ||
		       (r == ERANGE && grow(&buf, &cap, stack)))
			if (r == 0 && res->pw_uid == uid) {
				if (strlen(res->pw_name) < IDENT_NAME_MAX)
					snprintf(name, sizeof(name), "%s", res->pw_name);
				break;
			}
		sure = r == 0 || r == ENOENT;
		if (buf != stack)
			orch_free(buf);
		fclose(f);
	} else {
		sure = errno == ENOENT;
	}
	struct ident_user *u = sure ? orch_calloc(1, sizeof(*u)) : NULL;
	if (!u) {
		memcpy(fallback, name, sizeof(name));
		return fallback;
	}
	memcpy(u->name, name, sizeof(name));
	u->uid = uid;
	u->next = *slot;
	*slot = u;
	return u->name;
}

bool ident_in_group(struct ident *id, const char *user, gid_t gid, const gid_t *groups, size_t n,
		    const char *group)
{
	FILE *f = fopen(id->group, "re");
	if (!f)
		return false;
	bool in = false;
	struct group gr, *res;
	/* a group of many members takes a larger buffer, from the heap */
	char stack[4096], *buf = stack;
	size_t cap = sizeof(stack);
	int r;
	while ((r = fgetgrent_r(f, &gr, buf, cap, &res)) == 0 ||
	       (r == ERANGE && grow(&buf, &cap, stack))) {
		if (r || strcmp(res->gr_name, group))
			continue;
		in = res->gr_gid == gid;
		for (size_t i = 0; !in && i < n; i++)
			in = groups[i] == res->gr_gid;
		for (char **m = res->gr_mem; !in && user && m && *m; m++)
			in = !strcmp(*m, user);
		break;
	}
	if (buf != stack)
		orch_free(buf);
	fclose(f);
	return in;
}
