/* core/quota.c — per-user limits (quota.h): a small hash of users by uid,
 * each with its counts, and the check and message of a refusal.
 *
 * A refusal names the user: the name comes from /etc/passwd, read directly
 * (fgetpwent_r) rather than through NSS, which may ask the network, and the
 * engine thread never waits for that. A user the file does not know shows
 * as "uid N". */
#include "core/quota.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

const char *const quota_names[QUOTA_NKINDS] = {
	[QUOTA_SANDBOXES] = "sandboxes",
	[QUOTA_PORTS] = "ports",
	[QUOTA_ACTIVE_RUNS] = "active_runs",
	[QUOTA_ACTIVE_STEPS] = "active_steps",
	[QUOTA_QUEUED_MESSAGES] = "queued_messages",
	[QUOTA_PLAN_FILES] = "plan_files",
	[QUOTA_PLAN_BYTES] = "plan_bytes",
	[QUOTA_OPEN_FILES] = "open_files",
};

/* What the count is of, as a refusal says it. */
static const char *const what[QUOTA_NKINDS] = {
	[QUOTA_SANDBOXES] = "sandboxes",
	[QUOTA_PORTS] = "ports",
	[QUOTA_ACTIVE_RUNS] = "active runs",
	[QUOTA_ACTIVE_STEPS] = "steps in active runs",
	[QUOTA_QUEUED_MESSAGES] = "queued messages",
	[QUOTA_PLAN_FILES] = "files in plans/",
	[QUOTA_PLAN_BYTES] = "bytes in plans/",
	[QUOTA_OPEN_FILES] = "files open in the mount",
};

static const char *const what_one[QUOTA_NKINDS] = {
	[QUOTA_SANDBOXES] = "sandbox",
	[QUOTA_PORTS] = "port",
	[QUOTA_ACTIVE_RUNS] = "active run",
	[QUOTA_ACTIVE_STEPS] = "step in active runs",
	[QUOTA_QUEUED_MESSAGES] = "queued message",
	[QUOTA_PLAN_FILES] = "file in plans/",
	[QUOTA_PLAN_BYTES] = "byte in plans/",
	[QUOTA_OPEN_FILES] = "file open in the mount",
};

const int64_t quota_defaults[QUOTA_NKINDS] = {
	[QUOTA_SANDBOXES] = 256,
	[QUOTA_PORTS] = 512,
	[QUOTA_ACTIVE_RUNS] = 64,
	[QUOTA_ACTIVE_STEPS] = 200000,
	[QUOTA_QUEUED_MESSAGES] = 10000,
	[QUOTA_PLAN_FILES] = 1024,
	[QUOTA_PLAN_BYTES] = 64 << 20,
	[QUOTA_OPEN_FILES] = 1024,
};

#define LOG_EVERY_MS 60000

int quota_kind_parse(const char *name)
{
	for (int k = 0; k < QUOTA_NKINDS; k++)
		if (!strcmp(name, quota_names[k]))
			return k;
	return -1;
}

void quota_init(struct quota *q, const int64_t *max, bool limit_root)
{
	memset(q, 0, sizeof(*q));
	for (int k = 0; max && k < QUOTA_NKINDS; k++)
		q->max[k] = max[k] > 0 ? max[k] : 0;
	q->limit_root = limit_root;
}

void quota_clear(struct quota *q)
{
	for (size_t h = 0; h < QUOTA_HASH; h++)
		for (struct quota_user *u = q->tab[h]; u; u = u->next) {
			int64_t open = u->used[QUOTA_OPEN_FILES];
			memset(u->used, 0, sizeof(u->used));
			u->used[QUOTA_OPEN_FILES] = open;
		}
}

void quota_release(struct quota *q)
{
	for (size_t h = 0; h < QUOTA_HASH; h++)
		while (q->tab[h]) {
			struct quota_user *u = q->tab[h];
			q->tab[h] = u->next;
			orch_free(u);
		}
}

static struct quota_user *find(const struct quota *q, uid_t uid)
{
	for (struct quota_user *u = q->tab[uid % QUOTA_HASH]; u; u = u->next)
		if (u->uid == uid)
			return u;
	return NULL;
}

static struct quota_user *get(struct quota *q, uid_t uid)
{
	struct quota_user *u = find(q, uid);
	if (u)
		return u;
	u = orch_calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	u->next = q->tab[uid % QUOTA_HASH];
	q->tab[uid % QUOTA_HASH] = u;
	return u;
}

void quota_add(struct quota *q, uid_t uid, enum quota_kind k, int64_t delta)
{
	struct quota_user *u = delta > 0 ? get(q, uid) : find(q, uid);
	if (!u)
		return;
	u->used[k] += delta;
	if (u->used[k] < 0)
		u->used[k] = 0;	/* never below nothing, whatever a caller miscounted */
}

int64_t quota_used(const struct quota *q, uid_t uid, enum quota_kind k)
{
	const struct quota_user *u = find(q, uid);
	return u ? u->used[k] : 0;
}

/* How a refusal names the user: `user "alice"`, or `uid 1001` when the
 * passwd file does not know it (looked up once). */
static const char *user_name(struct quota_user *u)
{
	if (u->name[0])
		return u->name;
	snprintf(u->name, sizeof(u->name), "uid %u", (unsigned)u->uid);
	FILE *f = fopen("/etc/passwd", "re");
	if (!f)
		return u->name;
	struct passwd pw, *res;
	char buf[1024];
	while (fgetpwent_r(f, &pw, buf, sizeof(buf), &res) == 0)
		if (res->pw_uid == u->uid) {
			if (strlen(res->pw_name) + sizeof("user \"\"") <= sizeof(u->name))
				snprintf(u->name, sizeof(u->name), "user \"%s\"", res->pw_name);
			break;
		}
	fclose(f);
	return u->name;
}

int quota_check(struct quota *q, uid_t uid, enum quota_kind k, int64_t n, struct sbuf *msg)
{
	int64_t max = q->max[k];
	if (!max || n <= 0 || (uid == 0 && !q->limit_root))
		return 0;
	struct quota_user *u = get(q, uid);
	int64_t used = u ? u->used[k] : 0;
	if (used + n <= max)
		return 0;
	if (msg) {
		char who[64];
		if (u)
			snprintf(who, sizeof(who), "%s", user_name(u));
		else
			snprintf(who, sizeof(who), "uid %u", (unsigned)uid);
		sbuf_addf(msg, "%s has %lld %s; %lld more would pass the limit of %lld (limits.%s in --config)",
			  who, (long long)used, used == 1 ? what_one[k] : what[k], (long long)n, (long long)max,
			  quota_names[k]);
	}
	return -EDQUOT;
}

bool quota_log_due(struct quota *q, uid_t uid, enum quota_kind k, int64_t now_ms)
{
	struct quota_user *u = get(q, uid);
	if (!u)
		return true;
	if (u->logged_ms[k] && now_ms - u->logged_ms[k] < LOG_EVERY_MS)
		return false;
	u->logged_ms[k] = now_ms;
	return true;
}
