/*
 * udp.c - the header in front of every UDP ASSOCIATE datagram
 * (RFC 1928 section 7).
 */
#include "proto/socks.h"
#include "proto/wire.h"

/*
 * +----+------+------+----------+----------+----------+
 * |RSV | FRAG | ATYP | DST.ADDR | DST.PORT |   DATA   |
 * +----+------+------+----------+----------+----------+
 * | 2  |  1   |  1   | Variable |    2     | Variable |
 * +----+------+------+----------+----------+----------+
 *
 * A datagram arrives whole, so a short one is BAD, never MORE. RSV is
 * ignored. FRAG is reported, not judged: the server drops FRAG != 0 itself
 * (stp does not reassemble, which RFC 1928 allows).
 */
enum socks_res socks_udp_parse(struct socks_udp_hdr *out, const uint8_t *p, size_t n,
			       struct socks_err *err)
{
	enum socks_res r;
	size_t alen = 0;

	if (n < 3)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "short UDP header");
	r = socks_addr_parse(&out->addr, p + 3, n - 3, &alen, err);
	if (r == SOCKS_MORE)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "short UDP header");
	if (r == SOCKS_BAD)
		return r;
	out->frag = p[2];
	out->hdrlen = 3 + alen;
	return SOCKS_DONE;
}

/* Writes the header only; the caller puts DATA after the returned length. */
size_t socks_udp_write(uint8_t *dst, size_t cap, uint8_t frag, const struct socks_addr *a)
{
	size_t alen = socks_addr_wire_len(a);

	if (alen == 0 || cap < 3 + alen)
		return 0;
	dst[0] = 0x00; /* RSV */
	dst[1] = 0x00;
	dst[2] = frag;
	return 3 + socks_addr_write(dst + 3, cap - 3, a);
}
