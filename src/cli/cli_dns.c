/*
 * cli_dns.c - DNS messages for `stp resolve` and `stp dns`, built and read
 * by c-ares: queries with ares_create_query, names with ares_expand_name,
 * addresses with ares_parse_a_reply / ares_parse_aaaa_reply. What c-ares
 * cannot do (1.18 has no response writer) is the small answer `stp dns`
 * synthesizes when the proxy only speaks RESOLVE: the query's own header
 * and question copied back with one record appended, its owner a
 * compression pointer to the question (RFC 1035 4.1.4) and a name in its
 * RDATA encoded by ares_create_query. Pure functions, no I/O.
 */
#include <ares.h>
#include <string.h>
#include <sys/socket.h>

#include "cli/cli.h"

#define DNS_HDR      12
#define DNS_CLASS_IN 1
#define DNS_TYPE_OPT 41

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

size_t dns_query_write(uint8_t *dst, size_t cap, uint16_t id, const char *name, uint16_t qtype)
{
	unsigned char *buf = NULL;
	int len = 0;
	size_t nlen = strlen(name);

	/* stp resolve looks names up, never the root; c-ares would take "" */
	if (nlen == 0 || strcmp(name, ".") == 0 || strstr(name, "..") || name[0] == '.')
		return 0;
	if (ares_create_query(name, DNS_CLASS_IN, qtype, id, 1, &buf, &len, 0) != ARES_SUCCESS)
		return 0;
	if (len <= 0 || (size_t)len > cap) {
		ares_free_string(buf);
		return 0;
	}
	memcpy(dst, buf, (size_t)len);
	ares_free_string(buf);
	return (size_t)len;
}

int dns_response_parse(struct dns_answer *out, const uint8_t *p, size_t n, uint16_t id)
{
	struct ares_addrttl a4[16];
	struct ares_addr6ttl a6[16];
	int n4 = 16, n6 = 16, rc;

	memset(out, 0, sizeof(*out));
	/* The header's ID and QR/TC bits are not c-ares' business. */
	if (n < DNS_HDR || n > 65535 || get16(p) != id || !(p[2] & 0x80) || (p[2] & 0x02))
		return -1;
	out->rcode = p[3] & 0x0F;
	rc = ares_parse_a_reply(p, (int)n, NULL, a4, &n4);
	if (rc == ARES_ENODATA || rc == ARES_ENOTFOUND)
		n4 = 0;
	else if (rc != ARES_SUCCESS)
		return -1;
	rc = ares_parse_aaaa_reply(p, (int)n, NULL, a6, &n6);
	if (rc == ARES_ENODATA || rc == ARES_ENOTFOUND)
		n6 = 0;
	else if (rc != ARES_SUCCESS)
		return -1;
	for (int i = 0; i < n4 && out->naddr < 16; i++, out->naddr++) {
		out->addr[out->naddr].family = AF_INET;
		memcpy(out->addr[out->naddr].addr, &a4[i].ipaddr, 4);
	}
	for (int i = 0; i < n6 && out->naddr < 16; i++, out->naddr++) {
		out->addr[out->naddr].family = AF_INET6;
		memcpy(out->addr[out->naddr].addr, &a6[i].ip6addr, 16);
	}
	return 0;
}

int dns_question_parse(struct dns_question *q, const uint8_t *p, size_t n)
{
	char *name = NULL;
	long enclen = 0;
	size_t off, len;

	memset(q, 0, sizeof(*q));
	if (n < DNS_HDR || n > 65535 || get16(p + 4) != 1)
		return -1;
	if (ares_expand_name(p + DNS_HDR, p, (int)n, &name, &enclen) != ARES_SUCCESS)
		return -1;
	len = strlen(name);
	if (len >= sizeof(q->name)) {
		ares_free_string(name);
		return -1;
	}
	memcpy(q->name, name, len + 1);
	ares_free_string(name);
	off = DNS_HDR + (size_t)enclen;
	if (enclen <= 0 || off + 4 > n)
		return -1;
	/* A question is the first name of a message: nothing before it to
	 * point at, so a compression pointer in it is a forgery, and an answer
	 * copying it would point elsewhere (c-ares checked the labels' bounds). */
	for (size_t i = DNS_HDR; i < off && p[i] != 0; i += 1 + p[i])
		if (p[i] & 0xC0)
			return -1;
	q->id = get16(p);
	q->flags = get16(p + 2);
	q->type = get16(p + off);
	q->class = get16(p + off + 2);
	q->end = off + 4;
	/* A query's OPT (RFC 6891) is its only additional record, right after
	 * the question: root owner (0), TYPE 41, CLASS = the UDP payload size. */
	if (get16(p + 6) == 0 && get16(p + 8) == 0 && get16(p + 10) == 1 && q->end + 11 <= n &&
	    p[q->end] == 0 && get16(p + q->end + 1) == DNS_TYPE_OPT)
		q->udp_size = get16(p + q->end + 3);
	return 0;
}

size_t dns_name_encode(uint8_t *dst, size_t cap, const char *name)
{
	uint8_t q[DNS_MSG_MAX];
	size_t n = dns_query_write(q, sizeof(q), 0, name, DNS_TYPE_A);

	/* The question's QNAME, between the header and QTYPE QCLASS. */
	if (n == 0 || n - DNS_HDR - 4 > cap)
		return 0;
	memcpy(dst, q + DNS_HDR, n - DNS_HDR - 4);
	return n - DNS_HDR - 4;
}

size_t dns_answer_synth(uint8_t *dst, size_t cap, const uint8_t *query,
			const struct dns_question *q, const struct dns_synth *a)
{
	size_t n = q->end;
	uint16_t flags = 0x8000 | (q->flags & 0x0100) | 0x0080 | (a->rcode & 0x0F); /* QR RD RA */

	if (a->tc)
		flags |= 0x0200;
	if (cap < n + (a->rdlen ? 12 + a->rdlen : 0))
		return 0;
	memcpy(dst, query, n);
	put16(dst + 2, flags);
	put16(dst + 6, a->rdlen ? 1 : 0);
	put16(dst + 8, 0);
	put16(dst + 10, 0);
	if (a->rdlen == 0)
		return n;
	/* NAME (pointer to the question's) TYPE CLASS TTL RDLENGTH RDATA */
	put16(dst + n, 0xC000 | DNS_HDR);
	put16(dst + n + 2, q->type);
	put16(dst + n + 4, q->class);
	put16(dst + n + 6, (uint16_t)(a->ttl >> 16));
	put16(dst + n + 8, (uint16_t)a->ttl);
	put16(dst + n + 10, (uint16_t)a->rdlen);
	memcpy(dst + n + 12, a->rdata, a->rdlen);
	return n + 12 + a->rdlen;
}
