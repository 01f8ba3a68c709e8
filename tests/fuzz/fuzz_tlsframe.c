/*
 * fuzz_tlsframe.c - method X'86' framing (src/proto/tlsframe.c): the frame
 * header and the option list. The first input byte picks the parser:
 *   even  frame header (VER STATE LEN)
 *   odd   option list (LEN OPTIONS)
 * Both must keep the stream contract (fuzz_check.c), and what they parse
 * is written back byte for byte.
 */
#include <string.h>

#include "fuzz_check.h"
#include "proto/tlsframe.h"

static enum socks_res hdr_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			     struct socks_err *err)
{
	return tlsframe_hdr_parse(out, p, n, used, err);
}

static enum socks_res opt_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			     struct socks_err *err)
{
	return tlsopt_parse(out, p, n, used, err);
}

static void fuzz_hdr(const uint8_t *data, size_t size)
{
	struct tlsframe_hdr h;
	uint8_t buf[TLSFRAME_HDR_LEN];
	size_t used;

	if (fuzz_check_stream(hdr_fn, &h, sizeof(h), data, size, TLSFRAME_HDR_LEN, &used) !=
	    SOCKS_DONE)
		return;
	FUZZ_CHECK(used == TLSFRAME_HDR_LEN);
	FUZZ_CHECK(h.state >= TLSFRAME_HANDSHAKE && h.state <= TLSFRAME_CLOSING);
	FUZZ_CHECK(strcmp(tlsframe_state_name(h.state), "unknown") != 0);
	FUZZ_CHECK(tlsframe_hdr_write(buf, sizeof(buf), h.state, h.len) == TLSFRAME_HDR_LEN);
	FUZZ_CHECK(memcmp(buf, data, TLSFRAME_HDR_LEN) == 0);
	FUZZ_CHECK(tlsframe_hdr_write(buf, TLSFRAME_HDR_LEN - 1, h.state, h.len) == 0);
}

static void fuzz_opts(const uint8_t *data, size_t size)
{
	struct tlsopt_list l;
	uint8_t buf[256];
	size_t used;

	enum socks_res r = fuzz_check_stream(opt_fn, &l, sizeof(l), data, size, 256, &used);
	FUZZ_CHECK(r != SOCKS_BAD); /* every byte is a (maybe unknown) option */
	if (r != SOCKS_DONE)
		return;
	FUZZ_CHECK(used == 1u + data[0]);
	FUZZ_CHECK(l.n == data[0]);
	FUZZ_CHECK(tlsopt_write(buf, sizeof(buf), l.opt, l.n) == used);
	FUZZ_CHECK(memcmp(buf, data, used) == 0);
	FUZZ_CHECK(tlsopt_write(buf, used - 1, l.opt, l.n) == 0);
	for (unsigned o = 0; o < 256; o++)
		FUZZ_CHECK(tlsopt_has(&l, (uint8_t)o) == (memchr(data + 1, (int)o, l.n) != NULL));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_opts(data + 1, size - 1);
	else
		fuzz_hdr(data + 1, size - 1);
	return 0;
}
