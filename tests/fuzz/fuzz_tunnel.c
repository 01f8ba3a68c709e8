/*
 * fuzz_tunnel.c - SETUP_UDP_TUNNEL's messages (src/proto/tunnel.c): the
 * X'20' request, the X'21' request, X'21''s reply for each transport, and
 * the TLS-transport frame. What parses is written back, equal to the input
 * (RSV zeroed), and parses the same again.
 */
#include <string.h>

#include "fuzz_check.h"
#include "proto/tunnel.h"

static enum socks_res setup(void *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err)
{
	return tunnel_setup_parse(out, p, n, used, err);
}

static enum socks_res relay(void *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err)
{
	return tunnel_relay_parse(out, p, n, used, err);
}

static enum socks_res reply_dtls(void *out, const uint8_t *p, size_t n, size_t *used,
				 struct socks_err *err)
{
	return tunnel_relay_reply_parse(out, TUNNEL_TRANS_DTLS, p, n, used, err);
}

static enum socks_res reply_tls(void *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err)
{
	return tunnel_relay_reply_parse(out, TUNNEL_TRANS_TLS, p, n, used, err);
}

/* buf[0..n) equals data[0..n) but for RSV (byte 2), which writers zero. */
static void same_but_rsv(const uint8_t *buf, const uint8_t *data, size_t n)
{
	FUZZ_CHECK(n >= 3 && buf[0] == data[0] && buf[1] == data[1] && buf[2] == 0);
	FUZZ_CHECK(memcmp(buf + 3, data + 3, n - 3) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tunnel_setup ts, ts2;
	struct tunnel_relay tr;
	struct tunnel_relay_reply rr;
	uint8_t buf[TUNNEL_SETUP_MAX];
	size_t used, used2;
	struct socks_err err;

	if (fuzz_check_stream(setup, &ts, sizeof(ts), data, size, TUNNEL_SETUP_MAX, &used) ==
	    SOCKS_DONE) {
		FUZZ_CHECK(tunnel_setup_write(buf, sizeof(buf), &ts) == used);
		same_but_rsv(buf, data, used);
		memset(&ts2, 0, sizeof(ts2));
		FUZZ_CHECK(tunnel_setup_parse(&ts2, buf, used, &used2, &err) == SOCKS_DONE);
		FUZZ_CHECK(used2 == used && ts2.cred == ts.cred && ts2.trans == ts.trans);
		FUZZ_CHECK(strcmp(ts2.user, ts.user) == 0 && strcmp(ts2.pass, ts.pass) == 0);
	}
	if (fuzz_check_stream(relay, &tr, sizeof(tr), data, size, TUNNEL_RELAY_MAX, &used) ==
	    SOCKS_DONE) {
		FUZZ_CHECK(tunnel_relay_write(buf, sizeof(buf), &tr) == used);
		same_but_rsv(buf, data, used);
	}
	if (fuzz_check_stream(reply_dtls, &rr, sizeof(rr), data, size, TUNNEL_RELAY_REPLY_MAX,
			      &used) == SOCKS_DONE) {
		FUZZ_CHECK(rr.has_token == (rr.rep == SOCKS5_REP_SUCCEEDED));
		FUZZ_CHECK(tunnel_relay_reply_write(buf, sizeof(buf), &rr) == used);
		same_but_rsv(buf, data, used);
	}
	if (fuzz_check_stream(reply_tls, &rr, sizeof(rr), data, size, TUNNEL_RELAY_REPLY_MAX,
			      &used) == SOCKS_DONE)
		FUZZ_CHECK(!rr.has_token);
	const uint8_t *d = NULL;
	size_t len = 0;
	if (tunnel_frame_parse(data, size, &used, &d, &len) == SOCKS_DONE)
		FUZZ_CHECK(used == len + TUNNEL_FRAME_HDR && d == data + 2 && used <= size);
	return 0;
}
