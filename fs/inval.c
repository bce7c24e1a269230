/* fs/inval.c — telling the kernel to forget names the engine removed on its
 * own (a sandbox deleted through its ctl), so that names may be cached
 * (see fs.h). fuse_lowlevel_notify_inval_entry() takes the directory's lock
 * in the kernel, uninterruptibly, and a request waiting for the engine may
 * hold it: the engine thread queues, this thread tells. The wait ends when
 * the engine answers, or when the connection is aborted: by main() at an
 * orderly stop, by the watchdog when the daemon dies (fs/conn.h). */
#include "fs/fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *inval_main(void *arg)
{
	struct fs *fs = arg;
	pthread_mutex_lock(&fs->inval_lock);
	for (;;) {
		while (!fs->inval_head && !fs->inval_quit)
			pthread_cond_wait(&fs->inval_cond, &fs->inval_lock);
		struct fs_inval *i = fs->inval_head;
		if (!i)
			break;
		fs->inval_head = i->next;
		if (!fs->inval_head)
			fs->inval_tail = NULL;
		bool quit = fs->inval_quit;
		pthread_mutex_unlock(&fs->inval_lock);
		/* ENOENT: the kernel had not cached it; nothing else to do either way */
		if (!quit)
			fuse_lowlevel_notify_inval_entry(fs->se, i->parent, i->name, strlen(i->name));
		free(i);
		pthread_mutex_lock(&fs->inval_lock);
	}
	pthread_mutex_unlock(&fs->inval_lock);
	return NULL;
}

int fs_inval_start(struct fs *fs)
{
	pthread_mutex_init(&fs->inval_lock, NULL);
	pthread_cond_init(&fs->inval_cond, NULL);
	int r = pthread_create(&fs->inval_thread, NULL, inval_main, fs);
	if (r)
		return -r;
	pthread_setname_np(fs->inval_thread, "orchfs-inval");
	fs->inval_started = true;
	return 0;
}

void fs_inval_entry(struct fs *fs, fuse_ino_t parent, const char *name)
{
	size_t n = strlen(name);
	struct fs_inval *i = malloc(sizeof(*i) + n + 1);
	if (!i || !fs->inval_started) {
		/* the name stays cached until its entry timeout: a stale
		 * entry answers ENOENT meanwhile */
		free(i);
		return;
	}
	i->next = NULL;
	i->parent = parent;
	memcpy(i->name, name, n + 1);
	pthread_mutex_lock(&fs->inval_lock);
	if (fs->inval_tail)
		fs->inval_tail->next = i;
	else
		fs->inval_head = i;
	fs->inval_tail = i;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->inval_lock);
}

bool fs_inval_stop(struct fs *fs, int timeout_ms)
{
	if (!fs->inval_started)
		return true;
	pthread_mutex_lock(&fs->inval_lock);
	fs->inval_quit = true;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->inval_lock);
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	if (pthread_timedjoin_np(fs->inval_thread, NULL, &dl) != 0) {
		/* held in the kernel by a request no one will answer now: the
		 * caller aborts the connection and calls again, or leaves it, and
		 * the session with it (it must not free it then) */
		return false;
	}
	fs->inval_started = false;
	while (fs->inval_head) {
		struct fs_inval *i = fs->inval_head;
		fs->inval_head = i->next;
		free(i);
	}
	fs->inval_tail = NULL;
	return true;
}
