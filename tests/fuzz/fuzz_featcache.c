/*
 * fuzz_featcache.c - feature discovery cache files (src/client/
 * featcache_parse.c): any bytes another process may have left in
 * ~/.cache/stp/features-*.bin.
 * Input: the whole file.
 *
 * Checks: a file that parses has its document exactly at the end (LEN is
 * all that follows the header line), times not negative, no document
 * when the proxy had no discovery, the X'86' fields (version 2) in
 * range; the document then goes to the codec
 * (featdoc), which libstp runs next.
 */
#include <stdlib.h>
#include <string.h>

#include "client/featcache.h"
#include "fuzz_check.h"
#include "proto/featdoc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf = fuzz_dup(data, size);
	struct featcache_hdr h;

	if (featcache_parse(buf, size, &h) == 0) {
		FUZZ_CHECK(h.doc > buf && h.doc + h.len == buf + size);
		FUZZ_CHECK(h.doc - buf <= FC_HDR_MAX);
		FUZZ_CHECK(h.fetched > 0 && h.off >= 0);
		FUZZ_CHECK(h.supported || h.len == 0);
		FUZZ_CHECK(h.doc[-1] == '\n');
		FUZZ_CHECK(h.x86_who <= 7);
		FUZZ_CHECK(h.x86_sub == 0 || h.x86_sub == 1 || h.x86_sub == 4);
		if (h.supported) {
			struct feat_doc d;
			size_t used = 0;
			(void)feat_doc_parse(&d, h.doc, h.len, &used, NULL);
		}
	}
	free(buf);
	return 0;
}
