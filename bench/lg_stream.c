/*
 * lg_stream.c - `throughput`: N long-lived streams through the proxy, all
 * data flowing one way. "up" writes to the TCP sink and counts what the
 * sink received; "down" reads from the TCP source and counts what the
 * clients received. Counting at the receiver means bytes still queued in
 * socket buffers are never credited.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "loadgen.h"

#define S_CHUNK (256 * 1024)
#define S_ROUNDS 8

struct s_worker {
	uint8_t *buf;
};

static void s_fail(struct lg_worker *w, struct lg_conn *c, const char *why)
{
	c->why = why;
	lg_worker_fail(w, c, "stream");
	lg_conn_close(c);
}

static void s_write(struct lg_worker *w, struct lg_conn *c, const uint8_t *buf)
{
	for (int i = 0; i < S_ROUNDS; i++) {
		ssize_t n = send(c->fd, buf, S_CHUNK, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				s_fail(w, c, "send failed");
			return;
		}
	}
}

static void s_read(struct lg_worker *w, struct lg_conn *c, uint8_t *buf)
{
	uint64_t got = 0;

	for (int i = 0; i < S_ROUNDS; i++) {
		ssize_t n = recv(c->fd, buf, S_CHUNK, 0);
		if (n > 0) {
			got += (uint64_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			s_fail(w, c, n == 0 ? "stream closed early" : "recv failed");
		break;
	}
	if (got)
		atomic_fetch_add_explicit(&w->run->bytes, got, memory_order_relaxed);
}

static void s_event(struct lg_worker *w, struct lg_conn *c, uint32_t events)
{
	struct s_worker *sw = w->mode;
	bool up = w->run->o->dir == LG_UP;

	if (c->hs != LG_HS_DONE) {
		if (lg_worker_handshake(w, c, events, true) <= 0)
			return;
		c->deadline = 0;
		if (c->surplus)
			atomic_fetch_add(&w->run->bytes, c->surplus);
		if (lg_conn_watch(c, w->ep, up ? EPOLLOUT : EPOLLIN) < 0)
			s_fail(w, c, "epoll");
		return;
	}
	if (up)
		s_write(w, c, sw->buf);
	else
		s_read(w, c, sw->buf);
}

static void *s_main(void *arg)
{
	struct lg_worker *w = arg;
	struct lg_run *run = w->run;
	struct s_worker sw = { .buf = malloc(S_CHUNK) };

	if (!sw.buf)
		return NULL;
	memset(sw.buf, 'u', S_CHUNK);
	w->mode = &sw;
	for (size_t k = 0; k < w->nconns; k++) {
		int tidx = (int)((size_t)w->id + k * (size_t)run->o->threads) % run->tg->n;
		struct socks_addr dst;
		lg_addr_from_sin(&dst, &run->tg->addr[tidx]);
		if (lg_conn_open(&w->conns[k], w->ep, lg_first_hop(run, tidx), SOCKS_CMD_CONNECT,
				 &dst, run->o->direct) < 0)
			lg_worker_fail(w, &w->conns[k], "open");
	}
	lg_worker_loop(w, s_event, s_fail);
	free(sw.buf);
	return NULL;
}

int lg_mode_throughput(struct lg_run *run, struct lg_result *res)
{
	const struct lg_opts *o = run->o;
	struct lg_worker w[LG_MAX_THREADS];
	char err[256];
	uint64_t delta = 0;
	int rc = 0;

	if (lg_workers_init(run, w, (size_t)o->streams, err, sizeof(err)) < 0 ||
	    lg_workers_start(run, w, s_main) < 0) {
		lg_run_error(run, "%s", err);
		return -1;
	}
	if (lg_wait_ready(run, (uint64_t)o->streams, LG_SETUP_SECS)) {
		atomic_uint_fast64_t *counter = o->dir == LG_UP ? &run->tg->bytes_in : &run->bytes;
		res->seconds = lg_timeline(run, counter, &delta);
		res->mb_s = (double)delta / res->seconds / 1e6;
	} else {
		lg_run_error(run, "only %lu of %d streams set up",
			     (unsigned long)atomic_load(&run->ready), o->streams);
		rc = -1;
	}
	atomic_store(&run->phase, LG_STOP);
	lg_workers_finish(run, w);
	return rc;
}
