/*
 * gss_dgram.c - RFC 1961 section 5 for UDP ASSOCIATE: at levels 1 and 2
 * every datagram between the client and stpd's relay socket is
 *
 *   +------+------+------+...........................................+
 *   | 0x01 | 0x03 | LEN  | gss_wrap(RSV FRAG ATYP DST.ADDR DST.PORT DATA) |
 *   +------+------+------+...........................................+
 *
 * one frame per datagram, the whole RFC 1928 UDP datagram wrapped. Plugged
 * into the datagram core through the session's guard (session.h), with the
 * context of the control connection. Decisions (docs/protocol.md §5.7):
 * - A datagram that is not exactly one X'03' frame, does not unwrap, or
 *   lacks confidentiality at level 2 is dropped and counted (UDP has no
 *   error path; the TCP session goes on).
 * - GSS-API's sequence checks report reordered, missing and duplicated
 *   tokens as supplementary status: reordering and loss are normal for UDP
 *   and accepted; a duplicate (a replay) is dropped.
 * - The plaintext is written back in place (it is shorter than the token);
 *   the sealed reply is written into the slot's headroom in front of it.
 */
#include <gssapi/gssapi.h>
#include <string.h>

#include "ext/gssapi/gss_int.h"
#include "proto/gssframe.h"

int gss_dgram_unseal(void *ctx, uint8_t *p, size_t len)
{
	struct gss_filter *g = ctx;
	struct gssframe fr;
	size_t used = 0;
	if (gssframe_parse(&fr, p, len, &used, NULL) != SOCKS_DONE || used != len ||
	    fr.mtyp != GSSFRAME_DATA)
		return -1;
	OM_uint32 major, minor;
	int conf_state = 0;
	gss_buffer_desc in = { fr.len, (void *)fr.token }, out = GSS_C_EMPTY_BUFFER;
	major = gss_unwrap(&minor, g->ctx, &in, &out, &conf_state, NULL);
	int rc = -1;
	if (!GSS_ERROR(major) && !(major & GSS_S_DUPLICATE_TOKEN) && (conf_state || !g->conf) &&
	    out.length <= len) {
		memcpy(p, out.value, out.length);
		rc = (int)out.length;
	}
	gss_release_buffer(&minor, &out);
	return rc;
}

uint8_t *gss_dgram_seal(void *ctx, uint8_t *p, size_t *len, size_t room)
{
	struct gss_filter *g = ctx;
	OM_uint32 major, minor;
	gss_buffer_desc in = { *len, p }, out = GSS_C_EMPTY_BUFFER;
	major = gss_wrap(&minor, g->ctx, g->conf, GSS_C_QOP_DEFAULT, &in, NULL, &out);
	uint8_t *start = NULL;
	size_t total = GSSFRAME_HDR_LEN + out.length;
	if (!GSS_ERROR(major) && out.length <= GSSFRAME_TOKEN_MAX && total <= *len + room) {
		/* gss_wrap's output is its own buffer: overwriting the
		 * plaintext in the slot is fine. */
		start = p + *len - total;
		memcpy(start + GSSFRAME_HDR_LEN, out.value, out.length);
		gssframe_hdr_write(start, GSSFRAME_HDR_LEN, GSSFRAME_DATA, (uint16_t)out.length);
		*len = total;
	}
	gss_release_buffer(&minor, &out);
	return start;
}
