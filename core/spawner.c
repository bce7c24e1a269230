/* core/spawner.c — the thread that starts step processes (see spawner.h). */
#include "core/spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
	*c = (struct spawn_cached){ NULL, NULL, NULL, 0 };
}

/* Does every entry of PATH (NULL: the default) name an absolute directory? */
static bool path_absolute(const char *path)
{
	if (!path)
		return true;
	for (const char *p = path;; p++) {
		if (*p != '/')
			return false;	/* a relative entry, or the empty one */
		p = strchr(p, ':');
		if (!p)
			return true;
	}
}

/* A command whose search does not depend on the cwd: a name looked up
 * along absolute entries only, or an absolute path. */
static bool trust_key(const char *cmd, const char *path)
{
	return cmd[0] == '/' || (!strchr(cmd, '/') && path_absolute(path));
}

/* Only a search along absolute entries: a relative one depends on the cwd. */
static void cache_add(struct spawner_thread *s, const char *cmd, const char *path, const char *exe)
{
	if (exe[0] != '/' || strchr(cmd, '/') || !path_absolute(path))
		return;
	struct spawn_cached *c = &s->cache[s->next_slot++ % SPAWNER_CACHE];
	cache_drop(c);
	c->cmd = orch_strdup(cmd);
	c->path = path ? orch_strdup(path) : NULL;
	c->exe = orch_strdup(exe);
	if (!c->cmd || !c->exe || (path && !c->path))
		cache_drop(c);
}

/* An executable file that is no binary and has no #! line: run it with
 * /bin/sh, as execvp() (and a shell) would. */
static int spawn_script(struct proc_spec *spec, const char *exe, pid_t *pid, int *pidfd)
{
	size_t n = 0;
	while (spec->argv[n])
		n++;
	char **v = orch_calloc(n + 2, sizeof(char *));
	if (!v)
		return -ENOMEM;
	v[0] = "/bin/sh";
	v[1] = (char *)exe;
	for (size_t i = 1; i < n; i++)
		v[i + 1] = spec->argv[i];
	struct proc_spec sh = *spec;
	sh.path = "/bin/sh";
	sh.argv = v;
	int rc = proc_spawn(&sh, pid, pidfd);
	orch_free(v);
	return rc;
}

/* EXE, a new string, when proc_exe_trusted(); NULL otherwise. A command
 * found untrusted is not checked again for SPAWNER_TRUST_MS: each check
 * stats every directory on its way. */
static char *check_trust(struct spawner_thread *s, const char *exe)
{
	int64_t now = clock_mono_ms();
	for (unsigned i = 0; i < SPAWNER_CACHE; i++)
		if (s->untrusted[i].exe && !strcmp(s->untrusted[i].exe, exe) &&
		    now - s->untrusted[i].at <= SPAWNER_TRUST_MS)
			return NULL;
	if (proc_exe_trusted(exe))
		return orch_strdup(exe);
	struct spawn_untrusted *u = &s->untrusted[s->next_untrusted++ % SPAWNER_CACHE];
	orch_free(u->exe);
	u->exe = orch_strdup(exe);
	u->at = now;
	return NULL;
}

/* Open the directory J runs in: j->cwd_rel beneath j->cwd, without
 * leaving it (a symlink or ".." that would is refused: -EXDEV). Its fd in
 * *DFD and its path, for relative PATH entries, in WHERE; 0 or -errno. */
static int open_cwd(const struct spawn_job *j, int *dfd, char *where, size_t size)
{
	int wfd = open(j->cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (wfd < 0)
		return -errno;
	struct open_how how = { .flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_BENEATH };
	int fd = (int)syscall(SYS_openat2, wfd, j->cwd_rel, &how, sizeof(how));
	int err = fd < 0 ? -errno : 0;
	close(wfd);
	if (err)
		return err;
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, where, size - 1);
	if (n <= 0 || where[0] != '/') {
		close(fd);
		return n < 0 ? -errno : -ENOENT;
	}
	where[n] = '\0';
	*dfd = fd;
	return 0;
}

static void run_job(struct spawner_thread *s, struct spawn_job *j)
{
	if (j->reap) {
		int st;
		while (waitpid(j->pid, &st, 0) < 0 && errno == EINTR)
			;
		return;
	}
	char *exe = NULL;
	struct spawn_cached *c = cache_find(s, j->argv[0], j->path);
	int dfd = -1;
	char where[PATH_MAX];
	const char *cwd = j->cwd;
	if (j->cwd_rel && (j->err = open_cwd(j, &dfd, where, sizeof(where))))
		goto out;
	if (j->cwd_rel)
		cwd = where;
	for (int tries = 0; tries < 2; tries++) {
		/* PATH search in the child's terms: this thread may block on it */
		if (c)
			j->err = (exe = orch_strdup(c->exe)) ? 0 : -ENOMEM;
		else if (!(j->err = proc_resolve_in(j->argv[0], j->path, cwd, &exe)))
			cache_add(s, j->argv[0], j->path, exe);
		if (!j->err) {
			struct proc_spec spec = { .path = exe, .argv = j->argv, .envp = j->envp,
						  .out_fd = j->out_fd, .err_fd = j->err_fd,
						  .env_fd = j->env_fd, .cwd = j->cwd, .cwd_fd = dfd,
						  .new_session = j->new_session };
			j->err = proc_spawn(&spec, &j->pid, &j->pidfd);
			if (j->err == -ENOEXEC)
				j->err = spawn_script(&spec, exe, &j->pid, &j->pidfd);
			/* may the engine spawn it itself from now on? */
			else if (!j->err && j->want_trust && trust_key(j->argv[0], j->path))
				j->trusted_exe = check_trust(s, exe);
		}
		orch_free(exe);
		exe = NULL;
		/* what was found there is gone: search again */
		if (!c || (j->err != -ENOENT && j->err != -EACCES))
			break;
		cache_drop(c);
		c = NULL;
	}
out:
	if (dfd >= 0)
		close(dfd);
	spawn_job_close_fds(j);
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
		for (unsigned k = 0; k < SPAWNER_CACHE; k++) {
			cache_drop(&s->t[i].cache[k]);
			orch_free(s->t[i].untrusted[k].exe);
			s->t[i].untrusted[k].exe = NULL;
		}
	}
	for (unsigned k = 0; k < SPAWNER_CACHE; k++)
		cache_drop(&s->here.cache[k]);
	s->nthreads = 0;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	s->started = false;
}

const char *spawner_trusted(struct spawner *s, const char *cmd, const char *path, int64_t now)
{
	struct spawn_cached *c = cache_find(&s->here, cmd, path);
	if (c && now - c->at > SPAWNER_TRUST_MS) {
		cache_drop(c);
		c = NULL;
	}
	return c ? c->exe : NULL;
}

void spawner_trust(struct spawner *s, const char *cmd, const char *path, const char *exe, int64_t now)
{
	if (!s->started)
		return;	/* a job back after spawner_stop(), which freed the cache */
	struct spawn_cached *c = cache_find(&s->here, cmd, path);
	if (!c) {
		c = &s->here.cache[s->here.next_slot++ % SPAWNER_CACHE];
		cache_drop(c);
		c->cmd = orch_strdup(cmd);
		c->path = path ? orch_strdup(path) : NULL;
	} else {
		orch_free(c->exe);
	}
	c->exe = orch_strdup(exe);
	c->at = now;
	if (!c->cmd || !c->exe || (path && !c->path))
		cache_drop(c);
}

void spawner_distrust(struct spawner *s, const char *cmd, const char *path)
{
	struct spawn_cached *c = cache_find(&s->here, cmd, path);
	if (c)
		cache_drop(c);
}

void spawn_job_free(struct spawn_job *j)
{
	if (!j)
		return;
	for (char **p = j->argv; p && *p; p++)
		orch_free(*p);
	orch_free(j->argv);
	orch_free(j->envp);
	orch_free(j->path);
	orch_free(j->cwd);
	orch_free(j->cwd_rel);
	orch_free(j->trusted_exe);
	spawn_job_close_fds(j);
	orch_free(j);
}

void spawn_job_close_fds(struct spawn_job *j)
{
	int *fd[] = { &j->out_fd, &j->err_fd, &j->env_fd };
	for (size_t i = 0; i < ARRAY_SIZE(fd); i++) {
		if (*fd[i] >= 0)
			close(*fd[i]);
		*fd[i] = -1;
	}
}
