/*
 * tlsframe.h - the wire of method X'86' (seed 004, "Secure Sockets Layer
 * for SOCKS Version 5"): the frame header around TLS data and the option
 * list. Pure (libc only, no allocation): stpd's src/ext/tls and the libstp
 * client (src/client/tls_x86.c) share it.
 *
 *   +-----+-------+-----+----------+
 *   | VER | STATE | LEN |   DATA   |
 *   +-----+-------+-----+----------+
 *   |  1  |   1   |  2  | 0-65535  |     VER X'01', LEN MSB first
 *   +-----+-------+-----+----------+
 *
 *   option list:  +-----+---------+
 *                 | LEN | OPTIONS |     LEN 0-255, one byte per option
 *                 +-----+---------+
 */
#ifndef STP_PROTO_TLSFRAME_H
#define STP_PROTO_TLSFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

#define TLSFRAME_VER 0x01
#define TLSFRAME_HDR_LEN 4
#define TLSFRAME_DATA_MAX 65535

enum tlsframe_state {
	TLSFRAME_HANDSHAKE = 0x01, /* initial TLS handshake */
	TLSFRAME_OPTIONS = 0x02,   /* option negotiation (and, in stp, sub-authentication) */
	TLSFRAME_DATA = 0x03,      /* the SOCKS request and all relayed data */
	TLSFRAME_CLOSING = 0x04,   /* closing handshake (close_notify) */
};

enum tlsframe_option {
	TLSOPT_SUBAUTH = 0x01,
	TLSOPT_UDP_NAKED = 0x10,
};

struct tlsframe_hdr {
	uint8_t state;
	uint16_t len;
};

/* One header from p[0..n). DONE with *used = 4; MORE under 4 bytes; BAD for
 * VER != X'01' or STATE outside X'01'-X'04' (err->why says which). */
enum socks_res tlsframe_hdr_parse(struct tlsframe_hdr *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err);
/* Writes a header; returns 4, or 0 if cap < 4. */
size_t tlsframe_hdr_write(uint8_t *dst, size_t cap, uint8_t state, uint16_t len);

struct tlsopt_list {
	uint8_t n;
	uint8_t opt[255];
};
/* LEN OPTIONS. Never BAD: every byte value is a (possibly unknown) option. */
enum socks_res tlsopt_parse(struct tlsopt_list *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err);
size_t tlsopt_write(uint8_t *dst, size_t cap, const uint8_t *opts, size_t n);
bool tlsopt_has(const struct tlsopt_list *l, uint8_t opt);

const char *tlsframe_state_name(uint8_t state);

#endif
