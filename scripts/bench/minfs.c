/* scripts/bench/minfs.c — the anchor of the `read` benchmark: a minimal
 * low-level libfuse3 filesystem with one 200-byte file, /file.
 *
 * It answers lookup, getattr, open (direct_io, like orchfs's status files),
 * read and release, and nothing else; entry and attribute timeouts are 1 s,
 * as in libfuse's own hello_ll example. Run it as
 *     minfs -f -s MOUNTPOINT
 * (foreground, single-threaded). Built by read.sh into its scratch
 * directory: cc -O2 minfs.c $(pkg-config --cflags --libs fuse3). */
#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_INO 2
#define FILE_NAME "file"
#define FILE_SIZE 200

static char content[FILE_SIZE];

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_uid = getuid();
	st->st_gid = getgid();
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = FILE_SIZE;
	}
}

static void m_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent != FUSE_ROOT_ID || strcmp(name, FILE_NAME)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = FILE_INO;
	e.generation = 1;
	e.attr_timeout = 1.0;
	e.entry_timeout = 1.0;
	fill_stat(FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void m_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != FILE_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct stat st;
	fill_stat(ino, &st);
	fuse_reply_attr(req, &st, 1.0);
}

static void m_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FILE_INO)
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
	.release = m_release,
};

int main(int argc, char *argv[])
{
	for (int i = 0; i < FILE_SIZE - 1; i++)
		content[i] = 'a' + i % 26;
	content[FILE_SIZE - 1] = '\n';

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
