/* core/syncer.c — the WAL's group commit thread (see syncer.h). */
#include "core/syncer.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util.h"

/* fdatasync() of any descriptor of the file makes all of it durable, the
 * pages SQLite wrote through its own included. The WAL keeps its inode while
 * the database is open (exclusive locking mode): reopen only if it changed. */
static int sync_file(struct syncer *s)
{
	struct stat a, b;
	if (s->fd >= 0 && (stat(s->path, &a) < 0 || fstat(s->fd, &b) < 0 || a.st_ino != b.st_ino ||
			   a.st_dev != b.st_dev)) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->fd < 0 && (s->fd = open(s->path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? 0 : -errno;	/* no WAL: nothing to sync */
	return fdatasync(s->fd) < 0 ? -errno : 0;
}

static void *syncer_main(void *arg)
{
	struct syncer *s = arg;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->want == s->done && !s->quit)
			pthread_cond_wait(&s->cond, &s->lock);
		if (s->want == s->done)
			break;
		uint64_t g = s->want;
		pthread_mutex_unlock(&s->lock);
		int rc = sync_file(s);
		pthread_mutex_lock(&s->lock);
		s->done = g;
		if (rc)
			s->err = rc;
		if (!s->posted) {
			s->posted = true;
			loop_post(s->loop, &s->work);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int syncer_start(struct syncer *s, struct loop *loop, const char *path, void (*fn)(struct loop_work *, void *))
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->loop = loop;
	s->work.fn = fn;
	if (!(s->path = orch_strdup(path)))
		return -ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	int r = pthread_create(&s->thread, NULL, syncer_main, s);
	if (r) {
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->cond);
		orch_free(s->path);
		s->path = NULL;
		return -r;
	}
	s->started = true;
	return 0;
}

uint64_t syncer_request(struct syncer *s)
{
	pthread_mutex_lock(&s->lock);
	uint64_t g = ++s->want;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return g;
}

uint64_t syncer_done(struct syncer *s, int *err)
{
	pthread_mutex_lock(&s->lock);
	uint64_t d = s->done;
	*err = s->err;
	s->err = 0;
	s->posted = false;
	pthread_mutex_unlock(&s->lock);
	return d;
}

void syncer_stop(struct syncer *s)
{
	if (!s->started)
		return;
	pthread_mutex_lock(&s->lock);
	s->quit = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	orch_free(s->path);
	s->path = NULL;
	s->started = false;
}
