/*
 * pipepool.c - per-worker cache of empty pipe pairs for splice(2), so a
 * burst of traffic does not cost two syscalls per pipe and an idle session
 * holds no pipe at all (fds are the scarce resource: 20 000 per process here).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "server/relay.h"

#define PIPEPOOL_PIPE_SIZE (256 * 1024)
#define PIPEPOOL_DEFAULT_SIZE (64 * 1024) /* Linux's pipe size */

struct pipe_entry {
	int fds[2];
	size_t cap;
};

struct pipepool {
	size_t n, max;
	struct pipe_entry *e;
};

struct pipepool *pipepool_new(size_t max_cached)
{
	struct pipepool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->max = max_cached;
	p->e = calloc(max_cached ? max_cached : 1, sizeof(*p->e));
	if (!p->e) {
		free(p);
		return NULL;
	}
	return p;
}

void pipepool_free(struct pipepool *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		close(p->e[i].fds[0]);
		close(p->e[i].fds[1]);
	}
	free(p->e);
	free(p);
}

int pipepool_get(struct pipepool *p, int fds[2], size_t *cap)
{
	if (p->n > 0) {
		p->n--;
		fds[0] = p->e[p->n].fds[0];
		fds[1] = p->e[p->n].fds[1];
		*cap = p->e[p->n].cap;
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	/* Bigger pipes mean fewer splice calls per byte (bench/NOTES.md). If
	 * the per-user pipe budget is spent, the default size still works. */
	int got = fcntl(fds[0], F_SETPIPE_SZ, PIPEPOOL_PIPE_SIZE);
	*cap = got > 0 ? (size_t)got : PIPEPOOL_DEFAULT_SIZE;
	return 0;
}

/* The capacity goes back with the pipe: the relay asks that much per splice. */
void pipepool_put(struct pipepool *p, int fds[2], size_t cap)
{
	if (p->n < p->max) {
		p->e[p->n].fds[0] = fds[0];
		p->e[p->n].fds[1] = fds[1];
		p->e[p->n].cap = cap;
		p->n++;
	} else {
		close(fds[0]);
		close(fds[1]);
	}
	fds[0] = fds[1] = -1;
}
