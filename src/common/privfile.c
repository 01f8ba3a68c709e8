/*
 * privfile.c - see privfile.h.
 */
#include "common/privfile.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

static int (*helper)(const char *path);

void privfile_set_helper(int (*open_fn)(const char *path))
{
	helper = open_fn;
}

int privfile_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 || (errno != EACCES && errno != EPERM) || !helper)
		return fd;
	return helper(path);
}

FILE *privfile_fopen(const char *path)
{
	int fd = privfile_open(path);
	if (fd < 0)
		return NULL;
	FILE *fp = fdopen(fd, "re");
	if (!fp) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return fp;
}
