/*
 * fuzz_featdoc.c - the features document of X'87' / X'F3'
 * (src/proto/featdoc.c). The parser must keep the stream contract
 * (fuzz_check.c); a parsed FVER X'01' document is walked entry by entry,
 * and writing those entries back gives the same bytes.
 */
#include <string.h>

#include "fuzz_check.h"
#include "proto/featdoc.h"

/* The checker compares outputs of runs over different copies of the
 * input: keep the document's fields, not its pointer into the copy. */
struct doc_fields {
	uint8_t ver, flags;
	uint16_t len;
};

static enum socks_res doc_fn(void *out, const uint8_t *p, size_t n, size_t *used,
			     struct socks_err *err)
{
	struct feat_doc d;
	struct doc_fields *f = out;
	enum socks_res r = feat_doc_parse(&d, p, n, used, err);
	if (r == SOCKS_DONE)
		*f = (struct doc_fields){ d.ver, d.flags, d.len };
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[FEAT_HDR_LEN + FEAT_DOC_MAX];
	struct doc_fields fields;
	struct feat_doc d;
	struct feat_entry e;
	struct feat_writer w;
	size_t used, off = 0;

	enum socks_res r = fuzz_check_stream(doc_fn, &fields, sizeof(fields), data, size,
					     FEAT_HDR_LEN + FEAT_DOC_MAX, &used);
	if (r != SOCKS_DONE || fields.ver != FEAT_VER)
		return 0;
	/* The checker ran on copies: parse again so d.body points into data. */
	FUZZ_CHECK(feat_doc_parse(&d, data, size, &used, NULL) == SOCKS_DONE);
	FUZZ_CHECK(used == FEAT_HDR_LEN + (size_t)d.len);
	feat_writer_init(&w, buf, sizeof(buf));
	while (feat_next(&d, &off, &e)) {
		FUZZ_CHECK(strlen(e.name) == e.nlen);
		FUZZ_CHECK(feat_put(&w, e.scope, e.code, e.type, e.name, e.value, e.vlen));
		FUZZ_CHECK(strcmp(feat_scope_name(e.scope), "") != 0);
	}
	FUZZ_CHECK(off == d.len);
	w.flags = d.flags;
	FUZZ_CHECK(feat_writer_finish(&w) == used);
	FUZZ_CHECK(memcmp(buf, data, used) == 0);
	return 0;
}
