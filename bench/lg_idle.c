/*
 * lg_idle.c - `idle`: opens K relayed sessions to the TCP echo, moves one
 * byte each way through every one (so the relay is really set up, not just
 * accepted), then holds them all silent and reads the proxy's footprint:
 * VmRSS and open fds of --pid and its children, against a baseline read
 * before the first connection. KB per session is the growth of PSS (see
 * struct lg_usage), VmRSS growth is reported next to it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "loadgen.h"

#define IDLE_PENDING 64 /* handshakes in flight per worker: stays under listen backlogs */
#define IDLE_SETTLE_SECS 1.0

enum { ID_ECHO = 1, ID_HELD };

struct id_worker {
	size_t next;    /* next connection to open */
	size_t pending; /* opened, not yet held or failed */
};

static void id_open_more(struct lg_worker *w)
{
	struct id_worker *iw = w->mode;
	struct lg_run *run = w->run;

	while (iw->pending < IDLE_PENDING && iw->next < w->nconns) {
		struct lg_conn *c = &w->conns[iw->next];
		int tidx = (int)(((size_t)w->id + iw->next * (size_t)run->o->threads) %
				 (size_t)run->tg->n);
		struct socks_addr dst;

		iw->next++;
		lg_addr_from_sin(&dst, &run->tg->addr[tidx]);
		if (lg_conn_open(c, w->ep, lg_first_hop(run, tidx), SOCKS_CMD_CONNECT, &dst,
				 run->o->direct) < 0) {
			lg_worker_fail(w, c, "open");
			continue;
		}
		iw->pending++;
	}
}

/* The session is set up, or failed: either way it no longer counts as pending. */
static void id_settled(struct lg_worker *w)
{
	struct id_worker *iw = w->mode;
	iw->pending--;
	id_open_more(w);
}

static void id_fail(struct lg_worker *w, struct lg_conn *c, const char *why)
{
	bool was_pending = c->state != ID_HELD;
	c->why = why;
	lg_worker_fail(w, c, "idle session");
	lg_conn_close(c);
	if (was_pending)
		id_settled(w);
}

static void id_event(struct lg_worker *w, struct lg_conn *c, uint32_t events)
{
	uint8_t b = 'i';
	ssize_t n;

	if (c->hs != LG_HS_DONE) {
		int r = lg_worker_handshake(w, c, events, false);
		if (r < 0)
			id_settled(w);
		if (r <= 0)
			return;
		c->state = ID_ECHO;
		if (c->surplus || send(c->fd, &b, 1, MSG_NOSIGNAL) != 1 ||
		    lg_conn_watch(c, w->ep, EPOLLIN) < 0)
			id_fail(w, c, "first byte");
		return;
	}
	n = recv(c->fd, &b, 1, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (c->state == ID_ECHO && n == 1 && b == 'i') {
		c->state = ID_HELD;
		c->deadline = 0;
		atomic_fetch_add(&w->run->ready, 1);
		id_settled(w);
		return;
	}
	id_fail(w, c, n == 0 ? "closed while idle" : "unexpected bytes");
}

static void *id_main(void *arg)
{
	struct lg_worker *w = arg;
	struct id_worker iw = { 0, 0 };

	w->mode = &iw;
	id_open_more(w);
	lg_worker_loop(w, id_event, id_fail);
	return NULL;
}

int lg_mode_idle(struct lg_run *run, struct lg_result *res)
{
	const struct lg_opts *o = run->o;
	struct lg_worker w[LG_MAX_THREADS];
	char err[256];
	int rc = 0;

	res->has_mem = o->pid > 0 && !o->direct;
	if (res->has_mem && lg_proc_usage(o->pid, &res->base) < 0) {
		lg_run_error(run, "cannot read /proc/%d", (int)o->pid);
		return -1;
	}
	if (lg_workers_init(run, w, (size_t)o->sessions, err, sizeof(err)) < 0 ||
	    lg_workers_start(run, w, id_main) < 0) {
		lg_run_error(run, "%s", err);
		return -1;
	}
	double setup = LG_SETUP_SECS + o->sessions / 200.0;
	if (!lg_wait_ready(run, (uint64_t)o->sessions, setup)) {
		lg_run_error(run, "only %lu of %d sessions set up",
			     (unsigned long)atomic_load(&run->ready), o->sessions);
		rc = -1;
	}
	atomic_store(&run->phase, LG_MEASURE);
	lg_sleep_s(IDLE_SETTLE_SECS);
	res->sessions = atomic_load(&run->ready);
	if (res->has_mem && lg_proc_usage(o->pid, &res->held) < 0) {
		lg_run_error(run, "proxy %d vanished", (int)o->pid);
		rc = -1;
	}
	if (res->has_mem && res->sessions > 0) {
		double n = (double)res->sessions;
		res->kb_per_session = (double)(res->held.pss_kb - res->base.pss_kb) / n;
		res->rss_kb_per_session = (double)(res->held.rss_kb - res->base.rss_kb) / n;
		res->fds_per_session = (double)(res->held.fds - res->base.fds) / n;
	}
	res->seconds = IDLE_SETTLE_SECS;
	atomic_store(&run->phase, LG_STOP);
	lg_workers_finish(run, w);
	return rc;
}
