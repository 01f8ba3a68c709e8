/*
 * test_client_mcast.c - libstp's multicast client (src/client/mcast*.c)
 * against frames made the way stpd's relay makes them (src/mcrypto, the
 * library both link): what one side seals the other opens, a membership
 * drops its own frames, replays and forgeries, and the JOIN / LEAVE /
 * notice exchange with a scripted proxy maps every reply to its error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/mcast.h"
#include "mcrypto/mc_crypt.h"
#include "mcrypto/mc_replay.h"

static const uint8_t suites[] = { MCAST_SUITE_AES256GCM, MCAST_SUITE_CHACHA20 };

/* A membership as a JOIN with reply rep would leave it, random keys. */
static struct stp_mcast *member(uint8_t rep, uint8_t suite)
{
	struct stp_mcast *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	m->ctl = m->rx = m->tx = -1;
	m->rep = rep;
	m->encrypted = suite != MCAST_SUITE_NONE;
	m->key.suite = suite;
	m->key.member_id = 7;
	assert_int_equal(mc_random(m->key.send_key, MCAST_KEY_LEN), 0);
	assert_int_equal(mc_random(m->key.recv_key, MCAST_KEY_LEN), 0);
	assert_int_equal(mcast_crypto_init(m), 0);
	return m;
}

/* A relay frame sealed by stpd's code: origin, seq, from 10.0.0.9:1234. */
static size_t relay_frame(struct mc_aead *a, const struct stp_mcast *m, uint32_t origin,
			  uint64_t seq, const char *pt, uint8_t *out, size_t cap)
{
	struct mcast_frame f = { .kind = MCAST_KIND_RELAY, .id = origin, .seq = seq };

	f.src.atyp = SOCKS_ATYP_IPV4;
	memcpy(f.src.u.v4, (uint8_t[]){ 10, 0, 0, 9 }, 4);
	f.src.port = 1234;
	size_t n = mc_frame_seal(a, m->key.suite, m->key.recv_key, &f, (const uint8_t *)pt,
				 strlen(pt), out, cap);
	assert_true(n > 0);
	return n;
}

/* ---- member frames: libstp seals, stpd opens ---- */

static void test_seal_opens_in_stpd(void **state)
{
	for (size_t s = 0; s < sizeof(suites); s++) {
		struct stp_mcast *m = member(SOCKS5_REP_SUCCEEDED, suites[s]);
		struct mc_aead *a = mc_aead_new();
		struct mc_replay win = { 0 };
		uint8_t frame[256], pt[256];

		for (uint64_t i = 1; i <= 3; i++) {
			char msg[32];
			int len = snprintf(msg, sizeof(msg), "payload %llu", (unsigned long long)i);
			size_t n = stp_mcast_seal(m, msg, (size_t)len, frame, sizeof(frame));
			struct mcast_frame f;
			assert_int_equal(n, MCAST_MHDR_LEN + (size_t)len + MCAST_TAG_LEN);
			assert_int_equal(mcast_frame_parse(&f, frame, n, NULL), SOCKS_DONE);
			assert_int_equal(f.kind, MCAST_KIND_MEMBER);
			assert_int_equal(f.id, 7);
			assert_int_equal(f.seq, i); /* SEQ from 1, one per frame */
			assert_true(mc_replay_check(&win, f.seq));
			assert_int_equal(mc_frame_open(a, suites[s], m->key.send_key, &f, frame, n, pt,
						       sizeof(pt)),
					 len);
			mc_replay_update(&win, f.seq);
			assert_memory_equal(pt, msg, (size_t)len);
			/* The receive key does not open it: keys are not interchangeable. */
			assert_int_equal(mc_frame_open(a, suites[s], m->key.recv_key, &f, frame, n, pt,
						       sizeof(pt)),
					 -1);
		}
		mc_aead_free(a);
		stp_mcast_close(m);
	}
}

static void test_seal_refusals(void **state)
{
	struct stp_mcast *m = member(SOCKS5_REP_MCAST_NO_SEND, MCAST_SUITE_AES256GCM);
	uint8_t frame[64];

	/* A receive-only member has no send key: nothing to seal. */
	assert_int_equal(stp_mcast_seal(m, "x", 1, frame, sizeof(frame)), 0);
	m->rep = SOCKS5_REP_SUCCEEDED;
	/* Too small for header + payload + tag; the sequence number is kept. */
	assert_int_equal(stp_mcast_seal(m, "x", 1, frame, MCAST_MHDR_LEN + MCAST_TAG_LEN), 0);
	assert_int_equal(m->seq, 0);
	assert_int_equal(stp_mcast_seal(m, "x", 1, frame, MCAST_MHDR_LEN + 1 + MCAST_TAG_LEN),
			 MCAST_MHDR_LEN + 1 + MCAST_TAG_LEN);
	assert_int_equal(m->seq, 1);
	stp_mcast_close(m);
}

/* ---- relay frames: stpd seals, libstp opens ---- */

static void test_open_stpd_frames(void **state)
{
	for (size_t s = 0; s < sizeof(suites); s++) {
		struct stp_mcast *m = member(SOCKS5_REP_SUCCEEDED, suites[s]);
		struct mc_aead *a = mc_aead_new();
		uint8_t frame[256], copy[256];
		struct stp_addr from;
		size_t len, n = relay_frame(a, m, 0, 5, "from outside", frame, sizeof(frame));
		char text[STP_ADDR_STR_MAX];

		memcpy(copy, frame, n);
		/* MSG_PEEK: opens, but the frame stays new. */
		assert_int_equal(stp_mcast_open(m, frame, n, &len, &from, STP_MCAST_PEEK), 21);
		memcpy(frame, copy, n);
		ssize_t off = stp_mcast_open(m, frame, n, &len, &from, 0);
		assert_int_equal(off, MCAST_MHDR_LEN + 1 + 4 + 2);
		assert_int_equal(len, 12);
		assert_memory_equal(frame + off, "from outside", 12);
		assert_string_equal(stp_addr_str(&from, text, sizeof(text)), "10.0.0.9:1234");
		/* The same frame again is a replay. */
		memcpy(frame, copy, n);
		assert_int_equal(stp_mcast_open(m, frame, n, &len, &from, 0), -1);
		mc_aead_free(a);
		stp_mcast_close(m);
	}
}

static void test_open_drops(void **state)
{
	struct stp_mcast *m = member(SOCKS5_REP_SUCCEEDED, MCAST_SUITE_CHACHA20);
	struct mc_aead *a = mc_aead_new();
	uint8_t frame[256];
	size_t len, n;

	/* Every flipped bit (header included: it is the AAD) is dropped, and a
	 * forgery does not move the window: the genuine frame still opens. */
	n = relay_frame(a, m, 0, 9, "genuine", frame, sizeof(frame));
	for (size_t i = 0; i < n; i++) {
		uint8_t bad[256];
		memcpy(bad, frame, n);
		bad[i] ^= 0x10;
		assert_int_equal(stp_mcast_open(m, bad, n, &len, NULL, 0), -1);
	}
	assert_true(stp_mcast_open(m, frame, n, &len, NULL, 0) > 0);
	/* Our own packet copied back to the inside (ORIGIN = our id). */
	n = relay_frame(a, m, 7, 10, "mine", frame, sizeof(frame));
	assert_int_equal(stp_mcast_open(m, frame, n, &len, NULL, 0), -1);
	/* Another member's packet is fine. */
	n = relay_frame(a, m, 8, 11, "peer", frame, sizeof(frame));
	assert_true(stp_mcast_open(m, frame, n, &len, NULL, 0) > 0);
	/* SEQ 0, and 64 or more below the highest seen. */
	n = relay_frame(a, m, 0, 0, "zero", frame, sizeof(frame));
	assert_int_equal(stp_mcast_open(m, frame, n, &len, NULL, 0), -1);
	n = relay_frame(a, m, 0, 200, "far ahead", frame, sizeof(frame));
	assert_true(stp_mcast_open(m, frame, n, &len, NULL, 0) > 0);
	n = relay_frame(a, m, 0, 136, "too old", frame, sizeof(frame));
	assert_int_equal(stp_mcast_open(m, frame, n, &len, NULL, 0), -1);
	n = relay_frame(a, m, 0, 137, "just in", frame, sizeof(frame));
	assert_true(stp_mcast_open(m, frame, n, &len, NULL, 0) > 0);
	/* A member frame is not a relay frame; a truncated one is nothing. */
	m->seq = 0;
	n = stp_mcast_seal(m, "member", 6, frame, sizeof(frame));
	assert_int_equal(stp_mcast_open(m, frame, n, &len, NULL, 0), -1);
	n = relay_frame(a, m, 0, 300, "short", frame, sizeof(frame));
	assert_int_equal(stp_mcast_open(m, frame, MCAST_MHDR_LEN + 7 + 3, &len, NULL, 0), -1);
	/* A send-only member has no receive key. */
	m->rep = SOCKS5_REP_MCAST_NO_RECV;
	n = relay_frame(a, m, 0, 301, "not for you", frame, sizeof(frame));
	assert_int_equal(stp_mcast_open(m, frame, n, &len, NULL, 0), -1);
	mc_aead_free(a);
	stp_mcast_close(m);
}

static void test_no_encryption(void **state)
{
	struct stp_mcast *m = member(SOCKS5_REP_SUCCEEDED, MCAST_SUITE_NONE);
	struct mc_aead *a = mc_aead_new();
	uint8_t frame[64], pt[64];
	struct mcast_frame f;
	size_t len;

	size_t n = stp_mcast_seal(m, "clear", 5, frame, sizeof(frame));
	assert_int_equal(n, MCAST_MHDR_LEN + 5);
	assert_int_equal(mcast_frame_parse(&f, frame, n, NULL), SOCKS_DONE);
	assert_int_equal(f.id, 0); /* no MEMBER_ID without encryption */
	assert_int_equal(mc_frame_open(a, MCAST_SUITE_NONE, m->key.send_key, &f, frame, n, pt,
				       sizeof(pt)),
			 5);
	n = relay_frame(a, m, 0, 1, "plain", frame, sizeof(frame));
	ssize_t off = stp_mcast_open(m, frame, n, &len, NULL, 0);
	assert_true(off > 0);
	assert_int_equal(len, 5);
	assert_memory_equal(frame + off, "plain", 5);
	mc_aead_free(a);
	stp_mcast_close(m);
}

/* ---- JOIN, LEAVE and notices against a scripted proxy ---- */

struct script {
	int lfd;                 /* listening TCP socket on 127.0.0.1 */
	uint8_t request[64];     /* the JOIN it must receive */
	size_t request_len;
	uint8_t reply[128];
	size_t reply_len;
	enum { AFTER_LEAVE, AFTER_NOTICE, AFTER_CLOSE } after;
	bool leave_ok;           /* the LEAVE bytes were right */
	bool request_ok;
};

static bool read_n(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = recv(fd, p + got, n - got, 0);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

static void *proxy_main(void *arg)
{
	struct script *s = arg;
	uint8_t buf[128];
	int fd = accept(s->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (read_n(fd, buf, 3) && send(fd, "\x05\x00", 2, 0) == 2 &&
	    read_n(fd, buf, s->request_len)) {
		s->request_ok = memcmp(buf, s->request, s->request_len) == 0;
		send(fd, s->reply, s->reply_len, 0);
	}
	if (s->after == AFTER_LEAVE && read_n(fd, buf, 10)) {
		/* LEAVE names M.ADDR:M.PORT; the reply is plain. */
		s->leave_ok = memcmp(buf, "\x05\x06\x00\x01\xef\x01\x02\x03\x13\x88", 10) == 0;
		buf[1] = 0x00;
		send(fd, buf, 10, 0);
		read_n(fd, buf, 1); /* until the client closes */
	} else if (s->after == AFTER_NOTICE) {
		send(fd, "\x05\xb4\x00\x01\xef\x01\x02\x03\x13\x88", 10, 0);
	}
	close(fd);
	return NULL;
}

struct harness {
	struct script s;
	pthread_t t;
	struct stp_proxy proxy;
	int relay;     /* UDP 127.0.0.1:P, where member frames arrive */
	uint16_t port; /* P */
};

static void harness_start(struct harness *h, const uint8_t *reply, size_t rlen, int after)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	char url[64];

	memset(h, 0, sizeof(*h));
	/* JOIN 239.1.2.3:5000 */
	memcpy(h->s.request, "\x05\x05\x00\x01\xef\x01\x02\x03\x13\x88", 10);
	h->s.request_len = 10;
	h->s.after = after;
	h->relay = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(bind(h->relay, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(h->relay, (struct sockaddr *)&a, &len), 0);
	h->port = ntohs(a.sin_port);
	/* The reply: the caller's bytes, with PORT (bytes 8-9) set to P. */
	memcpy(h->s.reply, reply, rlen);
	h->s.reply_len = rlen;
	h->s.reply[8] = (uint8_t)(h->port >> 8);
	h->s.reply[9] = (uint8_t)h->port;
	h->s.lfd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_port = 0;
	assert_int_equal(bind(h->s.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(h->s.lfd, 1), 0);
	len = sizeof(a);
	assert_int_equal(getsockname(h->s.lfd, (struct sockaddr *)&a, &len), 0);
	snprintf(url, sizeof(url), "socks5://127.0.0.1:%u", ntohs(a.sin_port));
	assert_int_equal(stp_proxy_parse(&h->proxy, url, NULL), 0);
	assert_int_equal(pthread_create(&h->t, NULL, proxy_main, &h->s), 0);
}

static void harness_stop(struct harness *h)
{
	pthread_join(h->t, NULL);
	close(h->s.lfd);
	close(h->relay);
}

/* VER REP RSV ATYP 239.255.0.1 PORT(patched) LEN [SUITE FLAGS ID=3 SEND_KEY] */
static size_t reply_send_only(uint8_t *r, uint8_t rep, uint8_t flags)
{
	memcpy(r, "\x05\x00\x00\x01\xef\xff\x00\x01\x00\x00", 10);
	r[1] = rep;
	r[10] = 6 + 32;
	r[11] = MCAST_SUITE_AES256GCM;
	r[12] = flags;
	memcpy(r + 13, "\x00\x00\x00\x03", 4);
	for (int i = 0; i < 32; i++)
		r[17 + i] = (uint8_t)(0xa0 + i);
	return 17 + 32;
}

static void test_join_send_leave(void **state)
{
	struct harness h;
	uint8_t reply[128], frame[256], pt[64];
	size_t rlen = reply_send_only(reply, SOCKS5_REP_MCAST_NO_RECV, MCAST_KEYF_SEND);
	enum stp_err err;
	char text[STP_ADDR_STR_MAX];

	harness_start(&h, reply, rlen, AFTER_LEAVE);
	struct stp_mcast *m = stp_mcast_join(&h.proxy, "239.1.2.3", 5000, NULL, STP_MCAST_SEND,
					     NULL, 5000, &err);
	assert_non_null(m);
	assert_int_equal(err, STP_OK);
	assert_true(h.s.request_ok);
	assert_true(stp_mcast_can_send(m));
	assert_false(stp_mcast_can_recv(m));
	assert_int_equal(stp_mcast_fd(m), -1); /* nothing to receive */
	snprintf(text, sizeof(text), "239.255.0.1:%u", h.port);
	char got[STP_ADDR_STR_MAX];
	assert_string_equal(stp_addr_str(stp_mcast_intranet(m), got, sizeof(got)), text);
	snprintf(text, sizeof(text), "127.0.0.1:%u", h.port);
	assert_string_equal(stp_addr_str(stp_mcast_relay(m), got, sizeof(got)), text);
	assert_int_equal(stp_mcast_recv(m, pt, sizeof(pt), NULL, 0, &err), -1);
	assert_int_equal(err, STP_ERR_MCAST_NO_RECV);

	/* A datagram reaches the relay port sealed under the SEND_KEY. */
	assert_int_equal(stp_mcast_send(m, "to the group", 12, &err), 12);
	ssize_t n = recv(h.relay, frame, sizeof(frame), 0);
	struct mcast_frame f;
	struct mc_aead *a = mc_aead_new();
	assert_int_equal(mcast_frame_parse(&f, frame, (size_t)n, NULL), SOCKS_DONE);
	assert_int_equal(f.id, 3);
	assert_int_equal(f.seq, 1);
	assert_int_equal(mc_frame_open(a, MCAST_SUITE_AES256GCM, reply + 17, &f, frame, (size_t)n,
				       pt, sizeof(pt)),
			 12);
	assert_memory_equal(pt, "to the group", 12);
	mc_aead_free(a);

	assert_int_equal(stp_mcast_check(m, &err), 0);
	assert_int_equal(stp_mcast_leave(m, 5000, &err), 0);
	assert_true(h.s.leave_ok);
	/* Over: sending now fails. */
	assert_int_equal(stp_mcast_send(m, "late", 4, &err), -1);
	stp_mcast_close(m);
	harness_stop(&h);
}

static void test_notice_ends_membership(void **state)
{
	struct harness h;
	uint8_t reply[128];
	size_t rlen = reply_send_only(reply, SOCKS5_REP_MCAST_NO_RECV, MCAST_KEYF_SEND);
	enum stp_err err;

	harness_start(&h, reply, rlen, AFTER_NOTICE);
	struct stp_mcast *m = stp_mcast_join(&h.proxy, "239.1.2.3", 5000, NULL, 0, NULL, 5000,
					     &err);
	assert_non_null(m);
	harness_stop(&h); /* the notice is sent and the connection closed */
	assert_int_equal(stp_mcast_check(m, &err), -1);
	assert_int_equal(err, STP_ERR_MCAST_TIME);
	assert_int_equal(stp_mcast_send(m, "x", 1, &err), -1);
	assert_int_equal(err, STP_ERR_MCAST_TIME);
	stp_mcast_close(m);

	/* EOF without a notice. */
	harness_start(&h, reply, rlen, AFTER_CLOSE);
	m = stp_mcast_join(&h.proxy, "239.1.2.3", 5000, NULL, 0, NULL, 5000, &err);
	assert_non_null(m);
	harness_stop(&h);
	assert_int_equal(stp_mcast_check(m, &err), -1);
	assert_int_equal(err, STP_ERR_PROXY_CLOSED);
	stp_mcast_close(m);
}

static void join_expect(const uint8_t *reply, size_t rlen, unsigned flags, enum stp_err want)
{
	struct harness h;
	enum stp_err err = STP_OK;

	harness_start(&h, reply, rlen, AFTER_CLOSE);
	struct stp_mcast *m = stp_mcast_join(&h.proxy, "239.1.2.3", 5000, NULL, flags, NULL, 5000,
					     &err);
	assert_null(m);
	assert_int_equal(err, want);
	harness_stop(&h);
}

static void test_join_refusals(void **state)
{
	uint8_t r[128];
	size_t n;

	/* X'B2' with LEN 0, X'B6' and X'02' without LEN. */
	memcpy(r, "\x05\xb2\x00\x01\xef\x01\x02\x03\x13\x88\x00", 11);
	join_expect(r, 11, 0, STP_ERR_MCAST_REFUSED);
	r[1] = 0xb6;
	join_expect(r, 10, 0, STP_ERR_MCAST_NOT_GROUP);
	r[1] = 0x02;
	join_expect(r, 10, 0, STP_ERR_REP_NOT_ALLOWED);
	/* Granted send only, but receiving was required. */
	n = reply_send_only(r, SOCKS5_REP_MCAST_NO_RECV, MCAST_KEYF_SEND);
	join_expect(r, n, STP_MCAST_RECV, STP_ERR_MCAST_NO_RECV);
	/* FLAGS that do not match REP, a short KEY, EOF inside it. */
	n = reply_send_only(r, SOCKS5_REP_SUCCEEDED, MCAST_KEYF_SEND);
	join_expect(r, n, 0, STP_ERR_PROTOCOL);
	n = reply_send_only(r, SOCKS5_REP_MCAST_NO_RECV, MCAST_KEYF_SEND);
	r[10] = 37;
	join_expect(r, n - 1, 0, STP_ERR_PROTOCOL);
	n = reply_send_only(r, SOCKS5_REP_MCAST_NO_RECV, MCAST_KEYF_SEND);
	join_expect(r, n - 5, 0, STP_ERR_PROXY_CLOSED);
}

static void test_join_arguments(void **state)
{
	struct stp_proxy p;
	struct stp_mcast_filter f = { .mode = STP_MCAST_INCLUDE };
	enum stp_err err;

	assert_int_equal(stp_proxy_parse(&p, "socks5://127.0.0.1:9", NULL), 0);
	assert_null(stp_mcast_join(&p, "not-an-address", 5000, NULL, 0, NULL, 100, &err));
	assert_int_equal(err, STP_ERR_TARGET_NAME);
	assert_null(stp_mcast_join(&p, NULL, 0, NULL, 0, NULL, 100, &err));
	assert_int_equal(err, STP_ERR_INVALID);
	/* INCLUDE needs a source; sources have the group's family. */
	assert_null(stp_mcast_join(&p, "239.1.2.3", 5000, NULL, 0, &f, 100, &err));
	assert_int_equal(err, STP_ERR_INVALID);
	f.nsrc = 1;
	f.src[0].ss_family = AF_INET6;
	assert_null(stp_mcast_join(&p, "239.1.2.3", 5000, NULL, 0, &f, 100, &err));
	assert_int_equal(err, STP_ERR_INVALID);
	assert_int_equal(stp_proxy_parse(&p, "socks4://127.0.0.1:9", NULL), 0);
	assert_null(stp_mcast_join(&p, "239.1.2.3", 5000, NULL, 0, NULL, 100, &err));
	assert_int_equal(err, STP_ERR_UNSUPPORTED);
}

/* JOIN X'85' carries the filter block after M.PORT. */
static void test_join_filter_bytes(void **state)
{
	struct harness h;
	uint8_t reply[128];
	size_t rlen = reply_send_only(reply, SOCKS5_REP_MCAST_NO_RECV, MCAST_KEYF_SEND);
	struct stp_mcast_filter f = { .mode = STP_MCAST_INCLUDE, .nsrc = 2 };
	struct sockaddr_in *s = (struct sockaddr_in *)&f.src[0];
	enum stp_err err;

	s->sin_family = AF_INET;
	inet_pton(AF_INET, "10.1.1.1", &s->sin_addr);
	s = (struct sockaddr_in *)&f.src[1];
	s->sin_family = AF_INET;
	inet_pton(AF_INET, "10.1.1.2", &s->sin_addr);
	harness_start(&h, reply, rlen, AFTER_CLOSE);
	memcpy(h.s.request, "\x05\x85\x00\x01\xef\x01\x02\x03\x13\x88\x01\x02"
			    "\x01\x0a\x01\x01\x01\x01\x0a\x01\x01\x02", 22);
	h.s.request_len = 22;
	struct stp_mcast *m = stp_mcast_join(&h.proxy, "239.1.2.3", 5000, NULL, 0, &f, 5000, &err);
	assert_non_null(m);
	harness_stop(&h);
	assert_true(h.s.request_ok);
	stp_mcast_close(m);
}

static void test_error_texts(void **state)
{
	for (int e = STP_ERR_MCAST_NO_SEND; e <= STP_ERR_MCAST_IDLE; e++)
		assert_non_null(strstr(stp_strerror((enum stp_err)e), "multicast"));
	assert_int_equal(mcast_rep_err(0xb0), STP_ERR_MCAST_NO_SEND);
	assert_int_equal(mcast_rep_err(0xb3), STP_ERR_MCAST_BANDWIDTH);
	assert_int_equal(mcast_rep_err(0xb5), STP_ERR_MCAST_IDLE);
	assert_int_equal(mcast_rep_err(0x07), STP_ERR_REP_CMD_NOT_SUPPORTED);
	assert_int_equal(mcast_rep_err(0xc0), STP_ERR_REP_OTHER);
	assert_int_equal(stp_err_errno(STP_ERR_MCAST_REFUSED), EACCES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_opens_in_stpd),
		cmocka_unit_test(test_seal_refusals),
		cmocka_unit_test(test_open_stpd_frames),
		cmocka_unit_test(test_open_drops),
		cmocka_unit_test(test_no_encryption),
		cmocka_unit_test(test_join_send_leave),
		cmocka_unit_test(test_notice_ends_membership),
		cmocka_unit_test(test_join_refusals),
		cmocka_unit_test(test_join_arguments),
		cmocka_unit_test(test_join_filter_bytes),
		cmocka_unit_test(test_error_texts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
