/*
 * request.c - SOCKS5 requests and replies (RFC 1928 sections 4 and 6).
 * Both messages share one layout; only the meaning of byte 1 differs.
 */
#include "proto/socks.h"
#include "proto/wire.h"

/* VER CODE RSV ATYP ADDR PORT: parse everything after CODE into *a. */
static enum socks_res msg_parse(uint8_t *code, struct socks_addr *a, const uint8_t *p, size_t n,
				size_t *used, struct socks_err *err)
{
	enum socks_res r;
	size_t alen = 0;

	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != SOCKS5_VER)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad version");
	if (n < 3)
		return SOCKS_MORE;
	/* RSV (p[2]) is ignored: RFC 1928 gives it no meaning. */
	r = socks_addr_parse(a, p + 3, n - 3, &alen, err);
	if (r != SOCKS_DONE)
		return r;
	*code = p[1];
	return wire_done(used, 3 + alen);
}

static size_t msg_write(uint8_t *dst, size_t cap, uint8_t code, const struct socks_addr *a)
{
	size_t alen = socks_addr_wire_len(a);

	if (alen == 0 || cap < 3 + alen)
		return 0;
	dst[0] = SOCKS5_VER;
	dst[1] = code;
	dst[2] = 0x00; /* RSV */
	return 3 + socks_addr_write(dst + 3, cap - 3, a);
}

/*
 * +----+-----+-------+------+----------+----------+
 * |VER | CMD |  RSV  | ATYP | DST.ADDR | DST.PORT |
 * +----+-----+-------+------+----------+----------+
 * | 1  |  1  | X'00' |  1   | Variable |    2     |
 * +----+-----+-------+------+----------+----------+
 *
 * Every CMD value parses: dispatch answers X'07' for what it does not know.
 */
enum socks_res socks5_request_parse(struct socks5_request *out, const uint8_t *p, size_t n,
				    size_t *used, struct socks_err *err)
{
	return msg_parse(&out->cmd, &out->dst, p, n, used, err);
}

size_t socks5_request_write(uint8_t *dst, size_t cap, uint8_t cmd, const struct socks_addr *a)
{
	return msg_write(dst, cap, cmd, a);
}

/*
 * +----+-----+-------+------+----------+----------+
 * |VER | REP |  RSV  | ATYP | BND.ADDR | BND.PORT |
 * +----+-----+-------+------+----------+----------+
 * | 1  |  1  | X'00' |  1   | Variable |    2     |
 * +----+-----+-------+------+----------+----------+
 *
 * Client side. A failure reply still carries an address block, which is
 * parsed too so that the caller knows where the next message starts.
 */
enum socks_res socks5_reply_parse(struct socks5_reply *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err)
{
	return msg_parse(&out->rep, &out->bnd, p, n, used, err);
}

size_t socks5_reply_write(uint8_t *dst, size_t cap, uint8_t rep, const struct socks_addr *bnd)
{
	static const struct socks_addr any4 = {.atyp = SOCKS_ATYP_IPV4};

	return msg_write(dst, cap, rep, bnd ? bnd : &any4);
}
