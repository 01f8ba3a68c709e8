/*
 * dq_ext.c - CMD X'F2' DNS QUERY (docs/protocol.md §5.4). Two replies, as
 * BIND has: the request's DST is the QNAME (ATYP X'03') and DST.PORT the
 * QTYPE, which request rules with `command dns` accept (first reply X'00')
 * or refuse (X'02'); then the client sends one whole DNS message asking
 * exactly that question, stpd asks its own resolver (c-ares, ares_send) or
 * its cache, and the second reply carries the whole answer; then stpd
 * closes. One query per request, so that rules, limits and the session
 * log line apply to each query as to any request.
 */
#include <ares.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ext/resolve/dq_cache.h"
#include "ext/resolve/dq_ext.h"
#include "ext/resolve/dq_msg.h"
#include "ext/resolve/rs_conf.h"
#include "proto/dnsq.h"
#include "proto/featdoc.h"
#include "proto/socks.h"
#include "server/resolve.h"
#include "server/session.h"

struct dq_state {
	struct lookup *lookup;
	ev_timer timer; /* waiting for the message */
	struct session *s;
	struct dq_question q;
	bool asked; /* the message is in: no more input */
};

/* One cache per worker thread (each worker runs its own loop). */
static _Thread_local struct dq_cache *dq_cache_tl;
static _Thread_local unsigned dq_cache_cap;

static struct dq_cache *dq_worker_cache(const struct session *s)
{
	/* The cache holds the worker's own resolver's answers only: a
	 * compartment's DNS (its own resolver) may answer otherwise. */
	if (!session_resolver_is_default(s, session_resolver(s)))
		return NULL;
	unsigned want = rs_dns_conf_get(session_conf(s))->cache_entries;

	if (dq_cache_tl && dq_cache_cap != want) { /* a reload changed the size */
		dq_cache_free(dq_cache_tl);
		dq_cache_tl = NULL;
	}
	if (!dq_cache_tl && want > 0) {
		dq_cache_tl = dq_cache_new(want);
		dq_cache_cap = want;
	}
	return dq_cache_tl;
}

void dq_worker_fini(struct worker *w)
{
	(void)w;
	dq_cache_free(dq_cache_tl);
	dq_cache_tl = NULL;
}

static void dq_destroy(struct session *s)
{
	struct dq_state *st = session_handler_data(s);
	if (st) {
		resolver_cancel(st->lookup);
		ev_timer_stop(session_loop(s), &st->timer);
	}
	free(st);
}

static const struct session_cmd_ops dq_ops = { "dns", dq_destroy };

static const char *dq_rcode_name(unsigned rcode)
{
	static const char *const names[] = { "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
					     "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
					     "NXRRSET", "NOTAUTH", "NOTZONE" };
	return rcode < sizeof(names) / sizeof(names[0]) ? names[rcode] : "RCODE?";
}

/* The second reply: X'00', DST echoed as BND, then LEN ANSWER; the
 * session ends once it is written. */
static void dq_answer(struct session *s, const uint8_t *a, size_t len, const char *how)
{
	struct dq_state *st = session_handler_data(s);
	size_t cap = SOCKS5_REPLY_MAX + DNSQ_FRAME_HDR + len, n;
	uint8_t *buf = malloc(cap);

	if (!buf) {
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	n = socks5_reply_write(buf, cap, SOCKS5_REP_SUCCEEDED, session_target(s));
	n += dnsq_frame_write(buf + n, cap - n, a, len);
	session_info(s, "dns %s type %u: %s, %zu bytes%s", st->q.name[0] ? st->q.name : ".",
		     st->q.type, dq_rcode_name(dq_rcode(a)), len, how);
	session_note_reply(s, SOCKS5_REP_SUCCEEDED);
	session_close_after_output(s, socks5_rep_name(SOCKS5_REP_SUCCEEDED));
	session_send(s, buf, n);
	free(buf);
}

static void dq_failed(struct session *s, uint8_t rep, const char *why)
{
	struct dq_state *st = session_handler_data(s);
	session_info(s, "dns %s type %u failed: %s", st->q.name[0] ? st->q.name : ".", st->q.type,
		     why);
	session_finish(s, rep, why);
}

static void on_raw(void *ctx, int status, const uint8_t *abuf, size_t alen)
{
	struct session *s = ctx;
	struct dq_state *st = session_handler_data(s);
	struct dq_question a;
	uint8_t *copy;

	if (status != ARES_SUCCESS) {
		dq_failed(s, resolver_rep(status), resolver_strerror(status));
		return;
	}
	if (alen > DNSQ_ANSWER_MAX || dq_question(&a, abuf, alen) < 0 || !(a.flags & 0x8000)) {
		dq_failed(s, SOCKS5_REP_GENERAL_FAILURE, "malformed answer");
		return;
	}
	if (!(copy = malloc(alen))) {
		dq_failed(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	memcpy(copy, abuf, alen);
	/* c-ares puts its own ID on the wire: the client gets its own back. */
	copy[0] = (uint8_t)(st->q.id >> 8);
	copy[1] = (uint8_t)st->q.id;
	const struct rs_dns_conf *dc = rs_dns_conf_get(session_conf(s));
	uint32_t ttl = dq_cache_ttl(copy, alen, dc->cache_negative_ttl);
	dq_cache_put(dq_worker_cache(s), &st->q, copy, alen,
		     ttl < dc->cache_max_ttl ? ttl : dc->cache_max_ttl);
	dq_answer(s, copy, alen, "");
	free(copy);
}

/* The message must be a standard query asking exactly DST's question. */
static const char *dq_check(struct session *s, const struct dq_question *q)
{
	const struct socks_addr *t = session_target(s);
	size_t tlen = t->namelen;

	if (q->flags & 0x8000)
		return "not a query (QR set)";
	if ((q->flags >> 11 & 0x0F) != 0)
		return "not a standard query (OPCODE)";
	if (tlen > 1 && t->u.name[tlen - 1] == '.')
		tlen--; /* "example.test." is the same name */
	if (strlen(q->name) != tlen || strncasecmp(q->name, t->u.name, tlen) != 0)
		return "QNAME differs from DST.ADDR";
	if (q->type != t->port)
		return "QTYPE differs from DST.PORT";
	return NULL;
}

static void dq_ask(struct session *s, const uint8_t *m, size_t n)
{
	struct dq_state *st = session_handler_data(s);
	struct dq_question q;
	const char *bad;
	uint8_t *hit;
	size_t hitlen;

	st->asked = true;
	ev_timer_stop(session_loop(s), &st->timer);
	if (dq_question(&q, m, n) < 0) {
		dq_failed(s, SOCKS5_REP_GENERAL_FAILURE, "malformed DNS query");
		return;
	}
	st->q = q;
	if ((bad = dq_check(s, &st->q)) != NULL) {
		dq_failed(s, SOCKS5_REP_GENERAL_FAILURE, bad);
		return;
	}
	if ((hit = dq_cache_get(dq_worker_cache(s), &st->q, &hitlen)) != NULL) {
		dq_answer(s, hit, hitlen, " (cached)");
		free(hit);
		return;
	}
	if (resolver_send(session_resolver(s), m, n, on_raw, s, &st->lookup) < 0) {
		session_warnx(s, "too many DNS look-ups pending");
		dq_failed(s, SOCKS5_REP_GENERAL_FAILURE, "too many DNS look-ups pending");
	}
}

/* LEN MSG after the request; anything after it is ignored (the reply
 * closes the connection). */
static void dq_on_input(struct session *s)
{
	struct dq_state *st = session_handler_data(s);
	struct dnsq_frame f;
	struct socks_err err = { 0 };
	size_t len, cap, used = 0;
	const uint8_t *in = session_input(s, &len, &cap);

	if (st->asked) {
		session_consume(s, len);
		return;
	}
	switch (dnsq_query_parse(&f, in, len, &used, &err)) {
	case SOCKS_MORE:
		return;
	case SOCKS_BAD:
		dq_failed(s, err.rep, err.why);
		return;
	case SOCKS_DONE:
		break;
	}
	/* The message stays in the input buffer while it is read. */
	dq_ask(s, in + f.off, f.len);
	if (!session_ending(s))
		session_consume(s, len);
}

static void dq_on_timeout(EV_P_ ev_timer *w, int revents)
{
	struct dq_state *st = w->data;
	(void)revents;
	session_info(st->s, "dns: no DNS message after the request");
	session_close(st->s, "handshake timeout");
}

void dq_start(struct session *s)
{
	const struct socks_addr *t = session_target(s);
	unsigned secs = session_conf(s)->timeouts.handshake;
	struct dq_state *st;

	if (t->atyp != SOCKS_ATYP_DOMAIN) {
		session_finish(s, SOCKS5_REP_ATYP_NOT_SUPPORTED, "dns query for an address");
		return;
	}
	if (!session_allowed(s, RULE_CMD_DNS, NULL, t->u.name, t->port, true)) {
		session_finish(s, SOCKS5_REP_NOT_ALLOWED, "blocked");
		return;
	}
	if (!(st = calloc(1, sizeof(*st)))) {
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	st->s = s;
	snprintf(st->q.name, sizeof(st->q.name), "%s", t->u.name);
	st->q.type = t->port;
	ev_timer_init(&st->timer, dq_on_timeout, secs ? (ev_tstamp)secs : 10., 0.);
	st->timer.data = st;
	ev_timer_start(session_loop(s), &st->timer);
	session_set_handler(s, &dq_ops, st);
	/* The first reply: the name and type may be asked. */
	if (session_reply_addr(s, SOCKS5_REP_SUCCEEDED, t, false) < 0)
		return;
	session_watch_control(s, dq_on_input);
	/* The message may have come with the request. */
	dq_on_input(s);
}

/* Feature discovery: the frame sizes a client may send and get, how long
 * stpd waits for its resolver, and the answer cache (0 entries: none). */
void dq_describe(const struct session *s, struct feat_writer *w)
{
	const struct rs_dns_conf *dc = rs_dns_conf_get(session_conf(s));
	const uint8_t c = SOCKS_CMD_DNS_QUERY, sc = FEAT_SCOPE_COMMAND;
	feat_put_uint(w, sc, c, "timeout", session_conf(s)->timeouts.dns);
	feat_put_uint(w, sc, c, "query-max", DNSQ_QUERY_MAX);
	feat_put_uint(w, sc, c, "answer-max", DNSQ_ANSWER_MAX);
	feat_put_uint(w, sc, c, "cache-entries", dc->cache_entries);
	if (dc->cache_entries > 0) {
		feat_put_uint(w, sc, c, "cache-max-ttl", dc->cache_max_ttl);
		feat_put_uint(w, sc, c, "cache-negative-ttl", dc->cache_negative_ttl);
	}
}
