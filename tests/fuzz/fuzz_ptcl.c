/*
 * fuzz_ptcl.c - TRANSPARENT (CMD X'04') requests: the whole request and
 * the trailer PTCL S.ATYP S.ADDR S.PORT alone (src/proto/ptcl.c).
 */
#include <string.h>

#include "fuzz_check.h"

static enum socks_res tp_request(void *out, const uint8_t *p, size_t n, size_t *used,
				 struct socks_err *err)
{
	return socks5_tp_request_parse(out, p, n, used, err);
}

static enum socks_res trailer(void *out, const uint8_t *p, size_t n, size_t *used,
			      struct socks_err *err)
{
	return socks_ptcl_parse(out, p, n, used, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks5_tp_request req, again;
	struct socks_ptcl tr;
	uint8_t buf[SOCKS5_TP_REQUEST_MAX];
	size_t used, used2;
	struct socks_err err;

	if (fuzz_check_stream(tp_request, &req, sizeof(req), data, size, SOCKS5_TP_REQUEST_MAX,
			      &used) == SOCKS_DONE) {
		FUZZ_CHECK(req.has_ptcl == (req.req.cmd == SOCKS_CMD_TRANSPARENT));
		if (req.has_ptcl) {
			/* Written back: the input with RSV zeroed, parsing the same. */
			FUZZ_CHECK(socks5_tp_request_write(buf, sizeof(buf), &req.req.dst,
							   req.ext.ptcl, &req.ext.src) == used);
			FUZZ_CHECK(buf[0] == data[0] && buf[1] == data[1] && buf[2] == 0);
			FUZZ_CHECK(memcmp(buf + 3, data + 3, used - 3) == 0);
			memset(&again, 0, sizeof(again));
			FUZZ_CHECK(socks5_tp_request_parse(&again, buf, used, &used2, &err) ==
				   SOCKS_DONE);
			FUZZ_CHECK(used2 == used && memcmp(&again, &req, sizeof(req)) == 0);
		} else {
			FUZZ_CHECK(used <= SOCKS5_REQUEST_MAX);
		}
	}
	if (fuzz_check_stream(trailer, &tr, sizeof(tr), data, size, SOCKS_PTCL_TRAILER_MAX,
			      &used) == SOCKS_DONE) {
		FUZZ_CHECK(socks_ptcl_write(buf, sizeof(buf), tr.ptcl, &tr.src) == used);
		FUZZ_CHECK(memcmp(buf, data, used) == 0);
	}
	return 0;
}
