/*
 * fuzz_dnsq.c - DNS QUERY X'F2' framing (src/proto/dnsq.c): LEN MSG after
 * the request (the query) and after the second reply (the answer). The
 * first input byte picks the parser:
 *   even  the query frame (LEN 12..1232)
 *   odd   the answer frame (LEN 12..65535)
 * Both must keep the stream contract (fuzz_check.c); a frame parsed is
 * written back byte for byte.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto/dnsq.h"

static enum socks_res query_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			       struct socks_err *err)
{
	return dnsq_query_parse(out, p, n, used, err);
}

static enum socks_res answer_fn(void *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err)
{
	return dnsq_answer_parse(out, p, n, used, err);
}

static void fuzz_frame(fuzz_parse_fn fn, size_t max, const uint8_t *data, size_t size)
{
	struct dnsq_frame f;
	size_t used;

	if (fuzz_check_stream(fn, &f, sizeof(f), data, size, DNSQ_FRAME_HDR + max, &used) !=
	    SOCKS_DONE)
		return;
	FUZZ_CHECK(f.off == DNSQ_FRAME_HDR && used == f.off + f.len);
	FUZZ_CHECK(f.len >= DNSQ_MSG_MIN && f.len <= max);
	uint8_t *buf = malloc(used);
	FUZZ_CHECK(buf != NULL);
	FUZZ_CHECK(dnsq_frame_write(buf, used, data + f.off, f.len) == used);
	FUZZ_CHECK(memcmp(buf, data, used) == 0);
	FUZZ_CHECK(dnsq_frame_write(buf, used - 1, data + f.off, f.len) == 0);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_frame(answer_fn, DNSQ_ANSWER_MAX, data + 1, size - 1);
	else
		fuzz_frame(query_fn, DNSQ_QUERY_MAX, data + 1, size - 1);
	return 0;
}
