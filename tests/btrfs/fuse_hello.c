/*
 * tests/btrfs/fuse_hello.c - the smallest FUSE filesystem (one file,
 * "hello"), so that the fsinfo tests can show how a FUSE mount is refused.
 * run.sh mounts it as itself and with -o subtype=sshfs.
 */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <fuse.h>

static const char hello[] = "hello\n";

static int hello_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	memset(st, 0, sizeof(*st));
	if (strcmp(path, "/") == 0) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else if (strcmp(path, "/hello") == 0) {
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = sizeof(hello) - 1;
	} else {
		return -ENOENT;
	}
	return 0;
}

static int hello_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
			 struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	if (strcmp(path, "/") != 0)
		return -ENOENT;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	fill(buf, "hello", NULL, 0, 0);
	return 0;
}

static int hello_open(const char *path, struct fuse_file_info *fi)
{
	return strcmp(path, "/hello") == 0 ? 0 : -ENOENT;
}

static int hello_read(const char *path, char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	size_t len = sizeof(hello) - 1;

	if ((size_t)off >= len)
		return 0;
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	memcpy(buf, hello + off, size);
	return (int)size;
}

static const struct fuse_operations ops = {
	.getattr = hello_getattr,
	.readdir = hello_readdir,
	.open = hello_open,
	.read = hello_read,
};

int main(int argc, char **argv)
{
	return fuse_main(argc, argv, &ops, NULL);
}
