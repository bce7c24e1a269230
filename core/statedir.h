/* core/statedir.h — path operations below the state directory: relative to
 * directory descriptors, never following a symlink at any level, never
 * opening anything but what they expect (a FIFO or a device put in a log's
 * place is not opened, so it cannot block), and the trash: trees to remove,
 * renamed out of the way at once and removed by a thread of its own.
 *
 * Threads: the sd_* helpers are pure (any thread). A struct sd_trash is
 * started and stopped by the engine's owner; sd_trash_put() is for the engine
 * thread; removal runs on the trash's thread. Functions return 0 or -errno;
 * descriptors returned are new (close-on-exec). */
#ifndef ORCH_STATEDIR_H
#define ORCH_STATEDIR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Open REL below directory DFD with FLAGS (O_NOFOLLOW and O_CLOEXEC added):
 * REL is relative, may not leave DFD ("..", an absolute symlink), may not
 * pass through or end in a symlink, nor cross onto another file system
 * (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV; on a
 * kernel without openat2, a walk of openat(O_NOFOLLOW) one name at a time).
 * A descriptor, or -errno (-ELOOP for a symlink on the way, -EXDEV). */
int sd_open(int dfd, const char *rel, int flags, mode_t mode);
/* The directory REL below DFD, opened O_RDONLY | O_DIRECTORY as above. */
int sd_opendir(int dfd, const char *rel);

/* The regular file NAME (one name, no '/') in directory DIRFD, opened with
 * FLAGS (an access mode, O_APPEND, O_TRUNC; O_CREAT makes it with MODE when
 * missing). What is there is looked at through an O_PATH descriptor first
 * and opened only if it is a regular file with one link: a FIFO, a device,
 * a socket, a symlink or a directory is never opened, and is -EIO with its
 * type in *FOUND (S_IFIFO...; 0 otherwise; FOUND may be NULL). *CREATED
 * (may be NULL) says whether this call made the file. */
int sd_open_reg(int dirfd, const char *name, int flags, mode_t mode, mode_t *found, bool *created);
/* "a FIFO", "a symlink", "a directory"...: what MODE's type is, for messages */
const char *sd_type_name(mode_t mode);

/* mkdir -p of REL below DFD (each directory MODE), through descriptors:
 * a symlink on the way is -ELOOP, something else than a directory -ENOTDIR. */
int sd_mkdirs(int dfd, const char *rel, mode_t mode);

/* What a removal left behind. */
struct sd_rm_stats {
	unsigned long removed;	/* entries removed */
	unsigned long left;	/* entries it would not or could not remove */
	int first_err;		/* the first failure (0: none) */
};

/* Remove NAME in DIRFD and everything below it, as OWNER could have:
 * entries are unlinked relative to their directory's descriptor, never
 * through a symlink (a symlink is removed itself); a directory is entered
 * only when OWNER owns it (NAME itself also when the daemon's user does)
 * and it lies on DIRFD's file system, so nothing is removed that OWNER
 * could not have removed. Directories nested deeper than a fixed depth are
 * moved up into NAME first (a bounded number of descriptors at any depth).
 * STOP (may be NULL) ends it early. 0 when all went, else the first -errno
 * (-EPERM for a directory OWNER does not own); ST may be NULL. */
int sd_rm_tree(int dirfd, const char *name, uid_t owner, atomic_bool *stop, struct sd_rm_stats *st);

/* ---- the trash ---- */

/* STATE/trash: what orchfs removes (a reset workspace, a deleted sandbox, a
 * run's logs) is renamed there at once, on the engine thread, and removed
 * by the trash's thread. Entries are named OWNER.N: the owner rule of
 * sd_rm_tree(). Entries left by a previous daemon are removed at start. */
struct sd_trash {
	int fd;			/* STATE/trash */
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct sd_trash_item *head, *tail;
	atomic_bool stop;
	unsigned long seq;
	/* what to say about entries it could not remove (its thread) */
	void (*log)(void *arg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
	void *log_arg;
};

/* Start the thread on the trash directory TRASH_FD (taken). */
int sd_trash_start(struct sd_trash *t, int trash_fd);
/* Rename NAME in DIRFD into the trash, to be removed as OWNER could (see
 * sd_rm_tree). 0 once it is out of the way; the removal comes later. */
int sd_trash_put(struct sd_trash *t, int dirfd, const char *name, uid_t owner);
/* Stop the thread (what is left is removed at the next start). */
void sd_trash_stop(struct sd_trash *t);
/* For tests: wait until the queue is empty. */
void sd_trash_drain(struct sd_trash *t);

#endif
