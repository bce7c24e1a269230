/* core/spawner.c — the thread that starts step processes (see spawner.h). */
#include "core/spawner.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "core/proc.h"
#include "core/util.h"

static void run_job(struct spawn_job *j)
{
	char *exe = NULL;
	/* PATH search in the child's terms: this thread may block on it */
	j->err = proc_resolve(j->argv[0], j->path, &exe);
	if (!j->err) {
		struct proc_spec spec = { .path = exe, .argv = j->argv, .envp = j->envp,
					  .out_fd = j->out_fd, .err_fd = j->err_fd, .cwd = j->cwd };
		j->err = proc_spawn(&spec, &j->pid, &j->pidfd);
	}
	orch_free(exe);
	close(j->out_fd);
	if (j->err_fd >= 0)
		close(j->err_fd);
	j->out_fd = j->err_fd = -1;
}

static void *spawner_main(void *arg)
{
	struct spawner *s = arg;
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
		run_job(j);
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
	int r = pthread_create(&s->thread, NULL, spawner_main, s);
	if (r) {
		pthread_mutex_destroy(&s->lock);
		pthread_cond_destroy(&s->cond);
		return -r;
	}
	s->started = true;
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
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->thread, NULL);
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
