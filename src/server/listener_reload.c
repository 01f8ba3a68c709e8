/*
 * listener_reload.c - listen statements follow SIGHUP (docs/config.md
 * `listen ADDR { }`). Each worker has its own SO_REUSEPORT socket per listen
 * statement; on a reload, on its own thread, it matches its listeners
 * with the new file's by address and place (ext_listener_place: a
 * compartment's name, NULL for stpd's own namespace):
 *  - kept: the socket stays (nothing waiting in its backlog is lost) and
 *    points at the new statement, which may rename it or change its
 *    options (`tls`, ...) for the connections it accepts from now on;
 *  - removed: the socket is closed; connections not yet accepted are
 *    reset, the sessions it accepted relay on untouched;
 *  - added: opened here by listener_open (after the drop to `user`, a
 *    port below 1024 is bound by the broker over this worker's channel,
 *    in the listener's compartment, if the broker's own copy of the file
 *    lists it there).
 * main.c's reload() logs "configuration reloaded" once every worker has
 * done this (reload_gen, reloaded_gen), so from then on no worker accepts on an
 * address the file dropped.
 *
 * Each listener points into the configuration it was opened or kept
 * under and, when a reload did that, holds a reference to it (`held`): a
 * session holds the snapshot it started with, whose configuration holds
 * the statement it arrived on, and the listener holds its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "policy/conf.h"
#include "server/ext.h"
#include "server/server.h"

static bool same_place(const struct conf_listener *a, const struct conf_listener *b)
{
	const char *pa = ext_listener_place(a), *pb = ext_listener_place(b);
	return (!pa && !pb) || (pa && pb && strcmp(pa, pb) == 0);
}

/* The statement of c at l's address and place (a file lists an address
 * once), or NULL. */
static const struct conf_listener *find_same(const struct conf_listener *l,
					     const struct stp_conf *c)
{
	for (size_t j = 0; j < c->n_listeners; j++) {
		const struct conf_listener *b = &c->listeners[j];
		if (same_place(l, b) &&
		    sa_equal((const struct sockaddr *)&l->addr, (const struct sockaddr *)&b->addr))
			return b;
	}
	return NULL;
}

/* Worker 0 speaks for all: every worker does the same. */
static void say(const struct worker *w, const char *what, const struct conf_listener *cl,
		const char *how)
{
	char where[SA_STR_MAX];
	if (w->id == 0)
		log_info("%s %s (%s)%s", what,
			 sa_str((const struct sockaddr *)&cl->addr, where, sizeof(where)), cl->name,
			 how);
}

/* l is kept as c's statement b: the same socket, the new statement. */
static void keep(struct worker *w, struct listener *l, struct stp_conf *c,
		 const struct conf_listener *b)
{
	char was[CONF_NAME_MAX + 32];

	if (strcmp(l->conf->name, b->name) != 0) {
		snprintf(was, sizeof(was), ", renamed from %s by the reload", l->conf->name);
		say(w, "listening on", b, was);
	}
	if (l->conf->no_fastopen != b->no_fastopen && l->fd >= 0) {
		if (listener_fastopen(l->fd, !b->no_fastopen) < 0)
			log_warnx("worker %u: listen (%s): tcp-fastopen %s: %s", w->id, b->name,
				  b->no_fastopen ? "off" : "on", strerror(errno));
		else
			say(w, "listening on", b,
			    b->no_fastopen ? ", tcp-fastopen off by the reload"
					   : ", tcp-fastopen on by the reload");
	}
	if (l->held)
		conf_unref(l->held);
	l->conf = b;
	l->held = conf_ref(c);
}

static void drop(struct worker *w, struct listener *l)
{
	say(w, "stopped listening on", l->conf, ": removed by the reload");
	if (l->fd >= 0)
		close(l->fd);
	if (l->held)
		conf_unref(l->held);
}

static bool running(const struct worker *w, const struct conf_listener *b)
{
	for (size_t i = 0; i < w->n_listeners; i++)
		if (w->listeners[i].conf == b)
			return true;
	return false;
}

/* Opens c's statements that w does not run yet. */
static void add_new(struct worker *w, struct stp_conf *c)
{
	char err[256];
	struct listener *nl = realloc(w->listeners,
				      (w->n_listeners + c->n_listeners + 1) * sizeof(*nl));
	if (!nl) {
		log_warnx("worker %u: out of memory: no listener added on reload", w->id);
		return;
	}
	w->listeners = nl;
	for (size_t j = 0; j < c->n_listeners; j++) {
		const struct conf_listener *b = &c->listeners[j];
		if (running(w, b))
			continue;
		int fd = listener_open(b, w, err, sizeof(err));
		if (fd < 0) {
			log_warnx("worker %u: %s (%s) not added on reload", w->id, err, b->name);
			continue;
		}
		say(w, "listening on", b, ", added by the reload");
		w->listeners[w->n_listeners++] = (struct listener){
			.w = w, .conf = b, .held = conf_ref(c), .fd = fd
		};
	}
}

void listener_reload(struct worker *w, struct stp_conf *c)
{
	size_t n = 0;

	if (w->draining)
		return; /* its listeners are closed already */
	/* The watchers live in the array, which is packed and may move:
	 * every one is stopped here and restarted at the end. */
	for (size_t i = 0; i < w->n_listeners; i++)
		ev_io_stop(w->loop, &w->listeners[i].io);
	for (size_t i = 0; i < w->n_listeners; i++) {
		struct listener *l = &w->listeners[i];
		const struct conf_listener *b = find_same(l->conf, c);
		if (!b) {
			drop(w, l);
			continue;
		}
		keep(w, l, c, b);
		w->listeners[n++] = *l;
	}
	w->n_listeners = n;
	add_new(w, c);
	for (size_t i = 0; i < w->n_listeners; i++)
		if (w->listeners[i].fd >= 0)
			listener_start(&w->listeners[i]);
}
