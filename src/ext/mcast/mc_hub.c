/*
 * mc_hub.c - the process-wide table of relays and the thread that runs
 * them (the design is in mc.h). Started by the first worker, stopped by
 * the last one.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/mcast/mc.h"
#include "mcrypto/mc_crypt.h"
#include "server/ext.h"

#define HUB_BUF_SIZE (65536 + 256)

struct relay_node {
	struct mc_relay *r;
	bool started;
	struct relay_node *next;
};

struct hub {
	pthread_mutex_t lock;
	pthread_t thread;
	struct ev_loop *loop;
	ev_async wake;
	bool stop;                 /* (lock) */
	struct relay_node *live;   /* (lock) found by JOIN */
	struct relay_node *dead;   /* (lock) to be closed by the hub thread */
	struct mc_aead *aead;      /* hub thread only */
	uint8_t *buf, *out;        /* hub thread only */
};

static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned attached;
static struct hub *hub;

void mc_hub_lock(void)
{
	pthread_mutex_lock(&hub->lock);
}

void mc_hub_unlock(void)
{
	pthread_mutex_unlock(&hub->lock);
}

struct mc_aead *mc_hub_aead(void)
{
	return hub->aead;
}

uint8_t *mc_hub_buf(size_t *cap)
{
	*cap = HUB_BUF_SIZE;
	return hub->buf;
}

uint8_t *mc_hub_out(size_t *cap)
{
	*cap = HUB_BUF_SIZE;
	return hub->out;
}

/* ---- the hub thread ---- */

/* Starts relays JOIN created and closes those whose last member left. */
static void on_wake(EV_P_ ev_async *a, int revents)
{
	mc_hub_lock();
	for (struct relay_node *n = hub->live; n; n = n->next)
		if (!n->started) {
			mc_relay_start(n->r, EV_A);
			n->started = true;
		}
	while (hub->dead) {
		struct relay_node *n = hub->dead;
		hub->dead = n->next;
		mc_relay_free(n->r, EV_A, "last member left");
		free(n);
	}
	if (hub->stop) {
		/* Workers have closed their sessions, so no member is left to
		 * notify; any relay still here is simply closed. */
		while (hub->live) {
			struct relay_node *n = hub->live;
			hub->live = n->next;
			for (struct mc_member *m = mc_relay_take_members(n->r); m; m = m->next)
				m->relay = NULL;
			mc_relay_free(n->r, EV_A, "server shutting down");
			free(n);
		}
		ev_break(EV_A_ EVBREAK_ALL);
	}
	mc_hub_unlock();
}

static void *hub_main(void *arg)
{
	ev_run(hub->loop, 0);
	return NULL;
}

static void hub_free(struct hub *h)
{
	if (h->loop)
		ev_loop_destroy(h->loop);
	mc_aead_free(h->aead);
	free(h->buf);
	free(h->out);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static int hub_start(void)
{
	struct hub *h = calloc(1, sizeof(*h));
	if (!h)
		return -1;
	pthread_mutex_init(&h->lock, NULL);
	h->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
	h->aead = mc_aead_new();
	h->buf = malloc(HUB_BUF_SIZE);
	h->out = malloc(HUB_BUF_SIZE);
	if (!h->loop || !h->aead || !h->buf || !h->out) {
		hub_free(h);
		return -1;
	}
	ev_async_init(&h->wake, on_wake);
	ev_async_start(h->loop, &h->wake);
	hub = h;
	if (pthread_create(&h->thread, NULL, hub_main, NULL) != 0) {
		hub = NULL;
		hub_free(h);
		return -1;
	}
	return 0;
}

int mc_hub_attach(void)
{
	int rc = 0;
	pthread_mutex_lock(&attach_lock);
	if (attached == 0)
		rc = hub_start();
	if (rc == 0)
		attached++;
	else
		log_warnx("multicast: cannot start the relay thread");
	pthread_mutex_unlock(&attach_lock);
	return rc;
}

void mc_hub_detach(void)
{
	pthread_mutex_lock(&attach_lock);
	if (attached > 0 && --attached == 0) {
		mc_hub_lock();
		hub->stop = true;
		mc_hub_unlock();
		ev_async_send(hub->loop, &hub->wake);
		pthread_join(hub->thread, NULL);
		hub_free(hub);
		hub = NULL;
	}
	pthread_mutex_unlock(&attach_lock);
}

/* ---- called with the lock held ---- */

static struct relay_node **find_node(struct relay_node **list, const struct mc_relay *r)
{
	for (struct relay_node **pp = list; *pp; pp = &(*pp)->next)
		if ((*pp)->r == r)
			return pp;
	return NULL;
}

void mc_hub_relay_ended(struct mc_relay *r, uint8_t note, const char *why)
{
	struct relay_node **pp = find_node(&hub->live, r);
	struct mc_member *m = mc_relay_take_members(r);

	while (m) {
		struct mc_member *next = m->next;
		m->kicked = note;
		m->relay = NULL;
		m->next = NULL;
		ev_async_send(m->loop, m->notify);
		m = next;
	}
	if (pp) {
		struct relay_node *n = *pp;
		*pp = n->next;
		free(n);
	}
	mc_relay_free(r, hub->loop, why);
}

/* An intranet group from the pool that no live relay uses: the pool's
 * prefix with 1, 2, 3 ... in its host part. */
static int pick_intranet(const struct rule_cidr *pool, struct sockaddr_storage *out)
{
	unsigned bits = (pool->family == AF_INET ? 32u : 128u) - pool->prefix;
	uint32_t limit = bits >= 31 ? 0x7fffffffu : (1u << bits) - 1;

	for (uint32_t k = 1; k < limit; k++) {
		uint8_t a[16] = { 0 };
		size_t alen = pool->family == AF_INET ? 4 : 16;
		memcpy(a, pool->addr, alen);
		for (size_t i = 0; i < 4; i++)
			a[alen - 1 - i] |= (uint8_t)(k >> (8 * i));
		struct socks_addr sa = { .atyp = pool->family == AF_INET ? SOCKS_ATYP_IPV4
									 : SOCKS_ATYP_IPV6 };
		memcpy(sa.u.v6, a, alen);
		socklen_t len;
		sa_from_socks(out, &len, &sa);
		bool used = false;
		for (struct relay_node *n = hub->live; n && !used; n = n->next)
			used = sa_equal_addr((struct sockaddr *)mc_relay_intranet(n->r),
					     (struct sockaddr *)out);
		if (!used)
			return 0;
	}
	return -1;
}

static struct mc_relay *relay_for(const struct mc_key *k, const struct mc_settings *set,
				  const struct mc_sockets *sk, bool *created, const char **why)
{
	struct sockaddr_storage int_sa;

	*created = false;
	for (struct relay_node *n = hub->live; n; n = n->next)
		if (mc_relay_is(n->r, k))
			return n->r;
	if (pick_intranet(k->family == AF_INET ? &set->pool4 : &set->pool6, &int_sa) < 0) {
		*why = "intranet group pool exhausted";
		return NULL;
	}
	struct relay_node *n = calloc(1, sizeof(*n));
	if (!n) {
		*why = "out of memory";
		return NULL;
	}
	n->r = mc_relay_open(k, set, sk, &int_sa, why);
	if (!n->r) {
		free(n);
		return NULL;
	}
	n->next = hub->live;
	hub->live = n;
	*created = true;
	return n->r;
}

int mc_hub_join(struct mc_member *m, const struct mc_key *k, const struct mc_settings *set,
		const struct mc_sockets *sk, struct mc_grant *g, uint8_t *rep, const char **why)
{
	bool created;
	int rc = -1;

	mc_hub_lock();
	struct mc_relay *r = relay_for(k, set, sk, &created, why);
	if (!r) {
		*rep = SOCKS5_REP_GENERAL_FAILURE;
	} else if (mc_relay_add(r, m, rep, why) == 0) {
		mc_relay_grant(r, g);
		g->created = created;
		rc = 0;
	} else if (created) {
		struct relay_node **pp = find_node(&hub->live, r);
		struct relay_node *n = *pp;
		*pp = n->next;
		n->next = hub->dead;
		hub->dead = n;
	}
	mc_hub_unlock();
	ev_async_send(hub->loop, &hub->wake);
	return rc;
}

void mc_hub_leave(struct mc_member *m)
{
	bool wake = false;

	mc_hub_lock();
	struct mc_relay *r = m->relay;
	if (r)
		mc_relay_drain(r, ev_time());
	if (r && mc_relay_remove(r, m)) {
		struct relay_node **pp = find_node(&hub->live, r);
		if (pp) {
			struct relay_node *n = *pp;
			*pp = n->next;
			n->next = hub->dead;
			hub->dead = n;
			wake = true;
		}
	}
	mc_hub_unlock();
	if (wake)
		ev_async_send(hub->loop, &hub->wake);
}

size_t mc_hub_gauges(struct ext_gauge *out, size_t cap)
{
	uint64_t groups = 0, members = 0;

	pthread_mutex_lock(&attach_lock); /* the hub exists while a worker runs */
	if (hub) {
		mc_hub_lock();
		for (struct relay_node *n = hub->live; n; n = n->next) {
			groups++;
			members += mc_relay_members(n->r);
		}
		mc_hub_unlock();
	}
	pthread_mutex_unlock(&attach_lock);
	if (cap < 2)
		return 0;
	out[0] = (struct ext_gauge){ "stp_mcast_relay_groups", "multicast relays (groups) open",
				     groups };
	out[1] = (struct ext_gauge){ "stp_mcast_relay_members",
				     "memberships in the multicast relays", members };
	return 2;
}

uint8_t mc_hub_kicked(struct mc_member *m)
{
	mc_hub_lock();
	uint8_t k = m->kicked;
	mc_hub_unlock();
	return k;
}
