/*
 * tunnel.c - SETUP_UDP_TUNNEL's messages (tunnel.h, docs/protocol.md 5.10).
 *
 *  X'20' body after DST.PORT:
 *  +------+-------+------+------+-------+------+--------+--------+--------+--------+
 *  | TVER | TRANS | CRED | ULEN | UNAME | PLEN | PASSWD | F.ATYP | F.ADDR | F.PORT |
 *  +------+-------+------+------+-------+------+--------+--------+--------+--------+
 *  |  1   |   1   |  1   |  1   | 1-255 |  1   | 1-255  |   1    |  var.  |   2    |
 *  +------+-------+------+------+-------+------+--------+--------+--------+--------+
 *  (ULEN..PASSWD only when CRED is X'01')
 */
#include "proto/tunnel.h"

#include <string.h>

#include "proto/wire.h"

static bool trans_known(uint8_t t)
{
	return t == TUNNEL_TRANS_DTLS || t == TUNNEL_TRANS_TLS;
}

/* VER CMD RSV ATYP ADDR PORT with CMD cmd, then TVER TRANS. */
static enum socks_res head_parse(uint8_t cmd, struct socks_addr *dst, uint8_t *trans,
				 const uint8_t *p, size_t n, size_t *used, struct socks_err *err)
{
	struct socks5_request req;
	size_t rlen = 0;
	enum socks_res r;

	memset(&req, 0, sizeof(req)); /* copied whole into the caller's struct */
	if (n >= 1 && p[0] != SOCKS5_VER)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad version");
	if (n >= 2 && p[1] != cmd)
		return wire_bad(err, SOCKS5_REP_CMD_NOT_SUPPORTED, "not a tunnel command");
	r = socks5_request_parse(&req, p, n, &rlen, err);
	if (r != SOCKS_DONE)
		return r;
	if (n < rlen + 1)
		return SOCKS_MORE;
	if (p[rlen] != TUNNEL_VER)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "unknown tunnel version");
	if (n < rlen + 2)
		return SOCKS_MORE;
	if (!trans_known(p[rlen + 1]))
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "unknown tunnel transport");
	*dst = req.dst;
	*trans = p[rlen + 1];
	return wire_done(used, rlen + 2);
}

/* LEN(1) BYTES(LEN), LEN >= 1, copied NUL-terminated into out. */
static enum socks_res lstr_parse(char *out, uint8_t *len, const uint8_t *p, size_t n, size_t *used,
				 struct socks_err *err, const char *why_empty)
{
	if (n < 1)
		return SOCKS_MORE;
	if (p[0] == 0)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, why_empty);
	if (n < 1u + p[0])
		return SOCKS_MORE;
	memcpy(out, p + 1, p[0]);
	out[p[0]] = '\0';
	*len = p[0];
	return wire_done(used, 1u + p[0]);
}

enum socks_res tunnel_setup_parse(struct tunnel_setup *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err)
{
	size_t off = 0, k = 0;
	enum socks_res r = head_parse(TUNNEL_CMD_SETUP, &out->remote, &out->trans, p, n, &off, err);

	if (r != SOCKS_DONE)
		return r;
	if (n < off + 1)
		return SOCKS_MORE;
	out->cred = p[off++];
	out->ulen = out->plen = 0;
	out->user[0] = out->pass[0] = '\0';
	switch (out->cred) {
	case TUNNEL_CRED_USERPASS:
		r = lstr_parse(out->user, &out->ulen, p + off, n - off, &k, err, "empty UNAME");
		if (r != SOCKS_DONE)
			return r;
		off += k;
		r = lstr_parse(out->pass, &out->plen, p + off, n - off, &k, err, "empty PASSWD");
		if (r != SOCKS_DONE)
			return r;
		off += k;
		break;
	case TUNNEL_CRED_NONE:
	case TUNNEL_CRED_CERT:
		break;
	default:
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "unknown tunnel credentials");
	}
	r = socks_addr_parse(&out->far, p + off, n - off, &k, err);
	if (r != SOCKS_DONE)
		return r;
	return wire_done(used, off + k);
}

size_t tunnel_setup_write(uint8_t *dst, size_t cap, const struct tunnel_setup *t)
{
	size_t rlen = socks_addr_wire_len(&t->remote), flen = socks_addr_wire_len(&t->far);
	size_t clen = t->cred == TUNNEL_CRED_USERPASS ? 2u + t->ulen + t->plen : 0;
	size_t need = 3 + rlen + 3 + clen + flen, off;

	if (rlen == 0 || flen == 0 || cap < need || !trans_known(t->trans))
		return 0;
	if (t->cred == TUNNEL_CRED_USERPASS && (t->ulen == 0 || t->plen == 0))
		return 0;
	off = socks5_request_write(dst, cap, TUNNEL_CMD_SETUP, &t->remote);
	dst[off++] = TUNNEL_VER;
	dst[off++] = t->trans;
	dst[off++] = t->cred;
	if (t->cred == TUNNEL_CRED_USERPASS) {
		dst[off++] = t->ulen;
		memcpy(dst + off, t->user, t->ulen);
		off += t->ulen;
		dst[off++] = t->plen;
		memcpy(dst + off, t->pass, t->plen);
		off += t->plen;
	}
	return off + socks_addr_write(dst + off, cap - off, &t->far);
}

enum socks_res tunnel_relay_parse(struct tunnel_relay *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err)
{
	return head_parse(TUNNEL_CMD_RELAY, &out->far, &out->trans, p, n, used, err);
}

size_t tunnel_relay_write(uint8_t *dst, size_t cap, const struct tunnel_relay *t)
{
	size_t flen = socks_addr_wire_len(&t->far), off;

	if (flen == 0 || cap < 3 + flen + 2 || !trans_known(t->trans))
		return 0;
	off = socks5_request_write(dst, cap, TUNNEL_CMD_RELAY, &t->far);
	dst[off++] = TUNNEL_VER;
	dst[off++] = t->trans;
	return off;
}

enum socks_res tunnel_relay_reply_parse(struct tunnel_relay_reply *out, uint8_t trans,
					const uint8_t *p, size_t n, size_t *used,
					struct socks_err *err)
{
	struct socks5_reply rep;
	size_t rlen = 0;
	enum socks_res r;

	memset(&rep, 0, sizeof(rep)); /* copied whole into the caller's struct */
	r = socks5_reply_parse(&rep, p, n, &rlen, err);

	if (r != SOCKS_DONE)
		return r;
	out->rep = rep.rep;
	out->bnd = rep.bnd;
	out->has_token = rep.rep == SOCKS5_REP_SUCCEEDED && trans == TUNNEL_TRANS_DTLS;
	if (!out->has_token)
		return wire_done(used, rlen);
	if (n < rlen + TUNNEL_TOKEN_LEN)
		return SOCKS_MORE;
	memcpy(out->token, p + rlen, TUNNEL_TOKEN_LEN);
	return wire_done(used, rlen + TUNNEL_TOKEN_LEN);
}

size_t tunnel_relay_reply_write(uint8_t *dst, size_t cap, const struct tunnel_relay_reply *r)
{
	size_t blen = socks_addr_wire_len(&r->bnd), off;

	if (blen == 0 || cap < 3 + blen + (r->has_token ? TUNNEL_TOKEN_LEN : 0))
		return 0;
	off = socks5_reply_write(dst, cap, r->rep, &r->bnd);
	if (r->has_token) {
		memcpy(dst + off, r->token, TUNNEL_TOKEN_LEN);
		off += TUNNEL_TOKEN_LEN;
	}
	return off;
}

enum socks_res tunnel_frame_parse(const uint8_t *p, size_t n, size_t *used, const uint8_t **data,
				  size_t *len)
{
	size_t l;

	if (n < TUNNEL_FRAME_HDR)
		return SOCKS_MORE;
	l = wire_get16(p);
	if (n < TUNNEL_FRAME_HDR + l)
		return SOCKS_MORE;
	*data = p + TUNNEL_FRAME_HDR;
	*len = l;
	return wire_done(used, TUNNEL_FRAME_HDR + l);
}

size_t tunnel_frame_head(uint8_t *dst, size_t len)
{
	if (len > 0xFFFF)
		return 0;
	wire_put16(dst, (uint16_t)len);
	return TUNNEL_FRAME_HDR;
}

const char *tunnel_trans_name(uint8_t trans)
{
	switch (trans) {
	case TUNNEL_TRANS_DTLS:
		return "dtls";
	case TUNNEL_TRANS_TLS:
		return "tls";
	default:
		return NULL;
	}
}
