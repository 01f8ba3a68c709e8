/*
 * tn_remote.c - TUNNEL RELAY X'21': this stpd is a tunnel's far end
 * (docs/protocol.md 5.10). Another stpd, authenticated like any client on
 * a TLS listener, names the far endpoint and the transport; the request
 * rules (`command tunnel-relay`) decide, a flow carries it, and datagrams
 * then go between one UDP socket connected to the far endpoint and
 * - TLS: the control connection itself, as LEN(2) DATA frames;
 * - DTLS: a DTLS 1.2 server on a fresh UDP port named in the reply, whose
 *   first record must be the reply's 16-byte token (it binds the DTLS
 *   association to this authenticated control connection).
 * A far endpoint by name is looked up here, with this stpd's resolver (the
 * one the rule matching the name chooses, as for CONNECT); the rules then
 * see the name with each address in turn, as CONNECT's do.
 * Everything runs in the worker's loop. The tunnel ends with the control
 * connection, on a DTLS error or close, or after tunnel { idle } seconds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "common/sockaddr.h"
#include "ext/tunnel/tn_int.h"
#include "policy/rules.h"
#include "proto/tunnel.h"
#include "server/dgram.h"
#include "server/ext.h"
#include "server/flow.h"
#include "server/resolve.h"
#include "server/session.h"

#define TN_BURST 32 /* datagrams per wake-up and direction */

struct tn_remote {
	struct session *s;
	struct ev_loop *loop;
	struct flow *flow;
	const struct tn_conf *conf;
	struct tunnel_relay req;
	struct lookup *lookup; /* the far endpoint's name, while it is looked up */
	bool started;
	ev_timer body_timer, idle_timer;
	ev_tstamp last;
	int far;
	ev_io far_io;
	/* DTLS */
	int dfd;
	ev_io d_io;
	ev_timer d_timer;
	SSL_CTX *ctx;
	SSL *ssl;
	bool d_connected, d_ready, d_authed;
	uint8_t token[TUNNEL_TOKEN_LEN];
	uint64_t up, down, upb, downb, dropped;
};

static void tr_destroy(struct session *s)
{
	struct tn_remote *t = session_handler_data(s);
	resolver_cancel(t->lookup);
	ev_timer_stop(t->loop, &t->body_timer);
	ev_timer_stop(t->loop, &t->idle_timer);
	ev_timer_stop(t->loop, &t->d_timer);
	ev_io_stop(t->loop, &t->far_io);
	ev_io_stop(t->loop, &t->d_io);
	if (t->ssl) {
		if (t->d_ready)
			SSL_shutdown(t->ssl); /* close_notify: the local end stops at once */
		SSL_free(t->ssl);
	}
	SSL_CTX_free(t->ctx);
	if (t->far >= 0)
		close(t->far);
	if (t->dfd >= 0)
		close(t->dfd);
	if (t->flow) {
		const char *why = session_close_reason(s);
		session_info(s,
			     "tunnel relay to far end ended (%s): %s up=%llu/%llu down=%llu/%llu "
			     "dropped=%llu",
			     why, tunnel_trans_name(t->req.trans), (unsigned long long)t->up,
			     (unsigned long long)t->upb, (unsigned long long)t->down,
			     (unsigned long long)t->downb, (unsigned long long)t->dropped);
		flow_count(t->flow, t->upb, t->downb);
		flow_close(t->flow, why[0] ? why : "closed");
	}
	free(t);
}

static const struct session_cmd_ops tr_ops = { "tunnel-relay", tr_destroy };

static void touch(struct tn_remote *t)
{
	t->last = ev_now(t->loop);
}

/* ---- toward the far endpoint ---- */

static void to_far(struct tn_remote *t, const uint8_t *p, size_t n)
{
	if (send(t->far, p, n, MSG_DONTWAIT) < 0) {
		t->dropped++;
		return;
	}
	t->up++;
	t->upb += n;
	touch(t);
}

/* ---- TLS transport: frames on the control connection ---- */

static void tls_input(struct session *s)
{
	struct tn_remote *t = session_handler_data(s);
	/* The handshake buffer holds SOCKS_HANDSHAKE_MAX bytes; TLS may hold a
	 * record's worth more that the socket no longer signals, so read
	 * again once the frames are out (bounded per wake-up). */
	for (int round = 0; round < 256; round++) {
		size_t len, cap, used, dlen;
		const uint8_t *in = session_input(s, &len, &cap), *data;
		while (tunnel_frame_parse(in, len, &used, &data, &dlen) == SOCKS_DONE) {
			to_far(t, data, dlen);
			session_consume(s, used);
			in = session_input(s, &len, &cap);
		}
		if (len >= 2 && (size_t)((in[0] << 8) | in[1]) > TN_DGRAM_MAX) {
			session_warnx(s, "tunnel relay: a frame of %u bytes (limit %d)",
				      (unsigned)((in[0] << 8) | in[1]), TN_DGRAM_MAX);
			session_close(s, "tunnel frame too large");
			return;
		}
		if (session_read_control(s) <= 0)
			return; /* nothing more now, or the session is gone */
	}
}

/* ---- DTLS transport ---- */

static void d_arm_timer(struct tn_remote *t)
{
	struct timeval tv;
	ev_timer_stop(t->loop, &t->d_timer);
	if (t->ssl && DTLSv1_get_timeout(t->ssl, &tv) == 1) {
		ev_timer_set(&t->d_timer, (ev_tstamp)tv.tv_sec + tv.tv_usec / 1e6 + 0.001, 0.);
		ev_timer_start(t->loop, &t->d_timer);
	}
}

/* The first datagram names the local stpd's DTLS port: it must come from
 * the control connection's peer address; the socket is connected to it. */
static int d_connect_peer(struct tn_remote *t)
{
	struct sockaddr_storage from;
	socklen_t flen = sizeof(from);
	uint8_t b;
	if (recvfrom(t->dfd, &b, 1, MSG_PEEK | MSG_DONTWAIT, (struct sockaddr *)&from, &flen) < 0)
		return errno == EAGAIN ? 0 : -1;
	struct sockaddr_storage peer = from;
	sa_unmap(&peer);
	if (!sa_equal_addr((struct sockaddr *)&peer,
			   (const struct sockaddr *)session_client(t->s))) {
		recv(t->dfd, &b, 1, MSG_DONTWAIT); /* not our peer: drop it */
		t->dropped++;
		return 0;
	}
	if (connect(t->dfd, (struct sockaddr *)&from, flen) < 0)
		return -1;
	BIO *bio = BIO_new_dgram(t->dfd, BIO_NOCLOSE);
	t->ssl = bio ? SSL_new(t->ctx) : NULL;
	if (!t->ssl) {
		BIO_free(bio);
		return -1;
	}
	BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &from);
	SSL_set_bio(t->ssl, bio, bio);
	SSL_set_accept_state(t->ssl);
	t->d_connected = true;
	return 1;
}

static void d_fail(struct tn_remote *t, const char *what)
{
	char e[256];
	session_warnx(t->s, "tunnel relay: DTLS %s: %s", what, tn_ssl_error(e, sizeof(e)));
	session_close(t->s, "tunnel DTLS failed");
}

static void d_records(struct tn_remote *t)
{
	uint8_t buf[TN_DGRAM_MAX + 512];
	for (int k = 0; k < TN_BURST; k++) {
		int n = SSL_read(t->ssl, buf, sizeof(buf));
		if (n <= 0) {
			int e = SSL_get_error(t->ssl, n);
			if (e == SSL_ERROR_WANT_READ)
				return;
			if (e == SSL_ERROR_ZERO_RETURN) {
				t->d_ready = false;
				session_close(t->s, "tunnel closed by the local stpd");
			} else {
				d_fail(t, "read");
			}
			return;
		}
		if (!t->d_authed) {
			if ((size_t)n != TUNNEL_TOKEN_LEN ||
			    CRYPTO_memcmp(buf, t->token, TUNNEL_TOKEN_LEN) != 0) {
				session_warnx(t->s, "tunnel relay: DTLS peer sent no valid token");
				session_close(t->s, "tunnel token mismatch");
				return;
			}
			t->d_authed = true;
			touch(t);
			continue;
		}
		if ((size_t)n > TN_DGRAM_MAX) {
			t->dropped++;
			continue;
		}
		to_far(t, buf, (size_t)n);
	}
}

static void on_dtls(EV_P_ ev_io *w, int revents)
{
	struct tn_remote *t = w->data;
	if (!t->d_connected) {
		int r = d_connect_peer(t);
		if (r < 0) {
			session_warnx(t->s, "tunnel relay: DTLS peer: %s", strerror(errno));
			session_close(t->s, "tunnel DTLS failed");
			return;
		}
		if (r == 0)
			return;
	}
	if (!t->d_ready) {
		int r = SSL_do_handshake(t->ssl);
		if (r != 1) {
			int e = SSL_get_error(t->ssl, r);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
				d_arm_timer(t);
				return;
			}
			d_fail(t, "handshake");
			return;
		}
		ev_timer_stop(t->loop, &t->d_timer);
		t->d_ready = true;
	}
	d_records(t);
}

static void on_dtls_timer(EV_P_ ev_timer *w, int revents)
{
	struct tn_remote *t = w->data;
	if (t->ssl && !t->d_ready) {
		if (DTLSv1_handle_timeout(t->ssl) < 0) {
			d_fail(t, "handshake retransmission");
			return;
		}
		d_arm_timer(t);
	}
}

/* ---- from the far endpoint ---- */

static void on_far(EV_P_ ev_io *w, int revents)
{
	struct tn_remote *t = w->data;
	uint8_t buf[TUNNEL_FRAME_HDR + TN_DGRAM_MAX + 1];
	for (int k = 0; k < TN_BURST; k++) {
		ssize_t n = recv(t->far, buf + TUNNEL_FRAME_HDR, TN_DGRAM_MAX + 1, MSG_DONTWAIT);
		if (n < 0)
			return; /* EAGAIN, or an ICMP error from the far endpoint */
		if ((size_t)n > TN_DGRAM_MAX) {
			t->dropped++;
			continue;
		}
		if (t->req.trans == TUNNEL_TRANS_TLS) {
			if (session_output_queued(t->s) + (size_t)n + 2 > 32 * 1024) {
				t->dropped++; /* the local stpd reads slower than this */
				continue;
			}
			tunnel_frame_head(buf, (size_t)n);
			if (session_send(t->s, buf, (size_t)n + TUNNEL_FRAME_HDR) < 0)
				return; /* the session is gone */
		} else {
			if (!t->d_authed ||
			    SSL_write(t->ssl, buf + TUNNEL_FRAME_HDR, (int)n) <= 0) {
				ERR_clear_error();
				t->dropped++;
				continue;
			}
		}
		t->down++;
		t->downb += (size_t)n;
		touch(t);
	}
}

static void on_idle(EV_P_ ev_timer *w, int revents)
{
	struct tn_remote *t = w->data;
	ev_tstamp left = t->last + t->conf->idle - ev_now(loop);
	if (left > 0) {
		ev_timer_set(w, left, 0.);
		ev_timer_start(loop, w);
		return;
	}
	session_close(t->s, "tunnel idle timeout");
}

/* ---- the request ---- */

static int refuse(struct tn_remote *t, uint8_t rep, const char *why)
{
	session_warnx(t->s, "TUNNEL RELAY refused: %s", why);
	return session_finish(t->s, rep, why);
}

/* far: F's address (a name's: the one its look-up gave). */
static int open_far(struct tn_remote *t, const struct sockaddr *far)
{
	struct sockaddr_storage src;
	socklen_t flen = sa_len(far);
	session_bind_address(t->s, &src);
	/* in the compartment the relay's rule names (stpd's own without) */
	t->far = ext_open_socket(t->s, flow_rule(t->flow), far->sa_family,
				 SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->far < 0)
		return refuse(t, SOCKS5_REP_GENERAL_FAILURE, "no UDP socket");
	if (src.ss_family == far->sa_family)
		bind(t->far, (struct sockaddr *)&src, sa_len((struct sockaddr *)&src));
	if (connect(t->far, far, flen) < 0)
		return refuse(t, session_errno_rep(errno), "far endpoint unreachable");
	ev_io_init(&t->far_io, on_far, t->far, EV_READ);
	t->far_io.data = t;
	return 0;
}

/* The DTLS port: on our end of the control connection, any port. */
static int open_dtls(struct tn_remote *t, struct socks_addr *bnd)
{
	char err[256];
	struct dgram_params p;
	struct sockaddr_storage where;
	socklen_t wlen = sizeof(where);
	memset(&p, 0, sizeof(p));
	dgram_params_from_session(&p, t->s);
	t->ctx = tn_dtls_server_ctx(t->conf, err, sizeof(err));
	if (!t->ctx) {
		session_warnx(t->s, "tunnel relay: %s", err);
		return refuse(t, SOCKS5_REP_GENERAL_FAILURE, "no DTLS certificate");
	}
	/* where the control connection arrived */
	t->dfd = ext_open_socket(t->s, NULL, p.local.ss_family,
				 SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->dfd < 0 ||
	    bind(t->dfd, (struct sockaddr *)&p.local, sa_len((struct sockaddr *)&p.local)) < 0 ||
	    getsockname(t->dfd, (struct sockaddr *)&where, &wlen) < 0)
		return refuse(t, SOCKS5_REP_GENERAL_FAILURE, "no DTLS socket");
	sa_unmap(&where);
	sa_to_socks(bnd, (struct sockaddr *)&where);
	if (getrandom(t->token, sizeof(t->token), 0) != (ssize_t)sizeof(t->token))
		return refuse(t, SOCKS5_REP_GENERAL_FAILURE, "no random token");
	ev_io_init(&t->d_io, on_dtls, t->dfd, EV_READ);
	t->d_io.data = t;
	ev_timer_init(&t->d_timer, on_dtls_timer, 1., 0.);
	t->d_timer.data = t;
	return 0;
}

/* resolved: F's address when F is a name (NULL for an address). */
static void accept_relay(struct tn_remote *t, const struct sockaddr *resolved)
{
	struct tunnel_relay_reply rep = { .rep = SOCKS5_REP_SUCCEEDED };
	uint8_t buf[TUNNEL_RELAY_REPLY_MAX];
	struct sockaddr_storage ss;
	socklen_t sl;
	char far[300];

	/* a refusal finishes the session, and t with it: nothing of t after */
	struct flow *f = tn_flow_open(t->s, RULE_CMD_TUNNEL_RELAY, TUNNEL_CMD_RELAY, &t->req.far,
				      resolved);
	if (!f)
		return;
	t->flow = f;
	if (!resolved) {
		sa_from_socks(&ss, &sl, &t->req.far);
		resolved = (const struct sockaddr *)&ss;
	}
	if (open_far(t, resolved) < 0)
		return;
	rep.bnd.atyp = SOCKS_ATYP_IPV4; /* 0.0.0.0:0 for TLS */
	if (t->req.trans == TUNNEL_TRANS_DTLS) {
		if (open_dtls(t, &rep.bnd) < 0)
			return;
		rep.has_token = true;
		memcpy(rep.token, t->token, sizeof(rep.token));
	}
	size_t n = tunnel_relay_reply_write(buf, sizeof(buf), &rep);
	session_note_reply(t->s, SOCKS5_REP_SUCCEEDED);
	flow_reply(t->flow, SOCKS5_REP_SUCCEEDED);
	session_info(t->s, "tunnel relay to %s over %s",
		     socks_addr_str(&t->req.far, far, sizeof(far)),
		     tunnel_trans_name(t->req.trans));
	/* the reply first, then the watchers: nothing moves before it is queued */
	if (session_send(t->s, buf, n) < 0)
		return;
	t->started = true;
	touch(t);
	ev_io_start(t->loop, &t->far_io);
	if (t->req.trans == TUNNEL_TRANS_DTLS)
		ev_io_start(t->loop, &t->d_io);
	ev_timer_init(&t->idle_timer, on_idle, (ev_tstamp)t->conf->idle, 0.);
	t->idle_timer.data = t;
	ev_timer_start(t->loop, &t->idle_timer);
	if (t->req.trans == TUNNEL_TRANS_TLS) {
		session_watch_control(t->s, tls_input);
		tls_input(t->s); /* frames that came with the request */
	} else {
		session_watch_control(t->s, tn_quiet_control); /* nothing more comes on it */
	}
}

/* F by name: the first address the rules pass with the name, as CONNECT
 * tries them; none passing is refused (X'02', the denial logged with the
 * last address); a failed look-up gets CONNECT's code (X'04' mostly). */
static void on_far_addrs(void *ctx, int status, const struct sockaddr_storage *addrs, size_t n)
{
	struct tn_remote *t = ctx;
	const char *name = t->req.far.u.name;
	if (status != 0 || n == 0) {
		session_info(t->s, "tunnel relay: resolving %s failed: %s", name,
			     status ? resolver_strerror(status) : "no address");
		session_finish(t->s, status ? resolver_rep(status) : SOCKS5_REP_HOST_UNREACHABLE,
			       "far endpoint does not resolve");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&addrs[i];
		const struct rule *r = session_match_rule(t->s, RULE_CMD_TUNNEL_RELAY, sa, name,
							  t->req.far.port);
		if (i + 1 == n || (r && r->action == RULE_PASS)) {
			accept_relay(t, sa);
			return;
		}
	}
}

static void resolve_far(struct tn_remote *t)
{
	const char *name = t->req.far.u.name;
	const struct rule *by_name = session_match_rule(t->s, RULE_CMD_TUNNEL_RELAY, NULL, name,
							t->req.far.port);
	if (resolver_lookup(session_resolver_for(t->s, by_name), name, t->req.far.port,
			    on_far_addrs, t, &t->lookup) < 0)
		refuse(t, SOCKS5_REP_GENERAL_FAILURE, "too many DNS look-ups pending");
}

static enum socks_res parse_relay(void *out, const uint8_t *p, size_t n, size_t *used,
				  struct socks_err *err)
{
	return tunnel_relay_parse(out, p, n, used, err);
}

/* The core consumed the request's header; the body (TVER TRANS) follows. */
static void body_input(struct session *s)
{
	struct tn_remote *t = session_handler_data(s);
	if (!tn_read_body(s, TUNNEL_CMD_RELAY, parse_relay, &t->req, &t->body_timer,
			  "TUNNEL RELAY"))
		return;
	if (t->req.far.atyp == SOCKS_ATYP_DOMAIN)
		resolve_far(t);
	else
		accept_relay(t, NULL);
}

static void on_body_timeout(EV_P_ ev_timer *w, int revents)
{
	struct tn_remote *t = w->data;
	refuse(t, SOCKS5_REP_GENERAL_FAILURE, "tunnel request body timeout");
}

void tn_remote_start(struct session *s)
{
	struct tn_remote *t = calloc(1, sizeof(*t));
	if (!t) {
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	t->s = s;
	t->loop = session_loop(s);
	t->conf = tn_conf_get(session_conf(s));
	t->far = t->dfd = -1;
	ev_init(&t->idle_timer, on_idle);
	ev_init(&t->d_timer, on_dtls_timer);
	ev_io_init(&t->far_io, on_far, -1, EV_READ);
	ev_io_init(&t->d_io, on_dtls, -1, EV_READ);
	session_set_handler(s, &tr_ops, t);
	tn_body_timer(s, &t->body_timer, on_body_timeout, t);
	session_watch_control(s, body_input);
	body_input(s);
}
