/*
 * dq_msg.c - see dq_msg.h. Every record is visited by one walker: c-ares
 * expands (and so bounds-checks) each owner name, the walker then reads
 * TYPE CLASS TTL RDLENGTH and skips RDATA.
 */
#include "ext/resolve/dq_msg.h"

#include <ares.h>
#include <stdlib.h>
#include <string.h>

#define DQ_HDR 12

struct dq_rr {
	unsigned section; /* 0 answer, 1 authority, 2 additional */
	uint16_t type;
	size_t ttl_off; /* offset of the TTL field */
	size_t rdata_off;
	uint16_t rdlen;
};

typedef void (*dq_rr_fn)(void *ctx, uint8_t *m, size_t n, const struct dq_rr *rr);

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Offset after the name at off, its text in out (when not NULL), or 0. */
static size_t dq_name(const uint8_t *m, size_t n, size_t off, char *out, size_t cap)
{
	char *name = NULL;
	long enclen = 0;

	if (off >= n || n > 65535 ||
	    ares_expand_name(m + off, m, (int)n, &name, &enclen) != ARES_SUCCESS)
		return 0;
	if (out) {
		size_t len = strlen(name);
		if (len >= cap) {
			ares_free_string(name);
			return 0;
		}
		memcpy(out, name, len + 1);
	}
	ares_free_string(name);
	return enclen > 0 && off + (size_t)enclen <= n ? off + (size_t)enclen : 0;
}

/* Calls fn for every record after the question; -1 when malformed. The
 * message is const to every caller but dq_age(). */
static int dq_walk(uint8_t *m, size_t n, dq_rr_fn fn, void *ctx)
{
	size_t off = DQ_HDR;
	unsigned counts[3];

	if (n < DQ_HDR)
		return -1;
	for (unsigned i = 0, qd = get16(m + 4); i < qd; i++) {
		if (!(off = dq_name(m, n, off, NULL, 0)) || off + 4 > n)
			return -1;
		off += 4;
	}
	counts[0] = get16(m + 6);
	counts[1] = get16(m + 8);
	counts[2] = get16(m + 10);
	for (unsigned sec = 0; sec < 3; sec++)
		for (unsigned i = 0; i < counts[sec]; i++) {
			struct dq_rr rr = { .section = sec };
			if (!(off = dq_name(m, n, off, NULL, 0)) || off + 10 > n)
				return -1;
			rr.type = get16(m + off);
			rr.ttl_off = off + 4;
			rr.rdlen = get16(m + off + 8);
			rr.rdata_off = off + 10;
			if (rr.rdata_off + rr.rdlen > n)
				return -1;
			if (fn)
				fn(ctx, m, n, &rr);
			off = rr.rdata_off + rr.rdlen;
		}
	return 0;
}

static void q_opt(void *ctx, uint8_t *m, size_t n, const struct dq_rr *rr)
{
	struct dq_question *q = ctx;
	(void)n;
	/* OPT's TTL field: EXTENDED-RCODE VERSION DO|Z (RFC 6891 6.1.3). */
	if (rr->section == 2 && rr->type == DQ_TYPE_OPT) {
		q->edns = true;
		q->edns_do = (m[rr->ttl_off + 2] & 0x80) != 0;
	}
}

int dq_question(struct dq_question *q, const uint8_t *m, size_t n)
{
	size_t off;

	memset(q, 0, sizeof(*q));
	if (n < DQ_HDR || get16(m + 4) != 1)
		return -1;
	q->id = get16(m);
	q->flags = get16(m + 2);
	if (!(off = dq_name(m, n, DQ_HDR, q->name, sizeof(q->name))) || off + 4 > n)
		return -1;
	q->type = get16(m + off);
	q->class = get16(m + off + 2);
	/* The walker never writes when fn does not. */
	return dq_walk((uint8_t *)m, n, q_opt, q);
}

struct ttl_ctx {
	uint32_t min;
	bool any; /* a record counted */
	bool soa; /* an SOA in the authority section */
	uint32_t soa_ttl;
};

static void ttl_rr(void *ctx, uint8_t *m, size_t n, const struct dq_rr *rr)
{
	struct ttl_ctx *t = ctx;
	uint32_t ttl = get32(m + rr->ttl_off);

	if (rr->type == DQ_TYPE_OPT || rr->section == 2)
		return;
	if (!t->any || ttl < t->min)
		t->min = ttl;
	t->any = true;
	if (rr->section == 1 && rr->type == DQ_TYPE_SOA && !t->soa) {
		/* RDATA: MNAME RNAME SERIAL REFRESH RETRY EXPIRE MINIMUM */
		size_t off = dq_name(m, n, rr->rdata_off, NULL, 0);
		if (off)
			off = dq_name(m, n, off, NULL, 0);
		if (off && off + 20 <= rr->rdata_off + rr->rdlen) {
			uint32_t minimum = get32(m + off + 16);
			t->soa = true;
			t->soa_ttl = ttl < minimum ? ttl : minimum;
		}
	}
}

uint32_t dq_cache_ttl(const uint8_t *m, size_t n, uint32_t neg_max)
{
	struct ttl_ctx t = { 0 };
	unsigned rcode;

	if (n < DQ_HDR || (m[2] & 0x02)) /* TC: a partial answer */
		return 0;
	if (dq_walk((uint8_t *)m, n, ttl_rr, &t) < 0)
		return 0;
	rcode = dq_rcode(m);
	if (rcode == DQ_RCODE_NOERROR && get16(m + 6) > 0)
		return t.min;
	if (rcode != DQ_RCODE_NOERROR && rcode != DQ_RCODE_NXDOMAIN)
		return 0; /* SERVFAIL, REFUSED...: ask again next time */
	if (!t.soa)
		return 0; /* RFC 2308 5: no SOA, no negative caching */
	return t.soa_ttl < neg_max ? t.soa_ttl : neg_max;
}

static void age_rr(void *ctx, uint8_t *m, size_t n, const struct dq_rr *rr)
{
	uint32_t elapsed = *(const uint32_t *)ctx, ttl;
	uint8_t *p = m + rr->ttl_off;

	(void)n;
	if (rr->type == DQ_TYPE_OPT)
		return;
	ttl = get32(p);
	ttl = ttl > elapsed ? ttl - elapsed : 0;
	p[0] = (uint8_t)(ttl >> 24);
	p[1] = (uint8_t)(ttl >> 16);
	p[2] = (uint8_t)(ttl >> 8);
	p[3] = (uint8_t)ttl;
}

void dq_age(uint8_t *m, size_t n, uint32_t elapsed)
{
	if (elapsed > 0)
		dq_walk(m, n, age_rr, &elapsed);
}

unsigned dq_rcode(const uint8_t *m)
{
	return m[3] & 0x0F;
}
