/* scripts/bench/minfs.c — the anchor of the `read` benchmark: a minimal
 * low-level libfuse3 filesystem with one 200-byte file, /file.
 *
 * It answers lookup, getattr, open (direct_io, like orchfs's status files),
 * read and release, and nothing else; entry and attribute timeouts are 1 s,
 * as in libfuse's own hello_ll example. Run it as
 *     minfs -f -s MOUNTPOINT
 * (foreground, single-threaded). Built by read.sh and append.sh into their
 * scratch directories: cc -O2 minfs.c $(pkg-config --cflags --libs fuse3).
 *
 * With MINFS_LOG=PATH in its environment it also has /log, the floor of the
 * `append` benchmark: a durable append through FUSE with nothing else to
 * do. Each write is copied to PATH (made and filled with zeros first, then
 * overwritten in a circle, so that no sync writes a new file size) and
 * fdatasync'ed before the reply; flush and release answer at once. That is
 * the round trips a close() reporting a last line needs (OPEN, WRITE,
 * FLUSH, with the name cached) and one data sync, without parsing,
 * validating or recording anything. */
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_INO 2
#define FILE_NAME "file"
#define FILE_SIZE 200
#define LOG_INO 3
#define LOG_NAME "log"
#define LOG_RING (8 << 20)

static char content[FILE_SIZE];
static int log_fd = -1;		/* MINFS_LOG, or -1: no /log */
static off_t log_at;

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (ino == LOG_INO) {
		st->st_mode = S_IFREG | 0666;
		st->st_nlink = 1;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = FILE_SIZE;
	}
}

static void m_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	fuse_ino_t ino = 0;
	if (parent == FUSE_ROOT_ID && !strcmp(name, FILE_NAME))
		ino = FILE_INO;
	else if (parent == FUSE_ROOT_ID && log_fd >= 0 && !strcmp(name, LOG_NAME))
		ino = LOG_INO;
	if (!ino) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = ino;
	e.generation = 1;
	e.attr_timeout = 1.0;
	e.entry_timeout = 1.0;
	fill_stat(ino, &e.attr);
	fuse_reply_entry(req, &e);
}

static void m_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != FILE_INO && !(ino == LOG_INO && log_fd >= 0)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct stat st;
	fill_stat(ino, &st);
	fuse_reply_attr(req, &st, 1.0);
}

static void m_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == LOG_INO) {
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
	} else if (ino != FILE_INO)
		fuse_reply_err(req, EISDIR);
	else if ((fi->flags & O_ACCMODE) != O_RDONLY)
		fuse_reply_err(req, EACCES);
	else {
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
	}
}

static void m_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	if (off >= FILE_SIZE) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > (size_t)(FILE_SIZE - off))
		size = FILE_SIZE - off;
	fuse_reply_buf(req, content + off, size);
}

static void m_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)off;
	(void)fi;
	if (ino != LOG_INO) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (log_at + (off_t)size > LOG_RING)
		log_at = 0;
	if (pwrite(log_fd, buf, size, log_at) != (ssize_t)size || fdatasync(log_fd) < 0) {
		fuse_reply_err(req, EIO);
		return;
	}
	log_at += (off_t)size;
	fuse_reply_write(req, size);
}

static void m_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void m_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
	.lookup = m_lookup,
	.getattr = m_getattr,
	.open = m_open,
	.read = m_read,
	.write = m_write,
	.flush = m_flush,
	.release = m_release,
};

int main(int argc, char *argv[])
{
	for (int i = 0; i < FILE_SIZE - 1; i++)
		content[i] = 'a' + i % 26;
	content[FILE_SIZE - 1] = '\n';
	const char *log = getenv("MINFS_LOG");
	if (log) {
		static char zeros[1 << 16];
		log_fd = open(log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		for (off_t at = 0; log_fd >= 0 && at < LOG_RING; at += (off_t)sizeof(zeros))
			if (pwrite(log_fd, zeros, sizeof(zeros), at) != (ssize_t)sizeof(zeros)) {
				close(log_fd);
				log_fd = -1;
			}
		if (log_fd < 0 || fsync(log_fd) < 0) {
			fprintf(stderr, "minfs: %s: cannot prepare it\n", log);
			return 1;
		}
	}

	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	int ret = 1;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		return 1;
	if (!opts.mountpoint) {
		fprintf(stderr, "usage: %s [-f] [-s] [-d] MOUNTPOINT\n", argv[0]);
		goto out_args;
	}
	struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		goto out_mp;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_se;
	if (fuse_session_mount(se, opts.mountpoint) != 0)
		goto out_sig;
	fuse_daemonize(opts.foreground);
	if (opts.singlethread)
		ret = fuse_session_loop(se);
	else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		ret = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	fuse_session_unmount(se);
out_sig:
	fuse_remove_signal_handlers(se);
out_se:
	fuse_session_destroy(se);
out_mp:
	free(opts.mountpoint);
out_args:
	fuse_opt_free_args(&args);
	return ret ? 1 : 0;
}
