/*
 * fuzz_mcast.c - the multicast extension's codec (src/proto/mcast.c).
 * The first input byte picks the parser, the rest is its input:
 *   0  JOIN/LEAVE request (stream contract, written back byte for byte)
 *   1  reply to a JOIN (the second byte: 0 for X'05', 1 for X'06')
 *   2  datagram header (whole datagrams: DONE or BAD, never MORE)
 *   3  KEY block (given whole)
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto/mcast.h"

#define MCAST_REQUEST_MAX (SOCKS5_REQUEST_MAX + 2 + MCAST_SOURCES_MAX * 17)

static uint8_t reply_cmd;

static enum socks_res req_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			     struct socks_err *err)
{
	return mcast_request_parse(out, p, n, used, err);
}

static enum socks_res rep_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			     struct socks_err *err)
{
	return mcast_reply_parse(out, reply_cmd, p, n, used, err);
}

static void fuzz_request(const uint8_t *data, size_t size)
{
	struct mcast_request r, again;
	uint8_t buf[MCAST_REQUEST_MAX];
	size_t used, used2;
	struct socks_err err;

	if (fuzz_check_stream(req_fn, &r, sizeof(r), data, size, MCAST_REQUEST_MAX, &used) !=
	    SOCKS_DONE)
		return;
	FUZZ_CHECK(mcast_request_write(buf, sizeof(buf), &r) == used);
	FUZZ_CHECK(buf[0] == data[0] && buf[1] == data[1] && buf[2] == 0);
	FUZZ_CHECK(memcmp(buf + 3, data + 3, used - 3) == 0);
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(mcast_request_parse(&again, buf, used, &used2, &err) == SOCKS_DONE);
	FUZZ_CHECK(used2 == used && memcmp(&again, &r, sizeof(r)) == 0);
}

static void fuzz_reply(const uint8_t *data, size_t size)
{
	struct mcast_reply r;
	uint8_t buf[MCAST_REPLY_MAX];
	size_t used;

	if (size < 1)
		return;
	reply_cmd = data[0] & 1 ? SOCKS_CMD_LEAVE_MCAST : SOCKS_CMD_JOIN_MCAST;
	if (fuzz_check_stream(rep_fn, &r, sizeof(r), data + 1, size - 1, MCAST_REPLY_MAX, &used) !=
	    SOCKS_DONE)
		return;
	FUZZ_CHECK(r.has_key == mcast_reply_has_key(reply_cmd, r.rep));
	size_t n = mcast_reply_write(buf, sizeof(buf), reply_cmd, r.rep, &r.addr,
				     r.encrypted ? &r.key : NULL);
	FUZZ_CHECK(n == used);
	FUZZ_CHECK(buf[1] == data[2] && memcmp(buf + 3, data + 4, used - 3) == 0);
}

static void fuzz_frame(const uint8_t *data, size_t size)
{
	uint8_t *d = fuzz_dup(data, size);
	struct mcast_frame f, g;
	struct socks_err err = { 0, NULL };
	uint8_t buf[MCAST_RHDR_MAX];

	memset(&f, 0, sizeof(f));
	enum socks_res r = mcast_frame_parse(&f, size ? d : d + 1, size, &err);
	free(d);
	FUZZ_CHECK(r == SOCKS_DONE || r == SOCKS_BAD);
	if (r == SOCKS_BAD) {
		FUZZ_CHECK(err.why != NULL);
		return;
	}
	FUZZ_CHECK(f.hdrlen <= size && f.hdrlen <= MCAST_RHDR_MAX);
	FUZZ_CHECK(mcast_frame_hdr_write(buf, sizeof(buf), &f) == f.hdrlen);
	FUZZ_CHECK(memcmp(buf, data, f.hdrlen) == 0);
	memset(&g, 0, sizeof(g));
	FUZZ_CHECK(mcast_frame_parse(&g, buf, f.hdrlen, &err) == SOCKS_DONE);
	FUZZ_CHECK(memcmp(&g, &f, sizeof(f)) == 0);
}

static void fuzz_keyblock(const uint8_t *data, size_t size)
{
	uint8_t *d = fuzz_dup(data, size);
	struct mcast_keyblock k;
	struct socks_err err = { 0, NULL };
	uint8_t buf[MCAST_KEYBLOCK_MAX];

	enum socks_res r = mcast_keyblock_parse(&k, size ? d : d + 1, size, &err);
	free(d);
	FUZZ_CHECK(r == SOCKS_DONE || r == SOCKS_BAD);
	if (r == SOCKS_DONE) {
		FUZZ_CHECK(mcast_keyblock_write(buf, sizeof(buf), &k) == size);
		FUZZ_CHECK(memcmp(buf, data, size) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0: fuzz_request(data + 1, size - 1); break;
	case 1: fuzz_reply(data + 1, size - 1); break;
	case 2: fuzz_frame(data + 1, size - 1); break;
	default: fuzz_keyblock(data + 1, size - 1); break;
	}
	return 0;
}
