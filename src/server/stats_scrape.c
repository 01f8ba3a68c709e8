/*
 * stats_scrape.c - see stats.h: the reading side, on the metrics thread.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/sockaddr.h"
#include "server/server.h"
#include "server/session_int.h"
#include "server/stats.h"

extern struct stats stats_shared;

/* ---- scrape side ---- */

static void add_block(struct stats *out, const struct stats *in)
{
	/* struct stats is counters only: sum it as an array. */
	const stats_ctr *a = (const stats_ctr *)in;
	uint_fast64_t *o = (uint_fast64_t *)out;
	for (size_t i = 0; i < sizeof(*in) / sizeof(stats_ctr); i++)
		o[i] += atomic_load_explicit(&a[i], memory_order_relaxed);
}

unsigned stats_workers(void)
{
	return g_server.n_workers;
}

void stats_sum(struct stats *out)
{
	memset(out, 0, sizeof(*out));
	add_block(out, &stats_shared);
	for (unsigned i = 0; i < g_server.n_workers; i++)
		add_block(out, &g_server.workers[i].stats);
}

void stats_worker_load(unsigned i, uint64_t *sessions, uint64_t *loops)
{
	const struct stats *st = &g_server.workers[i].stats;
	*sessions = atomic_load_explicit(&st->sessions, memory_order_relaxed);
	*loops = atomic_load_explicit(&st->loops, memory_order_relaxed);
}

/* ---- the open sessions, walked by each worker on its own loop ---- */

static pthread_mutex_t req_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t req_cv = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t collect_mu = PTHREAD_MUTEX_INITIALIZER; /* one collector at a time */
static struct {
	struct stats_sessions *out; /* NULL: no request open */
	size_t max;
	unsigned pending;
	bool *asked;                /* per worker: asked and not answered yet */
} req;

static void list_one(struct stats_session *e, const struct session *s, double now)
{
	e->id = s->id;
	e->worker = s->w->id;
	e->state = session_state_name(s->state);
	e->cmd = s->cmd;
	e->has_cmd = s->target.atyp != 0;
	sa_str((const struct sockaddr *)&s->client, e->client, sizeof(e->client));
	if (s->target.atyp)
		socks_addr_str(&s->target, e->target, sizeof(e->target));
	else
		strcpy(e->target, "-");
	snprintf(e->user, sizeof(e->user), "%.63s", s->user[0] ? s->user : "-");
	snprintf(e->listener, sizeof(e->listener), "%.31s", s->listener->name);
	if (s->state == SS_RELAY) {
		e->up = s->relay.half[0].bytes;
		e->down = s->relay.half[1].bytes;
	} else {
		e->up = s->up;
		e->down = s->down;
	}
	for (const struct flow *f = s->flows; f; f = f->next) {
		e->up += f->up;
		e->down += f->down;
	}
	e->age = now - s->started;
}

void stats_worker_answer(struct worker *w)
{
	pthread_mutex_lock(&req_mu);
	if (req.out && req.asked[w->id]) {
		struct stats_sessions *o = req.out;
		double now = ev_now(w->loop);
		for (const struct session *s = w->sessions; s; s = s->next) {
			unsigned st = (unsigned)s->state < STATS_STATES ? (unsigned)s->state : STATS_STATES - 1;
			o->by_state_cmd[st][s->target.atyp ? s->cmd : 0]++;
			o->total++;
			if (o->n < req.max)
				list_one(&o->list[o->n++], s, now);
		}
		req.asked[w->id] = false;
		o->workers_answered++;
		if (--req.pending == 0)
			pthread_cond_signal(&req_cv);
	}
	pthread_mutex_unlock(&req_mu);
}

void stats_worker_gone(struct worker *w)
{
	pthread_mutex_lock(&req_mu);
	w->stats_gone = true;
	if (req.out && req.asked[w->id]) {
		req.asked[w->id] = false;
		if (--req.pending == 0)
			pthread_cond_signal(&req_cv);
	}
	pthread_mutex_unlock(&req_mu);
}

int stats_sessions(struct stats_sessions *out, size_t max, unsigned timeout_ms)
{
	unsigned n = g_server.n_workers;
	struct timespec until;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i <= SS_CLOSED && i < STATS_STATES; i++)
		out->state_names[i] = session_state_name((enum session_state)i);
	out->n_states = SS_CLOSED + 1;
	out->workers = n;
	if (pthread_mutex_trylock(&collect_mu) != 0)
		return -1;
	out->list = calloc(max ? max : 1, sizeof(*out->list));
	bool *asked = calloc(n ? n : 1, sizeof(*asked));
	if (!out->list || !asked) {
		free(asked);
		stats_sessions_free(out);
		pthread_mutex_unlock(&collect_mu);
		return -1;
	}
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&req_mu);
	req.out = out;
	req.max = max;
	req.asked = asked;
	req.pending = 0;
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &g_server.workers[i];
		if (w->stats_gone || !w->loop)
			continue;
		asked[i] = true;
		req.pending++;
		/* Under req_mu: the worker marks itself gone under it before
		 * its loop is destroyed. */
		atomic_store(&w->want_report, true);
		ev_async_send(w->loop, &w->wake);
	}
	while (req.pending > 0)
		if (pthread_cond_timedwait(&req_cv, &req_mu, &until) == ETIMEDOUT)
			break; /* a busy worker: report what the others said */
	req.out = NULL;
	req.asked = NULL;
	pthread_mutex_unlock(&req_mu);
	free(asked);
	pthread_mutex_unlock(&collect_mu);
	return 0;
}

void stats_sessions_free(struct stats_sessions *out)
{
	free(out->list);
	out->list = NULL;
	out->n = 0;
}
