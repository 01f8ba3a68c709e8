/*
 * gssframe.h - the wire of method X'01' (RFC 1961, GSS-API for SOCKS5):
 * every message after the method choice is one frame. Pure (libc only, no
 * allocation): stpd's src/ext/gssapi and libstp (src/client/conn_gss.c)
 * share it.
 *
 *   +------+------+------+.......................+
 *   | VER  | MTYP | LEN  |        TOKEN          |
 *   +------+------+------+.......................+
 *   | 0x01 |  1   |  2   | up to 2^16 - 1 octets |   LEN MSB first
 *   +------+------+------+.......................+
 *
 *   MTYP X'01' context establishment token (RFC 1961 section 3)
 *        X'02' protection-level negotiation: TOKEN is gss_wrap() of one
 *              octet (section 4), conf_req FALSE
 *        X'03' per-message protection: TOKEN is gss_wrap() of data (5, 6)
 *        X'FF' abort: VER MTYP only, no LEN and no TOKEN (sections 3, 4)
 */
#ifndef STP_PROTO_GSSFRAME_H
#define STP_PROTO_GSSFRAME_H

#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

#define GSSFRAME_VER       0x01
#define GSSFRAME_HDR_LEN   4
#define GSSFRAME_ABORT_LEN 2
#define GSSFRAME_TOKEN_MAX 65535
#define GSSFRAME_MAX       (GSSFRAME_HDR_LEN + GSSFRAME_TOKEN_MAX)

enum gssframe_mtyp {
	GSSFRAME_AUTH = 0x01,
	GSSFRAME_PROT = 0x02,
	GSSFRAME_DATA = 0x03,
	GSSFRAME_ABORT = 0xFF,
};

/* Protection levels of RFC 1961 section 4, plus level 0, which curl sends
 * and stp reads as "no per-message protection" (docs/protocol.md). */
enum gss_level {
	GSS_LEVEL_NONE = 0x00,      /* not in RFC 1961: curl's "no protection" */
	GSS_LEVEL_INTEGRITY = 0x01, /* required per-message integrity */
	GSS_LEVEL_CONF = 0x02,      /* required per-message integrity and confidentiality */
	GSS_LEVEL_SELECTIVE = 0x03, /* selective integrity or confidentiality */
};

struct gssframe {
	uint8_t mtyp;
	uint16_t len;         /* TOKEN length; 0 for X'FF' */
	const uint8_t *token; /* points into the input; NULL for X'FF' */
};

/* One whole frame (header and TOKEN) from p[0..n). DONE with *used = 4 +
 * LEN (2 for X'FF'); MORE while any of it is missing; BAD for VER !=
 * X'01' or an MTYP other than X'01'-X'03', X'FF' (err->why says which), as
 * soon as the byte is seen. */
enum socks_res gssframe_parse(struct gssframe *out, const uint8_t *p, size_t n, size_t *used,
			      struct socks_err *err);
/* Writes the 4-byte header; 4, or 0 if cap < 4 or mtyp is X'FF'. */
size_t gssframe_hdr_write(uint8_t *dst, size_t cap, uint8_t mtyp, uint16_t len);
/* Writes the 2-byte abort X'01' X'FF'; 2, or 0 if cap < 2. */
size_t gssframe_abort_write(uint8_t *dst, size_t cap);

const char *gssframe_mtyp_name(uint8_t mtyp);
const char *gss_level_name(uint8_t level);

#endif
