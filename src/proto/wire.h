/*
 * wire.h - private helpers for the codec: big-endian fields and the
 * DONE / BAD exits every parser shares. Not part of the public API.
 */
#ifndef STP_PROTO_WIRE_H
#define STP_PROTO_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

/* Network order (MSB first) to host order, one byte at a time. */
static inline uint16_t wire_get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline void wire_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* why must be a string literal: callers log it after we return. */
static inline enum socks_res wire_bad(struct socks_err *err, uint8_t rep, const char *why)
{
	if (err) {
		err->rep = rep;
		err->why = why;
	}
	return SOCKS_BAD;
}

static inline enum socks_res wire_done(size_t *used, size_t len)
{
	if (used)
		*used = len;
	return SOCKS_DONE;
}

#endif
