/*
 * tp_ext.c - TRANSPARENT (CMD X'04', seed 003; docs/protocol.md): the
 * control side. One association per control connection, carried as a flow
 * of the session (its rule slot, reply, byte counts and log line):
 *
 *   request + PTCL trailer -> checks (PTCL X'09', source, rules X'02')
 *   -> DST resolved once if a name -> BND chosen on the client's side
 *   -> the engine opens the relay (N2, tp_engine.h) -> reply with BND
 *   -> until the control connection ends (the relay is closed, MUST),
 *      or the engine ends it (target FIN, idle: the session closes too).
 *
 * The engine is one per worker thread, made on first use with the config
 * of that moment (`engine` needs a restart to change).
 */
#include <arpa/inet.h>
#include <linux/capability.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/transparent/tp_conf.h"
#include "ext/transparent/tp_engine.h"
#include "policy/rules.h"
#include "proto/featdoc.h"
#include "proto/socks.h"
#include "server/dgram.h"
#include "server/ext.h"
#include "server/flow.h"
#include "server/resolve.h"
#include "server/session.h"

static _Thread_local const struct tp_engine_ops *tl_ops;
static _Thread_local struct tp_engine *tl_engine;

enum tp_phase { TP_TRAILER, TP_RESOLVING, TP_OPENING, TP_RUNNING };

struct tp_state {
	enum tp_phase phase;
	struct socks_ptcl req;
	struct flow *flow;
	struct lookup *lookup;
	ev_timer trailer_timer; /* timeouts { handshake } for the trailer */
	struct session *s;
	struct tp_assoc a;
	struct tp_relay *relay;
	/* opened() during open(): what it said, acted on once open returns */
	bool opened_early;
	uint8_t early_rep;
	struct sockaddr_storage early_bnd;
};

/* ---- the engine of this worker ---- */

/* Makes this worker's engine under conf c; NULL (and a warning) when it
 * cannot run, e.g. engine kernel without CAP_NET_ADMIN. */
static const struct tp_engine_ops *engine_make(struct ev_loop *loop, const struct stp_conf *c)
{
	const struct tp_conf *tc = tp_conf_get(c);
	const struct tp_engine_ops *ops = tp_engine_find(tc ? tc->engine_name : "user");
	char err[256] = "";
	if (!ops)
		return NULL;
	tl_engine = ops->create(loop, tc, err, sizeof(err));
	if (!tl_engine) {
		log_warnx("transparent: engine %s: %s", ops->name, err);
		return NULL;
	}
	tl_ops = ops;
	return ops;
}

static const struct tp_engine_ops *engine_of(struct session *s, struct tp_engine **out)
{
	if (!tl_engine && !engine_make(session_loop(s), session_conf(s)))
		return NULL;
	*out = tl_engine;
	return tl_ops;
}

/* An engine other than user is made when the worker starts, not at the
 * first request: the kernel engine then resets its table at once, so the
 * pinholes of a killed stpd close when stpd restarts (docs/config.md), and
 * a missing CAP_NET_ADMIN stops stpd at start rather than refusing later. */
static int tp_worker_init(struct worker *w)
{
	const struct tp_conf *tc = tp_conf_get(worker_conf(w));
	if (!tc || tc->engine == TP_ENGINE_USER)
		return 0;
	return engine_make(worker_loop(w), worker_conf(w)) ? 0 : -1;
}

static void tp_worker_fini(struct worker *w)
{
	(void)w;
	if (tl_engine)
		tl_ops->destroy(tl_engine);
	tl_engine = NULL;
	tl_ops = NULL;
}

/* ---- ends ---- */

static const char *ptcl_str(uint8_t ptcl)
{
	const char *n = socks_ptcl_name(ptcl);
	return n ? n : "?";
}

/* The association's line: bytes both ways from the engine's counters, and
 * why it ended; the flow's own line follows. */
static void log_end(struct session *s, struct tp_state *st, const char *why,
		    const struct tp_counters *c)
{
	char src[SA_STR_MAX], dst[SA_STR_MAX], bnd[SA_STR_MAX], tag[64];
	session_info(s,
		     "transparent %s %s %s -> %s bnd=%s ended: %s up=%llu bytes/%llu pkts "
		     "down=%llu bytes/%llu pkts",
		     flow_tag(st->flow, tag, sizeof(tag)), ptcl_str(st->a.ptcl),
		     sa_str((struct sockaddr *)&st->a.src, src, sizeof(src)),
		     sa_str((struct sockaddr *)&st->a.dst, dst, sizeof(dst)),
		     sa_str((struct sockaddr *)&st->a.bnd, bnd, sizeof(bnd)), why,
		     (unsigned long long)c->bytes_up, (unsigned long long)c->pkts_up,
		     (unsigned long long)c->bytes_down, (unsigned long long)c->pkts_down);
	flow_count(st->flow, c->bytes_up, c->bytes_down);
	flow_close(st->flow, why);
	st->flow = NULL;
}

/* The control connection ended (or the session is closing for any
 * reason): the relay configuration goes with it (MUST), established TCP
 * connections included; no packet is relayed after close() returns. */
static void tp_destroy(struct session *s)
{
	struct tp_state *st = session_handler_data(s);
	if (!st)
		return;
	resolver_cancel(st->lookup);
	ev_timer_stop(session_loop(s), &st->trailer_timer);
	if (st->relay) {
		struct tp_counters c;
		struct tp_engine *e;
		const struct tp_engine_ops *ops = engine_of(s, &e);
		ops->close(st->relay, &c);
		st->relay = NULL;
		const char *why = session_close_reason(s);
		log_end(s, st, why[0] ? why : "control connection closed", &c);
	}
	/* a flow without a relay: the session's reason closes it */
	free(st);
}

static const struct session_cmd_ops tp_ops = { "transparent", tp_destroy };

/* Refused before any relay: the flow (if any) gets the code, the session a
 * final reply. */
static void refuse(struct session *s, struct tp_state *st, uint8_t rep, const char *why)
{
	if (st->flow) {
		flow_reply(st->flow, rep);
		flow_close(st->flow, why);
		st->flow = NULL;
	}
	session_finish(s, rep, why);
}

/* ---- engine callbacks ---- */

static void on_ended(void *arg, const char *why, const struct tp_counters *c)
{
	struct session *s = arg;
	struct tp_state *st = session_handler_data(s);
	char reason[96];
	st->relay = NULL;
	log_end(s, st, why, c);
	/* Seed 003 section 6: the control connection goes too (e.g. the
	 * target's FIN), so the client learns the association is over. */
	snprintf(reason, sizeof(reason), "transparent relay ended: %s", why);
	session_close(s, reason);
}

static void answer(struct session *s, struct tp_state *st, uint8_t rep,
		   const struct sockaddr_storage *bnd)
{
	char src[SA_STR_MAX], dst[SA_STR_MAX], b[SA_STR_MAX], tag[64];
	struct sockaddr_storage adv;
	if (rep != SOCKS5_REP_SUCCEEDED) {
		refuse(s, st, rep, "relay refused");
		return;
	}
	st->a.bnd = *bnd;
	st->phase = TP_RUNNING;
	flow_reply(st->flow, rep);
	session_info(s, "transparent %s %s %s -> %s bnd=%s", flow_tag(st->flow, tag, sizeof(tag)),
		     ptcl_str(st->a.ptcl), sa_str((struct sockaddr *)&st->a.src, src, sizeof(src)),
		     sa_str((struct sockaddr *)&st->a.dst, dst, sizeof(dst)),
		     sa_str((struct sockaddr *)bnd, b, sizeof(b)));
	if (session_target(s)->atyp == SOCKS_ATYP_DOMAIN) /* which address the name became */
		session_info(s, "transparent %s: %s resolved to %s", tag, session_target(s)->u.name,
			     dst);
	adv = *bnd;
	dgram_advertised(s, &adv); /* udp-advertise: the address behind NAT */
	session_set_bound(s, (struct sockaddr *)&adv);
	session_reply(s, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&adv, false);
}

static void on_opened(void *arg, uint8_t rep, const struct sockaddr_storage *bnd)
{
	struct session *s = arg;
	struct tp_state *st = session_handler_data(s);
	if (st->phase == TP_OPENING && !st->relay) {
		/* inside open(): nothing may close the session yet */
		st->opened_early = true;
		st->early_rep = rep;
		if (bnd)
			st->early_bnd = *bnd;
		return;
	}
	if (rep != SOCKS5_REP_SUCCEEDED)
		st->relay = NULL; /* gone, and not to be closed */
	answer(s, st, rep, bnd);
}

static const struct tp_engine_cb tp_cb = { on_opened, on_ended };

/* ---- the association ---- */

/* Where the client must send: our address toward S.ADDR. When S is the
 * control connection's peer, our end of that connection (the client
 * reaches it already); otherwise the address the routing table picks to
 * reach S. -1 with errno when S cannot be reached from here. */
static int pick_bnd(struct session *s, const struct sockaddr_storage *src,
		    struct sockaddr_storage *bnd)
{
	struct dgram_params p = { 0 };
	socklen_t len = sizeof(*bnd);
	const struct tp_conf *tc = tp_conf_get(session_conf(s));
	int fd, rc;
	/* A relay on another host (engine remote over TLS) relays on its own
	 * addresses: BND unspecified, stp-relayd picks its address toward S. */
	if (tc && tc->engine == TP_ENGINE_REMOTE && tc->relay &&
	    strncmp(tc->relay, "unix:", 5) != 0) {
		memset(bnd, 0, sizeof(*bnd));
		bnd->ss_family = src->ss_family;
		return 0;
	}
	dgram_params_from_session(&p, s);
	if (p.local.ss_family == src->ss_family &&
	    sa_equal_addr((const struct sockaddr *)src,
			  (const struct sockaddr *)session_client(s))) {
		*bnd = p.local;
		sa_set_port((struct sockaddr *)bnd, 0);
		return 0;
	}
	/* S is on the client's side: asked where the client arrived. */
	fd = ext_open_socket(s, NULL, src->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	rc = connect(fd, (const struct sockaddr *)src, sa_len((const struct sockaddr *)src));
	if (rc == 0)
		rc = getsockname(fd, (struct sockaddr *)bnd, &len);
	int saved = errno;
	close(fd);
	errno = saved;
	if (rc == 0)
		sa_set_port((struct sockaddr *)bnd, 0);
	return rc;
}

/* The user engine's sockets (tp_assoc.open_socket): toward S where the
 * client arrived, toward DST where the association's rule sends it. */
static int tp_socket(void *ctx, bool target, int domain, int type)
{
	struct session *s = ctx;
	struct tp_state *st = session_handler_data(s);
	return ext_open_socket(s, target ? flow_rule(st->flow) : NULL, domain, type, 0);
}

/* True (and the session refused with X'09', so a client such as stpify
 * falls back to UDP ASSOCIATE) when the association's sockets belong in a
 * compartment and this worker's engine cannot put them there: the kernel
 * engine's NAT and stp-relayd work in their own network namespace only. */
static bool engine_cannot_place(struct session *s, struct tp_state *st)
{
	char place[EXT_SOCKET_PLACE_MAX];
	struct tp_engine *e;
	const struct tp_engine_ops *ops;

	if (!ext_socket_place(s, flow_rule(st->flow), place, sizeof(place)))
		return false;
	ops = engine_of(s, &e);
	if (!ops || ops == tp_engine_find("user"))
		return false;
	session_info(s,
		     "transparent: engine %s cannot relay in compartments (%s); only engine user "
		     "makes its sockets there",
		     ops->name, place);
	refuse(s, st, tp_rep_of_errno(EPROTONOSUPPORT), "engine cannot relay in compartments");
	return true;
}

static void open_relay(struct session *s, struct tp_state *st)
{
	struct tp_engine *e;
	const struct tp_engine_ops *ops = engine_of(s, &e);
	const struct tp_conf *tc = tp_conf_get(session_conf(s));

	if (!ops) {
		refuse(s, st, SOCKS5_REP_GENERAL_FAILURE, "no relay engine");
		return;
	}
	st->a.end_on_fin = tc ? tc->end_on_fin : true;
	st->a.idle_ms = tc ? tc->idle_ms : 300000;
	st->a.open_socket = tp_socket;
	st->a.sock_ctx = s;
	st->phase = TP_OPENING;
	st->relay = ops->open(e, &st->a, &tp_cb, s);
	if (!st->relay) {
		int err = errno;
		session_warnx(s, "transparent: engine %s: %s", ops->name, strerror(err));
		refuse(s, st, tp_rep_of_errno(err), "relay refused by the engine");
		return;
	}
	if (st->opened_early) {
		if (st->early_rep != SOCKS5_REP_SUCCEEDED)
			st->relay = NULL;
		answer(s, st, st->early_rep, &st->early_bnd);
	}
}

static void on_dst(void *ctx, int status, const struct sockaddr_storage *addrs, size_t n)
{
	struct session *s = ctx;
	struct tp_state *st = session_handler_data(s);
	char name[SA_STR_MAX];
	if (status != 0 || n == 0) {
		session_info(s, "transparent: %s: %s",
			     socks_addr_str(session_target(s), name, sizeof(name)),
			     resolver_strerror(status));
		refuse(s, st, status ? resolver_rep(status) : SOCKS5_REP_HOST_UNREACHABLE,
		       "target not resolved");
		return;
	}
	/* resolved once: every packet of the association goes there */
	st->a.dst = addrs[0];
	sa_unmap(&st->a.dst);
	sa_set_port((struct sockaddr *)&st->a.dst, session_target(s)->port);
	open_relay(s, st);
}

/* The trailer is in: the checks, in the order docs/protocol.md gives. */
static void handle(struct session *s, struct tp_state *st)
{
	const struct socks_addr *t = session_target(s);
	const char *why;
	socklen_t len;
	unsigned bit;

	if (st->req.ptcl != SOCKS_PTCL_UDP && st->req.ptcl != SOCKS_PTCL_TCP) {
		session_info(s, "transparent: PTCL %u not relayed", st->req.ptcl);
		session_finish(s, SOCKS5_REP_PTCL_NOT_SUPPORTED, "PTCL not supported");
		return;
	}
	/* Under a method's per-message protection (GSS-API integrity or
	 * confidentiality) the relayed traffic would travel in clear: PTCL
	 * UDP datagrams have no header for RFC 1961 to frame, PTCL TCP opens a
	 * connection of its own outside the context. Not relayed. */
	if (session_dgram_guard(s)) {
		session_info(s, "transparent: %s is not relayed under the method's "
				"per-message protection",
			     st->req.ptcl == SOCKS_PTCL_UDP ? "UDP" : "TCP");
		session_finish(s, SOCKS5_REP_PTCL_NOT_SUPPORTED, "outside the method's protection");
		return;
	}
	if (st->req.src.atyp == SOCKS_ATYP_DOMAIN) {
		session_info(s, "transparent: a source by name is not accepted");
		session_finish(s, SOCKS5_REP_ATYP_NOT_SUPPORTED, "source by name");
		return;
	}
	if (st->req.src.port == 0 || t->port == 0) {
		session_info(s, "transparent: %s port 0", t->port == 0 ? "DST" : "S");
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "port 0");
		return;
	}
	st->a.ptcl = st->req.ptcl;
	st->flow = flow_open(s, RULE_CMD_TRANSPARENT, SOCKS_CMD_TRANSPARENT, t, &why);
	if (!st->flow) {
		session_finish(s,
			       strcmp(why, "out of memory") == 0 ? SOCKS5_REP_GENERAL_FAILURE :
								   SOCKS5_REP_NOT_ALLOWED,
			       why);
		return;
	}
	bit = st->a.ptcl == SOCKS_PTCL_TCP ? TP_RULE_PTCL_TCP : TP_RULE_PTCL_UDP;
	if (!(tp_conf_rule_ptcls(flow_rule(st->flow)) & bit)) {
		session_info(s, "transparent: PTCL %s not granted by the rule",
			     ptcl_str(st->a.ptcl));
		refuse(s, st, SOCKS5_REP_NOT_ALLOWED, "PTCL not allowed by rule");
		return;
	}
	if (engine_cannot_place(s, st))
		return;
	/* S.ADDR all zeros: the control connection's own address */
	sa_from_socks(&st->a.src, &len, &st->req.src);
	{
		static const uint8_t zeros[16];
		size_t alen = st->req.src.atyp == SOCKS_ATYP_IPV4 ? 4 : 16;
		if (memcmp(st->req.src.u.v6, zeros, alen) == 0) {
			st->a.src = *session_client(s);
			sa_unmap(&st->a.src);
			sa_set_port((struct sockaddr *)&st->a.src, st->req.src.port);
		}
	}
	sa_unmap(&st->a.src);
	if (pick_bnd(s, &st->a.src, &st->a.bnd) < 0) {
		int err = errno;
		char src[SA_STR_MAX];
		session_info(s, "transparent: source %s not reachable: %s",
			     sa_str((struct sockaddr *)&st->a.src, src, sizeof(src)),
			     strerror(err));
		refuse(s, st, SOCKS5_REP_NET_UNREACHABLE, "source not reachable");
		return;
	}
	if (t->atyp == SOCKS_ATYP_DOMAIN) {
		st->phase = TP_RESOLVING;
		if (resolver_lookup(session_resolver(s), t->u.name, t->port, on_dst, s,
				    &st->lookup) < 0)
			refuse(s, st, SOCKS5_REP_GENERAL_FAILURE, "too many DNS look-ups pending");
		return;
	}
	sa_from_socks(&st->a.dst, &len, t);
	sa_unmap(&st->a.dst);
	open_relay(s, st);
}

/* Control input: first the trailer, then nothing (bytes are dropped; the
 * connection's end ends the association: the core closes the session). */
static void on_input(struct session *s)
{
	struct tp_state *st = session_handler_data(s);
	size_t n, cap, used = 0;
	const uint8_t *in = session_input(s, &n, &cap);
	struct socks_err err = { 0 };
	enum socks_res r;

	if (st->phase != TP_TRAILER) {
		session_consume(s, n);
		return;
	}
	r = socks_ptcl_parse(&st->req, in, n, &used, &err);
	if (r == SOCKS_MORE)
		return; /* the trailer is at most 260 bytes: it fits the buffer */
	if (r == SOCKS_BAD) {
		session_info(s, "transparent: bad request: %s", err.why);
		session_finish(s, err.rep, "bad TRANSPARENT request");
		return;
	}
	session_consume(s, used);
	ev_timer_stop(session_loop(s), &st->trailer_timer);
	st->phase = TP_RESOLVING;
	handle(s, st);
}

/* The core's handshake timer stops at the RFC 1928 part; the trailer gets
 * the same time again. */
static void on_trailer_timeout(EV_P_ ev_timer *w, int revents)
{
	struct tp_state *st = w->data;
	(void)loop;
	(void)revents;
	session_info(st->s, "transparent: request incomplete after timeouts { handshake }");
	session_close(st->s, "handshake timeout");
}

static void tp_start(struct session *s)
{
	struct tp_state *st = calloc(1, sizeof(*st));
	size_t n, cap;
	if (!st) {
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	st->s = s;
	ev_timer_init(&st->trailer_timer, on_trailer_timeout, session_conf(s)->timeouts.handshake,
		      0);
	st->trailer_timer.data = st;
	ev_timer_start(session_loop(s), &st->trailer_timer);
	session_set_handler(s, &tp_ops, st);
	session_watch_control(s, on_input);
	session_input(s, &n, &cap);
	if (n > 0 && !session_ending(s))
		on_input(s);
}

/* Only for a file with a transparent { } block: other files keep the
 * plain "configuration OK" scripts compare with. */
static void tp_conf_report(const struct stp_conf *c, char *buf, size_t cap)
{
	const struct tp_conf *tc = tp_conf_get(c);
	if (!tp_conf_present(c))
		return;
	snprintf(buf, cap, "engine %s", tc ? tc->engine_name : "user");
}

/* Feature discovery (docs/protocol.md 5.6): the PTCLs relayed and by which
 * engine, so a client prefers X'04' over UDP ASSOCIATE when UDP is in. */
static void tp_describe(const struct session *s, struct feat_writer *w)
{
	static const uint8_t ptcls[] = { SOCKS_PTCL_TCP, SOCKS_PTCL_UDP };
	const struct tp_conf *tc = tp_conf_get(session_conf(s));

	feat_put_codes(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_TRANSPARENT, "ptcls", ptcls, sizeof(ptcls));
	feat_put_text(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_TRANSPARENT, "engine",
		      tc ? tc->engine_name : "user");
	feat_put_uint(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_TRANSPARENT, "idle-timeout",
		      tc ? tc->idle_ms / 1000u : 300u);
	if (!tc || tc->end_on_fin)
		feat_put_flag(w, FEAT_SCOPE_COMMAND, SOCKS_CMD_TRANSPARENT, "end-on-fin");
}

/* The kernel engine adds and deletes nftables rules and asks conntrack for
 * every association while serving: netlink checks CAP_NET_ADMIN of the
 * calling thread then, not only of the socket's opener, so the workers
 * keep that one capability after the drop (as stp-relayd does for the
 * remote engine, which needs none in stpd). */
static uint64_t tp_worker_caps(const struct stp_conf *c, char *buf, size_t cap)
{
	const struct tp_conf *tc = tp_conf_get(c);
	if (!tc || tc->engine != TP_ENGINE_KERNEL)
		return 0;
	snprintf(buf, cap, "engine kernel (nftables rules and conntrack queries while serving)");
	return 1ULL << CAP_NET_ADMIN;
}

static const struct stp_command tp_commands[] = {
	{ SOCKS_CMD_TRANSPARENT, RULE_CMD_TRANSPARENT, false, tp_start },
};

const struct stp_ext ext_transparent = {
	.name = "transparent",
	.commands = tp_commands,
	.n_commands = sizeof(tp_commands) / sizeof(tp_commands[0]),
	.worker_init = tp_worker_init,
	.worker_fini = tp_worker_fini,
	.conf_report = tp_conf_report,
	.describe = tp_describe,
	.worker_caps = tp_worker_caps,
};
