/*
 * fuzz_mbind.c - the bind extension's codec (src/proto/mbind.c). The first
 * input byte picks the parser, the rest is its input:
 *   0  LISTEN request    1  LISTEN reply
 *   2  control message   3  ACCEPT request
 * Each goes through the stream contract (fuzz_check_stream: every prefix),
 * and what parses is written back and parsed again to the same fields.
 */
#include <string.h>

#include "fuzz_check.h"
#include "proto/mbind.h"

static enum socks_res req_fn(void *o, const uint8_t *p, size_t n, size_t *u, struct socks_err *e)
{
	return mbind_request_parse(o, p, n, u, e);
}
static enum socks_res rep_fn(void *o, const uint8_t *p, size_t n, size_t *u, struct socks_err *e)
{
	return mbind_reply_parse(o, p, n, u, e);
}
static enum socks_res msg_fn(void *o, const uint8_t *p, size_t n, size_t *u, struct socks_err *e)
{
	return mbind_msg_parse(o, p, n, u, e);
}
static enum socks_res acc_fn(void *o, const uint8_t *p, size_t n, size_t *u, struct socks_err *e)
{
	return mbind_accept_parse(o, p, n, u, e);
}

#define ROUNDTRIP(type, fn, writer, max)                                                        \
	do {                                                                                    \
		type a, b;                                                                      \
		uint8_t buf[max];                                                               \
		size_t used, used2;                                                             \
		struct socks_err err;                                                           \
		if (fuzz_check_stream(fn, &a, sizeof(a), data, size, max, &used) != SOCKS_DONE) \
			return;                                                                 \
		size_t w = writer(buf, sizeof(buf), &a);                                        \
		FUZZ_CHECK(w == used);                                                          \
		memset(&b, 0, sizeof(b));                                                       \
		FUZZ_CHECK(fn(&b, buf, w, &used2, &err) == SOCKS_DONE && used2 == w);           \
		FUZZ_CHECK(memcmp(&a, &b, sizeof(a)) == 0);                                     \
	} while (0)

static void fuzz_req(const uint8_t *data, size_t size)
{
	ROUNDTRIP(struct mbind_request, req_fn, mbind_request_write, MBIND_REQUEST_MAX);
}
static void fuzz_rep(const uint8_t *data, size_t size)
{
	ROUNDTRIP(struct mbind_reply, rep_fn, mbind_reply_write, MBIND_REPLY_MAX);
}
static void fuzz_msg(const uint8_t *data, size_t size)
{
	ROUNDTRIP(struct mbind_msg, msg_fn, mbind_msg_write, MBIND_MSG_MAX);
}
static void fuzz_acc(const uint8_t *data, size_t size)
{
	ROUNDTRIP(struct mbind_accept, acc_fn, mbind_accept_write, MBIND_ACCEPT_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		fuzz_req(data + 1, size - 1);
		break;
	case 1:
		fuzz_rep(data + 1, size - 1);
		break;
	case 2:
		fuzz_msg(data + 1, size - 1);
		break;
	default:
		fuzz_acc(data + 1, size - 1);
		break;
	}
	return 0;
}
