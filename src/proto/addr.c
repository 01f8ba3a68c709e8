/*
 * addr.c - the address block shared by requests, replies and UDP headers
 * (RFC 1928 section 5).
 */
#include <string.h>

#include "proto/socks.h"
#include "proto/wire.h"

/*
 * +------+----------+----------+
 * | ATYP | DST.ADDR | DST.PORT |
 * +------+----------+----------+
 * |  1   | Variable |    2     |
 * +------+----------+----------+
 *
 * ATYP X'01' IPv4: 4 bytes.  ATYP X'04' IPv6: 16 bytes.
 * ATYP X'03' DOMAINNAME: one length byte, then that many bytes, no NUL.
 */
static enum socks_res addr_parse_domain(struct socks_addr *out, const uint8_t *p, size_t n,
					size_t *used, struct socks_err *err)
{
	size_t len, have;

	if (n < 2)
		return SOCKS_MORE;
	len = p[1];
	if (len == 0)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "empty domain name");
	/* Reject a NUL as soon as it arrives: the name is used as a C string. */
	have = n - 2 < len ? n - 2 : len;
	if (have > 0 && memchr(p + 2, 0, have) != NULL)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "NUL in domain name");
	if (n < 2 + len + 2)
		return SOCKS_MORE;
	out->atyp = SOCKS_ATYP_DOMAIN;
	out->namelen = (uint8_t)len;
	memcpy(out->u.name, p + 2, len);
	out->u.name[len] = '\0';
	out->port = wire_get16(p + 2 + len);
	return wire_done(used, 2 + len + 2);
}

enum socks_res socks_addr_parse(struct socks_addr *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err)
{
	size_t alen;

	if (n < 1)
		return SOCKS_MORE;
	switch (p[0]) {
	case SOCKS_ATYP_IPV4:
		alen = sizeof(out->u.v4);
		break;
	case SOCKS_ATYP_IPV6:
		alen = sizeof(out->u.v6);
		break;
	case SOCKS_ATYP_DOMAIN:
		return addr_parse_domain(out, p, n, used, err);
	default:
		return wire_bad(err, SOCKS5_REP_ATYP_NOT_SUPPORTED, "address type not supported");
	}
	if (n < 1 + alen + 2)
		return SOCKS_MORE;
	out->atyp = p[0];
	out->namelen = 0;
	memcpy(out->u.v6, p + 1, alen);
	out->port = wire_get16(p + 1 + alen);
	return wire_done(used, 1 + alen + 2);
}

/*
 * Bytes a->atyp needs on the wire, or 0 when the address cannot be written:
 * an unknown ATYP, or a domain that is empty or holds a NUL in its first
 * namelen bytes (the parser would refuse what we wrote).
 */
size_t socks_addr_wire_len(const struct socks_addr *a)
{
	switch (a->atyp) {
	case SOCKS_ATYP_IPV4:
		return 1 + sizeof(a->u.v4) + 2;
	case SOCKS_ATYP_IPV6:
		return 1 + sizeof(a->u.v6) + 2;
	case SOCKS_ATYP_DOMAIN:
		if (a->namelen == 0 || memchr(a->u.name, 0, a->namelen) != NULL)
			return 0;
		return 1 + 1 + (size_t)a->namelen + 2;
	default:
		return 0;
	}
}

/* Returns the bytes written, 0 if cap is too small or a is not writable. */
size_t socks_addr_write(uint8_t *dst, size_t cap, const struct socks_addr *a)
{
	size_t len = socks_addr_wire_len(a);
	size_t off = 1;

	if (len == 0 || cap < len)
		return 0;
	dst[0] = a->atyp;
	if (a->atyp == SOCKS_ATYP_DOMAIN) {
		dst[off++] = a->namelen;
		memcpy(dst + off, a->u.name, a->namelen);
	} else {
		memcpy(dst + off, a->u.v6, len - 3);
	}
	wire_put16(dst + len - 2, a->port);
	return len;
}
