/*
 * cli_dns.c - the smallest DNS codec `stp resolve` needs (RFC 1035): one
 * question out, A and AAAA records back. Pure functions, no I/O.
 */
#include <string.h>
#include <sys/socket.h>

#include "cli/cli.h"

#define DNS_HDR 12
#define DNS_CLASS_IN 1

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

/*
 *   0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15
 * +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 * |                      ID                       |
 * |QR|   Opcode  |AA|TC|RD|RA|   Z    |   RCODE   |
 * |                    QDCOUNT                    |
 * |                    ANCOUNT                    |
 * |                    NSCOUNT                    |
 * |                    ARCOUNT                    |
 * +--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+--+
 * then QNAME (length-prefixed labels, 0) QTYPE QCLASS.
 */
size_t dns_query_write(uint8_t *dst, size_t cap, uint16_t id, const char *name, uint16_t qtype)
{
	size_t o = DNS_HDR, nlen = strlen(name);

	if (nlen > 0 && name[nlen - 1] == '.')
		nlen--;
	if (nlen == 0 || nlen > 253 || cap < DNS_HDR + nlen + 2 + 4)
		return 0;
	memset(dst, 0, DNS_HDR);
	put16(dst, id);
	dst[2] = 0x01; /* RD */
	put16(dst + 4, 1);
	for (size_t i = 0; i < nlen;) {
		size_t l = 0;
		while (i + l < nlen && name[i + l] != '.')
			l++;
		if (l == 0 || l > 63)
			return 0;
		dst[o++] = (uint8_t)l;
		memcpy(dst + o, name + i, l);
		o += l;
		i += l + 1;
	}
	dst[o++] = 0;
	put16(dst + o, qtype);
	put16(dst + o + 2, DNS_CLASS_IN);
	return o + 4;
}

/* Offset just past the name at off (labels, or a compression pointer that
 * ends it), or 0 when the name runs off the message. */
static size_t dns_skip_name(const uint8_t *p, size_t n, size_t off)
{
	while (off < n) {
		uint8_t l = p[off];
		if (l == 0)
			return off + 1;
		if ((l & 0xC0) == 0xC0)
			return off + 2 <= n ? off + 2 : 0;
		if (l & 0xC0)
			return 0; /* the reserved label types */
		off += 1 + (size_t)l;
	}
	return 0;
}

static void dns_take(struct dns_answer *out, uint16_t type, const uint8_t *rd, uint16_t rdlen)
{
	size_t want = type == DNS_TYPE_A ? 4 : 16;

	if ((type != DNS_TYPE_A && type != DNS_TYPE_AAAA) || rdlen != want ||
	    out->naddr == sizeof(out->addr) / sizeof(out->addr[0]))
		return;
	out->addr[out->naddr].family = type == DNS_TYPE_A ? AF_INET : AF_INET6;
	memcpy(out->addr[out->naddr].addr, rd, want);
	out->naddr++;
}

int dns_response_parse(struct dns_answer *out, const uint8_t *p, size_t n, uint16_t id)
{
	size_t off = DNS_HDR;
	unsigned qd, an;

	memset(out, 0, sizeof(*out));
	if (n < DNS_HDR || get16(p) != id || !(p[2] & 0x80) || (p[2] & 0x02))
		return -1; /* short, someone else's, a query, or truncated (TC) */
	out->rcode = p[3] & 0x0F;
	qd = get16(p + 4);
	an = get16(p + 6);
	for (unsigned i = 0; i < qd; i++) {
		off = dns_skip_name(p, n, off);
		if (off == 0 || off + 4 > n)
			return -1;
		off += 4;
	}
	/* NAME TYPE CLASS TTL RDLENGTH RDATA */
	for (unsigned i = 0; i < an; i++) {
		off = dns_skip_name(p, n, off);
		if (off == 0 || off + 10 > n)
			return -1;
		uint16_t type = get16(p + off), class = get16(p + off + 2);
		uint16_t rdlen = get16(p + off + 8);
		off += 10;
		if (off + rdlen > n)
			return -1;
		if (class == DNS_CLASS_IN)
			dns_take(out, type, p + off, rdlen);
		off += rdlen;
	}
	return 0;
}
