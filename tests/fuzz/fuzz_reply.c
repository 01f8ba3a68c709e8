/*
 * fuzz_reply.c - SOCKS5 reply parser (client side).
 */
#include <string.h>

#include "fuzz_check.h"

static enum socks_res reply(void *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err)
{
	return socks5_reply_parse(out, p, n, used, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks5_reply rep, again;
	uint8_t buf[SOCKS5_REPLY_MAX];
	size_t used, used2;
	struct socks_err err;

	if (fuzz_check_stream(reply, &rep, sizeof(rep), data, size, SOCKS5_REPLY_MAX, &used) !=
	    SOCKS_DONE)
		return 0;
	FUZZ_CHECK(socks5_reply_write(buf, sizeof(buf), rep.rep, &rep.bnd) == used);
	FUZZ_CHECK(buf[0] == data[0] && buf[1] == data[1] && buf[2] == 0);
	FUZZ_CHECK(memcmp(buf + 3, data + 3, used - 3) == 0);
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(socks5_reply_parse(&again, buf, used, &used2, &err) == SOCKS_DONE);
	FUZZ_CHECK(used2 == used && memcmp(&again, &rep, sizeof(rep)) == 0);
	return 0;
}
