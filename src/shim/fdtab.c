/*
 * fdtab.c - what stpify knows about each fd: tunnelled TCP connections,
 * UDP sockets with an association, BIND listeners, and stpify's own
 * internal fds (association control connections), which the application
 * must never close or overwrite by accident.
 *
 * The hot hooks (read, write, send, recv) only load one pointer
 * (fdtab_tracked) before passing an untracked fd through. State shared by
 * dup'ed fds is reference-counted. One mutex guards the table; pthread_atfork
 * handlers hold it across fork() so the child never inherits it locked.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "shim/shim.h"

static struct shim_fd *fdtab[SHIM_FD_MAX];
static unsigned char fdtab_internal_flag[SHIM_FD_MAX];
static pthread_mutex_t fdtab_lock = PTHREAD_MUTEX_INITIALIZER;

static bool fdtab_ok(int fd) { return fd >= 0 && fd < SHIM_FD_MAX; }

bool fdtab_tracked(int fd)
{
	return fdtab_ok(fd) && __atomic_load_n(&fdtab[fd], __ATOMIC_ACQUIRE) != NULL;
}

bool fdtab_internal(int fd)
{
	return fdtab_ok(fd) && __atomic_load_n(&fdtab_internal_flag[fd], __ATOMIC_ACQUIRE);
}

void fdtab_set_internal(int fd, bool on)
{
	if (fdtab_ok(fd))
		__atomic_store_n(&fdtab_internal_flag[fd], on, __ATOMIC_RELEASE);
}

bool fdtab_get(int fd, struct shim_fd *out)
{
	bool found = false;

	if (!fdtab_ok(fd))
		return false;
	pthread_mutex_lock(&fdtab_lock);
	if (fdtab[fd] != NULL) {
		*out = *fdtab[fd];
		found = true;
	}
	pthread_mutex_unlock(&fdtab_lock);
	return found;
}

/* Unlinks fd from its state; the state when this was its last fd. */
static struct shim_fd *fdtab_unlink(int fd)
{
	struct shim_fd *st = fdtab[fd];

	__atomic_store_n(&fdtab[fd], NULL, __ATOMIC_RELEASE);
	if (st != NULL && --st->refs == 0)
		return st;
	return NULL;
}

void fdtab_put(int fd, const struct shim_fd *st)
{
	struct shim_fd *n, *old;

	if (!fdtab_ok(fd) || (n = malloc(sizeof(*n))) == NULL)
		return;
	*n = *st;
	n->refs = 1;
	pthread_mutex_lock(&fdtab_lock);
	old = fdtab_unlink(fd);
	__atomic_store_n(&fdtab[fd], n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fdtab_lock);
	if (old != NULL) {
		if (old->gss_id != st->gss_id)
			gssdgram_drop(old->gss_id);
		free(old->hs);
		free(old);
	}
}

void fdtab_update(int fd, void (*fn)(struct shim_fd *, void *), void *arg)
{
	if (!fdtab_ok(fd))
		return;
	pthread_mutex_lock(&fdtab_lock);
	if (fdtab[fd] != NULL)
		fn(fdtab[fd], arg);
	pthread_mutex_unlock(&fdtab_lock);
}

int fdtab_drop(int fd)
{
	struct shim_fd *st;
	int ctl = -1;

	if (!fdtab_ok(fd))
		return -1;
	pthread_mutex_lock(&fdtab_lock);
	st = fdtab_unlink(fd);
	pthread_mutex_unlock(&fdtab_lock);
	if (st != NULL) {
		ctl = st->kind == SHIM_FD_UDP || (st->kind == SHIM_FD_BIND && !st->bind_done)
			      ? st->ctl : -1;
		gssdgram_drop(st->gss_id);
		free(st->hs);
		free(st);
	}
	return ctl;
}

void fdtab_dup(int oldfd, int newfd)
{
	struct shim_fd *old = NULL;

	if (!fdtab_ok(oldfd) || !fdtab_ok(newfd) || oldfd == newfd)
		return;
	pthread_mutex_lock(&fdtab_lock);
	old = fdtab_unlink(newfd);
	if (fdtab[oldfd] != NULL) {
		fdtab[oldfd]->refs++;
		__atomic_store_n(&fdtab[newfd], fdtab[oldfd], __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&fdtab_lock);
	if (old != NULL) {
		if (old->kind == SHIM_FD_UDP && old->ctl >= 0) {
			fdtab_set_internal(old->ctl, false);
			shim_real.close(old->ctl);
		}
		gssdgram_drop(old->gss_id);
		free(old->hs);
		free(old);
	}
}

static void fdtab_repoint_ctl(struct shim_fd *st, void *arg)
{
	int *from_to = arg;

	if (st->kind == SHIM_FD_UDP && st->ctl == from_to[0])
		st->ctl = from_to[1];
}

/*
 * The application wants fd's number (dup2 onto it): our internal fd moves
 * to a new number first, so the application's dup2 cannot silently replace
 * a proxy control connection. Returns the new number or -1.
 */
int fdtab_evacuate(int fd)
{
	int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 256);
	int from_to[2] = { fd, nfd };

	if (nfd < 0)
		return -1;
	fdtab_set_internal(nfd, true);
	pthread_mutex_lock(&fdtab_lock);
	for (int i = 0; i < SHIM_FD_MAX; i++)
		if (fdtab[i] != NULL)
			fdtab_repoint_ctl(fdtab[i], from_to);
	pthread_mutex_unlock(&fdtab_lock);
	fdtab_set_internal(fd, false);
	shim_real.close(fd);
	return nfd;
}

void fdtab_atfork_prepare(void) { pthread_mutex_lock(&fdtab_lock); }
void fdtab_atfork_parent(void) { pthread_mutex_unlock(&fdtab_lock); }
void fdtab_atfork_child(void) { pthread_mutex_unlock(&fdtab_lock); }
