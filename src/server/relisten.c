/*
 * relisten.c - listen addresses a reload adds (docs/operations.md
 * "Privilege separation"). The main thread opens one socket per worker
 * with listener_open (after the drop to `user`, a port below 1024 is bound
 * by the privileged broker, which checks its own copy of the
 * configuration) and hands them over; each worker starts accepting on them
 * when it wakes for the reload. Listeners of compartments are not here:
 * they follow reloads on the workers' threads (listener_reload.c).
 * Addresses that were removed or renamed keep listening as before until a
 * restart: sessions hold their
 * listener's configuration, which must stay valid, and closing a listener
 * under a worker is a change nobody needed yet.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "server/ext.h"
#include "server/server.h"

static const struct conf_listener **running; /* what the workers listen on */
static size_t n_running;
static struct stp_conf **held; /* configurations new listeners point into */
static size_t n_held;

static bool is_running(const struct conf_listener *cl, bool *renamed)
{
	for (size_t i = 0; i < n_running; i++)
		if (sa_equal((const struct sockaddr *)&running[i]->addr,
			     (const struct sockaddr *)&cl->addr)) {
			*renamed |= strcmp(running[i]->name, cl->name) != 0;
			return true;
		}
	return false;
}

int relisten_init(const struct stp_conf *boot)
{
	running = calloc(boot->n_listeners ? boot->n_listeners : 1, sizeof(*running));
	if (!running)
		return -1;
	for (size_t i = 0; i < boot->n_listeners; i++)
		if (!ext_listener_follows_reload(&boot->listeners[i]))
			running[n_running++] = &boot->listeners[i];
	return 0;
}

/* One socket per worker for cl, or none (all closed) with the error logged. */
static bool open_all(const struct conf_listener *cl, int *fds, unsigned n)
{
	char err[512], where[SA_STR_MAX];
	for (unsigned i = 0; i < n; i++) {
		fds[i] = listener_open(cl, err, sizeof(err));
		if (fds[i] < 0) {
			log_warnx("reload: %s; not listening there (restart stpd to)", err);
			while (i-- > 0)
				close(fds[i]);
			return false;
		}
	}
	log_info("listening on %s (%s), added by the reload",
		 sa_str((const struct sockaddr *)&cl->addr, where, sizeof(where)), cl->name);
	return true;
}

static void hand_over(struct worker *w, const struct conf_listener *cl, int fd)
{
	struct listener_add *a = malloc(sizeof(*a));
	if (!a) {
		close(fd);
		return;
	}
	a->conf = cl;
	a->fd = fd;
	a->next = atomic_load(&w->adding);
	while (!atomic_compare_exchange_weak(&w->adding, &a->next, a))
		;
}

void relisten_apply(struct stp_conf *c, struct worker *ws, unsigned n_workers)
{
	bool renamed = false, used = false;
	size_t kept = 0, before = n_running;
	int *fds = calloc(n_workers, sizeof(*fds));
	const struct conf_listener **grown =
		realloc(running, (n_running + c->n_listeners + 1) * sizeof(*running));
	struct stp_conf **h = realloc(held, (n_held + 1) * sizeof(*held));

	if (h)
		held = h;
	if (grown)
		running = grown;
	if (!fds || !grown || !h) {
		free(fds);
		log_warnx("reload: out of memory; listen statements unchanged");
		return;
	}
	for (size_t i = 0; i < c->n_listeners; i++) {
		const struct conf_listener *cl = &c->listeners[i];
		if (ext_listener_follows_reload(cl))
			continue; /* a compartment's: listener_reload.c, on the workers */
		if (is_running(cl, &renamed)) {
			kept++;
			continue;
		}
		if (!open_all(cl, fds, n_workers))
			continue;
		for (unsigned k = 0; k < n_workers; k++)
			hand_over(&ws[k], cl, fds[k]);
		running[n_running++] = cl;
		used = true;
	}
	free(fds);
	if (used)
		held[n_held++] = conf_ref(c);
	if (renamed || before > kept)
		log_warnx("reload: listen statements removed or renamed take effect on restart "
			  "(those addresses still listen as before)");
}

void relisten_fini(void)
{
	for (size_t i = 0; i < n_held; i++)
		conf_unref(held[i]);
	free(held);
	free(running);
	held = NULL;
	running = NULL;
	n_held = n_running = 0;
}
