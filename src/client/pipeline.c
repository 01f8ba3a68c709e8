/*
 * pipeline.c - when libstp may send greeting, method sub-negotiation and
 * request in one write (docs/protocol.md 5.11, docs/client.md).
 *
 * Pipelining is only safe when the client knows which method the proxy
 * will pick (it then offers exactly that one) and the proxy is known to
 * parse input however it is cut: many SOCKS servers take one recv() as one
 * message. Both come from feature discovery (features.c): the "methods"
 * list is in the proxy's preference order, and stpd announces the server
 * flag "pipelining". Discovery costs a connection, so it is asked only
 * after PIPE_ASK_AFTER step-by-step handshakes with a proxy (a program that
 * connects once pays nothing, nor does `stp connect` after fetching the
 * auto-configuration), once per proxy per STP_FEATURES_TTL, and a pipelined
 * handshake that failed in a way pipelining may explain turns it off for
 * that proxy for the same time.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client.h"
#include "common/log.h"
#include "proto/socks.h"

#define PIPE_N 8
#define PIPE_ASK_AFTER 2 /* step-by-step handshakes before discovery is worth it */

static struct pipe_entry {
	bool used;
	char host[STP_NAME_MAX + 1];
	uint16_t port;
	enum stp_tls_mode mode; /* plain, socks5+tls:// and X'86' are kept apart */
	uint8_t x86_sub;        /* X'86': 1 + what the last negotiation learned (below) */
	uint8_t x86_who;        /* X'86': the credentials it was learned with */
	time_t seen;  /* the last step-by-step handshake with this proxy (0: none) */
	unsigned n_seen;
	time_t asked; /* discovery was asked (0: never) */
	time_t off;   /* a pipelined handshake failed (0: never) */
} pipe_tab[PIPE_N];
static pthread_mutex_t pipe_lock = PTHREAD_MUTEX_INITIALIZER;

/* STP_PIPELINING=0 turns it off (for comparisons and odd proxies). */
static bool pipe_enabled(void)
{
	const char *v = getenv("STP_PIPELINING");
	return v == NULL || strcmp(v, "0") != 0;
}

/* SOCKS5, plain or inside TLS (socks5+tls://, X'86' after its TLS
 * handshake); not GSS-API, whose context takes round trips of its own. */
static bool pipe_eligible(const struct stp_proxy *p)
{
	return (p->kind == STP_SOCKS5 || p->kind == STP_SOCKS5H) && !p->gss.on && pipe_enabled();
}

static bool pipe_fresh(time_t at, time_t now)
{
	return at != 0 && now >= at && now - at < STP_FEATURES_TTL;
}

/* The entry of p, made if `make` (the oldest replaced). Under pipe_lock. */
static struct pipe_entry *pipe_find(const struct stp_proxy *p, bool make)
{
	size_t slot = 0;
	for (size_t i = 0; i < PIPE_N; i++) {
		struct pipe_entry *e = &pipe_tab[i];
		if (e->used && e->port == p->port && e->mode == p->tls.mode &&
		    strcmp(e->host, p->host) == 0)
			return e;
		if (!e->used)
			slot = i;
		else if (pipe_tab[slot].used && e->seen < pipe_tab[slot].seen)
			slot = i;
	}
	if (!make)
		return NULL;
	struct pipe_entry *e = &pipe_tab[slot];
	memset(e, 0, sizeof(*e));
	e->used = true;
	snprintf(e->host, sizeof(e->host), "%s", p->host);
	e->port = p->port;
	e->mode = p->tls.mode;
	return e;
}

void client_pipe_seen(const struct stp_proxy *p)
{
	if (!pipe_eligible(p))
		return;
	pthread_mutex_lock(&pipe_lock);
	struct pipe_entry *e = pipe_find(p, true);
	e->seen = time(NULL);
	e->n_seen++;
	pthread_mutex_unlock(&pipe_lock);
}

void client_pipe_forget(const struct stp_proxy *p)
{
	pthread_mutex_lock(&pipe_lock);
	struct pipe_entry *e = pipe_find(p, true);
	e->off = time(NULL);
	pthread_mutex_unlock(&pipe_lock);
	client_featcache_off(p); /* other processes: not for the TTL either */
	log_debug("pipelining to %s:%u%s off for %d s", p->host, p->port,
		  p->tls.mode == STP_TLS_X86 ? " (X'86')" : p->tls.mode == STP_TLS_WRAP ? " (TLS)" : "",
		  STP_FEATURES_TTL);
}

void client_pipe_off_since(const struct stp_proxy *p, time_t off)
{
	pthread_mutex_lock(&pipe_lock);
	struct pipe_entry *e = pipe_find(p, true);
	if (off > e->off)
		e->off = off;
	pthread_mutex_unlock(&pipe_lock);
}

/* Whether discovery should be asked now; marks it asked. */
static bool pipe_should_ask(const struct stp_proxy *p)
{
	time_t now = time(NULL);
	bool ask = false;
	pthread_mutex_lock(&pipe_lock);
	struct pipe_entry *e = pipe_find(p, false);
	if (e && e->n_seen >= PIPE_ASK_AFTER && !pipe_fresh(e->off, now) &&
	    !pipe_fresh(e->asked, now)) {
		e->asked = now;
		ask = true;
	}
	pthread_mutex_unlock(&pipe_lock);
	return ask;
}

void client_pipe_prepare(const struct stp_proxy *p, int64_t deadline)
{
	struct stp_features f;
	enum stp_err e;
	int left = client_remaining(deadline);

	if (!pipe_eligible(p) || client_features_cached(p, &f) || !pipe_should_ask(p))
		return;
	/* A quarter of what is left at most: the connection itself comes first. */
	if (stp_features_get(p, &f, 0, left < 0 ? 2000 : left / 4, &e) < 0)
		log_debug("discovery for pipelining failed: %s", stp_strerror(e));
}

/* The cached document says "pipelining" and no failure turned it off. */
static bool pipe_allowed(const struct stp_proxy *p, struct stp_features *f)
{
	struct stp_feature flag;

	if (!pipe_eligible(p) || !client_features_cached(p, f) || !f->supported ||
	    !stp_features_find(f, STP_FEAT_SERVER, 0, "pipelining", &flag) ||
	    flag.type != STP_FEAT_FLAG)
		return false;
	pthread_mutex_lock(&pipe_lock);
	struct pipe_entry *e = pipe_find(p, false);
	bool off = e && pipe_fresh(e->off, time(NULL));
	pthread_mutex_unlock(&pipe_lock);
	return !off;
}

int client_pipe_method(const struct stp_proxy *p)
{
	struct stp_features f;

	/* X'86' greets in the clear, with X'86' alone: see client_pipe_x86. */
	if (p->tls.mode == STP_TLS_X86 || !pipe_allowed(p, &f))
		return -1;
	/* The proxy picks the first of its list that the greeting offers. */
	for (size_t i = 0; i < f.n_methods; i++) {
		uint8_t m = f.methods[i];
		if (m == SOCKS_METHOD_NONE || (m == SOCKS_METHOD_USERPASS && p->has_auth))
			return m;
	}
	return -1;
}

/*
 * X'86': whether sub-authentication runs depends on the proxy's `tls {
 * subauth }` and on whether a client certificate named the user, which
 * the features document does not say. So the step-by-step negotiation
 * records what it saw (client_pipe_x86_seen), for the credentials it ran
 * with, and the pipelined one sends exactly those messages.
 */
static uint8_t pipe_x86_who(const struct stp_proxy *p)
{
	return (uint8_t)((p->has_auth ? 1 : 0) | (p->tls.cert[0] ? 2 : 0) | (p->tls.udp_naked ? 4 : 0));
}

void client_pipe_x86_seen(const struct stp_proxy *p, int sub)
{
	if (!pipe_eligible(p) || sub < -1 || sub > 253)
		return;
	pthread_mutex_lock(&pipe_lock);
	struct pipe_entry *e = pipe_find(p, true);
	e->seen = time(NULL);
	e->n_seen++;
	struct pipe_x86 x = { .who = pipe_x86_who(p), .sub = (uint8_t)(sub + 2) };
	bool changed = e->x86_sub != x.sub || e->x86_who != x.who;
	e->x86_sub = x.sub;
	e->x86_who = x.who;
	pthread_mutex_unlock(&pipe_lock);
	if (changed)
		client_featcache_x86(p, &x); /* for other processes */
}

bool client_pipe_x86_get(const struct stp_proxy *p, struct pipe_x86 *x)
{
	bool known = false;
	pthread_mutex_lock(&pipe_lock);
	struct pipe_entry *e = pipe_find(p, false);
	if (e && e->x86_sub != 0) {
		*x = (struct pipe_x86){ .who = e->x86_who, .sub = e->x86_sub };
		known = true;
	}
	pthread_mutex_unlock(&pipe_lock);
	return known;
}

void client_pipe_x86_put(const struct stp_proxy *p, const struct pipe_x86 *x)
{
	if (!pipe_eligible(p) || p->tls.mode != STP_TLS_X86)
		return;
	pthread_mutex_lock(&pipe_lock);
	struct pipe_entry *e = pipe_find(p, true);
	if (e->x86_sub == 0) { /* what this process saw itself wins */
		e->x86_sub = x->sub;
		e->x86_who = x->who;
	}
	pthread_mutex_unlock(&pipe_lock);
}

int client_pipe_x86(const struct stp_proxy *p)
{
	struct stp_features f;
	int sub = -2;

	if (p->tls.mode != STP_TLS_X86 || !pipe_allowed(p, &f))
		return -2;
	pthread_mutex_lock(&pipe_lock);
	struct pipe_entry *e = pipe_find(p, false);
	if (e && e->x86_sub != 0 && e->x86_who == pipe_x86_who(p))
		sub = e->x86_sub - 2;
	pthread_mutex_unlock(&pipe_lock);
	/* Only what the step-by-step path would send: RFC 1929 or nothing. */
	return sub == -1 || (sub == SOCKS_METHOD_USERPASS && p->has_auth) ? sub : -2;
}

void client_pipe_flush(void)
{
	pthread_mutex_lock(&pipe_lock);
	memset(pipe_tab, 0, sizeof(pipe_tab));
	pthread_mutex_unlock(&pipe_lock);
}
