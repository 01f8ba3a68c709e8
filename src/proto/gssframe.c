/*
 * gssframe.c - see gssframe.h.
 */
#include "proto/gssframe.h"

static enum socks_res bad(struct socks_err *err, const char *why)
{
	if (err) {
		err->rep = SOCKS5_REP_GENERAL_FAILURE;
		err->why = why;
	}
	return SOCKS_BAD;
}

/*
 *   +------+------+------+.......................+
 *   | VER  | MTYP | LEN  |        TOKEN          |
 *   +------+------+------+.......................+
 *   | 0x01 |  1   |  2   | up to 2^16 - 1 octets |
 *   +------+------+------+.......................+
 */
enum socks_res gssframe_parse(struct gssframe *out, const uint8_t *p, size_t n, size_t *used,
			      struct socks_err *err)
{
	if (n >= 1 && p[0] != GSSFRAME_VER)
		return bad(err, "GSS-API frame VER is not X'01'");
	if (n >= 2 && !(p[1] >= GSSFRAME_AUTH && p[1] <= GSSFRAME_DATA) && p[1] != GSSFRAME_ABORT)
		return bad(err, "GSS-API frame MTYP is not X'01'-X'03' or X'FF'");
	if (n >= 2 && p[1] == GSSFRAME_ABORT) {
		/* RFC 1961: the abort is VER MTYP alone. */
		out->mtyp = GSSFRAME_ABORT;
		out->len = 0;
		out->token = NULL;
		if (used)
			*used = GSSFRAME_ABORT_LEN;
		return SOCKS_DONE;
	}
	if (n < GSSFRAME_HDR_LEN)
		return SOCKS_MORE;
	size_t len = (size_t)p[2] << 8 | p[3];
	if (n < GSSFRAME_HDR_LEN + len)
		return SOCKS_MORE;
	out->mtyp = p[1];
	out->len = (uint16_t)len;
	out->token = p + GSSFRAME_HDR_LEN;
	if (used)
		*used = GSSFRAME_HDR_LEN + len;
	return SOCKS_DONE;
}

size_t gssframe_hdr_write(uint8_t *dst, size_t cap, uint8_t mtyp, uint16_t len)
{
	if (cap < GSSFRAME_HDR_LEN || mtyp == GSSFRAME_ABORT)
		return 0;
	dst[0] = GSSFRAME_VER;
	dst[1] = mtyp;
	dst[2] = (uint8_t)(len >> 8);
	dst[3] = (uint8_t)len;
	return GSSFRAME_HDR_LEN;
}

size_t gssframe_abort_write(uint8_t *dst, size_t cap)
{
	if (cap < GSSFRAME_ABORT_LEN)
		return 0;
	dst[0] = GSSFRAME_VER;
	dst[1] = GSSFRAME_ABORT;
	return GSSFRAME_ABORT_LEN;
}

const char *gssframe_mtyp_name(uint8_t mtyp)
{
	switch (mtyp) {
	case GSSFRAME_AUTH:
		return "authentication";
	case GSSFRAME_PROT:
		return "protection-level";
	case GSSFRAME_DATA:
		return "per-message";
	case GSSFRAME_ABORT:
		return "abort";
	default:
		return "unknown";
	}
}

const char *gss_level_name(uint8_t level)
{
	switch (level) {
	case GSS_LEVEL_NONE:
		return "none";
	case GSS_LEVEL_INTEGRITY:
		return "integrity";
	case GSS_LEVEL_CONF:
		return "confidentiality";
	case GSS_LEVEL_SELECTIVE:
		return "selective";
	default:
		return "unknown";
	}
}
