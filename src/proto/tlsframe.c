/*
 * tlsframe.c - see tlsframe.h.
 */
#include "proto/tlsframe.h"

#include <string.h>

/*
 *   +-----+-------+-----+
 *   | VER | STATE | LEN |
 *   +-----+-------+-----+
 *   |  1  |   1   |  2  |
 *   +-----+-------+-----+
 */
enum socks_res tlsframe_hdr_parse(struct tlsframe_hdr *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err)
{
	if (n >= 1 && p[0] != TLSFRAME_VER) {
		if (err) {
			err->rep = SOCKS5_REP_GENERAL_FAILURE;
			err->why = "frame VER is not X'01'";
		}
		return SOCKS_BAD;
	}
	if (n >= 2 && (p[1] < TLSFRAME_HANDSHAKE || p[1] > TLSFRAME_CLOSING)) {
		if (err) {
			err->rep = SOCKS5_REP_GENERAL_FAILURE;
			err->why = "frame STATE is not X'01'-X'04'";
		}
		return SOCKS_BAD;
	}
	if (n < TLSFRAME_HDR_LEN)
		return SOCKS_MORE;
	out->state = p[1];
	out->len = (uint16_t)((unsigned)p[2] << 8 | p[3]);
	if (used)
		*used = TLSFRAME_HDR_LEN;
	return SOCKS_DONE;
}

size_t tlsframe_hdr_write(uint8_t *dst, size_t cap, uint8_t state, uint16_t len)
{
	if (cap < TLSFRAME_HDR_LEN)
		return 0;
	dst[0] = TLSFRAME_VER;
	dst[1] = state;
	dst[2] = (uint8_t)(len >> 8);
	dst[3] = (uint8_t)len;
	return TLSFRAME_HDR_LEN;
}

/*
 *   +-----+---------+
 *   | LEN | OPTIONS |
 *   +-----+---------+
 *   |  1  |  0-255  |
 *   +-----+---------+
 */
enum socks_res tlsopt_parse(struct tlsopt_list *out, const uint8_t *p, size_t n, size_t *used,
			    struct socks_err *err)
{
	(void)err;
	if (n < 1 || n < 1u + p[0])
		return SOCKS_MORE;
	out->n = p[0];
	memcpy(out->opt, p + 1, p[0]);
	if (used)
		*used = 1u + p[0];
	return SOCKS_DONE;
}

size_t tlsopt_write(uint8_t *dst, size_t cap, const uint8_t *opts, size_t n)
{
	if (n > 255 || cap < 1 + n)
		return 0;
	dst[0] = (uint8_t)n;
	if (n)
		memcpy(dst + 1, opts, n);
	return 1 + n;
}

bool tlsopt_has(const struct tlsopt_list *l, uint8_t opt)
{
	return l->n && memchr(l->opt, opt, l->n) != NULL;
}

const char *tlsframe_state_name(uint8_t state)
{
	switch (state) {
	case TLSFRAME_HANDSHAKE: return "handshake";
	case TLSFRAME_OPTIONS: return "options";
	case TLSFRAME_DATA: return "data";
	case TLSFRAME_CLOSING: return "closing";
	default: return "unknown";
	}
}
