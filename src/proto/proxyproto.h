/*
 * proxyproto.h - PROXY protocol v1 and v2 header parser (HAProxy's
 * "The PROXY protocol" spec), for stpd listeners behind a load balancer.
 * Same contract as socks.h: pure, re-run from the start as bytes arrive.
 */
#ifndef STP_PROTO_PROXYPROTO_H
#define STP_PROTO_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

#define PROXYPROTO_V1_MAX 107 /* longest v1 line, CRLF included */
#define PROXYPROTO_V2_HDR 16  /* signature, ver/cmd, fam, len */
#define PROXYPROTO_V2_ADDR_MAX 216 /* AF_UNIX block, the largest one */
#define PROXYPROTO_V2_TLV_MAX 1024 /* stp's cap on TLV bytes */
#define PROXYPROTO_V2_LEN_MAX (PROXYPROTO_V2_ADDR_MAX + PROXYPROTO_V2_TLV_MAX)
/* Longest header stp accepts; MORE is never returned for n >= this. */
#define PROXYPROTO_MAX (PROXYPROTO_V2_HDR + PROXYPROTO_V2_LEN_MAX)

enum proxy_family { PROXY_FAM_UNSPEC = 0, PROXY_FAM_INET = 4, PROXY_FAM_INET6 = 6 };

/*
 * local is true for v2 LOCAL, v1 UNKNOWN and v2 PROXY over AF_UNSPEC: the
 * caller then uses the socket's own endpoints, and family is UNSPEC.
 */
struct proxy_hdr {
	bool local;
	enum proxy_family family;
	uint8_t src[16], dst[16]; /* v4 uses the first 4 bytes */
	uint16_t sport, dport;    /* host order */
};

/*
 * Parses a v1 or v2 header at the start of p[0..n). DONE: *used is the
 * header's length, and the bytes after it are the client's. BAD as soon as
 * the bytes cannot start a valid header (signature checked byte by byte).
 * TLVs are skipped; AF_UNIX and unknown families are BAD.
 */
enum socks_res proxyproto_parse(struct proxy_hdr *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err);

#endif
