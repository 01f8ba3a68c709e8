/*
 * dnsq.c - see dnsq.h.
 */
#include "proto/dnsq.h"

#include <string.h>

static enum socks_res dnsq_parse(struct dnsq_frame *out, const uint8_t *p, size_t n, size_t max,
				 size_t *used, struct socks_err *err)
{
	size_t len;

	if (n < DNSQ_FRAME_HDR)
		return SOCKS_MORE;
	len = (size_t)p[0] << 8 | p[1];
	if (len < DNSQ_MSG_MIN || len > max) {
		err->rep = SOCKS5_REP_GENERAL_FAILURE;
		err->why = len < DNSQ_MSG_MIN ? "DNS message shorter than its header" :
						"DNS message too long";
		return SOCKS_BAD;
	}
	if (n < DNSQ_FRAME_HDR + len)
		return SOCKS_MORE;
	out->off = DNSQ_FRAME_HDR;
	out->len = len;
	*used = DNSQ_FRAME_HDR + len;
	return SOCKS_DONE;
}

enum socks_res dnsq_query_parse(struct dnsq_frame *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err)
{
	return dnsq_parse(out, p, n, DNSQ_QUERY_MAX, used, err);
}

enum socks_res dnsq_answer_parse(struct dnsq_frame *out, const uint8_t *p, size_t n, size_t *used,
				 struct socks_err *err)
{
	return dnsq_parse(out, p, n, DNSQ_ANSWER_MAX, used, err);
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
