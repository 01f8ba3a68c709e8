/*
 * fuzz_broker.c - the compartment broker's request and reply
 * (src/proto/broker.c). The stream contract over every prefix; a DONE
 * request (SOCKET, RELOAD, OPEN, LISTEN) is written back byte for byte and parses to the same fields;
 * the reply parser gets the same bytes.
 */
#include <string.h>

#include "fuzz_check.h"
#include "proto/broker.h"

static enum socks_res rq_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err)
{
	return broker_request_parse(out, p, n, used, err);
}

static enum socks_res rp_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err)
{
	return broker_reply_parse(out, p, n, used, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct broker_request r, again;
	struct broker_reply rep;
	uint8_t buf[BROKER_REQUEST_MAX];
	size_t used, used2;
	struct socks_err err;

	memset(&rep, 0, sizeof(rep));
	fuzz_check_stream(rp_fn, &rep, sizeof(rep), data, size, BROKER_REPLY_LEN, &used);
	memset(&r, 0, sizeof(r));
	if (fuzz_check_stream(rq_fn, &r, sizeof(r), data, size, BROKER_REQUEST_MAX, &used) !=
	    SOCKS_DONE)
		return 0;
	FUZZ_CHECK(used >= 2 && used <= BROKER_REQUEST_MAX);
	FUZZ_CHECK(broker_request_write(buf, sizeof(buf), &r) == used);
	FUZZ_CHECK(memcmp(buf, data, used) == 0);
	FUZZ_CHECK(broker_request_parse(&again, buf, used, &used2, &err) == SOCKS_DONE &&
		   used2 == used);
	FUZZ_CHECK(again.op == r.op && strcmp(again.in, r.in) == 0 && strcmp(again.out, r.out) == 0 &&
		   strcmp(again.path, r.path) == 0 && again.port == r.port &&
		   memcmp(again.addr, r.addr, sizeof(r.addr)) == 0);
	return 0;
}
