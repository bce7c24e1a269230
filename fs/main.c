/* fs/main.c — the orchfs daemon: arguments, the state directory and its
 * lock, daemonizing once the mount is ready, and an orderly stop.
 *
 * Threads: main (this file: start-up, then waits), the engine thread (core;
 * it also reads the FUSE channel and runs every request: fs/fs.c), the
 * invalidation thread (fs/inval.c) and core's helpers (spawners, syncer,
 * trash). A stop starts in the engine: SIGTERM, SIGINT, our mount gone from
 * the mount table, or the kernel ending the connection; the engine stops the
 * steps first, then main unmounts (if the mount is still ours) and exits.
 * Main also starts
 * the watchdog process, which aborts the FUSE connection if the daemon dies
 * without stopping, and at start clears what a dead daemon left (fs/conn.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/exec.h"
#include "core/logfile.h"
#include "core/proc.h"
#include "core/version.h"
#include "core/webhook.h"
#include "fs/conn.h"
#include "fs/fs.h"

static const char usage[] =
	"usage: orchfs [-f] [-d] [-o FUSE_OPTS] [--state DIR] [--config FILE] [--jobs N]\n"
	"              [--var NAME=VALUE]... [--port-range LO-HI] MOUNTPOINT\n"
	"       orchfs --help | --version\n"
	"\n"
	"  -f                 stay in the foreground (default: daemonize once mounted)\n"
	"  -d                 FUSE debug output (implies -f)\n"
	"  -o OPTS            mount options, e.g. allow_other,default_permissions\n"
	"  --state DIR        state directory (default: $ORCHFS_STATE, else\n"
	"                     $XDG_STATE_HOME/orchfs, else ~/.local/state/orchfs)\n"
	"  --config FILE      JSON settings: {\"state\", \"jobs\", \"vars\", \"port_range\", \"options\",\n"
	"                     \"log_max_bytes\", \"limits\", \"webhooks\"} (limits: per user; see the README)\n"
	"  --jobs N           at most N steps running at once across all runs (0: no limit)\n"
	"  --var NAME=VALUE   a default for ${NAME} in plans (repeatable)\n"
	"  --port-range LO-HI the TCP ports sandboxes take (default 20000-29999)\n"
	"  --help             this text\n"
	"  --version          print the version\n"
	"\n"
	"orchfs(1) describes the daemon and its tree, orchfs-plan(5) the plans.\n";

/* Where start-up errors go: stderr, or (daemonizing) the pipe to the parent,
 * which prints them. Only main() and its helpers exit. */
static int report_fd = -1;
/* A note for the log (what a start did about a dead daemon, an orderly
 * stop's abort): on stderr, which is the log (STATE/orchfs.log) once a
 * daemonizing start has taken it. */
static void say(const char *msg)
{
	char ts[ISO8601_LEN];
	fmt_iso8601(clock_wall_ms(), ts);
	fprintf(stderr, "%s orchfs: %s\n", ts, msg);
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (report_fd >= 0) {
		char buf[1100];
		int n = snprintf(buf, sizeof(buf), "%d orchfs: %s\n", code, msg);
		write_all(report_fd, buf, (size_t)n);
		_exit(code);
	}
	fprintf(stderr, "orchfs: %s\n", msg);
	exit(code);
}

struct opts {
	bool foreground, debug;
	char *fuse_opts;
	char *state;
	char *config;
	long jobs;		/* -1: not given */
	char **vars;
	size_t nvars;
	int port_min, port_max;
	int64_t log_max_bytes;	/* as struct orch_config's: 0 default, -1 none */
	int64_t limits[QUOTA_NKINDS];	/* per user; 0: none */
	bool limit_root;
	struct webhook_cfg *webhooks;	/* core/webhook.h */
	size_t nwebhooks;
	char *mountpoint;
};

static void add_var(struct opts *o, const char *nv)
{
	const char *eq = strchr(nv, '=');
	if (!eq || eq == nv)
		die(2, "--var takes NAME=VALUE, not \"%s\"", nv);
	char **v = realloc(o->vars, (o->nvars + 1) * sizeof(char *));
	if (!v || !(v[o->nvars] = strdup(nv)))
		die(1, "out of memory");
	o->vars = v;
	o->nvars++;
}

static void parse_ports(struct opts *o, const char *s, const char *where)
{
	int lo, hi, n = 0;
	if (sscanf(s, "%d-%d%n", &lo, &hi, &n) != 2 || s[n] || lo < 1 || hi > 65535 || lo > hi)
		die(2, "%s: port range must be LO-HI within 1-65535, not \"%s\"", where, s);
	o->port_min = lo;
	o->port_max = hi;
}

/* "limits": {"sandboxes": N, ..., "apply_to_root": BOOL}: each a whole
 * number, 0 for no limit; what is not given keeps its default. */
static void load_limits(struct opts *o, json_t *v)
{
	if (!json_is_object(v))
		die(2, "config %s: \"limits\" must be an object such as {\"sandboxes\": 256}, not %s",
		    o->config, json_kind(v));
	const char *k;
	json_t *n;
	json_object_foreach(v, k, n) {
		if (!strcmp(k, "apply_to_root")) {
			if (!json_is_boolean(n))
				die(2, "config %s: limits.apply_to_root must be true or false", o->config);
			o->limit_root = json_is_true(n);
			continue;
		}
		int q = quota_kind_parse(k);
		if (q < 0) {
			char known[256] = "";
			for (int i = 0; i < QUOTA_NKINDS; i++)
				snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s, ", quota_names[i]);
			die(2, "config %s: unknown limit \"%s\" in \"limits\" (known: %sapply_to_root)", o->config,
			    k, known);
		}
		if (!json_is_integer(n) || json_integer_value(n) < 0)
			die(2, "config %s: limits.%s must be a whole number (0: no limit), not %s", o->config, k,
			    json_is_integer(n) ? "a negative one" : json_is_real(n) ? "a fraction" : json_kind(n));
		o->limits[q] = (int64_t)json_integer_value(n);
	}
}

/* Settings from --config; the command line wins over them. */
static void load_config(struct opts *o, bool jobs_given, bool ports_given)
{
	json_error_t err;
	json_t *c = json_load_file(o->config, 0, &err);
	if (!c)
		die(2, "config %s: line %d, column %d: %s", o->config, err.line, err.column, err.text);
	if (!json_is_object(c))
		die(2, "config %s: must be a JSON object", o->config);
	const char *k;
	json_t *v;
	json_object_foreach(c, k, v) {
		if (!strcmp(k, "state") && json_is_string(v)) {
			if (!o->state)
				o->state = strdup(json_string_value(v));
		} else if (!strcmp(k, "jobs") && json_is_integer(v) && json_integer_value(v) >= 0) {
			if (!jobs_given)
				o->jobs = (long)json_integer_value(v);
		} else if (!strcmp(k, "port_range") && json_is_string(v)) {
			if (!ports_given)
				parse_ports(o, json_string_value(v), o->config);
		} else if (!strcmp(k, "log_max_bytes") && json_is_integer(v)) {
			/* what one step's log (and a sandbox's logs) keeps, its tail; 0: no cap */
			json_int_t n = json_integer_value(v);
			if (n != 0 && (n < LOG_CAP_MIN || n > ((json_int_t)1 << 50)))
				die(2, "config %s: log_max_bytes must be 0 (no cap) or from %lld to 2^50, not %lld",
				    o->config, (long long)LOG_CAP_MIN, (long long)n);
			o->log_max_bytes = n ? (int64_t)n : -1;
		} else if (!strcmp(k, "options") && json_is_string(v)) {
			if (!o->fuse_opts)
				o->fuse_opts = strdup(json_string_value(v));
		} else if (!strcmp(k, "limits")) {
			load_limits(o, v);
		} else if (!strcmp(k, "webhooks")) {
			struct sbuf why = SBUF_INIT;
			int r = webhook_cfg_parse(v, &o->webhooks, &o->nwebhooks, &why);
			if (r)
				die(2, "config %s: %s", o->config, r == -ENOMEM ? "out of memory" : sbuf_str(&why));
			sbuf_release(&why);
		} else if (!strcmp(k, "vars") && json_is_object(v)) {
			const char *vk;
			json_t *vv;
			json_object_foreach(v, vk, vv) {
				if (!json_is_string(vv))
					die(2, "config %s: vars.%s must be a string", o->config, vk);
				char *nv;
				if (asprintf(&nv, "%s=%s", vk, json_string_value(vv)) < 0)
					die(1, "out of memory");
				/* config vars come first: a --var of the same name wins */
				char **nvv = realloc(o->vars, (o->nvars + 1) * sizeof(char *));
				if (!nvv)
					die(1, "out of memory");
				memmove(nvv + 1, nvv, o->nvars * sizeof(char *));
				nvv[0] = nv;
				o->vars = nvv;
				o->nvars++;
			}
		} else {
			die(2, "config %s: unknown or mistyped setting \"%s\"", o->config, k);
		}
	}
	json_decref(c);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "state", required_argument, NULL, 's' }, { "config", required_argument, NULL, 'c' },
		{ "jobs", required_argument, NULL, 'j' },  { "var", required_argument, NULL, 'v' },
		{ "port-range", required_argument, NULL, 'p' }, { "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },	   { NULL, 0, NULL, 0 },
	};
	bool jobs_given = false, ports_given = false;
	int c;
	memset(o, 0, sizeof(*o));
	o->jobs = -1;
	o->port_min = 20000;
	o->port_max = 29999;
	memcpy(o->limits, quota_defaults, sizeof(o->limits));
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+fdo:hV", lo, NULL)) != -1) {
		switch (c) {
		case 'f': o->foreground = true; break;
		case 'd': o->debug = o->foreground = true; break;
		case 'o':
			if (o->fuse_opts) {
				char *j;
				if (asprintf(&j, "%s,%s", o->fuse_opts, optarg) < 0)
					die(1, "out of memory");
				free(o->fuse_opts);
				o->fuse_opts = j;
			} else {
				o->fuse_opts = strdup(optarg);
			}
			break;
		case 's': o->state = strdup(optarg); break;
		case 'c': o->config = strdup(optarg); break;
		case 'j': {
			char *end;
			errno = 0;
			long n = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || n < 0 || n > 1000000)
				die(2, "--jobs takes a number from 0 to 1000000, not \"%s\"", optarg);
			o->jobs = n;
			jobs_given = true;
			break;
		}
		case 'v': add_var(o, optarg); break;
		case 'p': parse_ports(o, optarg, "--port-range"); ports_given = true; break;
		case 'h': fputs(usage, stdout); exit(0);
		case 'V': puts("orchfs " ORCHFS_VERSION); exit(0);
		default:
			if (optopt)
				die(2, "unknown or incomplete option -%c (see orchfs --help)", optopt);
			die(2, "unknown option %s (see orchfs --help)", argv[optind - 1]);
		}
	}
	if (optind == argc)
		die(2, "no mountpoint given (see orchfs --help)");
	if (optind + 1 < argc)
		die(2, "one mountpoint only: unexpected \"%s\"", argv[optind + 1]);
	o->mountpoint = argv[optind];
	if (o->config)
		load_config(o, jobs_given, ports_given);
	if (o->jobs < 0)
		o->jobs = 0;
}

static char *default_state_dir(void)
{
	const char *s = getenv("ORCHFS_STATE");
	char *d = NULL;
	if (s && *s)
		return strdup(s);
	s = getenv("XDG_STATE_HOME");
	if (s && *s) {
		if (asprintf(&d, "%s/orchfs", s) < 0)
			return NULL;
		return d;
	}
	s = getenv("HOME");
	if (!s || !*s)
		die(2, "no state directory: set --state, $ORCHFS_STATE or $HOME");
	if (asprintf(&d, "%s/.local/state/orchfs", s) < 0)
		return NULL;
	return d;
}

/* Take the state directory's lock or say who holds it. A holder that died
 * but stays held in the kernel by its FUSE connection (fs/conn.h) has that
 * connection aborted, and goes. */
static int take_lock(const char *state, const char *mnt)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/lock", state);
	/* the daemon's alone: anyone who could open it could hold the lock
	 * and keep every daemon from starting; never a FIFO or a symlink */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, 0600);
	if (fd < 0)
		die(1, "cannot open %s: %s", path, strerror(errno));
	/* nor a link to another file: its mode and bytes are changed below */
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1)
		die(1, "%s is not a regular file of its own", path);
	if ((st.st_mode & 077) && fchmod(fd, 0600) < 0)
		die(1, "cannot make %s mode 0600: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		char why[768] = "";
		int r = errno == EWOULDBLOCK ? conn_recover_lock(fd, mnt, say, why, sizeof(why)) : -errno;
		if (r == -EBUSY)
			die(1, "state directory %s is in use by another orchfs (%s)", state, why);
		if (r)
			die(1, "state directory %s is held by an orchfs that died: %s", state,
			    *why ? why : strerror(-r));
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		die(1, "cannot write %s: %s", path, strerror(errno));
	return fd;
}

/* The mountpoint, absolute and canonical. A dead mount there may refuse
 * even that (ENOTCONN): then its directory's path and its own name. */
static char *mountpoint_path(const char *mp)
{
	char *p = realpath(mp, NULL);
	if (p || (errno != ENOTCONN && errno != ECONNABORTED))
		return p;
	int e = errno;
	char *copy = strdup(mp);
	if (!copy)
		return NULL;
	size_t n = strlen(copy);
	while (n > 1 && copy[n - 1] == '/')
		copy[--n] = '\0';
	char *slash = strrchr(copy, '/');
	const char *name = slash ? slash + 1 : copy;
	const char *dir = !slash ? "." : slash == copy ? "/" : copy;
	if (slash && slash != copy)
		*slash = '\0';
	char *d = NULL;
	if (*name && strcmp(name, ".") && strcmp(name, "..") && (d = realpath(dir, NULL)) &&
	    asprintf(&p, "%s%s%s", d, strcmp(d, "/") ? "/" : "", name) < 0)
		p = NULL;
	free(d);
	free(copy);
	if (!p)
		errno = e;
	return p;
}

/* Run ARGV (its program at PATH) with orchfs's clean environment, ENV_FD
 * (or -1) as fd EXEC_ENV_FD and no output: did it exit 0? */
static bool probe(const char *path, char *const argv[], int env_fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	char **env = exec_clean_env(NULL, NULL, NULL);
	struct proc_spec spec = { .path = path, .argv = argv, .envp = env, .out_fd = null,
				  .err_fd = -1, .env_fd = env_fd, .cwd = "/", .cwd_fd = -1 };
	pid_t pid;
	int pidfd = -1, st = 0;
	bool ok = null >= 0 && env && proc_spawn(&spec, &pid, &pidfd) == 0;
	if (ok) {
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	if (pidfd >= 0)
		close(pidfd);
	if (null >= 0)
		close(null);
	orch_free(env);
	return ok;
}

/* Can bubblewrap make the namespaces a sandbox needs here, with the options
 * orchfs gives it (no capabilities; and, where it can, a user namespace in
 * which no other can be made: *USERNS)? Its path, or NULL. As root, can it
 * also run as an ordinary user (nobody), started the way such a user's
 * steps are, through the trampoline: *USERS. */
static char *bwrap_works(bool *userns, bool *users)
{
	char *path = NULL;
	*userns = *users = false;
	if (proc_resolve("bwrap", getenv("PATH"), &path))
		return NULL;
	/* argv: [trampoline ... --] bwrap [userns] rest */
	char *av[32];
	size_t n = 0;
	av[n++] = "/proc/self/exe";
	av[n++] = EXEC_STEP_FLAG;
	av[n++] = "-";
	char uid[16], gid[16], hide[16];
	struct passwd *pw = getpwuid(65534);
	snprintf(uid, sizeof(uid), "%u", 65534u);
	snprintf(gid, sizeof(gid), "%u", pw ? (unsigned)pw->pw_gid : 65534u);
	av[n++] = uid;
	av[n++] = gid;
	av[n++] = "/";
	av[n++] = ".";
	av[n++] = hide;
	av[n++] = "--";
	size_t b = n;
	av[n++] = path;
	size_t u = n;
	av[n++] = "--unshare-user";
	av[n++] = "--disable-userns";
	const char *rest[] = { "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
			       "--unshare-pid", "--die-with-parent", "--new-session", "--unshare-net", "true",
			       NULL };
	for (size_t i = 0; i < ARRAY_SIZE(rest); i++)
		av[n++] = (char *)rest[i];
	snprintf(hide, sizeof(hide), "%zu", u + 2 + 9 - b);	/* after --proc /proc */
	*userns = probe(path, av + b, -1);
	if (!*userns) {
		/* an older bubblewrap (--disable-userns is 0.8), or no user
		 * namespaces for root: without them */
		memmove(av + u, av + u + 2, (n - u - 2 + 1) * sizeof(char *));
		n -= 2;
		snprintf(hide, sizeof(hide), "%zu", u + 9 - b);
		if (!probe(path, av + b, -1)) {
			orch_free(path);
			return NULL;
		}
	}
	if (geteuid() == 0) {
		char *env[] = { EXEC_CLEAN_PATH };
		int fd = exec_env_fd(env, 1);
		*users = fd >= 0 && probe("/proc/self/exe", av, fd);
		if (fd >= 0)
			close(fd);
		if (!*users)
			fprintf(stderr, "orchfs: bubblewrap cannot run as an ordinary user here (uid 65534"
					" could not): other users' sandboxes get isolation \"none\"\n");
	}
	return path;
}

/* Close every fd from FIRST on. */
static void close_from(int first)
{
	if (close_range((unsigned)first, ~0U, 0) == 0)
		return;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return;
	struct dirent *de;
	int keep = dirfd(d);
	while ((de = readdir(d)))
		if (atoi(de->d_name) >= first && atoi(de->d_name) != keep)
			close(atoi(de->d_name));
	closedir(d);
}

/* Open /dev/null on whichever of stdin, stdout and stderr we were started
 * without: else the first files we open get their numbers, and putting the
 * daemon's /dev/null or log on 0, 1 or 2 later closes them (the state lock
 * was one: a second daemon on the same state directory went past it). */
static void std_fds_open(void)
{
	int fd;
	while ((fd = open("/dev/null", O_RDWR)) >= 0 && fd < 3)
		;
	if (fd > 2)
		close(fd);
}

/* libfuse reports problems on stderr: while it sets up, catch what it says
 * so that a failure is one line of ours that includes it. */
static int grab_stderr(void)
{
	int saved = fcntl(2, F_DUPFD_CLOEXEC, 0);
	int mfd = memfd_create("fuse-stderr", MFD_CLOEXEC);
	if (saved < 0 || mfd < 0) {
		if (saved >= 0)
			close(saved);
		if (mfd >= 0)
			close(mfd);
		return -1;
	}
	fflush(stderr);
	dup2(mfd, 2);
	close(mfd);
	return saved;
}

/* Put stderr back; return what was caught, on one line (static buffer). */
static const char *release_stderr(int saved)
{
	static char text[512];
	text[0] = '\0';
	if (saved < 0)
		return text;
	fflush(stderr);
	ssize_t n = pread(2, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	dup2(saved, 2);
	close(saved);
	for (char *p = text; *p; p++)
		if (*p == '\n')
			*p = p[1] ? ' ' : '\0';
	return text;
}

/* systemd's readiness protocol (sd_notify(3), for Type=notify): where the
 * service manager gave us a socket, READY=1 once the mount answers and
 * STOPPING=1 when a stop begins. The socket is the daemon's alone: it
 * leaves our environment, which steps inherit, so that no step speaks for
 * the service. */
static struct sockaddr_un notify_addr;
static socklen_t notify_len;

static void notify_setup(void)
{
	const char *s = getenv("NOTIFY_SOCKET");
	size_t n = s ? strlen(s) : 0;
	if (n > 1 && n < sizeof(notify_addr.sun_path) && (s[0] == '/' || s[0] == '@')) {
		notify_addr.sun_family = AF_UNIX;
		memcpy(notify_addr.sun_path, s, n);
		if (s[0] == '@')
			notify_addr.sun_path[0] = '\0';	/* an abstract socket */
		notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	}
	unsetenv("NOTIFY_SOCKET");
}

static void notify(const char *msg)
{
	if (!notify_len)
		return;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&notify_addr, notify_len) < 0)
		fprintf(stderr, "orchfs: cannot tell the service manager %s: %s\n", msg, strerror(errno));
	close(fd);
}

/* ---- running ---- */

struct daemon {
	struct fs fs;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool fuse_done, engine_stopped;
};

/* engine thread: a deleted sandbox's name leaves the kernel's cache */
static void on_sandbox_gone(void *arg, const char *name)
{
	fs_inval_entry(arg, NT_SANDBOXES, name);
}

static void on_engine_stopped(void *arg)
{
	struct daemon *d = arg;
	pthread_mutex_lock(&d->lock);
	d->engine_stopped = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* engine thread: the kernel ended the connection (unmounted, aborted) */
static void on_fuse_gone(void *arg)
{
	struct daemon *d = arg;
	pthread_mutex_lock(&d->lock);
	d->fuse_done = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* Fork; the parent waits until the child says the mount is ready (or why it
 * failed) and exits with the child's verdict. Returns in the child. */
static void daemonize(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die(1, "pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die(1, "fork: %s", strerror(errno));
	if (pid > 0) {
		close(p[1]);
		char buf[1200];
		size_t len = 0;
		ssize_t n;
		while (len < sizeof(buf) - 1 && (n = read(p[0], buf + len, sizeof(buf) - 1 - len)) != 0) {
			if (n < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			len += (size_t)n;
		}
		buf[len] = '\0';
		/* _exit: the parent's copies of the settings are the child's business */
		if (!strcmp(buf, "ready\n"))
			_exit(0);
		int code = 1;
		char *msg = buf;
		if (len && sscanf(buf, "%d ", &code) == 1)
			msg = strchr(buf, ' ') + 1;
		if (!len)
			msg = "orchfs: the daemon exited during start-up\n";
		fputs(msg, stderr);
		fflush(stderr);
		_exit(code ? code : 1);
	}
	close(p[0]);
	report_fd = p[1];
	setsid();
}

/* Every user's open files (logs, plans) hold a descriptor of ours, shared
 * out by limits.open_files: take more of the hard limit than the usual
 * 1024, up to 65536 (steps inherit it: a soft limit of millions makes
 * programs that close every descriptor up to it slow). */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	/* the step trampoline: this program again, in a step's child process */
	if (argc > 1 && !strcmp(argv[1], EXEC_STEP_FLAG))
		orch_exec_step(argc, argv);
	/* the watchdog of a daemon's FUSE connection (fs/conn.h) */
	if (argc > 1 && !strcmp(argv[1], CONN_WATCHDOG_FLAG))
		conn_watchdog_main(argc, argv);
	/* nothing we were started with but stdin, stdout and stderr: it would
	 * reach the steps (of every user); every fd of ours is O_CLOEXEC */
	close_from(3);
	std_fds_open();
	raise_nofile();

	struct opts o;
	parse_args(argc, argv, &o);
	notify_setup();
	orch_alloc_setup_jansson();

	/* a dead mount on the mountpoint (ENOTCONN) is cleared once the state
	 * lock is ours; until then nothing may ask its daemon (one held in the
	 * kernel would never answer): no attributes but those cached */
	char *mnt = mountpoint_path(o.mountpoint);
	struct statx stx;
	if (!mnt)
		die(1, "mountpoint %s: %s", o.mountpoint, strerror(errno));
	if (statx(AT_FDCWD, mnt, AT_STATX_DONT_SYNC, STATX_TYPE, &stx) < 0) {
		if (errno != ENOTCONN && errno != ECONNABORTED)
			die(1, "mountpoint %s: %s", o.mountpoint, strerror(errno));
	} else if (!S_ISDIR(stx.stx_mode)) {
		die(1, "mountpoint %s is not a directory", o.mountpoint);
	}
	if (access("/dev/fuse", R_OK | W_OK) < 0)
		die(1, "/dev/fuse: %s (FUSE is not available here)", strerror(errno));

	char *state = o.state ? strdup(o.state) : default_state_dir();
	if (!state)
		die(1, "out of memory");
	/* the state directory 0711: users pass through it to their workspace
	 * and see nothing else (the engine tightens an existing one) */
	char *slash = strrchr(state, '/');
	int r = 0;
	if (slash && slash != state) {
		*slash = '\0';
		r = mkdir_p(state, 0755);
		*slash = '/';
	}
	if (!r && mkdir(state, 0711) < 0 && errno != EEXIST)
		r = -errno;
	if (r)
		die(1, "cannot create state directory %s: %s", state, strerror(-r));
	char *state_abs = realpath(state, NULL);
	if (!state_abs)
		die(1, "state directory %s: %s", state, strerror(errno));
	/* the daemon's (core/engine.c checks it again, with what is in it):
	 * another user's is refused before anything in it is opened, the log
	 * or the lock, which its owner may have made links to their files */
	struct stat sst;
	if (stat(state_abs, &sst) < 0)
		die(1, "state directory %s: %s", state_abs, strerror(errno));
	if (sst.st_uid != geteuid() && (geteuid() == 0 || (sst.st_mode & 022)))
		die(1, "state directory %s belongs to uid %u: it must be the daemon's (uid %u)", state_abs,
		    (unsigned)sst.st_uid, (unsigned)geteuid());

	if (!o.foreground) {
		daemonize();
		/* the daemon's log from now on: what start-up does (clearing what
		 * a dead daemon left, repairs) goes there; errors still reach the
		 * parent through report_fd */
		char lp[PATH_MAX];
		snprintf(lp, sizeof(lp), "%s/orchfs.log", state_abs);
		int logfd = open(lp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
		struct stat lst;
		/* never a FIFO a write could block on, nor a link to another file */
		if (logfd >= 0 && fstat(logfd, &lst) == 0 && S_ISREG(lst.st_mode) && lst.st_nlink == 1)
			dup2(logfd, 2);
		if (logfd >= 0)
			close(logfd);
	}
	int lockfd = take_lock(state_abs, mnt);
	char in_way[512] = "";
	if ((r = conn_clear_dead_mount(mnt, say, in_way, sizeof(in_way))))
		die(1, "mountpoint %s: %s", mnt, in_way);
	struct stat st;
	if (stat(mnt, &st) < 0)
		die(1, "mountpoint %s: %s", o.mountpoint, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		die(1, "mountpoint %s is not a directory", o.mountpoint);

	/* signals: the engine reads SIGTERM and SIGINT through a signalfd, so
	 * every thread blocks them; a write to a closed pipe is an error, not death */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	bool bwrap_userns, bwrap_users;
	char *bwrap = bwrap_works(&bwrap_userns, &bwrap_users);
	struct orch_config cfg = {
		.state_dir = state_abs,
		.mountpoint = mnt,
		.jobs = (unsigned)o.jobs,
		.vars = o.vars,
		.nvars = o.nvars,
		.port_min = o.port_min,
		.port_max = o.port_max,
		.exec_helper = "/proc/self/exe",
		.bwrap_path = bwrap,
		.bwrap_userns = bwrap_userns,
		.bwrap_users = bwrap_users,
		.log_max_bytes = o.log_max_bytes,
		.limit_root = o.limit_root,
		.webhooks = o.webhooks,
		.nwebhooks = o.nwebhooks,
	};
	memcpy(cfg.limits, o.limits, sizeof(cfg.limits));
	struct sbuf err = SBUF_INIT;
	struct orch_engine *eng = orch_engine_open(&cfg, &err);
	orch_free(bwrap);
	if (!eng)
		die(1, "%s", sbuf_str(&err));

	static struct daemon d;
	pthread_mutex_init(&d.lock, NULL);
	pthread_mutex_init(&d.fs.fh_lock, NULL);
	pthread_mutex_init(&d.fs.nonce_lock, NULL);
	pthread_cond_init(&d.cond, NULL);
	d.fs.eng = eng;
	d.fs.uid = getuid();
	d.fs.gid = getgid();
	d.fs.started_ms = clock_wall_ms();

	char *fo;
	if (asprintf(&fo, "fsname=orchfs,subtype=orchfs%s%s", o.fuse_opts ? "," : "",
		     o.fuse_opts ? o.fuse_opts : "") < 0)
		die(1, "out of memory");
	char *fargv[] = { argv[0], "-o", fo, o.debug ? "-d" : NULL, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(o.debug ? 4 : 3, fargv);
	int saved = o.debug ? -1 : grab_stderr();
	d.fs.se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &d.fs);
	fuse_opt_free_args(&args);
	if (!d.fs.se) {
		const char *why = release_stderr(saved);
		die(2, "bad mount options \"%s\"%s%s", o.fuse_opts ? o.fuse_opts : "", *why ? ": " : "", why);
	}
	if (fuse_session_mount(d.fs.se, mnt) != 0) {
		const char *why = release_stderr(saved);
		die(1, "cannot mount on %s%s%s", mnt, *why ? ": " : "", why);
	}
	release_stderr(saved);

	/* our connection: recorded in the lock file for a next start, and
	 * watched by a process of its own (fs/conn.h) */
	struct conn_watchdog wd = CONN_WATCHDOG_INIT;
	int abort_fd = -1;
	unsigned conn = 0;
	dev_t cdev;
	char ctype[64];
	if (!conn_mount_at(mnt, &cdev, ctype, sizeof(ctype)) && !strcmp(ctype, "fuse.orchfs")) {
		conn = minor(cdev);
		conn_record(lockfd, conn);
		r = conn_fusectl(say);
		if (!r && (abort_fd = conn_abort_open(conn)) < 0)
			r = abort_fd;
		if (!r)
			r = conn_watchdog_start(&wd, abort_fd, conn, mnt);
		if (r) {
			char msg[300];
			snprintf(msg, sizeof(msg), "no watchdog for FUSE connection %u: %s (the fusectl filesystem); if "
				 "this daemon is killed, the next start recovers", conn, strerror(-r));
			say(msg);
		}
	}
	if ((r = orch_engine_watch_mount(eng)))
		fprintf(stderr, "orchfs: cannot watch the mount table: %s\n", strerror(-r));

	orch_engine_on_sandbox_gone(eng, on_sandbox_gone, &d.fs);
	if ((r = fs_attach(&d.fs, on_fuse_gone, &d)) || (r = fs_inval_start(&d.fs)) ||
	    (r = orch_engine_start(eng, on_engine_stopped, &d))) {
		fuse_session_unmount(d.fs.se);
		die(1, "cannot start threads: %s", strerror(r < 0 ? -r : r));
	}

	/* ready: the mount answers */
	if (report_fd >= 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			close(null);
		}
		write_all(report_fd, "ready\n", 6);
		close(report_fd);
		report_fd = -1;
	}
	notify("READY=1");

	pthread_mutex_lock(&d.lock);
	while (!d.fuse_done && !d.engine_stopped)
		pthread_cond_wait(&d.cond, &d.lock);
	pthread_mutex_unlock(&d.lock);

	/* stop the steps (a no-op when the engine started the stop itself) */
	notify("STOPPING=1");
	orch_engine_stop(eng);
	pthread_mutex_lock(&d.lock);
	while (!d.engine_stopped)
		pthread_cond_wait(&d.cond, &d.lock);
	bool fuse_done = d.fuse_done;
	pthread_mutex_unlock(&d.lock);

	/* unmount only a mount that is still ours: after a user's unmount the
	 * mountpoint may already hold someone else's mount */
	fuse_session_exit(d.fs.se);
	/* The engine thread ends first: fuse_session_unmount() closes the FUSE
	 * fd, and nothing may open (and be handed) that number, nor reply, after */
	bool mounted = orch_engine_mounted(eng);
	orch_engine_quit(eng);
	orch_engine_join(eng);
	/* reads of runs/ID/wait still parked end (ENOTCONN), pollers wake */
	fs_waiters_end(&d.fs);
	bool inval_joined = fs_inval_stop(&d.fs, 250);
	bool self_aborted = false;
	if (!inval_joined && abort_fd >= 0) {
		/* it waits in the kernel for a directory lock that a request
		 * no one will answer now holds: ending the connection ends both */
		char msg[200];
		snprintf(msg, sizeof(msg), "stopping: a request in flight holds the invalidation thread: aborting "
			 "FUSE connection %u", conn);
		say(msg);
		self_aborted = !conn_abort_fd(abort_fd);
		inval_joined = fs_inval_stop(&d.fs, 10000);
	}
	/* from here the connection ends with this process whatever happens:
	 * the watchdog stands down (while a thread stays held, it stays) */
	if (inval_joined)
		conn_watchdog_stop(&wd);
	/* fuse_session_unmount() unmounts the mountpoint's path unless the
	 * connection is already gone (it then only closes it). Call it when the
	 * mount is still ours, or when the kernel ended the connection; not when
	 * only the mount table lost us while sandboxes keep the connection up:
	 * the path may hold someone else's mount by now */
	if (fuse_done || mounted) {
		fuse_session_unmount(d.fs.se);
		/* libfuse takes an aborted connection for one already unmounted:
		 * the dead mount is ours to clear */
		if (self_aborted && mounted)
			conn_clear_dead_mount(mnt, NULL, in_way, sizeof(in_way));
	} else {
		/* the mount left our table while sandboxes held it: once the
		 * connection is over (POLLERR), unmount only closes it; if it
		 * lasts, the state is committed, and leaving closes it */
		struct pollfd pfd = { .fd = fuse_session_fd(d.fs.se), .events = 0 };
		if (poll(&pfd, 1, 2000) == 1 && (pfd.revents & POLLERR))
			fuse_session_unmount(d.fs.se);
		else
			_exit(0);
	}
	if (!inval_joined)
		_exit(0);	/* a thread is still inside the session; the state is committed */
	fuse_session_destroy(d.fs.se);
	if (abort_fd >= 0)
		close(abort_fd);
	fs_free_handles(&d.fs);
	fs_detach(&d.fs);
	orch_engine_close(eng);
	close(lockfd);
	sbuf_release(&err);
	free(fo);
	free(mnt);
	free(state);
	free(state_abs);
	for (size_t i = 0; i < o.nvars; i++)
		free(o.vars[i]);
	free(o.vars);
	free(o.state);
	free(o.config);
	free(o.fuse_opts);
	webhook_cfg_free(o.webhooks, o.nwebhooks);
	return 0;
}
