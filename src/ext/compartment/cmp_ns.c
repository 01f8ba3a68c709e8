/*
 * cmp_ns.c - a socket made in another network namespace. setns(2) changes
 * the calling thread only and a socket stays in the namespace it was made
 * in, so a thread that lives for one socket() is enough, and the caller
 * (the main thread, with its listeners and resolver) never moves.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ext/compartment/cmp.h"

struct ns_job {
	const char *path;
	int domain, type, protocol;
	int fd, err;
};

static void *ns_thread(void *arg)
{
	struct ns_job *j = arg;
	int nsfd = open(j->path, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) {
		j->err = errno;
		return NULL;
	}
	if (setns(nsfd, CLONE_NEWNET) < 0) {
		j->err = errno;
		close(nsfd);
		return NULL;
	}
	close(nsfd);
	j->fd = socket(j->domain, j->type, j->protocol);
	if (j->fd < 0)
		j->err = errno;
	return NULL;
}

int cmp_ns_socket(const char *path, int domain, int type, int protocol)
{
	struct ns_job j = { path, domain, type, protocol, -1, 0 };
	pthread_t t;
	int rc = pthread_create(&t, NULL, ns_thread, &j);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	pthread_join(t, NULL);
	if (j.fd < 0)
		errno = j.err;
	return j.fd;
}
