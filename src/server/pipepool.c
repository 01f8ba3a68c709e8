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

struct pipepool {
	size_t n, max;
	int (*fds)[2];
};

struct pipepool *pipepool_new(size_t max_cached)
{
	struct pipepool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->max = max_cached;
	p->fds = calloc(max_cached ? max_cached : 1, sizeof(*p->fds));
	if (!p->fds) {
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
		close(p->fds[i][0]);
		close(p->fds[i][1]);
	}
	free(p->fds);
	free(p);
}

int pipepool_get(struct pipepool *p, int fds[2])
{
	if (p->n > 0) {
		p->n--;
		fds[0] = p->fds[p->n][0];
		fds[1] = p->fds[p->n][1];
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return -1;
	/* Bigger pipes mean fewer splice calls per byte (bench/NOTES.md). If
	 * the per-user pipe budget is spent, the default size still works. */
	fcntl(fds[0], F_SETPIPE_SZ, PIPEPOOL_PIPE_SIZE);
	return 0;
}

void pipepool_put(struct pipepool *p, int fds[2])
{
	if (p->n < p->max) {
		p->fds[p->n][0] = fds[0];
		p->fds[p->n][1] = fds[1];
		p->n++;
	} else {
		close(fds[0]);
		close(fds[1]);
	}
	fds[0] = fds[1] = -1;
}
