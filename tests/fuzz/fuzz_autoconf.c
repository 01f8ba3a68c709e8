/*
 * fuzz_autoconf.c - the X'F4' configuration frame (src/proto/autoconf.c).
 * The frame parser keeps the stream contract (fuzz_check.c); a document
 * it accepts is read line by line and written back byte for byte by the
 * writer, and acdoc_check accepts the document alone too.
 */
#include <string.h>

#include "fuzz_check.h"
#include "proto/autoconf.h"

/* Offsets, not pointers: the checker compares outputs of parses of
 * different copies. */
struct frame_out {
	size_t off, len;
};

static enum socks_res frame_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			       struct socks_err *err)
{
	struct frame_out *f = out;
	const uint8_t *doc = NULL;
	enum socks_res r = acdoc_frame_parse(p, n, used, &doc, &f->len, err);
	if (r == SOCKS_DONE)
		f->off = (size_t)(doc - p);
	return r;
}

static void rewrite(const uint8_t *doc, size_t len)
{
	static uint8_t buf[ACDOC_MAX];
	char key[ACDOC_KEY_MAX + 1], value[ACDOC_VALUE_MAX + 1];
	struct acdoc_line l;
	size_t off = 0, at = 0;

	while (acdoc_next(doc, len, &off, &l)) {
		FUZZ_CHECK(l.key_len <= ACDOC_KEY_MAX && l.value_len <= ACDOC_VALUE_MAX);
		memcpy(key, l.key, l.key_len);
		key[l.key_len] = '\0';
		memcpy(value, l.value, l.value_len);
		value[l.value_len] = '\0';
		at = acdoc_put(buf, sizeof(buf), at, key, value);
		FUZZ_CHECK(at != 0);
	}
	FUZZ_CHECK(off == len && at == len);
	FUZZ_CHECK(memcmp(buf, doc, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct frame_out f;
	struct socks_err err;
	size_t used;

	enum socks_res r = fuzz_check_stream(frame_fn, &f, sizeof(f), data, size,
					     ACDOC_HDR + ACDOC_MAX, &used);
	if (r == SOCKS_DONE && used == size)
		FUZZ_CHECK(acdoc_check(data + ACDOC_HDR, size - ACDOC_HDR, &err) == SOCKS_DONE);
	if (r != SOCKS_DONE)
		return 0;
	FUZZ_CHECK(f.off == ACDOC_HDR && used == ACDOC_HDR + f.len);
	rewrite(data + ACDOC_HDR, f.len);
	return 0;
}
