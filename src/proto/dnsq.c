/*
 * dnsq.c - see dnsq.h.
 */
#include "proto/dnsq.h"

#include <string.h>

enum socks_res dnsq_frame_parse(struct dnsq_frame *out, const uint8_t *p, size_t n, size_t max,
				size_t *used, uint8_t *rep)
{
	size_t len;

	*rep = SOCKS5_REP_GENERAL_FAILURE;
	if (n < DNSQ_FRAME_HDR)
		return SOCKS_MORE;
	len = (size_t)p[0] << 8 | p[1];
	if (len < DNSQ_MSG_MIN || len > max)
		return SOCKS_BAD;
	if (n < DNSQ_FRAME_HDR + len)
		return SOCKS_MORE;
	out->msg = p + DNSQ_FRAME_HDR;
	out->len = len;
	*used = DNSQ_FRAME_HDR + len;
	*rep = SOCKS5_REP_SUCCEEDED;
	return SOCKS_DONE;
}

size_t dnsq_frame_write(uint8_t *dst, size_t cap, const uint8_t *msg, size_t len)
{
	if (len == 0 || len > DNSQ_ANSWER_MAX || cap < DNSQ_FRAME_HDR + len)
		return 0;
	dst[0] = (uint8_t)(len >> 8);
	dst[1] = (uint8_t)len;
	memcpy(dst + DNSQ_FRAME_HDR, msg, len);
	return DNSQ_FRAME_HDR + len;
}
