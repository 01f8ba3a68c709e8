/*
 * fuzz_gssframe.c - method X'01' framing (src/proto/gssframe.c, RFC 1961).
 * The frame parser must keep the stream contract (fuzz_check.c); what it
 * parses is written back byte for byte, and the token points inside the
 * input with the length the header says.
 */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "proto/gssframe.h"

/* The frame with its token as an offset: every run parses a fresh copy of
 * the input, so the pointer itself differs between runs. */
struct frame_at {
	uint8_t mtyp;
	uint16_t len;
	size_t token_off; /* SIZE_MAX: no token */
};

static enum socks_res frame_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			       struct socks_err *err)
{
	struct gssframe f;
	struct frame_at *a = out;
	enum socks_res r = gssframe_parse(&f, p, n, used, err);
	if (r == SOCKS_DONE) {
		FUZZ_CHECK(!f.token || (f.token >= p && f.token + f.len <= p + n));
		a->mtyp = f.mtyp;
		a->len = f.len;
		a->token_off = f.token ? (size_t)(f.token - p) : SIZE_MAX;
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_at f;
	uint8_t buf[GSSFRAME_HDR_LEN];
	size_t used;

	if (fuzz_check_stream(frame_fn, &f, sizeof(f), data, size, GSSFRAME_MAX, &used) !=
	    SOCKS_DONE)
		return 0;
	FUZZ_CHECK(strcmp(gssframe_mtyp_name(f.mtyp), "unknown") != 0);
	if (f.mtyp == GSSFRAME_ABORT) {
		FUZZ_CHECK(used == GSSFRAME_ABORT_LEN && f.len == 0 && f.token_off == SIZE_MAX);
		FUZZ_CHECK(gssframe_abort_write(buf, sizeof(buf)) == GSSFRAME_ABORT_LEN);
		FUZZ_CHECK(memcmp(buf, data, GSSFRAME_ABORT_LEN) == 0);
		return 0;
	}
	FUZZ_CHECK(used == GSSFRAME_HDR_LEN + (size_t)f.len && f.token_off == GSSFRAME_HDR_LEN);
	FUZZ_CHECK(gssframe_hdr_write(buf, sizeof(buf), f.mtyp, f.len) == GSSFRAME_HDR_LEN);
	FUZZ_CHECK(memcmp(buf, data, GSSFRAME_HDR_LEN) == 0);
	FUZZ_CHECK(gssframe_hdr_write(buf, GSSFRAME_HDR_LEN - 1, f.mtyp, f.len) == 0);
	return 0;
}
