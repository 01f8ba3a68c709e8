/*
 * socks4.c - SOCKS4 and its 4a extension (the SOCKS4 protocol document by
 * Ying-Da Lee, and "SOCKS 4A: A Simple Extension to SOCKS 4 Protocol").
 */
#include <string.h>

#include "proto/socks.h"
#include "proto/wire.h"

#define SOCKS4_FIXED 8     /* VN CD DSTPORT DSTIP */
#define SOCKS4_FIELD_MAX 255 /* USERID and HOST, without their NUL */

/* 0.0.0.x with x != 0 is the 4a marker: "the name follows". */
static bool socks4_is_4a(const uint8_t ip[4])
{
	return ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0;
}

/*
 * A NUL-terminated field at p[off..]: its length without the NUL, or -1 for
 * MORE, or -2 when 255 bytes have come without a NUL.
 */
static long socks4_field(const uint8_t *p, size_t n, size_t off)
{
	size_t have, lim = SOCKS4_FIELD_MAX + 1;
	const uint8_t *nul;

	if (n <= off)
		return -1;
	have = n - off < lim ? n - off : lim;
	nul = memchr(p + off, 0, have);
	if (nul != NULL)
		return (long)(nul - (p + off));
	return have == lim ? -2 : -1;
}

/*
 * +----+----+----+----+----+----+----+----+----+----+....+----+
 * | VN | CD | DSTPORT |      DSTIP        | USERID       |NULL|
 * +----+----+----+----+----+----+----+----+----+----+....+----+
 *    1    1      2              4           variable       1
 *
 * 4a, when DSTIP is 0.0.0.x (x != 0), then adds:
 * +------ .... ------+----+
 * | HOST             |NULL|
 * +------ .... ------+----+
 *   1 to 255
 */
enum socks_res socks4_request_parse(struct socks4_request *out, const uint8_t *p, size_t n,
				    size_t *used, struct socks_err *err)
{
	long ulen, hlen;
	size_t hoff;

	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != SOCKS4_VER)
		return wire_bad(err, SOCKS4_REP_REJECTED, "bad version");
	if (n < SOCKS4_FIXED)
		return SOCKS_MORE;
	ulen = socks4_field(p, n, SOCKS4_FIXED);
	if (ulen == -2)
		return wire_bad(err, SOCKS4_REP_REJECTED, "USERID too long");
	if (ulen < 0)
		return SOCKS_MORE;
	hoff = SOCKS4_FIXED + (size_t)ulen + 1;
	if (!socks4_is_4a(p + 4)) {
		out->dst.atyp = SOCKS_ATYP_IPV4;
		out->dst.namelen = 0;
		memcpy(out->dst.u.v4, p + 4, 4);
		hlen = 0;
	} else {
		hlen = socks4_field(p, n, hoff);
		if (hlen == -2)
			return wire_bad(err, SOCKS4_REP_REJECTED, "HOST too long");
		if (hlen < 0)
			return SOCKS_MORE;
		if (hlen == 0)
			return wire_bad(err, SOCKS4_REP_REJECTED, "empty HOST");
		out->dst.atyp = SOCKS_ATYP_DOMAIN;
		out->dst.namelen = (uint8_t)hlen;
		memcpy(out->dst.u.name, p + hoff, (size_t)hlen + 1);
		hlen++; /* count the NUL as consumed */
	}
	out->cmd = p[1];
	out->dst.port = wire_get16(p + 2);
	memcpy(out->userid, p + SOCKS4_FIXED, (size_t)ulen + 1);
	return wire_done(used, hoff + (size_t)hlen);
}

/*
 * a is IPv4 or a domain (written as 4a). NULL userid is written as empty.
 * 0 for IPv6, for an IPv4 address in 0.0.0.x (x != 0: it would read back
 * as 4a), for a name the parser would refuse, or a USERID over 255 bytes.
 */
size_t socks4_request_write(uint8_t *dst, size_t cap, uint8_t cmd, const struct socks_addr *a,
			    const char *userid)
{
	static const uint8_t marker[4] = {0, 0, 0, 1};
	size_t ulen = userid ? strlen(userid) : 0;
	size_t len = SOCKS4_FIXED + ulen + 1;
	size_t hlen = 0;

	if (ulen > SOCKS4_FIELD_MAX)
		return 0;
	if (a->atyp == SOCKS_ATYP_DOMAIN) {
		hlen = a->namelen;
		if (hlen == 0 || memchr(a->u.name, 0, hlen) != NULL)
			return 0;
		len += hlen + 1;
	} else if (a->atyp != SOCKS_ATYP_IPV4 || socks4_is_4a(a->u.v4)) {
		return 0;
	}
	if (cap < len)
		return 0;
	dst[0] = SOCKS4_VER;
	dst[1] = cmd;
	wire_put16(dst + 2, a->port);
	memcpy(dst + 4, hlen > 0 ? marker : a->u.v4, 4);
	if (ulen > 0)
		memcpy(dst + SOCKS4_FIXED, userid, ulen);
	dst[SOCKS4_FIXED + ulen] = 0;
	if (hlen > 0) {
		memcpy(dst + SOCKS4_FIXED + ulen + 1, a->u.name, hlen);
		dst[len - 1] = 0;
	}
	return len;
}

/*
 * +----+----+----+----+----+----+----+----+
 * | VN | CD | DSTPORT |      DSTIP        |
 * +----+----+----+----+----+----+----+----+
 *    1    1      2              4
 *
 * VN of a reply is 0, and anything else is BAD, as curl does.
 */
enum socks_res socks4_reply_parse(struct socks4_reply *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err)
{
	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != 0)
		return wire_bad(err, SOCKS4_REP_REJECTED, "bad reply version");
	if (n < SOCKS4_REPLY_LEN)
		return SOCKS_MORE;
	out->rep = p[1];
	out->port = wire_get16(p + 2);
	memcpy(out->ip, p + 4, 4);
	return wire_done(used, SOCKS4_REPLY_LEN);
}

/* NULL ip writes 0.0.0.0. */
size_t socks4_reply_write(uint8_t *dst, size_t cap, uint8_t rep, uint16_t port,
			  const uint8_t ip[4])
{
	static const uint8_t any[4];

	if (cap < SOCKS4_REPLY_LEN)
		return 0;
	dst[0] = 0;
	dst[1] = rep;
	wire_put16(dst + 2, port);
	memcpy(dst + 4, ip ? ip : any, 4);
	return SOCKS4_REPLY_LEN;
}
