/*
 * mx_req.h - what a multiplexed stream's HEADERS say (docs/protocol.md
 * 5.11), read from the peer's header fields as nghttp2 hands them over:
 * `:method` must be CONNECT and `:authority` host:port (RFC 9113 8.5,
 * RFC 3986 authority without userinfo). Pure functions, no I/O: the
 * mux module and the fuzz target (tests/fuzz/fuzz_mxauth.c) share them.
 */
#ifndef STP_EXT_MUX_MX_REQ_H
#define STP_EXT_MUX_MX_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

/* "[" IPv6 "]" ":" 5 digits, or a 255-octet name ":" 5 digits. */
#define MX_AUTHORITY_MAX (SOCKS_DOMAIN_MAX + 1 + 5)

struct mx_req {
	bool is_connect;  /* :method was CONNECT */
	bool bad_authority; /* longer than MX_AUTHORITY_MAX, or seen twice */
	size_t authlen;   /* 0: no :authority (yet) */
	char authority[MX_AUTHORITY_MAX + 1];
};

/* One header field of the request; names other than :method and
 * :authority are ignored (nghttp2 has already refused what RFC 9113
 * forbids, such as :path with CONNECT). */
void mx_req_header(struct mx_req *r, const uint8_t *name, size_t namelen,
		   const uint8_t *value, size_t valuelen);

/* The request is complete: SOCKS5_REP_SUCCEEDED with the target in *a, or
 * SOCKS5_REP_ATYP_NOT_SUPPORTED (answered 400) when it is not a CONNECT to
 * a valid authority. */
uint8_t mx_req_target(const struct mx_req *r, struct socks_addr *a);

/* host:port, [IPv6]:port: port 1-65535 in decimal digits (at most 5);
 * IPv4 dotted quad, an IPv6 literal only in brackets, or a name of
 * 1-255 octets of RFC 3986 reg-name characters (unreserved, sub-delims,
 * '%'). 0 with *a filled, or -1. */
int mx_authority_parse(const char *p, size_t len, struct socks_addr *a);

#endif
