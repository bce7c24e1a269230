/* core/spawner.c — the thread that starts step processes (see spawner.h). */
#include "core/spawner.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/proc.h"
#include "core/util.h"

static bool same(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

static struct spawn_cached *cache_find(struct spawner_thread *s, const char *cmd, const char *path)
{
	for (unsigned i = 0; i < SPAWNER_CACHE; i++)
		if (s->cache[i].cmd && !strcmp(s->cache[i].cmd, cmd) && same(s->cache[i].path, path))
			return &s->cache[i];
	return NULL;
}

static void cache_drop(struct spawn_cached *c)
{
	orch_free(c->cmd);
	orch_free(c->path);
	orch_free(c->exe);
	*c = (struct spawn_cached){ NULL, NULL, NULL };
}

/* Only what an absolute PATH entry found: a relative one depends on the cwd. */
static void cache_add(struct spawner_thread *s, const char *cmd, const char *path, const char *exe)
{
	if (exe[0] != '/' || strchr(cmd, '/'))
		return;
	struct spawn_cached *c = &s->cache[s->next_slot++ % SPAWNER_CACHE];
	cache_drop(c);
	c->cmd = orch_strdup(cmd);
	c->path = path ? orch_strdup(path) : NULL;
	c->exe = orch_strdup(exe);
	if (!c->cmd || !c->exe || (path && !c->path))
		cache_drop(c);
}

static void run_job(struct spawner_thread *s, struct spawn_job *j)
{
	char *exe = NULL;
	struct spawn_cached *c = cache_find(s, j->argv[0], j->path);
	for (int tries = 0; tries < 2; tries++) {
		/* PATH search in the child's terms: this thread may block on it */
		if (c)
			j->err = (exe = orch_strdup(c->exe)) ? 0 : -ENOMEM;
		else if (!(j->err = proc_resolve(j->argv[0], j->path, &exe)))
			cache_add(s, j->argv[0], j->path, exe);
		if (!j->err) {
			struct proc_spec spec = { .path = exe, .argv = j->argv, .envp = j->envp,
						  .out_fd = j->out_fd, .err_fd = j->err_fd, .cwd = j->cwd };
			j->err = proc_spawn(&spec, &j->pid, &j->pidfd);
		}
		orch_free(exe);
		exe = NULL;
		/* what was found there is gone: search again */
		if (!c || (j->err != -ENOENT && j->err != -EACCES))
			break;
		cache_drop(c);
		c = NULL;
	}
	close(j->out_fd);
	if (j->err_fd >= 0)
		close(j->err_fd);
	j->out_fd = j->err_fd = -1;
}

static void *spawner_main(void *arg)
{
	struct spawner_thread *t = arg;
	struct spawner *s = t->s;
	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (!s->head && !s->quit)
			pthread_cond_wait(&s->cond, &s->lock);
		if (!s->head)
			break;
		struct spawn_job *j = s->head;
		s->head = j->next;
		if (!s->head)
			s->tail = NULL;
		pthread_mutex_unlock(&s->lock);
		run_job(t, j);
		loop_post(s->loop, &j->done);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int spawner_start(struct spawner *s, struct loop *loop)
{
	memset(s, 0, sizeof(*s));
	s->loop = loop;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->started = true;
	for (unsigned i = 0; i < SPAWNER_THREADS; i++) {
		s->t[i].s = s;
		int r = pthread_create(&s->t[i].thread, NULL, spawner_main, &s->t[i]);
		if (r) {
			if (!s->nthreads) {
				pthread_mutex_destroy(&s->lock);
				pthread_cond_destroy(&s->cond);
				s->started = false;
				return -r;
			}
			break;	/* fewer threads: slower, not wrong */
		}
		s->nthreads++;
	}
	return 0;
}

void spawner_submit(struct spawner *s, struct spawn_job *j)
{
	j->next = NULL;
	j->pidfd = -1;
	pthread_mutex_lock(&s->lock);
	if (s->tail)
		s->tail->next = j;
	else
		s->head = j;
	s->tail = j;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

void spawner_stop(struct spawner *s)
{
	if (!s->started)
		return;
	pthread_mutex_lock(&s->lock);
	s->quit = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->nthreads; i++) {
		pthread_join(s->t[i].thread, NULL);
		for (unsigned k = 0; k < SPAWNER_CACHE; k++)
			cache_drop(&s->t[i].cache[k]);
	}
	s->nthreads = 0;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	s->started = false;
}

void spawn_job_free(struct spawn_job *j)
{
	if (!j)
		return;
	for (char **p = j->argv; p && *p; p++)
		orch_free(*p);
	for (char **p = j->envp; p && *p; p++)
		orch_free(*p);
	orch_free(j->argv);
	orch_free(j->envp);
	orch_free(j->path);
	orch_free(j->cwd);
	if (j->out_fd >= 0)
		close(j->out_fd);
	if (j->err_fd >= 0)
		close(j->err_fd);
	orch_free(j);
}
