/*
 * ptcl.c - TRANSPARENT (CMD X'04', seed 003): the four fields a request
 * carries after DST.PORT when CMD is X'04', and the whole request for
 * clients and the fuzzer. Replies are RFC 1928 replies (request.c).
 *
 *  +------+--------+----------+--------+
 *  | PTCL | S.ATYP |  S.ADDR  | S.PORT |
 *  +------+--------+----------+--------+
 *  |  1   |   1    | Variable |   2    |
 *  +------+--------+----------+--------+
 */
#include "proto/socks.h"
#include "proto/wire.h"

enum socks_res socks_ptcl_parse(struct socks_ptcl *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err)
{
	size_t alen = 0;
	enum socks_res r;

	if (n < 1)
		return SOCKS_MORE;
	/* S.ATYP S.ADDR S.PORT has RFC 1928's address layout: same parser,
	 * same errors (unknown S.ATYP X'08', empty or NUL name X'01'). */
	r = socks_addr_parse(&out->src, p + 1, n - 1, &alen, err);
	if (r != SOCKS_DONE)
		return r;
	out->ptcl = p[0];
	return wire_done(used, 1 + alen);
}

size_t socks_ptcl_write(uint8_t *dst, size_t cap, uint8_t ptcl, const struct socks_addr *src)
{
	size_t alen = socks_addr_wire_len(src);

	if (alen == 0 || cap < 1 + alen)
		return 0;
	dst[0] = ptcl;
	return 1 + socks_addr_write(dst + 1, cap - 1, src);
}

enum socks_res socks5_tp_request_parse(struct socks5_tp_request *out, const uint8_t *p, size_t n,
				       size_t *used, struct socks_err *err)
{
	size_t rlen = 0, tlen = 0;
	enum socks_res r = socks5_request_parse(&out->req, p, n, &rlen, err);

	if (r != SOCKS_DONE)
		return r;
	out->has_ptcl = out->req.cmd == SOCKS_CMD_TRANSPARENT;
	if (!out->has_ptcl)
		return wire_done(used, rlen);
	r = socks_ptcl_parse(&out->ext, p + rlen, n - rlen, &tlen, err);
	if (r != SOCKS_DONE)
		return r;
	return wire_done(used, rlen + tlen);
}

size_t socks5_tp_request_write(uint8_t *dst, size_t cap, const struct socks_addr *target,
			       uint8_t ptcl, const struct socks_addr *src)
{
	size_t dlen = socks_addr_wire_len(target), slen = socks_addr_wire_len(src);

	/* Nothing is written unless all of it fits. */
	if (dlen == 0 || slen == 0 || cap < 3 + dlen + 1 + slen)
		return 0;
	dlen = socks5_request_write(dst, cap, SOCKS_CMD_TRANSPARENT, target);
	return dlen + socks_ptcl_write(dst + dlen, cap - dlen, ptcl, src);
}

const char *socks_ptcl_name(uint8_t ptcl)
{
	switch (ptcl) {
	case SOCKS_PTCL_TCP:
		return "tcp";
	case SOCKS_PTCL_UDP:
		return "udp";
	default:
		return NULL;
	}
}
