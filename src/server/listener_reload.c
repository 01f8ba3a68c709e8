/*
 * listener_reload.c - listeners that follow reloads. A module may make a
 * listener's socket after privileges are dropped (a compartment's, from the
 * broker: ext.h listener_follows_reload); such listeners are opened, kept
 * or closed on SIGHUP as the new file says, on each worker's own thread
 * (each worker has its own SO_REUSEPORT socket). Every other listener stays
 * as started: its address may need privileges stpd no longer has.
 *
 * A kept or added listener holds a reference to the configuration its
 * conf points into, and a kept one is re-pointed into the new file, so
 * sessions it starts (which hold the new snapshot) never point into a
 * configuration nobody holds.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "policy/conf.h"
#include "server/ext.h"
#include "server/server.h"

/* The listener of c that l is (same name, address and module key), or -1. */
static ssize_t find_same(const struct conf_listener *l, const char *key, const struct stp_conf *c,
			 const bool *taken)
{
	for (size_t j = 0; j < c->n_listeners; j++) {
		const struct conf_listener *b = &c->listeners[j];
		const char *bk = ext_listener_follows_reload(b);
		if (taken[j] || !bk || strcmp(bk, key) != 0 || strcmp(l->name, b->name) != 0 ||
		    !sa_equal((const struct sockaddr *)&l->addr, (const struct sockaddr *)&b->addr))
			continue;
		return (ssize_t)j;
	}
	return -1;
}

static void say(const struct worker *w, const char *what, const struct conf_listener *cl)
{
	char where[SA_STR_MAX];
	if (w->id == 0) /* once, not once per worker */
		log_info("%s %s (%s) on reload", what,
			 sa_str((const struct sockaddr *)&cl->addr, where, sizeof(where)),
			 cl->name);
}

void listener_reload(struct worker *w, struct stp_conf *c)
{
	bool any = false;
	for (size_t i = 0; i < w->n_listeners && !any; i++)
		any = ext_listener_follows_reload(w->listeners[i].conf) != NULL;
	for (size_t j = 0; j < c->n_listeners && !any; j++)
		any = ext_listener_follows_reload(&c->listeners[j]) != NULL;
	if (w->draining || !any)
		return; /* nothing to do: the watchers (maybe paused) stay as they are */
	struct listener *nl = calloc(w->n_listeners + c->n_listeners + 1, sizeof(*nl));
	bool *taken = calloc(c->n_listeners + 1, sizeof(*taken));
	size_t n = 0;
	char err[256];

	if (!nl || !taken) {
		free(nl);
		free(taken);
		log_warnx("worker %u: out of memory: listeners stay as they were", w->id);
		return;
	}
	/* The array moves: every watcher is stopped, then restarted below. */
	for (size_t i = 0; i < w->n_listeners; i++)
		ev_io_stop(w->loop, &w->listeners[i].io);
	for (size_t i = 0; i < w->n_listeners; i++) {
		struct listener *l = &w->listeners[i];
		const char *key = ext_listener_follows_reload(l->conf);
		ssize_t j = key ? find_same(l->conf, key, c, taken) : -1;
		if (!key) {
			nl[n++] = *l;
			continue;
		}
		if (j < 0) {
			say(w, "stopped listening on", l->conf);
			if (l->fd >= 0)
				close(l->fd);
			if (l->held)
				conf_unref(l->held);
			continue;
		}
		taken[j] = true;
		nl[n] = *l;
		nl[n].conf = &c->listeners[j];
		nl[n].held = conf_ref(c);
		if (l->held)
			conf_unref(l->held);
		n++;
	}
	for (size_t j = 0; j < c->n_listeners; j++) {
		if (taken[j] || !ext_listener_follows_reload(&c->listeners[j]))
			continue;
		int fd = listener_open(&c->listeners[j], err, sizeof(err));
		if (fd < 0) {
			log_warnx("worker %u: %s (%s) not added on reload", w->id, err,
				  c->listeners[j].name);
			continue;
		}
		say(w, "listening on", &c->listeners[j]);
		nl[n++] = (struct listener){
			.w = w, .conf = &c->listeners[j], .held = conf_ref(c), .fd = fd
		};
	}
	free(taken);
	free(w->listeners);
	w->listeners = nl;
	w->n_listeners = n;
	for (size_t i = 0; i < n; i++)
		if (w->listeners[i].fd >= 0)
			listener_start(&w->listeners[i]);
}
