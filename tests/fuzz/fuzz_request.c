/*
 * fuzz_request.c - SOCKS5 request and bare address parsers.
 */
#include <string.h>

#include "fuzz_check.h"

static enum socks_res request(void *out, const uint8_t *p, size_t n, size_t *used,
			      struct socks_err *err)
{
	return socks5_request_parse(out, p, n, used, err);
}

static enum socks_res addr(void *out, const uint8_t *p, size_t n, size_t *used,
			   struct socks_err *err)
{
	return socks_addr_parse(out, p, n, used, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks5_request req, again;
	struct socks_addr a;
	uint8_t buf[SOCKS5_REQUEST_MAX];
	size_t used, used2;
	struct socks_err err;

	if (fuzz_check_stream(request, &req, sizeof(req), data, size, SOCKS5_REQUEST_MAX, &used) ==
	    SOCKS_DONE) {
		/* Written back, it is the input with RSV zeroed ... */
		FUZZ_CHECK(socks5_request_write(buf, sizeof(buf), req.cmd, &req.dst) == used);
		FUZZ_CHECK(buf[0] == data[0] && buf[1] == data[1] && buf[2] == 0);
		FUZZ_CHECK(memcmp(buf + 3, data + 3, used - 3) == 0);
		/* ... and parses to the same request. */
		memset(&again, 0, sizeof(again));
		FUZZ_CHECK(socks5_request_parse(&again, buf, used, &used2, &err) == SOCKS_DONE);
		FUZZ_CHECK(used2 == used && memcmp(&again, &req, sizeof(req)) == 0);
	}
	if (fuzz_check_stream(addr, &a, sizeof(a), data, size, SOCKS_ADDR_MAX, &used) ==
	    SOCKS_DONE) {
		FUZZ_CHECK(socks_addr_wire_len(&a) == used);
		FUZZ_CHECK(socks_addr_write(buf, sizeof(buf), &a) == used);
		FUZZ_CHECK(memcmp(buf, data, used) == 0);
	}
	return 0;
}
