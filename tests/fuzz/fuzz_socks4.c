/*
 * fuzz_socks4.c - SOCKS4/4a request and reply parsers.
 */
#include <string.h>

#include "fuzz_check.h"

static enum socks_res request(void *out, const uint8_t *p, size_t n, size_t *used,
			      struct socks_err *err)
{
	return socks4_request_parse(out, p, n, used, err);
}

static enum socks_res reply(void *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err)
{
	return socks4_reply_parse(out, p, n, used, err);
}

static void check_request(const struct socks4_request *req, const uint8_t *data, size_t used)
{
	struct socks4_request again;
	uint8_t buf[SOCKS4_REQUEST_MAX];
	size_t used2;
	struct socks_err err;

	FUZZ_CHECK(req->dst.atyp == SOCKS_ATYP_IPV4 || req->dst.atyp == SOCKS_ATYP_DOMAIN);
	FUZZ_CHECK(strlen(req->userid) <= 255);
	FUZZ_CHECK(socks4_request_write(buf, sizeof(buf), req->cmd, &req->dst, req->userid) ==
		   used);
	/* Identical but for the 4a marker, which the writer sets to 0.0.0.1. */
	FUZZ_CHECK(memcmp(buf, data, 7) == 0 && memcmp(buf + 8, data + 8, used - 8) == 0);
	FUZZ_CHECK(buf[7] == data[7] || req->dst.atyp == SOCKS_ATYP_DOMAIN);
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(socks4_request_parse(&again, buf, used, &used2, &err) == SOCKS_DONE);
	FUZZ_CHECK(used2 == used && memcmp(&again, req, sizeof(again)) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks4_request req;
	struct socks4_reply rep;
	uint8_t buf[SOCKS4_REPLY_LEN];
	size_t used;

	if (fuzz_check_stream(request, &req, sizeof(req), data, size, SOCKS4_REQUEST_MAX, &used) ==
	    SOCKS_DONE)
		check_request(&req, data, used);
	if (fuzz_check_stream(reply, &rep, sizeof(rep), data, size, SOCKS4_REPLY_LEN, &used) ==
	    SOCKS_DONE) {
		FUZZ_CHECK(socks4_reply_write(buf, sizeof(buf), rep.rep, rep.port, rep.ip) == used);
		FUZZ_CHECK(memcmp(buf, data, used) == 0);
	}
	return 0;
}
