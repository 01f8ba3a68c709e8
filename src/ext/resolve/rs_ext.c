/*
 * rs_ext.c - Tor's RESOLVE (CMD X'F0') and RESOLVE_PTR (CMD X'F1'), as
 * tor-resolve speaks them (Tor's socks-extensions.txt; docs/protocol.md).
 *
 * CMD X'F2' DNS QUERY (a whole DNS message) is dq_ext.c's.
 *
 * RESOLVE: DST is a name (or a literal, answered as is); the reply is an
 * RFC 1928 reply whose BND.ADDR is the first address the worker's resolver
 * finds. RESOLVE_PTR: DST is an IPv4 or IPv6 address; the reply carries
 * ATYP X'03' and the name of its PTR record. Either way the connection
 * then closes, as Tor's does. Only session.h and the core's resolver are
 * used.
 */
#include <arpa/inet.h>
#include <ares.h>
#include <stdlib.h>
#include <string.h>

#include "common/sockaddr.h"
#include "ext/resolve/dq_ext.h"
#include "ext/resolve/rs_conf.h"
#include "proto/featdoc.h"
#include "proto/socks.h"
#include "server/ext.h"
#include "server/resolve.h"
#include "server/session.h"

struct rs_state {
	struct lookup *lookup;
};

static void rs_destroy(struct session *s)
{
	struct rs_state *st = session_handler_data(s);
	if (st)
		resolver_cancel(st->lookup);
	free(st);
}

static const struct session_cmd_ops rs_ops = { "resolve", rs_destroy };

/* Bytes after the request mean nothing here (the connection closes after
 * the reply); the watch is for the client's end of stream, which closes
 * the session and cancels the look-up at once. */
static void rs_on_input(struct session *s)
{
	size_t len, cap;
	session_input(s, &len, &cap);
	session_consume(s, len);
}

/* The look-up is running: its state is the session's from here. */
static struct rs_state *rs_begin(struct session *s)
{
	struct rs_state *st = calloc(1, sizeof(*st));
	if (!st) {
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return NULL;
	}
	session_set_handler(s, &rs_ops, st);
	session_watch_control(s, rs_on_input);
	return st;
}

static void rs_busy(struct session *s)
{
	session_warnx(s, "too many DNS look-ups pending");
	session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "too many DNS look-ups pending");
}

/* The answer of RESOLVE: the first address, port 0 as Tor's. */
static void rs_answer(struct session *s, const struct sockaddr_storage *addr)
{
	char what[INET6_ADDRSTRLEN], target[SA_STR_MAX];
	struct sockaddr_storage a = *addr;
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)&a;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&a;

	sa_unmap(&a);
	sa_set_port((struct sockaddr *)&a, 0);
	inet_ntop(a.ss_family,
		  a.ss_family == AF_INET ? (const void *)&a4->sin_addr :
					   (const void *)&a6->sin6_addr,
		  what, sizeof(what));
	session_info(s, "resolve %s: %s", socks_addr_str(session_target(s), target, sizeof(target)),
		     what);
	session_reply(s, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&a, true);
}

static void rs_failed(struct session *s, int status)
{
	char target[SA_STR_MAX];
	session_info(s, "%s %s failed: %s",
		     session_cmd(s) == SOCKS_CMD_RESOLVE ? "resolve" : "resolve-ptr",
		     socks_addr_str(session_target(s), target, sizeof(target)),
		     resolver_strerror(status));
	session_reply(s, resolver_rep(status), NULL, true);
}

static void on_addrs(void *ctx, int status, const struct sockaddr_storage *addrs, size_t n)
{
	struct session *s = ctx;
	if (status != 0 || n == 0)
		rs_failed(s, status ? status : ARES_ENOTFOUND);
	else
		rs_answer(s, &addrs[0]);
}

static void rs_resolve(struct session *s)
{
	const struct socks_addr *t = session_target(s);
	struct rs_state *st;

	if (t->atyp != SOCKS_ATYP_DOMAIN) {
		struct sockaddr_storage a;
		socklen_t len;
		sa_from_socks(&a, &len, t);
		if (!session_allowed(s, RULE_CMD_RESOLVE, (struct sockaddr *)&a, NULL, t->port,
				     true)) {
			session_finish(s, SOCKS5_REP_NOT_ALLOWED, "blocked");
			return;
		}
		rs_answer(s, &a); /* a literal resolves to itself */
		return;
	}
	if (!session_allowed(s, RULE_CMD_RESOLVE, NULL, t->u.name, t->port, true)) {
		session_finish(s, SOCKS5_REP_NOT_ALLOWED, "blocked");
		return;
	}
	if (!(st = rs_begin(s)))
		return;
	if (resolver_lookup(session_resolver(s), t->u.name, 0, on_addrs, s, &st->lookup) < 0)
		rs_busy(s);
}

static void on_name(void *ctx, int status, const char *name)
{
	struct session *s = ctx;
	struct socks_addr bnd = { .atyp = SOCKS_ATYP_DOMAIN };
	char target[SA_STR_MAX];
	size_t len = name ? strlen(name) : 0;

	if (status != 0 || len == 0 || len > SOCKS_DOMAIN_MAX) {
		rs_failed(s, status ? status : ARES_ENOTFOUND);
		return;
	}
	bnd.namelen = (uint8_t)len;
	memcpy(bnd.u.name, name, len + 1);
	session_info(s, "resolve-ptr %s: %s",
		     socks_addr_str(session_target(s), target, sizeof(target)), name);
	session_reply_addr(s, SOCKS5_REP_SUCCEEDED, &bnd, true);
}

static void rs_resolve_ptr(struct session *s)
{
	const struct socks_addr *t = session_target(s);
	struct sockaddr_storage a;
	socklen_t len;
	struct rs_state *st;

	if (t->atyp == SOCKS_ATYP_DOMAIN) { /* a PTR look-up needs an address */
		session_finish(s, SOCKS5_REP_ATYP_NOT_SUPPORTED, "resolve-ptr of a name");
		return;
	}
	sa_from_socks(&a, &len, t);
	if (!session_allowed(s, RULE_CMD_RESOLVE_PTR, (struct sockaddr *)&a, NULL, t->port, true)) {
		session_finish(s, SOCKS5_REP_NOT_ALLOWED, "blocked");
		return;
	}
	if (!(st = rs_begin(s)))
		return;
	if (resolver_reverse(session_resolver(s), (struct sockaddr *)&a, on_name, s, &st->lookup) <
	    0)
		rs_busy(s);
}

/* Feature discovery: how long a look-up may take; the families a RESOLVE
 * answer may have (the first address found, IPv4 or IPv6) and that
 * RESOLVE_PTR takes both; DNS QUERY's in dq_ext.c. */
static void rs_describe(const struct session *s, struct feat_writer *w)
{
	static const uint8_t atyps[] = { SOCKS_ATYP_IPV4, SOCKS_ATYP_IPV6 };
	unsigned dns = session_conf(s)->timeouts.dns;
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_RESOLVE, "timeout", dns);
	feat_put_codes(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_RESOLVE, "atyps", atyps, sizeof(atyps));
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_RESOLVE_PTR, "timeout", dns);
	feat_put_codes(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_RESOLVE_PTR, "atyps", atyps, sizeof(atyps));
	dq_describe(s, w);
}

static const struct stp_command rs_commands[] = {
	{ SOCKS_CMD_RESOLVE, RULE_CMD_RESOLVE, false, rs_resolve },
	{ SOCKS_CMD_RESOLVE_PTR, RULE_CMD_RESOLVE_PTR, false, rs_resolve_ptr },
	{ SOCKS_CMD_DNS_QUERY, RULE_CMD_DNS, false, dq_start }, /* dq_ext.c */
};

const struct stp_ext ext_resolve = {
	.name = "resolve",
	.commands = rs_commands,
	.n_commands = sizeof(rs_commands) / sizeof(rs_commands[0]),
	.worker_fini = dq_worker_fini,
	.describe = rs_describe,
};
