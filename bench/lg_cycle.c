/*
 * lg_cycle.c - `connrate`: C clients, each looping over one whole
 * connection cycle: connect to the proxy, greeting, CONNECT to the TCP
 * echo, send --size bytes, read them back, close. The latency of a cycle
 * runs from connect() to the last echoed byte; cycles are counted and
 * sampled only while measuring.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "loadgen.h"

#define CY_MAX_PAYLOAD 4096
#define CY_SAMPLES_MAX (2u * 1000 * 1000) /* per worker; 8 MB */
#define CY_OPEN_TRIES 3

enum { CY_SEND = 1, CY_RECV };

struct cy_worker {
	uint8_t payload[CY_MAX_PAYLOAD];
	uint8_t echo[CY_MAX_PAYLOAD];
	unsigned next_target;
};

static void cy_open(struct lg_worker *w, struct lg_conn *c)
{
	struct cy_worker *cw = w->mode;
	struct lg_run *run = w->run;

	for (int i = 0; i < CY_OPEN_TRIES && atomic_load(&run->phase) != LG_STOP; i++) {
		int tidx = (int)(cw->next_target++ % (unsigned)run->tg->n);
		struct socks_addr dst;
		lg_addr_from_sin(&dst, &run->tg->addr[tidx]);
		if (lg_conn_open(c, w->ep, lg_first_hop(run, tidx), SOCKS_CMD_CONNECT, &dst,
				 run->o->direct) == 0)
			return;
		if (!lg_worker_fail(w, c, "open"))
			return;
	}
}

static void cy_finish(struct lg_worker *w, struct lg_conn *c)
{
	uint64_t now = lg_now_ns();

	if (atomic_load(&w->run->phase) == LG_MEASURE && w->nlat < w->caplat)
		w->lat[w->nlat++] = (uint32_t)((now - c->started) / 1000);
	atomic_fetch_add_explicit(&w->run->count, 1, memory_order_relaxed);
	lg_conn_close(c);
	cy_open(w, c);
}

static void cy_fail(struct lg_worker *w, struct lg_conn *c, const char *why)
{
	c->why = why;
	lg_conn_close(c);
	if (lg_worker_fail(w, c, "echo"))
		cy_open(w, c);
}

static void cy_send(struct lg_worker *w, struct lg_conn *c)
{
	struct cy_worker *cw = w->mode;
	size_t size = w->run->o->size;

	while (c->outoff < size) {
		ssize_t n = send(c->fd, cw->payload + c->outoff, size - c->outoff, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				if (lg_conn_watch(c, w->ep, EPOLLOUT) < 0)
					cy_fail(w, c, "epoll");
				return;
			}
			cy_fail(w, c, "send failed");
			return;
		}
		c->outoff += (size_t)n;
	}
	c->state = CY_RECV;
	if (lg_conn_watch(c, w->ep, EPOLLIN) < 0)
		cy_fail(w, c, "epoll");
}

static void cy_recv(struct lg_worker *w, struct lg_conn *c)
{
	struct cy_worker *cw = w->mode;
	size_t size = w->run->o->size;
	ssize_t n = recv(c->fd, cw->echo + c->done_bytes, size - c->done_bytes, 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		cy_fail(w, c, n == 0 ? "closed before the echo" : "recv failed");
		return;
	}
	c->done_bytes += (size_t)n;
	if (c->done_bytes < size)
		return;
	if (memcmp(cw->echo, cw->payload, size) != 0)
		cy_fail(w, c, "echo differs");
	else
		cy_finish(w, c);
}

static void cy_event(struct lg_worker *w, struct lg_conn *c, uint32_t events)
{
	if (c->hs != LG_HS_DONE) {
		int r = lg_worker_handshake(w, c, events, false);
		if (r < 0 && atomic_load(&w->run->phase) != LG_STOP && w->nerrors < LG_ERROR_CAP)
			cy_open(w, c);
		if (r <= 0)
			return;
		if (c->surplus) {
			cy_fail(w, c, "bytes before the echo");
			return;
		}
		c->state = CY_SEND;
		c->outoff = 0;
		cy_send(w, c);
		return;
	}
	if (c->state == CY_SEND)
		cy_send(w, c);
	else
		cy_recv(w, c);
}

static void *cy_main(void *arg)
{
	struct lg_worker *w = arg;
	struct cy_worker *cw = calloc(1, sizeof(*cw));

	if (!cw)
		return NULL;
	for (size_t i = 0; i < sizeof(cw->payload); i++)
		cw->payload[i] = (uint8_t)('a' + i % 26);
	cw->next_target = (unsigned)w->id;
	w->mode = cw;
	for (size_t k = 0; k < w->nconns; k++)
		cy_open(w, &w->conns[k]);
	lg_worker_loop(w, cy_event, cy_fail);
	free(cw);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Merges the workers' samples and fills the percentiles. */
static void cy_percentiles(struct lg_run *run, struct lg_worker *w, struct lg_result *res)
{
	size_t total = 0, at = 0;
	for (int i = 0; i < run->o->threads; i++)
		total += w[i].nlat;
	uint32_t *all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		return;
	for (int i = 0; i < run->o->threads; i++) {
		memcpy(all + at, w[i].lat, w[i].nlat * sizeof(*all));
		at += w[i].nlat;
	}
	qsort(all, total, sizeof(*all), cmp_u32);
	res->p50_ms = lg_percentile(all, total, 50) / 1000.0;
	res->p90_ms = lg_percentile(all, total, 90) / 1000.0;
	res->p99_ms = lg_percentile(all, total, 99) / 1000.0;
	free(all);
}

int lg_mode_connrate(struct lg_run *run, struct lg_result *res)
{
	const struct lg_opts *o = run->o;
	struct lg_worker w[LG_MAX_THREADS];
	char err[256];
	uint64_t delta = 0;

	if (o->size == 0 || o->size > CY_MAX_PAYLOAD) {
		lg_run_error(run, "--size must be 1..%d for connrate", CY_MAX_PAYLOAD);
		return -1;
	}
	if (lg_workers_init(run, w, (size_t)o->clients, err, sizeof(err)) < 0) {
		lg_run_error(run, "%s", err);
		return -1;
	}
	for (int i = 0; i < o->threads; i++) {
		w[i].caplat = CY_SAMPLES_MAX;
		if (!(w[i].lat = malloc(CY_SAMPLES_MAX * sizeof(*w[i].lat)))) {
			lg_run_error(run, "out of memory");
			return -1;
		}
	}
	/* No set-up phase: every cycle is a fresh connection. */
	atomic_store(&run->phase, LG_WARMUP);
	if (lg_workers_start(run, w, cy_main) < 0) {
		lg_run_error(run, "pthread_create failed");
		return -1;
	}
	res->seconds = lg_timeline(run, &run->count, &delta);
	res->per_s = (double)delta / res->seconds;
	res->received = delta;
	lg_workers_finish(run, w);
	cy_percentiles(run, w, res);
	for (int i = 0; i < o->threads; i++)
		free(w[i].lat);
	return 0;
}
