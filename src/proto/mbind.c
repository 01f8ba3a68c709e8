/*
 * mbind.c - the bind extension's messages (mbind.h, docs/protocol.md).
 * Every parser re-runs from the start while a message is incomplete, like
 * the rest of the codec: these messages are a few hundred bytes at most.
 */
#include "proto/mbind.h"

#include <string.h>

#include "proto/wire.h"

/* VER CODE RSV ATYP ADDR PORT; *alen is the address block's length. */
static enum socks_res head_parse(const uint8_t *p, size_t n, struct socks_addr *a, size_t *alen,
				 struct socks_err *err)
{
	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != SOCKS5_VER)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad version");
	if (n < 3)
		return SOCKS_MORE;
	/* RSV is ignored, as in every RFC 1928 message the core parses. */
	return socks_addr_parse(a, p + 3, n - 3, alen, err);
}

static size_t head_write(uint8_t *dst, size_t cap, uint8_t code, const struct socks_addr *a)
{
	size_t alen = socks_addr_wire_len(a);
	if (alen == 0 || cap < 3 + alen)
		return 0;
	dst[0] = SOCKS5_VER;
	dst[1] = code;
	dst[2] = 0x00;
	return 3 + socks_addr_write(dst + 3, cap - 3, a);
}

/*
 * +----+------+-----+------+----------+----------+-------+-------------------+
 * |VER | CMD  | RSV | ATYP | DST.ADDR | DST.PORT | NBIND | NBIND x           |
 * |    |X'10' |     |      |          |          |       | KIND PORT ARG     |
 * +----+------+-----+------+----------+----------+-------+-------------------+
 * | 1  |  1   |  1  |  1   | Variable |    2     |   1   | 1    2    2       |
 */
enum socks_res mbind_request_parse(struct mbind_request *out, const uint8_t *p, size_t n,
				   size_t *used, struct socks_err *err)
{
	size_t alen = 0;
	enum socks_res r = head_parse(p, n, &out->dst, &alen, err);
	if (r != SOCKS_DONE)
		return r;
	if (p[1] != MBIND_CMD_LISTEN)
		return wire_bad(err, SOCKS5_REP_CMD_NOT_SUPPORTED, "not a LISTEN request");
	size_t off = 3 + alen;
	if (n < off + 1)
		return SOCKS_MORE;
	uint8_t nb = p[off++];
	if (nb == 0 || nb > MBIND_MAX)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad bind count");
	for (uint8_t i = 0; i < nb; i++, off += 5) {
		if (n < off + 1)
			return SOCKS_MORE;
		if (p[off] != MBIND_KIND_TCP && p[off] != MBIND_KIND_UDP)
			return wire_bad(err, SOCKS5_REP_CMD_NOT_SUPPORTED, "unknown bind kind");
		if (n < off + 5)
			return SOCKS_MORE;
		out->e[i].kind = p[off];
		out->e[i].port = wire_get16(p + off + 1);
		out->e[i].arg = wire_get16(p + off + 3);
	}
	out->n = nb;
	return wire_done(used, off);
}

size_t mbind_request_write(uint8_t *dst, size_t cap, const struct mbind_request *r)
{
	size_t alen = socks_addr_wire_len(&r->dst);
	if (r->n == 0 || r->n > MBIND_MAX || alen == 0 || cap < 3 + alen + 1 + (size_t)r->n * 5)
		return 0; /* nothing written when it does not fit */
	size_t off = head_write(dst, cap, MBIND_CMD_LISTEN, &r->dst);
	dst[off++] = r->n;
	for (uint8_t i = 0; i < r->n; i++, off += 5) {
		dst[off] = r->e[i].kind;
		wire_put16(dst + off + 1, r->e[i].port);
		wire_put16(dst + off + 3, r->e[i].arg);
	}
	return off;
}

/*
 * +----+-----+-----+------+----------+----------+-------+----------------------------+
 * |VER | REP | RSV | ATYP | BND.ADDR | BND.PORT | NBIND | NBIND x KIND BND [RELAY]   |
 * +----+-----+-----+------+----------+----------+-------+----------------------------+
 * NBIND and the list only with REP X'00'; RELAY (ATYP ADDR PORT) only for
 * KIND X'02'.
 */
enum socks_res mbind_reply_parse(struct mbind_reply *out, const uint8_t *p, size_t n, size_t *used,
				 struct socks_err *err)
{
	size_t alen = 0;
	enum socks_res r = head_parse(p, n, &out->bnd, &alen, err);
	if (r != SOCKS_DONE)
		return r;
	out->rep = p[1];
	out->n = 0;
	size_t off = 3 + alen;
	if (out->rep != SOCKS5_REP_SUCCEEDED)
		return wire_done(used, off);
	if (n < off + 1)
		return SOCKS_MORE;
	uint8_t nb = p[off++];
	if (nb == 0 || nb > MBIND_MAX)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad bind count");
	for (uint8_t i = 0; i < nb; i++) {
		struct mbind_bound *b = &out->b[i];
		if (n < off + 1)
			return SOCKS_MORE;
		b->kind = p[off++];
		if (b->kind != MBIND_KIND_TCP && b->kind != MBIND_KIND_UDP)
			return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "unknown bind kind");
		r = socks_addr_parse(&b->bnd, p + off, n - off, &alen, err);
		if (r != SOCKS_DONE)
			return r;
		off += alen;
		if (b->kind == MBIND_KIND_UDP) {
			r = socks_addr_parse(&b->relay, p + off, n - off, &alen, err);
			if (r != SOCKS_DONE)
				return r;
			off += alen;
		}
	}
	out->n = nb;
	return wire_done(used, off);
}

/* The reply's length, 0 when r cannot be written. */
static size_t reply_len(const struct mbind_reply *r)
{
	size_t len = socks_addr_wire_len(&r->bnd);
	if (len == 0)
		return 0;
	len += 3;
	if (r->rep != SOCKS5_REP_SUCCEEDED)
		return len;
	if (r->n == 0 || r->n > MBIND_MAX)
		return 0;
	len++;
	for (uint8_t i = 0; i < r->n; i++) {
		const struct mbind_bound *b = &r->b[i];
		size_t a = socks_addr_wire_len(&b->bnd);
		size_t u = b->kind == MBIND_KIND_UDP ? socks_addr_wire_len(&b->relay) : 1;
		if ((b->kind != MBIND_KIND_TCP && b->kind != MBIND_KIND_UDP) || a == 0 || u == 0)
			return 0;
		len += 1 + a + (b->kind == MBIND_KIND_UDP ? u : 0);
	}
	return len;
}

size_t mbind_reply_write(uint8_t *dst, size_t cap, const struct mbind_reply *r)
{
	size_t len = reply_len(r);
	if (len == 0 || cap < len)
		return 0; /* nothing written when it does not fit */
	size_t off = head_write(dst, cap, r->rep, &r->bnd);
	if (r->rep != SOCKS5_REP_SUCCEEDED)
		return off;
	dst[off++] = r->n;
	for (uint8_t i = 0; i < r->n; i++) {
		const struct mbind_bound *b = &r->b[i];
		if (cap < off + 1)
			return 0;
		dst[off++] = b->kind;
		size_t w = socks_addr_write(dst + off, cap - off, &b->bnd);
		if (w == 0)
			return 0;
		off += w;
		if (b->kind == MBIND_KIND_UDP) {
			w = socks_addr_write(dst + off, cap - off, &b->relay);
			if (w == 0)
				return 0;
			off += w;
		}
	}
	return off;
}

/*
 * ARRIVAL  TYPE X'01' | BIND | ID(8) | ATYP PEER.ADDR PEER.PORT
 * CLOSED   TYPE X'02' | ID(8) | REP
 * REFUSE   TYPE X'03' | ID(8)
 */
enum socks_res mbind_msg_parse(struct mbind_msg *out, const uint8_t *p, size_t n, size_t *used,
			       struct socks_err *err)
{
	if (n < 1)
		return SOCKS_MORE;
	out->type = p[0];
	switch (p[0]) {
	case MBIND_MSG_ARRIVAL: {
		if (n < 2 + MBIND_ID_LEN)
			return SOCKS_MORE;
		size_t alen = 0;
		enum socks_res r = socks_addr_parse(&out->peer, p + 2 + MBIND_ID_LEN,
						    n - 2 - MBIND_ID_LEN, &alen, err);
		if (r != SOCKS_DONE)
			return r;
		out->bind = p[1];
		memcpy(out->id, p + 2, MBIND_ID_LEN);
		return wire_done(used, 2 + MBIND_ID_LEN + alen);
	}
	case MBIND_MSG_CLOSED:
		if (n < 2 + MBIND_ID_LEN)
			return SOCKS_MORE;
		memcpy(out->id, p + 1, MBIND_ID_LEN);
		out->rep = p[1 + MBIND_ID_LEN];
		return wire_done(used, 2 + MBIND_ID_LEN);
	case MBIND_MSG_REFUSE:
		if (n < 1 + MBIND_ID_LEN)
			return SOCKS_MORE;
		memcpy(out->id, p + 1, MBIND_ID_LEN);
		return wire_done(used, 1 + MBIND_ID_LEN);
	default:
		return wire_bad(err, SOCKS5_REP_CMD_NOT_SUPPORTED, "unknown control message");
	}
}

size_t mbind_msg_write(uint8_t *dst, size_t cap, const struct mbind_msg *m)
{
	switch (m->type) {
	case MBIND_MSG_ARRIVAL: {
		size_t alen = socks_addr_wire_len(&m->peer);
		if (alen == 0 || cap < 2 + MBIND_ID_LEN + alen)
			return 0;
		size_t w = socks_addr_write(dst + 2 + MBIND_ID_LEN, cap - 2 - MBIND_ID_LEN,
					    &m->peer);
		if (w == 0)
			return 0;
		dst[0] = m->type;
		dst[1] = m->bind;
		memcpy(dst + 2, m->id, MBIND_ID_LEN);
		return 2 + MBIND_ID_LEN + w;
	}
	case MBIND_MSG_CLOSED:
		if (cap < 2 + MBIND_ID_LEN)
			return 0;
		dst[0] = m->type;
		memcpy(dst + 1, m->id, MBIND_ID_LEN);
		dst[1 + MBIND_ID_LEN] = m->rep;
		return 2 + MBIND_ID_LEN;
	case MBIND_MSG_REFUSE:
		if (cap < 1 + MBIND_ID_LEN)
			return 0;
		dst[0] = m->type;
		memcpy(dst + 1, m->id, MBIND_ID_LEN);
		return 1 + MBIND_ID_LEN;
	default:
		return 0;
	}
}

/*
 * +----+------+-----+------+-----------+-----------+-------+
 * |VER | CMD  | RSV | ATYP | PEER.ADDR | PEER.PORT |  ID   |
 * |    |X'11' |     |      |           |           |       |
 * +----+------+-----+------+-----------+-----------+-------+
 * | 1  |  1   |  1  |  1   | Variable  |     2     |   8   |
 */
enum socks_res mbind_accept_parse(struct mbind_accept *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err)
{
	size_t alen = 0;
	enum socks_res r = head_parse(p, n, &out->peer, &alen, err);
	if (r != SOCKS_DONE)
		return r;
	if (p[1] != MBIND_CMD_ACCEPT)
		return wire_bad(err, SOCKS5_REP_CMD_NOT_SUPPORTED, "not an ACCEPT request");
	size_t off = 3 + alen;
	if (n < off + MBIND_ID_LEN)
		return SOCKS_MORE;
	memcpy(out->id, p + off, MBIND_ID_LEN);
	return wire_done(used, off + MBIND_ID_LEN);
}

size_t mbind_accept_write(uint8_t *dst, size_t cap, const struct mbind_accept *a)
{
	size_t alen = socks_addr_wire_len(&a->peer);
	if (alen == 0 || cap < 3 + alen + MBIND_ID_LEN)
		return 0;
	size_t off = head_write(dst, cap, MBIND_CMD_ACCEPT, &a->peer);
	memcpy(dst + off, a->id, MBIND_ID_LEN);
	return off + MBIND_ID_LEN;
}
