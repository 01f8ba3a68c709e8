/*
 * fuzz_n2.c - N2 messages between the control side and a relay
 * (src/proto/n2.c). The stream contract over every prefix, then a DONE
 * message is written back byte for byte and parses to the same fields.
 */
#include <string.h>

#include "fuzz_check.h"
#include "proto/n2.h"

static enum socks_res n2_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err)
{
	return n2_parse(out, p, n, used, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct n2_msg m, again;
	uint8_t buf[N2_MSG_MAX];
	size_t used, used2;
	struct socks_err err;

	memset(&m, 0, sizeof(m));
	if (fuzz_check_stream(n2_fn, &m, sizeof(m), data, size, N2_MSG_MAX, &used) != SOCKS_DONE)
		return 0;
	FUZZ_CHECK(used >= N2_HDR_LEN && used <= N2_MSG_MAX);
	FUZZ_CHECK(n2_write(buf, sizeof(buf), &m) == used);
	FUZZ_CHECK(memcmp(buf, data, used) == 0);
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(n2_parse(&again, buf, used, &used2, &err) == SOCKS_DONE && used2 == used);
	FUZZ_CHECK(again.type == m.type && again.id == m.id);
	return 0;
}
