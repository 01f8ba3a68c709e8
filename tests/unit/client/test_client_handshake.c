/*
 * test_client_handshake.c - the non-blocking engine (src/client/handshake.c)
 * against a scripted fake proxy on a socketpair: every message fed one
 * byte at a time, replies cut at every point, sends forced to be partial,
 * and the bytes after each reply checked to still be in the socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fakeproxy.h"

/* ---- wire bytes, written out by hand (not by the codec under test) ---- */

static const uint8_t GREET_NONE[] = { 0x05, 0x01, 0x00 };
static const uint8_t GREET_AUTH[] = { 0x05, 0x02, 0x00, 0x02 };
static const uint8_t CHOOSE_NONE[] = { 0x05, 0x00 };
static const uint8_t CHOOSE_AUTH[] = { 0x05, 0x02 };
static const uint8_t CHOOSE_NOACCEPT[] = { 0x05, 0xFF };
static const uint8_t AUTH_ALICE[] = { 0x01, 5, 'a', 'l', 'i', 'c', 'e', 6, 's', '3', 'c', 'r', 'e', 't' };
static const uint8_t AUTH_OK[] = { 0x01, 0x00 };
static const uint8_t AUTH_BAD[] = { 0x01, 0x01 };
/* CONNECT 192.0.2.7:80 */
static const uint8_t REQ_V4[] = { 0x05, 0x01, 0x00, 0x01, 192, 0, 2, 7, 0x00, 0x50 };
/* CONNECT web.test:443 */
static const uint8_t REQ_NAME[] = { 0x05, 0x01, 0x00, 0x03, 8, 'w', 'e', 'b', '.', 't', 'e', 's', 't',
				    0x01, 0xBB };
/* BIND, expected peer 192.0.2.7:80 */
static const uint8_t REQ_BIND[] = { 0x05, 0x02, 0x00, 0x01, 192, 0, 2, 7, 0x00, 0x50 };
/* UDP ASSOCIATE from 0.0.0.0:0 */
static const uint8_t REQ_UDP[] = { 0x05, 0x03, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };
/* succeeded, BND 10.0.0.1:1080 */
static const uint8_t REP_V4[] = { 0x05, 0x00, 0x00, 0x01, 10, 0, 0, 1, 0x04, 0x38 };
/* succeeded, BND bound:4660 */
static const uint8_t REP_NAME[] = { 0x05, 0x00, 0x00, 0x03, 5, 'b', 'o', 'u', 'n', 'd', 0x12, 0x34 };
/* succeeded, BND [::1]:8080 */
static const uint8_t REP_V6[] = { 0x05, 0x00, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0,
				  0, 0, 0, 0, 0, 0, 0, 1, 0x1F, 0x90 };
/* second BIND reply: peer 198.51.100.9:40000 */
static const uint8_t REP_PEER[] = { 0x05, 0x00, 0x00, 0x01, 198, 51, 100, 9, 0x9C, 0x40 };
/* SOCKS4 CONNECT 192.0.2.7:80, USERID bob */
static const uint8_t REQ4_V4[] = { 0x04, 0x01, 0x00, 0x50, 192, 0, 2, 7, 'b', 'o', 'b', 0 };
/* SOCKS4a CONNECT web.test:80, empty USERID */
static const uint8_t REQ4A_NAME[] = { 0x04, 0x01, 0x00, 0x50, 0, 0, 0, 1, 0,
				      'w', 'e', 'b', '.', 't', 'e', 's', 't', 0 };
/* SOCKS4 BIND 192.0.2.7:80, empty USERID */
static const uint8_t REQ4_BIND[] = { 0x04, 0x02, 0x00, 0x50, 192, 0, 2, 7, 0 };
static const uint8_t REP4_OK[] = { 0x00, 90, 0x1F, 0x90, 10, 0, 0, 2 };
static const uint8_t REP4_PEER[] = { 0x00, 90, 0x9C, 0x40, 198, 51, 100, 9 };

static const uint8_t APPDATA[] = "HTTP/1.1 200 OK\r\n"; /* what the target sends first */

static struct stp_proxy proxy_of(const char *url)
{
	struct stp_proxy p;
	assert_int_equal(stp_proxy_parse(&p, url, NULL), 0);
	return p;
}

static struct sockaddr_in target_v4(void)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(80) };
	inet_pton(AF_INET, "192.0.2.7", &s.sin_addr);
	return s;
}

static void start(struct fake *f, const char *url, enum stp_cmd cmd, const char *host,
		  uint16_t port, bool use_sa)
{
	struct stp_proxy p = proxy_of(url);
	struct sockaddr_in sa = target_v4();
	enum stp_err err = STP_ERR_COUNT;

	fake_open(f);
	assert_int_equal(stp_handshake_init(&f->h, &p, f->cli, cmd, host, port,
					    use_sa ? (struct sockaddr *)&sa : NULL, &err), 0);
	assert_int_equal(stp_handshake_events(&f->h), POLLOUT);
}

static void assert_addr(const struct stp_addr *a, const char *want)
{
	char text[STP_ADDR_STR_MAX];
	assert_string_equal(stp_addr_str(a, text, sizeof(text)), want);
}

/* Concatenates a and b into out (for "reply + application data"). */
static size_t cat(uint8_t *out, const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	memcpy(out, a, an);
	memcpy(out + an, b, bn);
	return an + bn;
}

/* ---- SOCKS5 ---- */

static void test_connect_v4_bytewise(void **state)
{
	struct fake f;
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_V4, REP_V4) };

	start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
	assert_int_equal(fake_run(&f, x, 2, true), STP_DONE);
	assert_int_equal(stp_handshake_events(&f.h), 0);
	assert_string_equal(stp_handshake_state(&f.h), "DONE");
	assert_addr(&f.h.bound, "10.0.0.1:1080");
	/* done is sticky */
	assert_int_equal(stp_handshake_step(&f.h), STP_DONE);
	fake_close(&f);
}

/* The reply and the target's first bytes arrive in one segment: the
 * engine must leave the latter in the socket. */
static void test_connect_never_reads_past_reply(void **state)
{
	const uint8_t *replies[] = { REP_V4, REP_NAME, REP_V6 };
	const size_t lens[] = { sizeof(REP_V4), sizeof(REP_NAME), sizeof(REP_V6) };

	for (size_t i = 0; i < 3; i++) {
		struct fake f;
		uint8_t buf[64];
		size_t n = cat(buf, replies[i], lens[i], APPDATA, sizeof(APPDATA));
		const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC_LAST(REQ_V4) };

		start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
		assert_int_equal(fake_run(&f, x, 2, false), STP_WANT_READ);
		assert_int_equal(fake_feed(&f, buf, n, false), STP_DONE);
		fake_check_trailing(&f, APPDATA, sizeof(APPDATA));
		fake_close(&f);
	}
}

/* The whole reply + data stream cut in two at every point. */
static void test_reply_every_cut(void **state)
{
	uint8_t buf[64];
	size_t n = cat(buf, REP_NAME, sizeof(REP_NAME), APPDATA, sizeof(APPDATA));

	for (size_t cut = 1; cut < sizeof(REP_NAME); cut++) {
		struct fake f;
		const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC_LAST(REQ_V4) };

		start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
		fake_run(&f, x, 2, false);
		assert_int_equal(fake_feed(&f, buf, cut, false), STP_WANT_READ);
		assert_int_equal(fake_feed(&f, buf + cut, n - cut, false), STP_DONE);
		assert_addr(&f.h.bound, "bound:4660");
		fake_check_trailing(&f, APPDATA, sizeof(APPDATA));
		fake_close(&f);
	}
}

static void test_connect_name_with_auth_bytewise(void **state)
{
	struct fake f;
	const struct xchg x[] = { XC(GREET_AUTH, CHOOSE_AUTH), XC(AUTH_ALICE, AUTH_OK),
				  XC(REQ_NAME, REP_NAME) };

	start(&f, "socks5h://alice:s3cret@proxy", STP_CMD_CONNECT, "web.test", 443, false);
	assert_int_equal(fake_run(&f, x, 3, true), STP_DONE);
	assert_addr(&f.h.bound, "bound:4660");
	fake_close(&f);
}

/* Credentials given, but the proxy wants none: fine, no RFC 1929 round. */
static void test_auth_offered_none_chosen(void **state)
{
	struct fake f;
	const struct xchg x[] = { XC(GREET_AUTH, CHOOSE_NONE), XC(REQ_NAME, REP_V4) };

	start(&f, "socks5h://alice:s3cret@proxy", STP_CMD_CONNECT, "web.test", 443, false);
	assert_int_equal(fake_run(&f, x, 2, true), STP_DONE);
	fake_close(&f);
}

static void test_auth_failed(void **state)
{
	struct fake f;
	const struct xchg x[] = { XC(GREET_AUTH, CHOOSE_AUTH), XC(AUTH_ALICE, AUTH_BAD) };

	start(&f, "socks5h://alice:s3cret@proxy", STP_CMD_CONNECT, "web.test", 443, false);
	assert_int_equal(fake_run(&f, x, 2, true), STP_ERROR);
	assert_int_equal(f.h.err, STP_ERR_AUTH_FAILED);
	assert_int_equal(stp_handshake_events(&f.h), 0);
	assert_int_equal(stp_handshake_step(&f.h), STP_ERROR); /* sticky */
	fake_close(&f);
}

static void test_no_acceptable_method(void **state)
{
	struct fake f;
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NOACCEPT) };

	start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
	assert_int_equal(fake_run(&f, x, 1, true), STP_ERROR);
	assert_int_equal(f.h.err, STP_ERR_NO_METHOD);
	fake_close(&f);
}

/* USERPASS chosen though we offered only NONE; GSSAPI never offered. */
static void test_unoffered_method(void **state)
{
	const uint8_t choices[][2] = { { 0x05, 0x02 }, { 0x05, 0x01 }, { 0x05, 0x86 } };

	for (size_t i = 0; i < 3; i++) {
		struct fake f;
		start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
		fake_expect(&f, GREET_NONE, sizeof(GREET_NONE));
		assert_int_equal(fake_feed(&f, choices[i], 2, true), STP_ERROR);
		assert_int_equal(f.h.err, STP_ERR_PROTOCOL);
		fake_close(&f);
	}
}

/* Every reply code lands on its own error, with the BND still parsed. */
static void test_every_reply_code(void **state)
{
	for (unsigned rep = 1; rep <= 0x0A; rep++) {
		struct fake f;
		uint8_t reply[sizeof(REP_V4)];
		const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC_LAST(REQ_V4) };

		memcpy(reply, REP_V4, sizeof(reply));
		reply[1] = (uint8_t)rep;
		start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
		fake_run(&f, x, 2, true);
		assert_int_equal(fake_feed(&f, reply, sizeof(reply), true), STP_ERROR);
		assert_int_equal(f.h.rep, rep);
		if (rep <= 9) {
			assert_int_equal(f.h.err, STP_ERR_REP_GENERAL_FAILURE + (int)rep - 1);
			assert_int_equal(stp_err_rep(f.h.err), (int)rep);
		} else {
			assert_int_equal(f.h.err, STP_ERR_REP_OTHER);
		}
		fake_close(&f);
	}
}

static void test_bad_reply_version(void **state)
{
	struct fake f;
	const uint8_t bad[] = { 0x04, 0x00 };
	const struct xchg x[] = { XC(GREET_NONE, bad) };

	start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
	assert_int_equal(fake_run(&f, x, 1, false), STP_ERROR);
	assert_int_equal(f.h.err, STP_ERR_PROTOCOL);
	fake_close(&f);
}

static void test_bad_reply_atyp(void **state)
{
	struct fake f;
	const uint8_t bad[] = { 0x05, 0x00, 0x00, 0x07, 0x00 };
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_V4, bad) };

	start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
	assert_int_equal(fake_run(&f, x, 2, true), STP_ERROR);
	assert_int_equal(f.h.err, STP_ERR_PROTOCOL);
	fake_close(&f);
}

/* The proxy hangs up half-way through its reply. */
static void test_proxy_closes_mid_reply(void **state)
{
	struct fake f;
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC_LAST(REQ_V4) };

	start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
	fake_run(&f, x, 2, true);
	assert_int_equal(fake_feed(&f, REP_V4, 6, true), STP_WANT_READ);
	shutdown(f.srv, SHUT_WR);
	assert_int_equal(stp_handshake_step(&f.h), STP_ERROR);
	assert_int_equal(f.h.err, STP_ERR_PROXY_CLOSED);
	fake_close(&f);
}

static void test_bind_two_replies(void **state)
{
	struct fake f;
	uint8_t buf[64];
	size_t n = cat(buf, REP_PEER, sizeof(REP_PEER), APPDATA, sizeof(APPDATA));
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_BIND, REP_V4) };

	start(&f, "socks5://127.0.0.1", STP_CMD_BIND, "192.0.2.7", 80, false);
	assert_int_equal(fake_run(&f, x, 2, true), STP_BOUND);
	assert_addr(&f.h.bound, "10.0.0.1:1080");
	assert_int_equal(stp_handshake_events(&f.h), POLLIN);
	/* nothing yet: still waiting */
	assert_int_equal(stp_handshake_step(&f.h), STP_WANT_READ);
	assert_int_equal(fake_feed(&f, buf, sizeof(REP_PEER) - 1, true), STP_WANT_READ);
	assert_int_equal(fake_feed(&f, buf + sizeof(REP_PEER) - 1, n - sizeof(REP_PEER) + 1, false),
			 STP_DONE);
	assert_addr(&f.h.peer, "198.51.100.9:40000");
	assert_addr(&f.h.bound, "10.0.0.1:1080");
	fake_check_trailing(&f, APPDATA, sizeof(APPDATA));
	fake_close(&f);
}

static void test_bind_second_reply_refused(void **state)
{
	struct fake f;
	uint8_t second[sizeof(REP_PEER)];
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_BIND, REP_V4) };

	memcpy(second, REP_PEER, sizeof(second));
	second[1] = 0x06; /* TTL expired: stpd's accept timeout */
	start(&f, "socks5://127.0.0.1", STP_CMD_BIND, "192.0.2.7", 80, false);
	assert_int_equal(fake_run(&f, x, 2, false), STP_BOUND);
	assert_int_equal(fake_feed(&f, second, sizeof(second), true), STP_ERROR);
	assert_int_equal(f.h.err, STP_ERR_REP_TTL_EXPIRED);
	fake_close(&f);
}

static void test_udp_associate(void **state)
{
	struct fake f;
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_UDP, REP_V6) };

	start(&f, "socks5://127.0.0.1", STP_CMD_UDP_ASSOCIATE, NULL, 0, false);
	assert_int_equal(fake_run(&f, x, 2, true), STP_DONE);
	assert_addr(&f.h.bound, "[::1]:8080");
	fake_close(&f);
}

/* TRANSPARENT X'04' (stp_handshake_transparent): UDP to 192.0.2.7:80 from
 * 10.0.0.9:5300, and TCP to web.test:443 through socks5h. */
static const uint8_t REQ_TP_V4[] = { 0x05, 0x04, 0x00, 0x01, 192, 0, 2, 7, 0x00, 0x50,
				     0x11, 0x01, 10, 0, 0, 9, 0x14, 0xB4 };
static const uint8_t REQ_TP_NAME[] = { 0x05, 0x04, 0x00, 0x03, 8, 'w', 'e', 'b', '.', 't', 'e',
				       's', 't', 0x01, 0xBB, 0x06, 0x01, 10, 0, 0, 9, 0x14, 0xB4 };
static const uint8_t REP_PTCL[] = { 0x05, 0x09, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };

static struct sockaddr_in source_v4(void)
{
	struct sockaddr_in s = { .sin_family = AF_INET, .sin_port = htons(5300) };
	inet_pton(AF_INET, "10.0.0.9", &s.sin_addr);
	return s;
}

static void test_transparent(void **state)
{
	struct fake f;
	struct sockaddr_in src = source_v4();
	enum stp_err err;
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_TP_V4, REP_V4) };
	const struct xchg y[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_TP_NAME, REP_PTCL) };

	start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
	assert_int_equal(stp_handshake_transparent(&f.h, STP_PTCL_UDP, (struct sockaddr *)&src,
						   &err), 0);
	assert_int_equal(fake_run(&f, x, 2, true), STP_DONE);
	assert_addr(&f.h.bound, "10.0.0.1:1080");
	fake_close(&f);

	start(&f, "socks5h://127.0.0.1", STP_CMD_CONNECT, "web.test", 443, false);
	assert_int_equal(stp_handshake_transparent(&f.h, STP_PTCL_TCP, (struct sockaddr *)&src,
						   &err), 0);
	assert_int_equal(fake_run(&f, y, 2, false), STP_ERROR);
	assert_int_equal(f.h.err, STP_ERR_REP_PTCL_NOT_SUPPORTED);
	assert_int_equal(f.h.rep, 0x09);
	fake_close(&f);

	/* SOCKS4 has no TRANSPARENT */
	start(&f, "socks4://127.0.0.1", STP_CMD_CONNECT, NULL, 0, true);
	assert_int_equal(stp_handshake_transparent(&f.h, STP_PTCL_UDP, (struct sockaddr *)&src,
						   &err), -1);
	assert_int_equal(err, STP_ERR_UNSUPPORTED);
	fake_close(&f);
}

/* SETUP_UDP_TUNNEL X'20' with the engine (stp_handshake_tunnel, what stpify
 * sends on the program's socket): remote 10.80.3.1:1443, DTLS, gwa/secret,
 * the far endpoint by name as written; B's refusal X'0D' comes back. */
static const uint8_t REQ_TUN[] = { 0x05, 0x20, 0x00, 0x01, 10, 80, 3, 1, 0x05, 0xA3,
				   0x01, 0x01, 0x01, 3, 'g', 'w', 'a', 6, 's', 'e', 'c', 'r',
				   'e', 't', 0x03, 7, 'n', 's', '.', 'b', '.', 't', 't', 0x00,
				   53 };
static const uint8_t REP_TUN_REFUSED[] = { 0x05, 0x0D, 0x00, 0x01, 0, 0, 0, 0, 0, 0 };

static void test_tunnel(void **state)
{
	struct fake f;
	enum stp_err err;
	const struct stp_tunnel_opts o = { .remote_host = "10.80.3.1", .remote_port = 1443,
					   .transport = STP_TUNNEL_DTLS, .user = "gwa",
					   .password = "secret", .far_host = "ns.b.tt",
					   .far_port = 53 };
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_TUN, REP_V4) };
	const struct xchg y[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_TUN, REP_TUN_REFUSED) };

	start(&f, "socks5://127.0.0.1", STP_CMD_UDP_ASSOCIATE, NULL, 0, true);
	assert_int_equal(stp_handshake_tunnel(&f.h, &o, &err), 0);
	assert_int_equal(fake_run(&f, x, 2, true), STP_DONE);
	assert_addr(&f.h.bound, "10.0.0.1:1080");
	fake_close(&f);

	start(&f, "socks5://127.0.0.1", STP_CMD_UDP_ASSOCIATE, NULL, 0, true);
	assert_int_equal(stp_handshake_tunnel(&f.h, &o, &err), 0);
	assert_int_equal(fake_run(&f, y, 2, false), STP_ERROR);
	assert_int_equal(f.h.err, STP_ERR_REP_OTHER);
	assert_int_equal(f.h.rep, 0x0D);
	fake_close(&f);

	/* no far endpoint: refused before anything is sent */
	struct stp_tunnel_opts bad = o;
	bad.far_host = NULL;
	start(&f, "socks5://127.0.0.1", STP_CMD_UDP_ASSOCIATE, NULL, 0, true);
	assert_int_equal(stp_handshake_tunnel(&f.h, &bad, &err), -1);
	assert_int_equal(err, STP_ERR_INVALID);
	assert_int_equal(stp_handshake_tunnel(&f.h, NULL, &err), -1);
	fake_close(&f);
}

/* ---- partial writes ---- */

/* The hooks' own state, reached through ctx: no global, so two
 * handshakes on one thread keep their counts apart. */
struct dribble {
	unsigned calls;  /* send calls, EAGAIN on every other one */
	unsigned recvs;
	int fd;          /* the fd the engine must pass with this ctx */
};

/* One byte per call, and EAGAIN on every other call. */
static ssize_t send_dribble(void *ctx, int fd, const void *buf, size_t len, int flags)
{
	struct dribble *d = ctx;

	assert_int_equal(fd, d->fd);
	if (d->calls++ % 2 == 0) {
		errno = EAGAIN;
		return -1;
	}
	assert_true(flags & MSG_DONTWAIT);
	return send(fd, buf, len > 0 ? 1 : 0, flags);
}

static ssize_t recv_checked(void *ctx, int fd, void *buf, size_t len, int flags)
{
	struct dribble *d = ctx;

	assert_int_equal(fd, d->fd);
	d->recvs++;
	assert_true(flags & MSG_DONTWAIT);
	return recv(fd, buf, len, flags);
}

static void test_partial_writes(void **state)
{
	struct fake f;
	struct dribble d = { 0 };
	const struct xchg x[] = { XC(GREET_AUTH, CHOOSE_AUTH), XC(AUTH_ALICE, AUTH_OK),
				  XC(REQ_NAME, REP_NAME) };

	start(&f, "socks5h://alice:s3cret@proxy", STP_CMD_CONNECT, "web.test", 443, false);
	d.fd = f.cli;
	stp_handshake_set_io(&f.h, &(struct stp_io){ send_dribble, recv_checked, &d });
	assert_int_equal(fake_run(&f, x, 3, true), STP_DONE);
	/* one WANT_WRITE per byte of GREET_AUTH + AUTH_ALICE + REQ_NAME */
	size_t sent = sizeof(GREET_AUTH) + sizeof(AUTH_ALICE) + sizeof(REQ_NAME);
	assert_int_equal(f.want_write, sent);
	assert_int_equal(d.calls, 2 * sent);
	assert_true(d.recvs > 0);
	fake_close(&f);
}

/* Two handshakes stepped in turn on one thread, each with its own ctx:
 * every call lands in its own handshake's state (a hook without ctx
 * needs a global for that, and the two would share it). */
static void test_io_ctx_per_handshake(void **state)
{
	struct fake a, b;
	struct dribble da = { 0 }, db = { 0 };
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_V4, REP_V4) };

	start(&a, "socks5://127.0.0.1", STP_CMD_CONNECT, "192.0.2.7", 80, false);
	start(&b, "socks5://127.0.0.1", STP_CMD_CONNECT, "192.0.2.7", 80, false);
	da.fd = a.cli;
	db.fd = b.cli;
	stp_handshake_set_io(&a.h, &(struct stp_io){ send_dribble, recv_checked, &da });
	stp_handshake_set_io(&b.h, &(struct stp_io){ send_dribble, recv_checked, &db });
	/* b's first send: EAGAIN, counted on db only. */
	assert_int_equal(stp_handshake_step(&b.h), STP_WANT_WRITE);
	assert_int_equal(db.calls, 1);
	assert_int_equal(da.calls, 0);
	assert_int_equal(fake_run(&a, x, 2, false), STP_DONE);
	assert_int_equal(db.calls, 1);
	assert_int_equal(fake_run(&b, x, 2, false), STP_DONE);
	assert_int_equal(da.calls, 2 * (sizeof(GREET_NONE) + sizeof(REQ_V4)));
	fake_close(&a);
	fake_close(&b);
}

/* NULL (or NULL functions) brings libc's send and recv back. */
static void test_io_reset(void **state)
{
	struct fake f;
	struct dribble d = { 0 };
	const struct xchg x[] = { XC(GREET_NONE, CHOOSE_NONE), XC(REQ_V4, REP_V4) };

	start(&f, "socks5://127.0.0.1", STP_CMD_CONNECT, "192.0.2.7", 80, false);
	stp_handshake_set_io(&f.h, &(struct stp_io){ send_dribble, recv_checked, &d });
	stp_handshake_set_io(&f.h, NULL);
	assert_int_equal(fake_run(&f, x, 2, false), STP_DONE);
	assert_int_equal(d.calls + d.recvs, 0);
	assert_int_equal(f.want_write, 0);
	fake_close(&f);
}

/* ---- SOCKS4 and 4a ---- */

static void test_socks4_connect(void **state)
{
	struct fake f;
	uint8_t buf[64];
	size_t n = cat(buf, REP4_OK, sizeof(REP4_OK), APPDATA, sizeof(APPDATA));

	start(&f, "socks4://bob@127.0.0.1", STP_CMD_CONNECT, "192.0.2.7", 80, false);
	fake_expect(&f, REQ4_V4, sizeof(REQ4_V4));
	assert_int_equal(fake_feed(&f, buf, n, false), STP_DONE);
	assert_addr(&f.h.bound, "10.0.0.2:8080");
	fake_check_trailing(&f, APPDATA, sizeof(APPDATA));
	fake_close(&f);
}

static void test_socks4a_name_bytewise(void **state)
{
	struct fake f;
	const struct xchg x[] = { XC(REQ4A_NAME, REP4_OK) };

	start(&f, "socks4a://127.0.0.1", STP_CMD_CONNECT, "web.test", 80, false);
	assert_int_equal(fake_run(&f, x, 1, true), STP_DONE);
	fake_close(&f);
}

static void test_socks4_rejections(void **state)
{
	const struct {
		uint8_t code;
		enum stp_err err;
	} rows[] = {
		{ 91, STP_ERR_SOCKS4_REJECTED },
		{ 92, STP_ERR_SOCKS4_NO_IDENTD },
		{ 93, STP_ERR_SOCKS4_IDENT_MISMATCH },
		{ 94, STP_ERR_PROTOCOL },
	};

	for (size_t i = 0; i < 4; i++) {
		struct fake f;
		uint8_t reply[8] = { 0x00, rows[i].code, 0, 0, 0, 0, 0, 0 };

		start(&f, "socks4://127.0.0.1", STP_CMD_BIND, "192.0.2.7", 80, false);
		fake_expect(&f, REQ4_BIND, sizeof(REQ4_BIND));
		assert_int_equal(fake_feed(&f, reply, 8, true), STP_ERROR);
		assert_int_equal(f.h.err, rows[i].err);
		assert_int_equal(f.h.rep, rows[i].code);
		fake_close(&f);
	}
}

static void test_socks4_bind(void **state)
{
	struct fake f;
	const struct xchg x[] = { XC(REQ4_BIND, REP4_OK) };

	start(&f, "socks4://127.0.0.1", STP_CMD_BIND, NULL, 0, true);
	assert_int_equal(fake_run(&f, x, 1, true), STP_BOUND);
	assert_addr(&f.h.bound, "10.0.0.2:8080");
	assert_int_equal(fake_feed(&f, REP4_PEER, sizeof(REP4_PEER), true), STP_DONE);
	assert_addr(&f.h.peer, "198.51.100.9:40000");
	fake_close(&f);
}

/* ---- init refusals ---- */

static void test_init_refusals(void **state)
{
	struct stp_handshake h;
	enum stp_err err;
	struct stp_proxy p4 = proxy_of("socks4://127.0.0.1");
	struct stp_proxy p4a = proxy_of("socks4a://127.0.0.1");
	struct stp_proxy p5h = proxy_of("socks5h://127.0.0.1");
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(1) };
	struct sockaddr_un_like { sa_family_t f; char path[20]; } su = { AF_UNIX, "x" };
	char longname[300];

	assert_int_equal(stp_handshake_init(&h, &p4, 3, STP_CMD_CONNECT, "::1", 80, NULL, &err), -1);
	assert_int_equal(err, STP_ERR_TARGET_FAMILY);
	assert_int_equal(stp_handshake_init(&h, &p4a, 3, STP_CMD_CONNECT, NULL, 0,
					    (struct sockaddr *)&s6, &err), -1);
	assert_int_equal(err, STP_ERR_TARGET_FAMILY);
	assert_int_equal(stp_handshake_init(&h, &p4a, 3, STP_CMD_UDP_ASSOCIATE, NULL, 0, NULL, &err),
			 -1);
	assert_int_equal(err, STP_ERR_UNSUPPORTED);
	memset(longname, 'a', 256);
	longname[256] = '\0';
	assert_int_equal(stp_handshake_init(&h, &p5h, 3, STP_CMD_CONNECT, longname, 80, NULL, &err),
			 -1);
	assert_int_equal(err, STP_ERR_TARGET_NAME);
	longname[255] = '\0';
	assert_int_equal(stp_handshake_init(&h, &p5h, 3, STP_CMD_CONNECT, longname, 80, NULL, &err),
			 0);
	assert_int_equal(stp_handshake_init(&h, &p5h, 3, STP_CMD_CONNECT, "", 80, NULL, &err), -1);
	assert_int_equal(err, STP_ERR_TARGET_NAME);
	assert_int_equal(stp_handshake_init(&h, &p5h, 3, STP_CMD_CONNECT, NULL, 0,
					    (struct sockaddr *)&su, &err), -1);
	assert_int_equal(err, STP_ERR_TARGET_FAMILY);
	assert_int_equal(stp_handshake_init(&h, &p5h, -1, STP_CMD_CONNECT, "x", 1, NULL, &err), -1);
	assert_int_equal(err, STP_ERR_INVALID);
	assert_int_equal(stp_handshake_init(&h, &p5h, 3, (enum stp_cmd)9, "x", 1, NULL, &err), -1);
	assert_int_equal(err, STP_ERR_INVALID);
	/* an IPv6 literal goes to a SOCKS5 proxy as ATYP 4, not as a name */
	assert_int_equal(stp_handshake_init(&h, &p5h, 3, STP_CMD_CONNECT, "[::1]", 80, NULL, &err),
			 0);
	assert_int_equal(h.req[3], 0x04);
}

/* A connect to a closed port: the failure shows on the first I/O and is
 * reported as "proxy unreachable", not as an I/O error. */
static void test_proxy_unreachable(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	struct stp_proxy p = proxy_of("socks5://127.0.0.1");
	struct stp_handshake h;
	int l = socket(AF_INET, SOCK_STREAM, 0), fd;
	enum stp_step r;

	/* A port that was free a moment ago: bind, learn it, close. */
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &len), 0);
	close(l);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		skip();
	assert_int_equal(stp_handshake_init(&h, &p, fd, STP_CMD_CONNECT, "192.0.2.1", 1, NULL, NULL), 0);
	for (int i = 0; i < 100; i++) {
		r = stp_handshake_step(&h);
		if (r != STP_WANT_READ && r != STP_WANT_WRITE)
			break;
		struct pollfd pf = { .fd = fd, .events = stp_handshake_events(&h) };
		poll(&pf, 1, 1000);
	}
	assert_int_equal(r, STP_ERROR);
	assert_int_equal(h.err, STP_ERR_PROXY_UNREACHABLE);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_v4_bytewise),
		cmocka_unit_test(test_connect_never_reads_past_reply),
		cmocka_unit_test(test_reply_every_cut),
		cmocka_unit_test(test_connect_name_with_auth_bytewise),
		cmocka_unit_test(test_auth_offered_none_chosen),
		cmocka_unit_test(test_auth_failed),
		cmocka_unit_test(test_no_acceptable_method),
		cmocka_unit_test(test_unoffered_method),
		cmocka_unit_test(test_every_reply_code),
		cmocka_unit_test(test_bad_reply_version),
		cmocka_unit_test(test_bad_reply_atyp),
		cmocka_unit_test(test_proxy_closes_mid_reply),
		cmocka_unit_test(test_bind_two_replies),
		cmocka_unit_test(test_bind_second_reply_refused),
		cmocka_unit_test(test_udp_associate),
		cmocka_unit_test(test_transparent),
		cmocka_unit_test(test_tunnel),
		cmocka_unit_test(test_partial_writes),
		cmocka_unit_test(test_io_ctx_per_handshake),
		cmocka_unit_test(test_io_reset),
		cmocka_unit_test(test_socks4_connect),
		cmocka_unit_test(test_socks4a_name_bytewise),
		cmocka_unit_test(test_socks4_rejections),
		cmocka_unit_test(test_socks4_bind),
		cmocka_unit_test(test_init_refusals),
		cmocka_unit_test(test_proxy_unreachable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
