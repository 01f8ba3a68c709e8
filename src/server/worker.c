/*
 * worker.c - one thread, one libev loop: its own listening sockets
 * (SO_REUSEPORT), resolver, pipe cache and auth completions. The main thread
 * talks to it only through want_reload / want_stop and an ev_async.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"
#include "common/log.h"
#include "policy/conf.h"
#include "server/ext.h"
#include "server/resolve.h"
#include "server/server.h"
#include "server/session_int.h"
#include "server/udpbatch.h"

#define PIPES_CACHED 64

static void maybe_finish_drain(struct worker *w)
{
	if (w->draining && w->n_sessions == 0 && w->auth_orphans == 0)
		ev_break(w->loop, EVBREAK_ALL);
}

unsigned worker_end_sessions(struct worker *w,
			     bool (*judge)(const struct session *s, const struct rule *r,
					   void *ctx, char *why, size_t whylen),
			     void *ctx)
{
	struct ended {
		struct session *s;
		char why[EXT_REASON_MAX];
	} *v = NULL;
	size_t n = 0, cap = 0;

	/* Judge first, close after: a command's destroy may end other
	 * sessions, and closed ones stay allocated until the reaper runs. */
	for (struct session *s = w->sessions; s; s = s->next) {
		char why[EXT_REASON_MAX] = "";
		if (s->state == SS_CLOSED || !judge(s, s->rule, ctx, why, sizeof(why)))
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct ended *nv = realloc(v, nc * sizeof(*v));
			if (!nv)
				break;
			v = nv;
			cap = nc;
		}
		v[n].s = s;
		snprintf(v[n].why, sizeof(v[n].why), "%s", why);
		n++;
	}
	for (size_t i = 0; i < n; i++)
		session_close(v[i].s, v[i].why);
	free(v);
	return (unsigned)n;
}

void worker_session_ended(struct worker *w)
{
	maybe_finish_drain(w);
}

static void on_drain_timeout(EV_P_ ev_timer *t, int revents)
{
	struct worker *w = t->data;
	log_info("worker %u: closing %u sessions still open after drain time", w->id,
		 w->n_sessions);
	while (w->sessions)
		session_close(w->sessions, "server shutting down");
	maybe_finish_drain(w);
}

/* A first stop closes the listeners and gives sessions drain_secs to end;
 * a second one (the operator's second SIGTERM) ends them at once. */
static void start_drain(struct worker *w)
{
	if (w->draining) {
		ev_timer_stop(w->loop, &w->drain);
		on_drain_timeout(w->loop, &w->drain, 0);
		return;
	}
	w->draining = true;
	listener_close_all(w);
	ev_timer_init(&w->drain, on_drain_timeout, g_server.drain_secs, 0.);
	w->drain.data = w;
	ev_timer_start(w->loop, &w->drain);
	maybe_finish_drain(w);
}

static void reap(struct worker *w)
{
	while (w->dead) {
		struct session *s = w->dead;
		w->dead = s->next;
		free(s);
	}
}

static void on_reap(EV_P_ ev_prepare *p, int revents)
{
	struct worker *w = p->data;
	/* Runs once per loop iteration: the worker's load, for the metrics. */
	stats_inc(&w->stats.loops);
	reap(w);
}

static void on_wake(EV_P_ ev_async *a, int revents)
{
	struct worker *w = a->data;
	if (atomic_exchange(&w->want_reload, false)) {
		/* The generation before the snapshot: main.c sets the snapshot
		 * first, so s is at least as new as gen's. */
		unsigned gen = atomic_load(&g_server.reload_gen);
		struct snapshot *s = server_snapshot();
		snapshot_unref(w->snap);
		w->snap = s; /* sessions already running keep theirs */
		listener_reload(w, s->conf);
		ext_worker_reloaded(w, s->conf);
		atomic_store(&w->reloaded_gen, gen);
		if (g_server.track_reloads)
			sem_post(&g_server.reloaded); /* main.c's reload() waits for it */
	}
	if (atomic_exchange(&w->want_stop, false))
		start_drain(w);
	if (atomic_exchange(&w->want_report, false))
		stats_worker_answer(w);
}

int worker_init_loop(struct worker *w, unsigned id, struct snapshot *snap, char *err,
		     size_t errlen)
{
	const struct stp_conf *c = snap->conf;

	memset(w, 0, sizeof(*w));
	w->id = id;
	w->spare_fd = listener_spare_open();
	w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
	if (!w->loop) {
		snprintf(err, errlen, "cannot create an event loop");
		return -1;
	}
	w->snap = snapshot_ref(snap);
	w->resolver = resolver_new(w->loop, c->has_resolver ? c->resolver : NULL,
				   c->timeouts.dns, c->limits.max_dns_pending, err, errlen);
	w->pipes = pipepool_new(PIPES_CACHED);
	w->udp = udp_batch_new();
	if (!w->resolver || !w->pipes || !w->udp) {
		if (w->resolver && (!w->pipes || !w->udp))
			snprintf(err, errlen, "out of memory");
		return -1;
	}
	ev_prepare_init(&w->reaper, on_reap);
	w->reaper.data = w;
	ev_prepare_start(w->loop, &w->reaper);
	ev_async_init(&w->wake, on_wake);
	w->wake.data = w;
	ev_async_start(w->loop, &w->wake);
	return 0;
}

int worker_init(struct worker *w, unsigned id, struct snapshot *snap, char *err, size_t errlen)
{
	const struct stp_conf *c = snap->conf;

	if (worker_init_loop(w, id, snap, err, errlen) < 0)
		return -1;
	w->listeners = calloc(c->n_listeners, sizeof(*w->listeners));
	if (!w->listeners) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->n_listeners = c->n_listeners;
	for (size_t i = 0; i < c->n_listeners; i++) {
		w->listeners[i].w = w;
		w->listeners[i].conf = &c->listeners[i];
		w->listeners[i].fd = listener_open(&c->listeners[i], NULL, err, errlen);
		if (w->listeners[i].fd < 0)
			return -1;
	}
	return 0;
}

void worker_fini(struct worker *w)
{
	stats_worker_gone(w);
	listener_close_all(w);
	ev_timer_stop(w->loop, &w->drain);
	ev_async_stop(w->loop, &w->wake);
	ev_prepare_stop(w->loop, &w->reaper);
	resolver_free(w->resolver);
	authpool_detach(w->auth);
	pipepool_free(w->pipes);
	udp_batch_free(w->udp);
	if (w->spare_fd >= 0)
		close(w->spare_fd);
	for (size_t i = 0; i < w->n_listeners; i++)
		if (w->listeners[i].held)
			conf_unref(w->listeners[i].held);
	free(w->listeners);
	snapshot_unref(w->snap);
	reap(w);
	ev_loop_destroy(w->loop);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	size_t n_ext;
	const struct stp_ext *const *exts = ext_all(&n_ext);

	stats_bind(w);
	w->auth = authpool_attach(w->loop);
	for (size_t i = 0; i < n_ext; i++)
		if (exts[i]->worker_init && exts[i]->worker_init(w) < 0)
			fatalx("worker %u: module %s failed to start", w->id, exts[i]->name);
	for (size_t i = 0; i < w->n_listeners; i++)
		listener_start(&w->listeners[i]);
	sem_post(&w->started);

	ev_run(w->loop, 0);

	for (size_t i = 0; i < n_ext; i++)
		if (exts[i]->worker_fini)
			exts[i]->worker_fini(w);
	worker_fini(w);
	return NULL;
}

/* Returns once the worker's modules have started (a module that fails
 * ends the process first), so "ready" is logged only for a server that
 * is. */
int worker_spawn(struct worker *w)
{
	if (sem_init(&w->started, 0, 0) < 0 || pthread_create(&w->thread, NULL, worker_main, w) != 0)
		return -1;
	while (sem_wait(&w->started) < 0 && errno == EINTR)
		;
	sem_destroy(&w->started);
	return 0;
}

void worker_request(struct worker *w, bool reload, bool stop)
{
	if (reload)
		atomic_store(&w->want_reload, true);
	if (stop)
		atomic_store(&w->want_stop, true);
	ev_async_send(w->loop, &w->wake);
}

void worker_join(struct worker *w)
{
	pthread_join(w->thread, NULL);
}

bool worker_tryjoin(struct worker *w)
{
	return pthread_tryjoin_np(w->thread, NULL) == 0;
}

const struct stp_conf *worker_conf(const struct worker *w)
{
	return w->snap->conf;
}

struct ev_loop *worker_loop(const struct worker *w)
{
	return w->loop;
}
