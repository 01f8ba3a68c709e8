/*
 * cmp_ext.c - the compartment module (docs/compartments.md): where a
 * session's sockets are made. A listener listens in its compartment (a
 * network namespace); a request's outgoing sockets and its name look-ups
 * are made in the compartment of the rule that passed it (to-compartment),
 * else in the one it arrived in. Sockets outside stpd's own namespace come
 * from the core's broker (server/broker.h), which makes them through this
 * module's hook (cmp_hook.c); the core only calls the seams of ext.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "ext/compartment/cmp.h"
#include "ext/compartment/cmp_conf.h"
#include "policy/conf.h"
#include "server/broker.h"
#include "server/ext.h"
#include "server/resolve.h"
#include "server/server.h"
#include "server/session.h"

#define CMP_RESOLVERS_MAX 16

/* One worker thread's resolvers, one per (arriving, outgoing) pair and
 * server list: the broker checks the pair for every DNS socket too. A
 * reload that removes the outgoing compartment or changes its servers
 * retires the resolver: new look-ups get a new one, and the old one is
 * freed once its running look-ups are answered. */
struct cmp_res {
	char in[BROKER_NAME_MAX + 1], out[BROKER_NAME_MAX + 1];
	char servers[CMP_RESOLVER_MAX]; /* "" = c-ares' default */
	bool retired;
	struct resolver *r;
};

static _Thread_local struct {
	bool set;
	unsigned id;
	struct ev_loop *loop;
	struct cmp_res *res[CMP_RESOLVERS_MAX]; /* each its resolver's socket ctx: never moves */
	size_t n_res;
} tl;

static const char *session_in(const struct session *s)
{
	return cmp_listener_name(session_listener(s));
}

static int cmp_worker_init(struct worker *w)
{
	tl.set = true;
	tl.id = w->id;
	tl.loop = w->loop;
	return 0;
}

static void cmp_worker_fini(struct worker *w)
{
	(void)w;
	for (size_t i = 0; i < tl.n_res; i++) {
		resolver_free(tl.res[i]->r);
		free(tl.res[i]);
	}
	tl.n_res = 0;
	tl.set = false;
}

/* The DNS servers of compartment out under c ("" = c-ares' default). */
static const char *servers_of(const struct stp_conf *c, const char *out)
{
	const struct cmp_entry *e = cmp_conf_find(c, out);
	return e && e->resolver[0] ? e->resolver : c->has_resolver ? c->resolver : "";
}

/* Frees retired resolvers with nothing running and packs the array. */
static void res_sweep(void)
{
	size_t k = 0;
	for (size_t i = 0; i < tl.n_res; i++) {
		if (tl.res[i]->retired && resolver_pending(tl.res[i]->r) == 0) {
			resolver_free(tl.res[i]->r);
			free(tl.res[i]);
			continue;
		}
		if (k != i)
			tl.res[k] = tl.res[i];
		k++;
	}
	tl.n_res = k;
}

static bool known(const struct stp_conf *c, const char *name)
{
	return strcmp(name, CMP_HOST) == 0 || cmp_conf_find(c, name) != NULL;
}

/* A session whose request went from in to out, after a reload to c: ends
 * when c has no such compartment any more or no longer lets in reach out
 * (the broker's own test, cmp_conf_allows). Sessions in stpd's own
 * namespace and sessions before their request are c's rules' business. */
static bool judge(const struct session *s, const struct rule *r, void *ctx, char *why,
		  size_t whylen)
{
	const struct stp_conf *c = ctx;
	const char *in = session_in(s), *out;

	if (!r)
		return false;
	out = cmp_rule_out(r, in);
	if (strcmp(in, CMP_HOST) == 0 && strcmp(out, CMP_HOST) == 0)
		return false;
	if (!known(c, in) || !known(c, out)) {
		snprintf(why, whylen, "reload removed compartment %s",
			 !known(c, in) ? in : out);
		return true;
	}
	if (!cmp_conf_allows(c, in, out)) {
		snprintf(why, whylen, "reload: no rule lets %s reach %s", in, out);
		return true;
	}
	return false;
}

/* A reload on this worker: retire resolvers the new file changed or
 * removed, and end the sessions it no longer allows. */
static void cmp_worker_reloaded(struct worker *w, const struct stp_conf *c)
{
	if (!tl.set)
		return;
	for (size_t i = 0; i < tl.n_res; i++)
		if (!known(c, tl.res[i]->out) ||
		    strcmp(tl.res[i]->servers, servers_of(c, tl.res[i]->out)) != 0)
			tl.res[i]->retired = true;
	res_sweep();
	unsigned n = worker_end_sessions(w, judge, (void *)c);
	if (n)
		log_info("compartments: worker %u ended %u sessions the new configuration no "
			 "longer allows", w->id, n);
}

static void cmp_reloaded(const struct stp_conf *c)
{
	if (!broker_running() && cmp_conf_used(c))
		/* The broker is forked as root at start only. */
		log_warnx("compartments: stpd started without any, so no broker runs: the "
			  "compartments of this file take effect on restart");
}

/* A socket in out for a session from in: stpd's own namespace needs no
 * broker; anything else is the broker's decision. */
static int socket_in(const char *in, const char *out, int domain, int type, int protocol)
{
	if (strcmp(out, CMP_HOST) == 0)
		return EXT_NOT_MINE;
	if (!broker_running() || !tl.set) {
		errno = ENETUNREACH;
		return -1;
	}
	return broker_socket(tl.id, in, out, domain, type, protocol);
}

static int cmp_open_socket(struct session *s, const struct rule *r, int domain, int type,
			   int protocol)
{
	const char *in = session_in(s);
	return socket_in(in, cmp_rule_out(r, in), domain, type, protocol);
}

static int cmp_listen_socket(const struct conf_listener *cl, int domain, int type, int protocol)
{
	const char *name = cmp_listener_name(cl);
	if (strcmp(name, CMP_HOST) == 0)
		return EXT_NOT_MINE;
	/* A worker's thread (a listener added by reload): it cannot enter
	 * namespaces; the broker makes the socket if its own copy of the new
	 * file has a listener in that compartment. */
	if (tl.set) {
		int fd = socket_in(name, name, domain, type, protocol);
		if (fd < 0)
			log_warn("compartment %s: listening socket for %s from the broker", name,
				 cl->name);
		return fd;
	}
	struct stp_conf *c = ext_conf_current();
	const struct cmp_entry *e = c ? cmp_conf_find(c, name) : NULL;
	int fd = -1;
	if (e)
		fd = cmp_ns_socket(e->netns, domain, type, protocol);
	else
		errno = ENOENT;
	if (fd < 0)
		log_warn("compartment %s: listening socket for %s", name, cl->name);
	if (c)
		conf_unref(c);
	return fd;
}

static const char *cmp_listener_place(const struct conf_listener *cl)
{
	const char *name = cmp_listener_name(cl);
	return strcmp(name, CMP_HOST) == 0 ? NULL : name;
}

static int res_open(void *ctx, int domain, int type, int protocol)
{
	const struct cmp_res *cr = ctx;
	int fd = socket_in(cr->in, cr->out, domain, type, protocol);
	return fd == EXT_NOT_MINE ? -1 : fd;
}

static struct resolver *cmp_resolver(struct session *s, const struct rule *r)
{
	const struct stp_conf *c = session_conf(s);
	const char *in = session_in(s), *out = cmp_rule_out(r, in);
	char err[256];

	if (strcmp(out, CMP_HOST) == 0 || !tl.set)
		return NULL;
	const char *servers = servers_of(c, out);
	res_sweep(); /* retired ones whose last look-up has been answered */
	for (size_t i = 0; i < tl.n_res; i++)
		if (!tl.res[i]->retired && strcmp(tl.res[i]->in, in) == 0 &&
		    strcmp(tl.res[i]->out, out) == 0 && strcmp(tl.res[i]->servers, servers) == 0)
			return tl.res[i]->r;
	if (tl.n_res == CMP_RESOLVERS_MAX) {
		log_warnx("compartments: too many resolvers on one worker; no look-ups for "
			  "%s -> %s", in, out);
		return EXT_RESOLVER_FAILED;
	}
	struct cmp_res *cr = calloc(1, sizeof(*cr));
	if (!cr)
		return EXT_RESOLVER_FAILED;
	snprintf(cr->in, sizeof(cr->in), "%s", in);
	snprintf(cr->out, sizeof(cr->out), "%s", out);
	snprintf(cr->servers, sizeof(cr->servers), "%s", servers);
	cr->retired = false;
	struct resolver_sockets socks = { res_open, cr };
	cr->r = resolver_new_in(tl.loop, servers[0] ? servers : NULL, c->timeouts.dns,
				c->limits.max_dns_pending, &socks, err, sizeof(err));
	if (!cr->r) {
		/* Never the worker's resolver instead: that would ask stpd's
		 * own namespace about the compartment's names. */
		log_warnx("compartment %s: resolver: %s", out, err);
		free(cr);
		return EXT_RESOLVER_FAILED;
	}
	tl.res[tl.n_res++] = cr;
	return cr->r;
}

static size_t cmp_log_fields(const struct session *s, const struct rule *r, bool deny,
			     struct ext_log_field *f, size_t max)
{
	(void)deny;
	if (max == 0 || !cmp_conf_used(session_conf(s)))
		return 0;
	const char *in = session_in(s);
	f[0].key = "compartment";
	snprintf(f[0].value, sizeof(f[0].value), "%s->%s", in, cmp_rule_out(r, in));
	return 1;
}

/* "IN->OUT" unless both are stpd's own namespace. */
static bool cmp_socket_place(const struct session *s, const struct rule *r, char *buf, size_t cap)
{
	const char *in = session_in(s), *out = cmp_rule_out(r, in);
	if (strcmp(in, CMP_HOST) == 0 && strcmp(out, CMP_HOST) == 0)
		return false;
	snprintf(buf, cap, "%s->%s", in, out);
	return true;
}

static void cmp_conf_report(const struct stp_conf *c, char *buf, size_t cap)
{
	const struct cmp_settings *st = cmp_conf_get(c);
	if (st && st->n)
		snprintf(buf, cap, "%u compartments, sockets in them from the broker", st->n);
}

const struct stp_ext ext_compartment = {
	.name = "compartment",
	.worker_init = cmp_worker_init,
	.worker_fini = cmp_worker_fini,
	.conf_report = cmp_conf_report,
	.open_socket = cmp_open_socket,
	.listen_socket = cmp_listen_socket,
	.listener_place = cmp_listener_place,
	.resolver = cmp_resolver,
	.log_fields = cmp_log_fields,
	.reloaded = cmp_reloaded,
	.socket_place = cmp_socket_place,
	.worker_reloaded = cmp_worker_reloaded,
	.broker = &cmp_broker_hook,
};
