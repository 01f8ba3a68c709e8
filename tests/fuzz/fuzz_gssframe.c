/*
 * fuzz_gssframe.c - method X'01' framing (src/proto/gssframe.c, RFC 1961).
 * The frame parser must keep the stream contract (fuzz_check.c); what it
 * parses is written back byte for byte, and the token points inside the
 * input with the length the header says.
 */
#include <string.h>

#include "fuzz_check.h"
#include "proto/gssframe.h"

static enum socks_res frame_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			       struct socks_err *err)
{
	return gssframe_parse(out, p, n, used, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gssframe f;
	uint8_t buf[GSSFRAME_HDR_LEN];
	size_t used;

	if (fuzz_check_stream(frame_fn, &f, sizeof(f), data, size, GSSFRAME_MAX, &used) !=
	    SOCKS_DONE)
		return 0;
	FUZZ_CHECK(strcmp(gssframe_mtyp_name(f.mtyp), "unknown") != 0);
	if (f.mtyp == GSSFRAME_ABORT) {
		FUZZ_CHECK(used == GSSFRAME_ABORT_LEN && f.len == 0 && !f.token);
		FUZZ_CHECK(gssframe_abort_write(buf, sizeof(buf)) == GSSFRAME_ABORT_LEN);
		FUZZ_CHECK(memcmp(buf, data, GSSFRAME_ABORT_LEN) == 0);
		return 0;
	}
	FUZZ_CHECK(used == GSSFRAME_HDR_LEN + (size_t)f.len);
	FUZZ_CHECK(gssframe_hdr_write(buf, sizeof(buf), f.mtyp, f.len) == GSSFRAME_HDR_LEN);
	FUZZ_CHECK(memcmp(buf, data, GSSFRAME_HDR_LEN) == 0);
	FUZZ_CHECK(gssframe_hdr_write(buf, GSSFRAME_HDR_LEN - 1, f.mtyp, f.len) == 0);
	return 0;
}
