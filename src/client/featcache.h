/*
 * featcache.h - the feature discovery disk cache's file header
 * (featcache_parse.c): "stp-features 2 FETCHED OFF SUPPORTED WHO SUB LEN\n"
 * then LEN bytes of document. Version 1 files (no WHO SUB) still parse.
 */
#ifndef STP_CLIENT_FEATCACHE_H
#define STP_CLIENT_FEATCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FC_HDR_MAX 96 /* the header line, '\n' included, is shorter */

struct featcache_hdr {
	int64_t fetched, off; /* Unix times; off 0: pipelining never failed */
	bool supported;       /* the proxy answered X'87' */
	uint8_t x86_who;      /* X'86': the credentials of what SUB says (pipeline.c) */
	uint8_t x86_sub;      /* X'86': 0 unknown, 1 no sub-authentication, 4 RFC 1929 */
	const uint8_t *doc;   /* into the buffer parsed */
	size_t len;
};

/* 0 when buf (n bytes, the whole file) is a header and exactly LEN bytes;
 * -1 otherwise. The document itself is the codec's to check. */
int featcache_parse(const uint8_t *buf, size_t n, struct featcache_hdr *h);

#endif
