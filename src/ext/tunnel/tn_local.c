/*
 * tn_local.c - SETUP_UDP_TUNNEL X'20': a client asks this stpd for a UDP
 * tunnel through another stpd (docs/protocol.md 5.10). The request rules
 * (`command tunnel`, toward the remote stpd) decide here; a flow carries
 * the tunnel. A remote stpd given by name is looked up on the loop, with
 * the resolver of the rule's compartment (stpd's own without), and the
 * socket toward it is made for that address's family only. One thread
 * per tunnel then does what would block the worker:
 * it connects to the remote stpd (TLS), authenticates with the client's
 * credentials or this stpd's certificate, sends X'21' for the far endpoint,
 * for DTLS sets up the DTLS association and presents the token, and then
 * relays between the client's UDP socket (RFC 1928 section 7 headers) and
 * the channel until the control connection ends (the loop signals the
 * thread), the remote drops the tunnel, or tunnel { idle } passes.
 *
 * The loop and the thread share only: the stop eventfd (loop -> thread),
 * an ev_async with two atomic flags and the result (thread -> loop,
 * written before the flag), and atomic counters. The loop joins the thread
 * before it frees anything.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "common/sockaddr.h"
#include "ext/tunnel/tn_chan.h"
#include "ext/tunnel/tn_int.h"
#include "proto/tunnel.h"
#include "server/dgram.h"
#include "server/ext.h"
#include "server/flow.h"
#include "server/resolve.h"
#include "server/session.h"

#define TN_BURST 64 /* datagrams per wake-up and direction */

struct tn_local {
	struct session *s;
	struct ev_loop *loop;
	struct flow *flow;
	struct tn_conf conf;     /* a copy: the thread reads it */
	struct tunnel_setup req; /* the password is wiped once sent */
	int udp;                 /* the client-facing socket */
	/* The remote stpd's address (looked up by the loop when a name) and
	 * the sockets toward it, made by the loop in the rule's compartment
	 * (the broker is the loop's); the thread takes them. */
	struct sockaddr_storage remote;
	struct lookup *lookup;
	int out_tcp, out_udp;
	struct sockaddr_storage client;
	int stopfd;
	pthread_t th;
	bool th_running, replied;
	ev_timer body_timer;
	ev_async wake;
	/* thread -> loop: the result is written before the flag is set */
	atomic_bool up_posted, down_posted;
	uint8_t rep;
	char why[200];
	atomic_uint_fast64_t up, down, upb, downb, dropped;
};

/* ---- the thread ---- */

static int fail(struct tn_local *t, uint8_t rep, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct tn_local *t, uint8_t rep, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->why, sizeof(t->why), fmt, ap);
	va_end(ap);
	t->rep = rep;
	return -1;
}

/* A socket made by launch(), now the thread's. */
static int take(int *slot)
{
	int fd = *slot;
	*slot = -1;
	return fd;
}

static int tcp_connect(struct tn_local *t, struct tn_chan *c, long long deadline)
{
	const struct sockaddr *sa = (const struct sockaddr *)&t->remote;
	c->tcp = take(&t->out_tcp);
	int err = 0;
	socklen_t elen = sizeof(err);
	if (connect(c->tcp, sa, sa_len(sa)) < 0 && errno != EINPROGRESS)
		err = errno;
	else if (tn_chan_wait(c, c->tcp, POLLOUT, deadline) < 0)
		err = errno;
	else if (getsockopt(c->tcp, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		err = errno;
	if (err)
		return fail(t,
			    err == ETIMEDOUT ? SOCKS5_REP_HOST_UNREACHABLE : session_errno_rep(err),
			    "remote stpd unreachable: %s", strerror(err));
	return 0;
}

/* The remote's name or address, as its certificate must show it. */
static void remote_host(const struct tn_local *t, char *out, size_t cap, bool *is_ip)
{
	char buf[300];
	*is_ip = t->req.remote.atyp != SOCKS_ATYP_DOMAIN;
	if (!*is_ip) {
		snprintf(out, cap, "%s", t->req.remote.u.name);
		return;
	}
	socks_addr_str(&t->req.remote, buf, sizeof(buf));
	/* "1.2.3.4:p" or "[::1]:p" without the port and brackets */
	char *colon = strrchr(buf, ':');
	if (colon)
		*colon = '\0';
	char *p = buf[0] == '[' ? buf + 1 : buf;
	size_t n = strlen(p);
	if (n && p[n - 1] == ']')
		p[n - 1] = '\0';
	snprintf(out, cap, "%s", p);
}

static int ssl_fail(struct tn_local *t, SSL *ssl, struct tn_chan *c, const char *what)
{
	char e[256];
	long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	if (c->stopped)
		return fail(t, SOCKS5_REP_GENERAL_FAILURE, "stopped");
	if (v != X509_V_OK)
		return fail(t, SOCKS5_REP_TUNNEL_AUTH, "%s: the remote's certificate: %s", what,
			    X509_verify_cert_error_string(v));
	if (errno == ETIMEDOUT)
		return fail(t, SOCKS5_REP_HOST_UNREACHABLE, "%s: timed out", what);
	return fail(t, SOCKS5_REP_TUNNEL_AUTH, "%s: %s", what, tn_ssl_error(e, sizeof(e)));
}

static int tls_open(struct tn_local *t, struct tn_chan *c, long long deadline)
{
	char err[256], host[300];
	bool is_ip;
	c->tctx = tn_client_ctx(&t->conf, false, t->req.cred == TUNNEL_CRED_CERT, err, sizeof(err));
	if (!c->tctx)
		return fail(t, SOCKS5_REP_GENERAL_FAILURE, "%s", err);
	SSL_CTX_set_mode(c->tctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	c->tls = SSL_new(c->tctx);
	remote_host(t, host, sizeof(host), &is_ip);
	if (!c->tls || SSL_set_fd(c->tls, c->tcp) != 1 ||
	    tn_ssl_expect_peer(c->tls, host, is_ip) < 0)
		return fail(t, SOCKS5_REP_GENERAL_FAILURE, "TLS setup failed");
	SSL_set_connect_state(c->tls);
	if (tn_chan_handshake(c, c->tls, c->tcp, deadline) < 0)
		return ssl_fail(t, c->tls, c, "TLS with the remote stpd");
	return 0;
}

/* Reads until parse says DONE; the bytes it used are dropped from c->in. */
typedef enum socks_res (*parse_fn)(struct tn_local *t, void *out, const uint8_t *p, size_t n,
				   size_t *used);

/* closed_rep: what B closing the connection here means (during
 * authentication it refused us, e.g. our certificate under TLS 1.3). */
static int read_msg(struct tn_local *t, struct tn_chan *c, parse_fn fn, void *out,
		    long long deadline, const char *what, uint8_t closed_rep)
{
	for (;;) {
		size_t used = 0;
		enum socks_res r = fn(t, out, c->in, c->inlen, &used);
		if (r == SOCKS_DONE) {
			memmove(c->in, c->in + used, c->inlen - used);
			c->inlen -= used;
			return 0;
		}
		if (r == SOCKS_BAD)
			return fail(t, SOCKS5_REP_TUNNEL_REFUSED, "bad %s from the remote stpd",
				    what);
		if (tn_chan_read(c, deadline) < 0) {
			if (c->stopped)
				return fail(t, SOCKS5_REP_GENERAL_FAILURE, "stopped");
			return fail(t,
				    errno == ETIMEDOUT ? SOCKS5_REP_HOST_UNREACHABLE : closed_rep,
				    "the remote stpd %s before its %s",
				    errno == ETIMEDOUT ? "timed out" : "closed", what);
		}
	}
}

static enum socks_res parse2(struct tn_local *t, void *out, const uint8_t *p, size_t n,
			     size_t *used)
{
	(void)t;
	if (n < 2)
		return SOCKS_MORE;
	memcpy(out, p, 2);
	*used = 2;
	return SOCKS_DONE;
}

static enum socks_res parse_reply(struct tn_local *t, void *out, const uint8_t *p, size_t n,
				  size_t *used)
{
	struct socks_err err;
	return tunnel_relay_reply_parse(out, t->req.trans, p, n, used, &err);
}

static int authenticate(struct tn_local *t, struct tn_chan *c, long long deadline)
{
	uint8_t m = t->req.cred == TUNNEL_CRED_USERPASS ? SOCKS_METHOD_USERPASS : SOCKS_METHOD_NONE;
	uint8_t greet[3] = { SOCKS5_VER, 1, m }, ans[2];
	if (tn_chan_write(c, greet, sizeof(greet), deadline) < 0 ||
	    read_msg(t, c, parse2, ans, deadline, "method choice", SOCKS5_REP_TUNNEL_AUTH) < 0)
		return t->rep ? -1 : fail(t, SOCKS5_REP_TUNNEL_REFUSED, "greeting not sent");
	if (ans[0] != SOCKS5_VER || ans[1] != m)
		return fail(t, SOCKS5_REP_TUNNEL_AUTH, "the remote stpd refused method X'%02X'", m);
	if (m != SOCKS_METHOD_USERPASS)
		return 0;
	uint8_t up[SOCKS_USERPASS_MAX];
	size_t n = 0;
	up[n++] = SOCKS_USERPASS_VER;
	up[n++] = t->req.ulen;
	memcpy(up + n, t->req.user, t->req.ulen);
	n += t->req.ulen;
	up[n++] = t->req.plen;
	memcpy(up + n, t->req.pass, t->req.plen);
	n += t->req.plen;
	int w = tn_chan_write(c, up, n, deadline);
	OPENSSL_cleanse(up, sizeof(up));
	OPENSSL_cleanse(t->req.pass, sizeof(t->req.pass));
	if (w < 0 || read_msg(t, c, parse2, ans, deadline, "authentication status",
			      SOCKS5_REP_TUNNEL_AUTH) < 0)
		return t->rep ? -1 : fail(t, SOCKS5_REP_TUNNEL_REFUSED, "credentials not sent");
	if (ans[1] != 0)
		return fail(t, SOCKS5_REP_TUNNEL_AUTH, "the remote stpd refused user %s",
			    t->req.user);
	return 0;
}

static int dtls_open(struct tn_local *t, struct tn_chan *c, const struct tunnel_relay_reply *rr,
		     long long deadline)
{
	char err[256], host[300];
	bool is_ip;
	struct sockaddr_storage dst;
	socklen_t dlen = sizeof(dst);
	if (sa_from_socks(&dst, &dlen, &rr->bnd) < 0)
		return fail(t, SOCKS5_REP_TUNNEL_REFUSED, "the remote's DTLS port is a name");
	/* B's DTLS port is on its end of the TLS connection (5.10): the
	 * family we made the socket for */
	if (dst.ss_family != t->remote.ss_family)
		return fail(t, SOCKS5_REP_TUNNEL_REFUSED,
			    "the remote's DTLS port is not of its address's family");
	c->dfd = take(&t->out_udp);
	if (c->dfd < 0 || connect(c->dfd, (struct sockaddr *)&dst, dlen) < 0)
		return fail(t, SOCKS5_REP_HOST_UNREACHABLE, "DTLS socket: %s", strerror(errno));
	c->dctx = tn_client_ctx(&t->conf, true, t->req.cred == TUNNEL_CRED_CERT, err, sizeof(err));
	if (!c->dctx)
		return fail(t, SOCKS5_REP_GENERAL_FAILURE, "%s", err);
	BIO *bio = BIO_new_dgram(c->dfd, BIO_NOCLOSE);
	c->dtls = bio ? SSL_new(c->dctx) : NULL;
	if (!c->dtls) {
		BIO_free(bio);
		return fail(t, SOCKS5_REP_GENERAL_FAILURE, "DTLS setup failed");
	}
	BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &dst);
	SSL_set_bio(c->dtls, bio, bio);
	remote_host(t, host, sizeof(host), &is_ip);
	tn_ssl_expect_peer(c->dtls, host, is_ip);
	SSL_set_connect_state(c->dtls);
	if (tn_chan_handshake(c, c->dtls, c->dfd, deadline) < 0)
		return ssl_fail(t, c->dtls, c, "DTLS with the remote stpd");
	if (SSL_write(c->dtls, rr->token, TUNNEL_TOKEN_LEN) != TUNNEL_TOKEN_LEN)
		return fail(t, SOCKS5_REP_HOST_UNREACHABLE, "DTLS token not sent");
	return 0;
}

static int setup(struct tn_local *t, struct tn_chan *c)
{
	long long deadline = tn_now_ms() + 1000LL * t->conf.connect_timeout;
	struct tunnel_relay rq = { .far = t->req.far, .trans = t->req.trans };
	struct tunnel_relay_reply rr;
	uint8_t buf[TUNNEL_RELAY_MAX];
	size_t n;

	if (tcp_connect(t, c, deadline) < 0 || tls_open(t, c, deadline) < 0 ||
	    authenticate(t, c, deadline) < 0)
		return -1;
	n = tunnel_relay_write(buf, sizeof(buf), &rq);
	if (tn_chan_write(c, buf, n, deadline) < 0 ||
	    read_msg(t, c, parse_reply, &rr, deadline, "reply", SOCKS5_REP_TUNNEL_REFUSED) < 0)
		return t->rep ? -1 : fail(t, SOCKS5_REP_TUNNEL_REFUSED, "request not sent");
	/* The far endpoint unreachable there (its name did not resolve with
	 * B's resolver, or no route): the client sees CONNECT's X'04'. Any
	 * other refusal is B's decision: X'0D'. */
	if (rr.rep == SOCKS5_REP_HOST_UNREACHABLE)
		return fail(t, SOCKS5_REP_HOST_UNREACHABLE,
			    "the remote stpd cannot reach the far endpoint: REP X'04'");
	if (rr.rep != SOCKS5_REP_SUCCEEDED)
		return fail(t, SOCKS5_REP_TUNNEL_REFUSED, "the remote stpd refused: REP X'%02X'",
			    rr.rep);
	if (t->req.trans == TUNNEL_TRANS_DTLS && dtls_open(t, c, &rr, deadline) < 0)
		return -1;
	return 0;
}

/* ---- relaying (the thread) ---- */

static void to_client(struct tn_local *t, const uint8_t *p, size_t n)
{
	uint8_t buf[SOCKS_UDP_HDR_MAX + TN_DGRAM_MAX];
	size_t h;
	if (sa_port((struct sockaddr *)&t->client) == 0 || n > TN_DGRAM_MAX ||
	    !(h = socks_udp_write(buf, sizeof(buf), 0, &t->req.far))) {
		t->dropped++;
		return;
	}
	memcpy(buf + h, p, n);
	if (sendto(t->udp, buf, h + n, MSG_DONTWAIT, (struct sockaddr *)&t->client,
		   sa_len((struct sockaddr *)&t->client)) < 0) {
		t->dropped++;
		return;
	}
	t->down++;
	t->downb += n;
}

/* Datagrams from the client: 0, or -1 when the channel failed. */
static int from_client(struct tn_local *t, struct tn_chan *c)
{
	uint8_t buf[SOCKS_UDP_HDR_MAX + TN_DGRAM_MAX + 1];
	for (int k = 0; k < TN_BURST; k++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(t->udp, buf, sizeof(buf), MSG_DONTWAIT,
				     (struct sockaddr *)&from, &flen);
		if (n < 0)
			break;
		sa_unmap(&from);
		if (!sa_equal_addr((struct sockaddr *)&from, (struct sockaddr *)&t->client)) {
			t->dropped++;
			continue;
		}
		if (sa_port((struct sockaddr *)&t->client) == 0)
			t->client = from; /* the client's port: learned once */
		else if (!sa_equal((struct sockaddr *)&from, (struct sockaddr *)&t->client)) {
			t->dropped++;
			continue;
		}
		struct socks_udp_hdr h;
		struct socks_err err;
		if (socks_udp_parse(&h, buf, (size_t)n, &err) != SOCKS_DONE || h.frag != 0 ||
		    (size_t)n - h.hdrlen > TN_DGRAM_MAX) {
			t->dropped++;
			continue;
		}
		const uint8_t *p = buf + h.hdrlen;
		size_t len = (size_t)n - h.hdrlen;
		bool ok = c->dtls ? SSL_write(c->dtls, p, (int)len) > 0 || len == 0 :
				    tn_chan_queue_frame(c, p, len);
		if (!ok) {
			ERR_clear_error();
			t->dropped++;
			continue;
		}
		t->up++;
		t->upb += len;
	}
	return c->dtls ? 0 : tn_chan_flush(c);
}

/* TLS frames from the remote: 0, or -1 (closed, why in t->why). */
static int from_tls(struct tn_local *t, struct tn_chan *c)
{
	for (int k = 0; k < TN_BURST; k++) {
		int r = tn_chan_read_now(c);
		if (r < 0)
			return fail(t, 0,
				    errno ? "the remote connection failed: %s" :
					    "the remote stpd closed the tunnel%s",
				    errno ? strerror(errno) : "");
		size_t off = 0, used, dlen;
		const uint8_t *data;
		while (tunnel_frame_parse(c->in + off, c->inlen - off, &used, &data, &dlen) ==
		       SOCKS_DONE) {
			to_client(t, data, dlen);
			off += used;
		}
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
		if (c->inlen == sizeof(c->in))
			return fail(t, 0, "a frame larger than %zu bytes", sizeof(c->in));
		if (r == 0 && !SSL_pending(c->tls))
			return 0;
	}
	return 0;
}

static int from_dtls(struct tn_local *t, struct tn_chan *c)
{
	uint8_t buf[TN_DGRAM_MAX + 512];
	for (int k = 0; k < TN_BURST; k++) {
		int n = SSL_read(c->dtls, buf, sizeof(buf));
		if (n > 0) {
			to_client(t, buf, (size_t)n);
			continue;
		}
		int e = SSL_get_error(c->dtls, n);
		if (e == SSL_ERROR_WANT_READ)
			return 0;
		ERR_clear_error();
		return fail(t, 0,
			    e == SSL_ERROR_ZERO_RETURN ? "the remote stpd closed the tunnel" :
							 "DTLS error from the remote");
	}
	return 0;
}

static void relay(struct tn_local *t, struct tn_chan *c)
{
	long long last = tn_now_ms(), idle = 1000LL * t->conf.idle;
	uint64_t seen = 0;
	for (;;) {
		struct pollfd p[4] = {
			{ t->udp, POLLIN, 0 },
			{ c->tcp, (short)(POLLIN | (c->outlen ? POLLOUT : 0)), 0 },
			{ c->stopfd, POLLIN, 0 },
			{ c->dfd, POLLIN, 0 },
		};
		int np = c->dtls ? 4 : 3;
		long long left = last + idle - tn_now_ms();
		if (left <= 0) {
			fail(t, 0, "tunnel idle timeout");
			return;
		}
		if (poll(p, (nfds_t)np, left > 1000 ? 1000 : (int)left) < 0 && errno != EINTR) {
			fail(t, 0, "poll: %s", strerror(errno));
			return;
		}
		if (p[2].revents) {
			fail(t, 0, "control connection closed");
			return;
		}
		if ((p[0].revents & POLLIN) && from_client(t, c) < 0) {
			fail(t, 0, "the remote connection failed");
			return;
		}
		if (c->dtls) {
			/* the TLS control connection carries nothing now: any
			 * input or error means the remote dropped the tunnel */
			if (p[1].revents) {
				uint8_t b[64];
				if (tn_chan_read_now(c) != 0 ||
				    recv(c->tcp, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT) == 0) {
					fail(t, 0, "the remote stpd closed the tunnel");
					return;
				}
			}
			if ((p[3].revents & POLLIN) && from_dtls(t, c) < 0)
				return;
		} else {
			if ((p[1].revents & POLLOUT) && tn_chan_flush(c) < 0) {
				fail(t, 0, "the remote connection failed");
				return;
			}
			if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && from_tls(t, c) < 0)
				return;
		}
		uint64_t now_seen = t->up + t->down;
		if (now_seen != seen) {
			seen = now_seen;
			last = tn_now_ms();
		}
	}
}

static void *tn_thread(void *arg)
{
	struct tn_local *t = arg;
	struct tn_chan *c = malloc(sizeof(*c));
	if (!c) {
		fail(t, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
	} else {
		tn_chan_init(c, t->stopfd);
		if (setup(t, c) == 0) {
			atomic_store(&t->up_posted, true);
			ev_async_send(t->loop, &t->wake);
			relay(t, c);
		}
		tn_chan_close(c);
		free(c);
	}
	OPENSSL_cleanse(t->req.pass, sizeof(t->req.pass));
	OPENSSL_thread_stop();
	atomic_store(&t->down_posted, true);
	ev_async_send(t->loop, &t->wake);
	return NULL;
}

/* ---- the loop's side ---- */

static void tl_destroy(struct session *s)
{
	struct tn_local *t = session_handler_data(s);
	char far[300], remote[300];
	ev_timer_stop(t->loop, &t->body_timer);
	if (t->th_running) {
		uint64_t one = 1;
		if (write(t->stopfd, &one, sizeof(one)) < 0)
			session_warnx(s, "tunnel: stopping its thread: %s", strerror(errno));
		pthread_join(t->th, NULL);
	}
	ev_async_stop(t->loop, &t->wake);
	if (t->flow) {
		const char *why = t->why[0] ? t->why : session_close_reason(s);
		session_info(s,
			     "tunnel to %s (%s) for %s ended (%s): up=%llu/%llu down=%llu/%llu "
			     "dropped=%llu",
			     socks_addr_str(&t->req.remote, remote, sizeof(remote)),
			     tunnel_trans_name(t->req.trans),
			     socks_addr_str(&t->req.far, far, sizeof(far)), why,
			     (unsigned long long)t->up, (unsigned long long)t->upb,
			     (unsigned long long)t->down, (unsigned long long)t->downb,
			     (unsigned long long)t->dropped);
		flow_count(t->flow, t->upb, t->downb);
		flow_close(t->flow, why);
	}
	if (t->udp >= 0)
		close(t->udp);
	resolver_cancel(t->lookup);
	if (t->out_tcp >= 0)
		close(t->out_tcp);
	if (t->out_udp >= 0)
		close(t->out_udp);
	if (t->stopfd >= 0)
		close(t->stopfd);
	OPENSSL_cleanse(&t->req, sizeof(t->req));
	free(t);
}

static const struct session_cmd_ops tl_ops = { "tunnel", tl_destroy };

static void on_wake(EV_P_ ev_async *w, int revents)
{
	struct tn_local *t = w->data;
	struct session *s = t->s;
	if (atomic_load(&t->up_posted) && !t->replied) {
		struct sockaddr_storage bnd;
		socklen_t blen = sizeof(bnd);
		t->replied = true;
		getsockname(t->udp, (struct sockaddr *)&bnd, &blen);
		sa_unmap(&bnd);
		dgram_advertised(s, &bnd);
		flow_reply(t->flow, SOCKS5_REP_SUCCEEDED);
		session_info(s, "tunnel up over %s", tunnel_trans_name(t->req.trans));
		if (session_reply(s, SOCKS5_REP_SUCCEEDED, (struct sockaddr *)&bnd, false) < 0)
			return;
		session_watch_control(s, tn_quiet_control);
	}
	if (!atomic_load(&t->down_posted))
		return;
	pthread_join(t->th, NULL);
	t->th_running = false;
	if (!t->replied) {
		t->replied = true;
		flow_reply(t->flow, t->rep);
		session_warnx(s, "tunnel refused: %s", t->why);
		session_finish(s, t->rep, t->why);
		return;
	}
	session_close(s, t->why); /* copied before tl_destroy frees t */
}

static int start_thread(struct tn_local *t)
{
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* signals stay with the workers */
	int r = pthread_create(&t->th, NULL, tn_thread, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r;
}

/* The remote stpd's address is known: the sockets, the thread. */
static void launch(struct tn_local *t, const struct sockaddr *remote)
{
	struct session *s = t->s;
	struct flow *f = t->flow;
	struct dgram_params p;
	memset(&p, 0, sizeof(p));
	memcpy(&t->remote, remote, sa_len(remote));
	/* The client's datagrams come to our end of its control connection. */
	dgram_params_from_session(&p, s);
	t->client = *session_client(s);
	sa_set_port((struct sockaddr *)&t->client, 0);
	/* the client side where the client arrived, the remote's in the
	 * compartment the rule names (stpd's own namespace without) */
	t->udp = ext_open_socket(s, NULL, p.local.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
				 0);
	t->out_tcp = ext_open_socket(s, flow_rule(f), remote->sa_family,
				     SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->req.trans == TUNNEL_TRANS_DTLS)
		t->out_udp = ext_open_socket(s, flow_rule(f), remote->sa_family,
					     SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t->out_tcp < 0 || (t->req.trans == TUNNEL_TRANS_DTLS && t->out_udp < 0)) {
		flow_reply(f, SOCKS5_REP_GENERAL_FAILURE);
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "no socket toward the remote stpd");
		return;
	}
	t->stopfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (t->udp < 0 || t->stopfd < 0 ||
	    bind(t->udp, (struct sockaddr *)&p.local, sa_len((struct sockaddr *)&p.local)) < 0) {
		flow_reply(t->flow, SOCKS5_REP_GENERAL_FAILURE);
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "no UDP socket for the tunnel");
		return;
	}
	/* bursts wait here while the thread encrypts (the kernel caps it) */
	int rcvbuf = 1 << 20;
	setsockopt(t->udp, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	ev_async_init(&t->wake, on_wake);
	t->wake.data = t;
	ev_async_start(t->loop, &t->wake);
	if (start_thread(t) != 0) {
		flow_reply(t->flow, SOCKS5_REP_GENERAL_FAILURE);
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "no thread for the tunnel");
		return;
	}
	t->th_running = true;
	/* until the reply, the control connection is read only for its end */
	session_watch_control(s, tn_quiet_control);
}

/* The remote stpd by name: its first address, as a CONNECT would try. */
static void on_remote_addrs(void *ctx, int status, const struct sockaddr_storage *addrs, size_t n)
{
	struct tn_local *t = ctx;
	if (status != 0 || n == 0) {
		session_info(t->s, "tunnel: resolving the remote stpd %s failed: %s",
			     t->req.remote.u.name, status ? resolver_strerror(status) : "no address");
		flow_reply(t->flow, SOCKS5_REP_HOST_UNREACHABLE);
		session_finish(t->s, SOCKS5_REP_HOST_UNREACHABLE, "remote stpd does not resolve");
		return;
	}
	launch(t, (const struct sockaddr *)&addrs[0]);
}

static void begin(struct tn_local *t)
{
	struct session *s = t->s;
	/* a refusal finishes the session, and t with it: nothing of t after */
	struct flow *f = tn_flow_open(s, RULE_CMD_TUNNEL, TUNNEL_CMD_SETUP, &t->req.remote, NULL);
	if (!f)
		return;
	t->flow = f;
	struct sockaddr_storage sa;
	socklen_t len = 0;
	if (sa_from_socks(&sa, &len, &t->req.remote) == 0) {
		launch(t, (const struct sockaddr *)&sa);
		return;
	}
	/* while the name is looked up, the control connection is read only
	 * for its end, as later */
	session_watch_control(s, tn_quiet_control);
	if (resolver_lookup(session_resolver_for(s, flow_rule(f)), t->req.remote.u.name,
			    t->req.remote.port, on_remote_addrs, t, &t->lookup) < 0) {
		flow_reply(f, SOCKS5_REP_GENERAL_FAILURE);
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "too many DNS look-ups pending");
	}
}

static enum socks_res parse_setup(void *out, const uint8_t *p, size_t n, size_t *used,
				  struct socks_err *err)
{
	return tunnel_setup_parse(out, p, n, used, err);
}

static void body_input(struct session *s)
{
	struct tn_local *t = session_handler_data(s);
	if (tn_read_body(s, TUNNEL_CMD_SETUP, parse_setup, &t->req, &t->body_timer,
			 "SETUP_UDP_TUNNEL"))
		begin(t);
}

static void on_body_timeout(EV_P_ ev_timer *w, int revents)
{
	struct tn_local *t = w->data;
	session_finish(t->s, SOCKS5_REP_GENERAL_FAILURE, "tunnel request body timeout");
}

void tn_local_start(struct session *s)
{
	struct tn_local *t = calloc(1, sizeof(*t));
	if (!t) {
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	t->s = s;
	t->loop = session_loop(s);
	t->conf = *tn_conf_get(session_conf(s));
	t->udp = t->stopfd = -1;
	t->out_tcp = t->out_udp = -1;
	session_set_handler(s, &tl_ops, t);
	tn_body_timer(s, &t->body_timer, on_body_timeout, t);
	session_watch_control(s, body_input);
	body_input(s);
}
