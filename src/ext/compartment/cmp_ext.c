/*
 * cmp_ext.c - the compartment module (docs/compartments.md): where a
 * session's sockets are made. A listener listens in its compartment (a
 * network namespace); a request's outgoing sockets and its name look-ups
 * are made in the compartment of the rule that passed it (to-compartment),
 * else in the one it arrived in. Sockets outside stpd's own namespace come
 * from the broker (cmp_broker.c); the core only calls the seams of ext.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/privfile.h"
#include "ext/compartment/cmp.h"
#include "ext/compartment/cmp_conf.h"
#include "policy/conf.h"
#include "server/ext.h"
#include "server/resolve.h"
#include "server/server.h"
#include "server/session.h"

#define CMP_RESOLVERS_MAX 16

/* One worker thread's resolvers, one per (arriving, outgoing) pair: the
 * broker checks the pair for every DNS socket too. */
struct cmp_res {
	char in[BROKER_NAME_MAX + 1], out[BROKER_NAME_MAX + 1];
	struct resolver *r;
};

static _Thread_local struct {
	bool set;
	unsigned id;
	struct ev_loop *loop;
	struct cmp_res res[CMP_RESOLVERS_MAX];
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
	for (size_t i = 0; i < tl.n_res; i++)
		resolver_free(tl.res[i].r);
	tl.n_res = 0;
	tl.set = false;
}

/* The broker runs with compartments, and whenever stpd drops from root to
 * `user`: it is then the privileged part that opens root-only files for
 * reloads (docs/operations.md "Privilege separation"). */
static int cmp_server_start(const struct stp_conf *c, char *err, size_t errlen)
{
	if (!cmp_conf_used(c) && !(c->run_as_user[0] && geteuid() == 0))
		return 0;
	if (cmp_broker_start(c, g_server.n_workers, err, errlen) < 0)
		return -1;
	privfile_set_helper(cmp_broker_open);
	privfile_set_bind_helper(cmp_broker_bind);
	return 0;
}

static void cmp_server_stop(void)
{
	privfile_set_helper(NULL);
	privfile_set_bind_helper(NULL);
	cmp_broker_stop();
}

static void cmp_reloaded(const struct stp_conf *c)
{
	(void)c;
	if (cmp_broker_running())
		cmp_broker_reload();
}

/* A socket in out for a session from in: stpd's own namespace needs no
 * broker; anything else is the broker's decision. */
static int socket_in(const char *in, const char *out, int domain, int type, int protocol)
{
	if (strcmp(out, CMP_HOST) == 0)
		return EXT_NOT_MINE;
	if (!cmp_broker_running() || !tl.set) {
		errno = ENETUNREACH;
		return -1;
	}
	return cmp_broker_socket(tl.id, in, out, domain, type, protocol);
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
	for (size_t i = 0; i < tl.n_res; i++)
		if (strcmp(tl.res[i].in, in) == 0 && strcmp(tl.res[i].out, out) == 0)
			return tl.res[i].r;
	if (tl.n_res == CMP_RESOLVERS_MAX) {
		log_warnx("compartments: too many resolvers on one worker; no look-ups for "
			  "%s -> %s", in, out);
		return EXT_RESOLVER_FAILED;
	}
	struct cmp_res *cr = &tl.res[tl.n_res];
	const struct cmp_entry *e = cmp_conf_find(c, out);
	const char *servers = e && e->resolver[0] ? e->resolver
				: c->has_resolver  ? c->resolver
						   : NULL;
	snprintf(cr->in, sizeof(cr->in), "%s", in);
	snprintf(cr->out, sizeof(cr->out), "%s", out);
	struct resolver_sockets socks = { res_open, cr };
	cr->r = resolver_new_in(tl.loop, servers, c->timeouts.dns, c->limits.max_dns_pending,
				&socks, err, sizeof(err));
	if (!cr->r) {
		/* Never the worker's resolver instead: that would ask stpd's
		 * own namespace about the compartment's names. */
		log_warnx("compartment %s: resolver: %s", out, err);
		return EXT_RESOLVER_FAILED;
	}
	tl.n_res++;
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
	.server_start = cmp_server_start,
	.server_stop = cmp_server_stop,
	.conf_report = cmp_conf_report,
	.open_socket = cmp_open_socket,
	.listen_socket = cmp_listen_socket,
	.resolver = cmp_resolver,
	.log_fields = cmp_log_fields,
	.reloaded = cmp_reloaded,
	.socket_place = cmp_socket_place,
};
