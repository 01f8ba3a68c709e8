/*
 * mcast.c - wire formats of the multicast extension (docs/mcast.md):
 * JOIN/LEAVE requests with the optional source filter, replies with
 * LEN|KEY, the KEY block, and the datagram headers used with a relay.
 */
#include <string.h>

#include "proto/mcast.h"
#include "proto/wire.h"

static size_t ip_len(uint8_t atyp)
{
	return atyp == SOCKS_ATYP_IPV4 ? 4 : atyp == SOCKS_ATYP_IPV6 ? 16 : 0;
}

bool mcast_addr_is_group(uint8_t atyp, const uint8_t *addr)
{
	if (atyp == SOCKS_ATYP_IPV4)
		return (addr[0] & 0xF0) == 0xE0; /* 224.0.0.0/4 */
	if (atyp == SOCKS_ATYP_IPV6)
		return addr[0] == 0xFF;          /* ff00::/8 */
	return false;
}

/*
 * +-------+------+------+--------+-----+------+--------+
 * | FMODE | NSRC | ATYP | S.ADDR | ... | ATYP | S.ADDR |
 * +-------+------+------+--------+-----+------+--------+
 * |   1   |  1   |  1   | 4 / 16 |     |  1   | 4 / 16 |
 * +-------+------+------+--------+-----+------+--------+
 *
 * FMODE X'01' INCLUDE: only these sources (NSRC 1..32).
 * FMODE X'02' EXCLUDE: every source but these (NSRC 0..32).
 * Every source has the same ATYP (IPv4 X'01' or IPv6 X'04').
 */
enum socks_res mcast_filter_parse(struct mcast_filter *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err)
{
	size_t off = 2;

	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != MCAST_FMODE_INCLUDE && p[0] != MCAST_FMODE_EXCLUDE)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad filter mode");
	if (n < 2)
		return SOCKS_MORE;
	if (p[1] > MCAST_SOURCES_MAX)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "too many sources");
	if (p[0] == MCAST_FMODE_INCLUDE && p[1] == 0)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "INCLUDE filter without source");
	out->mode = p[0];
	out->nsrc = p[1];
	out->atyp = 0;
	for (size_t i = 0; i < out->nsrc; i++) {
		if (n < off + 1)
			return SOCKS_MORE;
		size_t alen = ip_len(p[off]);
		if (alen == 0)
			return wire_bad(err, SOCKS5_REP_ATYP_NOT_SUPPORTED, "bad source ATYP");
		if (out->atyp != 0 && p[off] != out->atyp)
			return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "mixed source families");
		out->atyp = p[off];
		if (n < off + 1 + alen)
			return SOCKS_MORE;
		memset(out->src[i], 0, sizeof(out->src[i]));
		memcpy(out->src[i], p + off + 1, alen);
		off += 1 + alen;
	}
	return wire_done(used, off);
}

size_t mcast_filter_write(uint8_t *dst, size_t cap, const struct mcast_filter *f)
{
	size_t alen = ip_len(f->atyp);
	size_t len = 2 + (size_t)f->nsrc * (1 + alen);

	if ((f->mode != MCAST_FMODE_INCLUDE && f->mode != MCAST_FMODE_EXCLUDE) ||
	    f->nsrc > MCAST_SOURCES_MAX || (f->nsrc > 0 && alen == 0) || cap < len)
		return 0;
	dst[0] = f->mode;
	dst[1] = f->nsrc;
	for (size_t i = 0, off = 2; i < f->nsrc; i++, off += 1 + alen) {
		dst[off] = f->atyp;
		memcpy(dst + off + 1, f->src[i], alen);
	}
	return len;
}

/*
 * +----+-----+-------+------+----------+----------+----------------+
 * |VER | CMD |  RSV  | ATYP |  M.ADDR  |  M.PORT  | filter (X'85') |
 * +----+-----+-------+------+----------+----------+----------------+
 * | 1  |  1  | X'00' |  1   | Variable |    2     |    Variable    |
 * +----+-----+-------+------+----------+----------+----------------+
 */
enum socks_res mcast_request_parse(struct mcast_request *out, const uint8_t *p, size_t n,
				   size_t *used, struct socks_err *err)
{
	struct socks5_request req;
	size_t rlen = 0, flen = 0;
	enum socks_res r;

	memset(&req, 0, sizeof(req)); /* no stack bytes in the caller's union */
	r = socks5_request_parse(&req, p, n, &rlen, err);

	if (r != SOCKS_DONE)
		return r;
	out->cmd = req.cmd;
	out->group = req.dst;
	memset(&out->filter, 0, sizeof(out->filter));
	if (req.cmd != MCAST_CMD_JOIN_FILTER)
		return wire_done(used, rlen);
	r = mcast_filter_parse(&out->filter, p + rlen, n - rlen, &flen, err);
	if (r != SOCKS_DONE)
		return r;
	return wire_done(used, rlen + flen);
}

size_t mcast_request_write(uint8_t *dst, size_t cap, const struct mcast_request *r)
{
	uint8_t filter[2 + MCAST_SOURCES_MAX * 17];
	size_t f = 0, alen = socks_addr_wire_len(&r->group);

	/* Sizes first: a writer leaves dst untouched when cap is too small. */
	if (r->cmd == MCAST_CMD_JOIN_FILTER &&
	    (f = mcast_filter_write(filter, sizeof(filter), &r->filter)) == 0)
		return 0;
	if (alen == 0 || cap < 3 + alen + f)
		return 0;
	size_t n = socks5_request_write(dst, cap, r->cmd, &r->group);
	memcpy(dst + n, filter, f);
	return n + f;
}

/*
 * +-------+-------+-----------+----------+----------+
 * | SUITE | FLAGS | MEMBER_ID | SEND_KEY | RECV_KEY |
 * +-------+-------+-----------+----------+----------+
 * |   1   |   1   |     4     | 0 or 32  | 0 or 32  |
 * +-------+-------+-----------+----------+----------+
 *
 * SEND_KEY is present when FLAGS has X'01', RECV_KEY when it has X'02'.
 */
enum socks_res mcast_keyblock_parse(struct mcast_keyblock *out, const uint8_t *p, size_t n,
				    struct socks_err *err)
{
	size_t want;

	if (n < 6)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "short KEY block");
	if (p[0] != MCAST_SUITE_AES256GCM && p[0] != MCAST_SUITE_CHACHA20)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "unknown suite");
	if (p[1] & ~(MCAST_KEYF_SEND | MCAST_KEYF_RECV))
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "unknown KEY flags");
	want = 6 + ((p[1] & MCAST_KEYF_SEND) ? MCAST_KEY_LEN : 0) +
	       ((p[1] & MCAST_KEYF_RECV) ? MCAST_KEY_LEN : 0);
	if (n != want)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "KEY length does not match flags");
	out->suite = p[0];
	out->flags = p[1];
	out->member_id = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
	if (out->member_id == 0)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "member id 0");
	memset(out->send_key, 0, sizeof(out->send_key));
	memset(out->recv_key, 0, sizeof(out->recv_key));
	size_t off = 6;
	if (out->flags & MCAST_KEYF_SEND) {
		memcpy(out->send_key, p + off, MCAST_KEY_LEN);
		off += MCAST_KEY_LEN;
	}
	if (out->flags & MCAST_KEYF_RECV)
		memcpy(out->recv_key, p + off, MCAST_KEY_LEN);
	return SOCKS_DONE;
}

size_t mcast_keyblock_write(uint8_t *dst, size_t cap, const struct mcast_keyblock *k)
{
	size_t len = 6 + ((k->flags & MCAST_KEYF_SEND) ? MCAST_KEY_LEN : 0) +
		     ((k->flags & MCAST_KEYF_RECV) ? MCAST_KEY_LEN : 0);
	size_t off = 6;

	if ((k->suite != MCAST_SUITE_AES256GCM && k->suite != MCAST_SUITE_CHACHA20) ||
	    (k->flags & ~(MCAST_KEYF_SEND | MCAST_KEYF_RECV)) || k->member_id == 0 || cap < len)
		return 0;
	dst[0] = k->suite;
	dst[1] = k->flags;
	dst[2] = (uint8_t)(k->member_id >> 24);
	dst[3] = (uint8_t)(k->member_id >> 16);
	dst[4] = (uint8_t)(k->member_id >> 8);
	dst[5] = (uint8_t)k->member_id;
	if (k->flags & MCAST_KEYF_SEND) {
		memcpy(dst + off, k->send_key, MCAST_KEY_LEN);
		off += MCAST_KEY_LEN;
	}
	if (k->flags & MCAST_KEYF_RECV)
		memcpy(dst + off, k->recv_key, MCAST_KEY_LEN);
	return len;
}

bool mcast_reply_has_key(uint8_t req_cmd, uint8_t rep)
{
	if (req_cmd != SOCKS_CMD_JOIN_MCAST && req_cmd != MCAST_CMD_JOIN_FILTER)
		return false;
	return rep == SOCKS5_REP_SUCCEEDED || rep == SOCKS5_REP_MCAST_NO_SEND ||
	       rep == SOCKS5_REP_MCAST_NO_RECV || rep == SOCKS5_REP_MCAST_NEITHER;
}

/*
 * +----+-----+-------+------+----------+----------+-----+----------+
 * |VER | REP |  RSV  | ATYP |   ADDR   |   PORT   | LEN |   KEY    |
 * +----+-----+-------+------+----------+----------+-----+----------+
 * | 1  |  1  | X'00' |  1   | Variable |    2     |  1  | LEN bytes|
 * +----+-----+-------+------+----------+----------+-----+----------+
 *
 * LEN|KEY only where mcast_reply_has_key() says so.
 */
enum socks_res mcast_reply_parse(struct mcast_reply *out, uint8_t req_cmd, const uint8_t *p,
				 size_t n, size_t *used, struct socks_err *err)
{
	struct socks5_reply r;
	size_t rlen = 0;
	enum socks_res res;

	memset(&r, 0, sizeof(r));
	res = socks5_reply_parse(&r, p, n, &rlen, err);

	if (res != SOCKS_DONE)
		return res;
	out->rep = r.rep;
	out->addr = r.bnd;
	out->has_key = mcast_reply_has_key(req_cmd, r.rep);
	out->encrypted = false;
	if (!out->has_key)
		return wire_done(used, rlen);
	if (n < rlen + 1)
		return SOCKS_MORE;
	size_t klen = p[rlen];
	/* Decided at LEN: waiting for a longer block would ask for more than
	 * MCAST_REPLY_MAX bytes (a long domain address plus LEN 255). */
	if (klen > MCAST_KEYBLOCK_MAX)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "KEY block longer than 70 bytes");
	if (n < rlen + 1 + klen)
		return SOCKS_MORE;
	if (klen > 0) {
		res = mcast_keyblock_parse(&out->key, p + rlen + 1, klen, err);
		if (res != SOCKS_DONE)
			return res;
		out->encrypted = true;
	}
	return wire_done(used, rlen + 1 + klen);
}

size_t mcast_reply_write(uint8_t *dst, size_t cap, uint8_t req_cmd, uint8_t rep,
			 const struct socks_addr *addr, const struct mcast_keyblock *key)
{
	static const struct socks_addr any4 = { .atyp = SOCKS_ATYP_IPV4 };
	uint8_t kb[MCAST_KEYBLOCK_MAX];
	size_t k = 0, extra = 0;
	size_t alen = socks_addr_wire_len(addr ? addr : &any4);

	if (mcast_reply_has_key(req_cmd, rep)) {
		if (key && (k = mcast_keyblock_write(kb, sizeof(kb), key)) == 0)
			return 0;
		extra = 1 + k;
	}
	if (alen == 0 || cap < 3 + alen + extra)
		return 0;
	size_t n = socks5_reply_write(dst, cap, rep, addr);
	if (extra) {
		dst[n] = (uint8_t)k;
		memcpy(dst + n + 1, kb, k);
	}
	return n + extra;
}

/*
 * Member -> relay:
 * +-----+------+-----------+-----+------------+-----+
 * | VER | KIND | MEMBER_ID | SEQ | CIPHERTEXT | TAG |
 * +-----+------+-----------+-----+------------+-----+
 * |  1  | X'01'|     4     |  8  |  Variable  | 16  |
 * +-----+------+-----------+-----+------------+-----+
 *
 * Relay -> intranet group:
 * +-----+------+--------+-----+------+----------+----------+------------+-----+
 * | VER | KIND | ORIGIN | SEQ | ATYP | SRC.ADDR | SRC.PORT | CIPHERTEXT | TAG |
 * +-----+------+--------+-----+------+----------+----------+------------+-----+
 * |  1  | X'02'|   4    |  8  |  1   |  4 / 16  |    2     |  Variable  | 16  |
 * +-----+------+--------+-----+------+----------+----------+------------+-----+
 *
 * The header is the AEAD's associated data. TAG is absent with suite none.
 */
enum socks_res mcast_frame_parse(struct mcast_frame *out, const uint8_t *p, size_t n,
				 struct socks_err *err)
{
	if (n < MCAST_MHDR_LEN)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "short frame");
	if (p[0] != MCAST_FRAME_VER)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad frame version");
	if (p[1] != MCAST_KIND_MEMBER && p[1] != MCAST_KIND_RELAY)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad frame kind");
	out->kind = p[1];
	out->id = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
	out->seq = 0;
	for (int i = 0; i < 8; i++)
		out->seq = out->seq << 8 | p[6 + i];
	out->hdrlen = MCAST_MHDR_LEN;
	memset(&out->src, 0, sizeof(out->src));
	if (out->kind == MCAST_KIND_MEMBER)
		return SOCKS_DONE;
	size_t alen = n > MCAST_MHDR_LEN ? ip_len(p[MCAST_MHDR_LEN]) : 0;
	if (n > MCAST_MHDR_LEN && alen == 0)
		return wire_bad(err, SOCKS5_REP_ATYP_NOT_SUPPORTED, "bad source ATYP");
	if (n < MCAST_MHDR_LEN + 1 + alen + 2)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "short frame");
	out->src.atyp = p[MCAST_MHDR_LEN];
	memcpy(out->src.u.v6, p + MCAST_MHDR_LEN + 1, alen);
	out->src.port = wire_get16(p + MCAST_MHDR_LEN + 1 + alen);
	out->hdrlen = MCAST_MHDR_LEN + 1 + alen + 2;
	return SOCKS_DONE;
}

size_t mcast_frame_hdr_write(uint8_t *dst, size_t cap, const struct mcast_frame *f)
{
	size_t len = MCAST_MHDR_LEN;

	if (f->kind != MCAST_KIND_MEMBER && f->kind != MCAST_KIND_RELAY)
		return 0;
	if (f->kind == MCAST_KIND_RELAY) {
		size_t alen = ip_len(f->src.atyp);
		if (alen == 0)
			return 0;
		len += 1 + alen + 2;
	}
	if (cap < len)
		return 0;
	dst[0] = MCAST_FRAME_VER;
	dst[1] = f->kind;
	dst[2] = (uint8_t)(f->id >> 24);
	dst[3] = (uint8_t)(f->id >> 16);
	dst[4] = (uint8_t)(f->id >> 8);
	dst[5] = (uint8_t)f->id;
	for (int i = 0; i < 8; i++)
		dst[6 + i] = (uint8_t)(f->seq >> (56 - 8 * i));
	if (f->kind == MCAST_KIND_RELAY) {
		size_t alen = ip_len(f->src.atyp);
		dst[MCAST_MHDR_LEN] = f->src.atyp;
		memcpy(dst + MCAST_MHDR_LEN + 1, f->src.u.v6, alen);
		wire_put16(dst + MCAST_MHDR_LEN + 1 + alen, f->src.port);
	}
	return len;
}

void mcast_nonce(uint8_t nonce[MCAST_NONCE_LEN], uint64_t seq)
{
	memset(nonce, 0, 4);
	for (int i = 0; i < 8; i++)
		nonce[4 + i] = (uint8_t)(seq >> (56 - 8 * i));
}
