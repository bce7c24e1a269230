/* core/statedir.c — path operations below the state directory through
 * directory descriptors, and the trash thread (see statedir.h).
 *
 * Why descriptors: users own their workspace, and (in state directories made
 * by older versions) owned their sandbox's directory, so any name below the
 * state directory may be swapped for a symlink or a FIFO between a check and
 * a use. Each operation here resolves one name relative to a descriptor of a
 * directory it already trusts, with O_NOFOLLOW, and looks at what it opened
 * (fstat) before it uses it. */
#include "core/statedir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"

/* ---- opening ---- */

/* openat(2) one name at a time, for kernels without openat2 (before 5.6) */
static int walk_open(int dfd, const char *rel, int flags, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(rel);
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, rel, n + 1);
	struct stat top;
	if (fstat(dfd, &top) < 0)
		return -errno;
	int cur = dfd;
	char *save = NULL, *name = strtok_r(buf, "/", &save);
	while (name) {
		char *next = strtok_r(NULL, "/", &save);
		if (!strcmp(name, "..")) {
			if (cur != dfd)
				close(cur);
			return -EXDEV;	/* as RESOLVE_BENEATH says it */
		}
		int fd = next ? openat(cur, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
			      : openat(cur, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
		int err = fd < 0 ? -errno : 0;
		if (cur != dfd)
			close(cur);
		if (err)
			return err == -ENOTDIR && next ? -ELOOP : err;
		struct stat st;
		if (fstat(fd, &st) < 0 || st.st_dev != top.st_dev) {
			close(fd);
			return -EXDEV;
		}
		if (!next && (flags & O_PATH) && S_ISLNK(st.st_mode)) {
			close(fd);
			return -ELOOP;
		}
		cur = fd;
		name = next;
	}
	return cur == dfd ? -EINVAL : cur;
}

int sd_open(int dfd, const char *rel, int flags, mode_t mode)
{
	if (!rel || !*rel || rel[0] == '/')
		return -EINVAL;
	struct open_how how = {
		.flags = (uint64_t)(unsigned)(flags | O_NOFOLLOW | O_CLOEXEC),
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	long fd = syscall(SYS_openat2, dfd, rel, &how, sizeof(how));
	if (fd >= 0) {
		/* O_PATH | O_NOFOLLOW opens a trailing symlink itself */
		struct stat st;
		if ((flags & O_PATH) && fstat((int)fd, &st) == 0 && S_ISLNK(st.st_mode)) {
			close((int)fd);
			return -ELOOP;
		}
		return (int)fd;
	}
	if (errno != ENOSYS)
		return -errno;
	return walk_open(dfd, rel, flags, mode);
}

int sd_opendir(int dfd, const char *rel)
{
	int fd = sd_open(dfd, rel, O_RDONLY | O_DIRECTORY, 0);
	if (fd == -ENOTDIR) {
		/* O_DIRECTORY says ENOTDIR for a trailing symlink: say what it is */
		int p = sd_open(dfd, rel, O_PATH, 0);
		if (p == -ELOOP)
			return -ELOOP;
		if (p >= 0)
			close(p);
	}
	return fd;
}

const char *sd_type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFIFO: return "a FIFO";
	case S_IFLNK: return "a symlink";
	case S_IFDIR: return "a directory";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	case S_IFSOCK: return "a socket";
	case S_IFREG: return "a file with more than one link";
	default: return "not a regular file";
	}
}

static bool one_name(const char *name)
{
	return name && *name && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

int sd_open_reg(int dirfd, const char *name, int flags, mode_t mode, mode_t *found, bool *created)
{
	if (found)
		*found = 0;
	if (created)
		*created = false;
	if (!one_name(name))
		return -EINVAL;
	int acc = flags & ~(O_CREAT | O_EXCL);
	if (flags & O_CREAT) {
		/* O_EXCL with O_NOFOLLOW: a new regular file, or nothing opened */
		int fd = openat(dirfd, name, acc | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
				mode);
		if (fd >= 0) {
			if (created)
				*created = true;
			return fd;
		}
		if (errno != EEXIST)
			return -errno;
	}
	/* look before opening: an O_PATH descriptor opens nothing (a FIFO
	 * would block, a device could act) */
	int pfd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	struct stat st;
	if (fstat(pfd, &st) < 0) {
		int err = -errno;
		close(pfd);
		return err;
	}
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		if (found)
			*found = st.st_mode;
		close(pfd);
		return -EIO;
	}
	/* open that very inode: through /proc, or (no /proc) by its name
	 * again, checked to be the same file */
	char proc[40];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	int fd = open(proc, acc | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		fd = openat(dirfd, name, acc | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	int err = fd < 0 ? -errno : 0;
	close(pfd);
	if (err)
		return err;
	struct stat st2;
	if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
		close(fd);
		return -EAGAIN;
	}
	return fd;
}

int sd_mkdirs(int dfd, const char *rel, mode_t mode)
{
	char buf[4096];
	size_t n = rel ? strlen(rel) : 0;
	if (!n || rel[0] == '/')
		return -EINVAL;
	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, rel, n + 1);
	int cur = dfd, err = 0;
	char *save = NULL;
	for (char *name = strtok_r(buf, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
		if (!one_name(name)) {
			err = -EINVAL;
			break;
		}
		if (mkdirat(cur, name, mode) < 0 && errno != EEXIST) {
			err = -errno;
			break;
		}
		int fd = openat(cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			err = errno == ENOTDIR || errno == ELOOP ? -ELOOP : -errno;
			struct stat st;
			if (err == -ELOOP && fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    !S_ISLNK(st.st_mode))
				err = -ENOTDIR;
			break;
		}
		if (cur != dfd)
			close(cur);
		cur = fd;
	}
	if (cur != dfd)
		close(cur);
	return err;
}

/* ---- removing ---- */

/* Deeper than this, a directory is moved up into the tree's top first. */
#define SD_DEPTH_MAX 48

struct rm_ctx {
	uid_t owner, self;
	dev_t dev;
	int topfd;		/* the tree's top, where deep directories go */
	unsigned long moved;	/* directories moved up so far */
	atomic_bool *stop;
	struct sd_rm_stats *st;
};

static void rm_fail(struct rm_ctx *c, int err)
{
	c->st->left++;
	if (!c->st->first_err)
		c->st->first_err = err;
}

static bool stopped(const struct rm_ctx *c) { return c->stop && atomic_load(c->stop); }

static void rm_entry(struct rm_ctx *c, int dfd, const char *name, int depth, bool top);

/* One pass over the entries of D (depth DEPTH). */
static void rm_entries(struct rm_ctx *c, DIR *d, int depth)
{
	struct dirent *de;
	while (!stopped(c) && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		rm_entry(c, dirfd(d), de->d_name, depth, false);
	}
}

static void rm_entry(struct rm_ctx *c, int dfd, const char *name, int depth, bool top)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			rm_fail(c, -errno);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		/* a file, a symlink (itself, never what it names), a FIFO... */
		if (unlinkat(dfd, name, 0) == 0)
			c->st->removed++;
		else if (errno != ENOENT)
			rm_fail(c, -errno);
		return;
	}
	bool ours = st.st_uid == c->owner || (top && st.st_uid == c->self);
	if (!ours || st.st_dev != c->dev) {
		/* not the owner's, or another file system (a mount point): the
		 * owner could remove it only empty, and so do we */
		if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
			c->st->removed++;
		else if (errno != ENOENT)
			rm_fail(c, !ours ? -EPERM : -EXDEV);
		return;
	}
	if (depth >= SD_DEPTH_MAX && c->topfd >= 0) {
		char up[64];
		snprintf(up, sizeof(up), ".orchfs-deep-%lu", c->moved);
		if (renameat(dfd, name, c->topfd, up) == 0)
			c->moved++;
		else if (errno != ENOENT)
			rm_fail(c, -errno);
		return;
	}
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			rm_fail(c, -errno);
		return;
	}
	struct stat fst;
	if (fstat(fd, &fst) < 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
		close(fd);	/* swapped since we looked: leave it */
		rm_fail(c, -EAGAIN);
		return;
	}
	/* a daemon that is not root needs write and search permission on
	 * its own directories (a user's own directories are its own too) */
	if (c->self != 0 && fst.st_uid == c->self && (fst.st_mode & 0700) != 0700)
		fchmod(fd, (fst.st_mode & 07777) | 0700);
	DIR *d = fdopendir(fd);
	if (!d) {
		rm_fail(c, -errno);
		close(fd);
		return;
	}
	if (top) {
		/* passes until nothing is moved up any more: what was moved up
		 * shows in the next one */
		c->topfd = fd;
		unsigned long left = c->st->left;
		int first = c->st->first_err;
		for (int pass = 0; pass < 1000 && !stopped(c); pass++) {
			unsigned long moved = c->moved;
			c->st->left = left;
			c->st->first_err = first;
			rewinddir(d);
			rm_entries(c, d, depth + 1);
			if (c->moved == moved)
				break;
		}
		c->topfd = -1;
	} else {
		rm_entries(c, d, depth + 1);
	}
	closedir(d);
	if (stopped(c))
		return;
	if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
		c->st->removed++;
	else if (errno != ENOENT)
		rm_fail(c, -errno);
}

int sd_rm_tree(int dirfd, const char *name, uid_t owner, atomic_bool *stop, struct sd_rm_stats *st)
{
	struct sd_rm_stats local;
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (!one_name(name))
		return -EINVAL;
	struct stat ds;
	if (fstat(dirfd, &ds) < 0)
		return -errno;
	struct rm_ctx c = { .owner = owner, .self = geteuid(), .dev = ds.st_dev, .topfd = -1, .stop = stop,
			    .st = st };
	rm_entry(&c, dirfd, name, 0, true);
	if (stopped(&c) && !st->first_err)
		return -EINTR;
	return st->first_err;
}

/* ---- the trash ---- */

struct sd_trash_item {
	struct sd_trash_item *next;
	uid_t owner;
	char name[64];
};

static void trash_push(struct sd_trash *t, const char *name, uid_t owner)
{
	struct sd_trash_item *it = orch_calloc(1, sizeof(*it));
	if (!it)
		return;	/* it stays in the trash: removed at the next start */
	snprintf(it->name, sizeof(it->name), "%s", name);
	it->owner = owner;
	pthread_mutex_lock(&t->lock);
	if (t->tail)
		t->tail->next = it;
	else
		t->head = it;
	t->tail = it;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

/* the owner an entry's name records (OWNER.N), else the daemon's user */
static uid_t trash_owner(const char *name)
{
	char *end;
	errno = 0;
	unsigned long u = strtoul(name, &end, 10);
	if (errno || end == name || *end != '.' || u > UINT32_MAX)
		return geteuid();
	return (uid_t)u;
}

static void *trash_main(void *arg)
{
	struct sd_trash *t = arg;
	/* what a previous daemon left */
	int dfd = dup(t->fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d && dfd >= 0)
		close(dfd);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			trash_push(t, de->d_name, trash_owner(de->d_name));
	if (d)
		closedir(d);
	for (;;) {
		pthread_mutex_lock(&t->lock);
		while (!t->head && !atomic_load(&t->stop))
			pthread_cond_wait(&t->cond, &t->lock);
		struct sd_trash_item *it = atomic_load(&t->stop) ? NULL : t->head;
		pthread_mutex_unlock(&t->lock);
		if (!it)
			break;
		struct sd_rm_stats st;
		sd_rm_tree(t->fd, it->name, it->owner, &t->stop, &st);
		if (st.left && !atomic_load(&t->stop) && t->log)
			t->log(t->log_arg,
			       "trash/%s: %lu entries left (%s): a directory not owned by uid %u is removed only"
			       " when empty",
			       it->name, st.left, strerror(-st.first_err), (unsigned)it->owner);
		pthread_mutex_lock(&t->lock);
		t->head = it->next;
		if (!t->head)
			t->tail = NULL;
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
		orch_free(it);
	}
	return NULL;
}

int sd_trash_start(struct sd_trash *t, int trash_fd)
{
	t->fd = trash_fd;
	t->head = t->tail = NULL;
	atomic_store(&t->stop, false);
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	int r = pthread_create(&t->thread, NULL, trash_main, t);
	if (r) {
		pthread_mutex_destroy(&t->lock);
		pthread_cond_destroy(&t->cond);
		return -r;
	}
	t->started = true;
	return 0;
}

int sd_trash_put(struct sd_trash *t, int dirfd, const char *name, uid_t owner)
{
	if (!one_name(name))
		return -EINVAL;
	if (!t->started) {
		/* no thread (start-up, tests): at once */
		int r = sd_rm_tree(dirfd, name, owner, NULL, NULL);
		return r == -ENOENT ? 0 : r;
	}
	char tn[64];
	snprintf(tn, sizeof(tn), "%u.%lld.%d.%lu", (unsigned)owner, (long long)time(NULL), (int)getpid(),
		 t->seq++);
	if (renameat(dirfd, name, t->fd, tn) < 0) {
		int err = -errno;
		if (err == -ENOENT)
			return 0;
		if (err != -EXDEV)
			return err;
		/* another file system below the state directory: in place */
		return sd_rm_tree(dirfd, name, owner, NULL, NULL);
	}
	trash_push(t, tn, owner);
	return 0;
}

void sd_trash_drain(struct sd_trash *t)
{
	if (!t->started)
		return;
	pthread_mutex_lock(&t->lock);
	while (t->head)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

void sd_trash_stop(struct sd_trash *t)
{
	if (t->started) {
		pthread_mutex_lock(&t->lock);
		atomic_store(&t->stop, true);
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->thread, NULL);
		while (t->head) {
			struct sd_trash_item *it = t->head;
			t->head = it->next;
			orch_free(it);
		}
		t->tail = NULL;
		pthread_mutex_destroy(&t->lock);
		pthread_cond_destroy(&t->cond);
		t->started = false;
	}
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
