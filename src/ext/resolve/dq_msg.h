/*
 * dq_msg.h - what the DNS QUERY command needs to know about a DNS message:
 * its question, how long its answer may be cached, and its TTLs aged. The
 * names (and their compression) are read by c-ares (ares_expand_name); the
 * fixed fields around them are RFC 1035 4.1's. No allocation survives a
 * call.
 */
#ifndef STP_EXT_RESOLVE_DQ_MSG_H
#define STP_EXT_RESOLVE_DQ_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DQ_TYPE_SOA       6
#define DQ_TYPE_OPT       41
#define DQ_RCODE_NOERROR  0
#define DQ_RCODE_SERVFAIL 2
#define DQ_RCODE_NXDOMAIN 3
#define DQ_RCODE_REFUSED  5

struct dq_question {
	char name[256]; /* as c-ares spells it: no trailing dot, "" for the root */
	uint16_t id, type, class;
	uint16_t flags;     /* header octets 2-3: QR OPCODE AA TC RD RA Z AD CD RCODE */
	bool edns, edns_do; /* an OPT record, and its DO bit (RFC 3225) */
};

/* The one question of message m (any direction), its header and its EDNS
 * bits. 0, or -1 when the message is malformed or QDCOUNT is not 1. */
int dq_question(struct dq_question *q, const uint8_t *m, size_t n);
/* How long answer m may be cached, in seconds: the least TTL of its
 * answer and authority records; for NXDOMAIN and NODATA (RFC 2308) the
 * SOA's TTL capped by its MINIMUM, capped again by neg_max. 0: not
 * cacheable (truncated, another RCODE, no SOA for a negative answer, or
 * malformed). */
uint32_t dq_cache_ttl(const uint8_t *m, size_t n, uint32_t neg_max);
/* Lowers every TTL in m (OPT excepted) by elapsed, not below 0: a cached
 * answer served later says how long it is still valid. */
void dq_age(uint8_t *m, size_t n, uint32_t elapsed);
/* The RCODE of a message of at least 12 bytes. */
unsigned dq_rcode(const uint8_t *m);

#endif
