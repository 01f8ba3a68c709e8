/*
 * featcache.h - the feature discovery disk cache's file header
 * (featcache_parse.c): "stp-features 1 FETCHED OFF SUPPORTED LEN\n" then
 * LEN bytes of document.
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
	const uint8_t *doc;   /* into the buffer parsed */
	size_t len;
};

/* 0 when buf (n bytes, the whole file) is a header and exactly LEN bytes;
 * -1 otherwise. The document itself is the codec's to check. */
int featcache_parse(const uint8_t *buf, size_t n, struct featcache_hdr *h);

#endif
