/*
 * fuzz_proxyproto.c - PROXY protocol v1/v2 header parser.
 */
#include "proto/proxyproto.h"

#include "fuzz_check.h"

static enum socks_res proxy(void *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err)
{
	return proxyproto_parse(out, p, n, used, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr h;
	size_t used;

	if (fuzz_check_stream(proxy, &h, sizeof(h), data, size, PROXYPROTO_MAX, &used) !=
	    SOCKS_DONE)
		return 0;
	if (data[0] == 'P') {
		FUZZ_CHECK(used >= 15 && used <= PROXYPROTO_V1_MAX); /* "PROXY UNKNOWN\r\n" */
		FUZZ_CHECK(data[used - 2] == '\r' && data[used - 1] == '\n');
	} else {
		FUZZ_CHECK(used >= PROXYPROTO_V2_HDR);
		FUZZ_CHECK(used == PROXYPROTO_V2_HDR + (size_t)(data[14] << 8 | data[15]));
	}
	if (h.local)
		FUZZ_CHECK(h.family == PROXY_FAM_UNSPEC && h.sport == 0 && h.dport == 0);
	else
		FUZZ_CHECK(h.family == PROXY_FAM_INET || h.family == PROXY_FAM_INET6);
	return 0;
}
