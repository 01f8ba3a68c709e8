/*
 * fuzz_dns.c - the DNS messages of `stp resolve` and `stp dns`
 * (src/cli/cli_dns.c, on c-ares): answers come from whatever server the
 * user names or the proxy, queries from any local program. The first input
 * byte picks the side:
 *   even  the rest is a response; its own ID is the one expected. It is
 *         also read as a query (dns_question_parse): an answer made for it
 *         (dns_answer_synth) with one A record must give exactly that
 *         address back through c-ares
 *   odd   the rest is a name: the query written for it, turned into a
 *         response (QR set), must parse with no address
 *
 * Checks: every address taken is an A/AAAA RDATA of the right size that is
 * in the message; a response cut anywhere before its end never gives more
 * addresses than the whole one, and never reads past the cut (ASan).
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "fuzz_check.h"

static int dns_parse_copy(struct dns_answer *a, const uint8_t *p, size_t n, uint16_t id)
{
	uint8_t *d = fuzz_dup(p, n);
	int rc = dns_response_parse(a, n ? d : d + 1, n, id);

	free(d);
	FUZZ_CHECK(rc == 0 || rc == -1);
	return rc;
}

static void fuzz_response(const uint8_t *p, size_t n)
{
	struct dns_answer a, b;
	uint16_t id = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 0;

	if (dns_parse_copy(&a, p, n, id) < 0)
		return;
	FUZZ_CHECK(a.rcode >= 0 && a.rcode <= 15);
	FUZZ_CHECK(a.naddr <= sizeof(a.addr) / sizeof(a.addr[0]));
	for (size_t i = 0; i < a.naddr; i++) {
		size_t len = a.addr[i].family == AF_INET ? 4 : 16;
		FUZZ_CHECK(a.addr[i].family == AF_INET || a.addr[i].family == AF_INET6);
		FUZZ_CHECK(memmem(p + 12, n - 12, a.addr[i].addr, len) != NULL);
	}
	/* Someone else's ID is never taken. */
	FUZZ_CHECK(dns_parse_copy(&b, p, n, (uint16_t)(id + 1)) == -1);
	/* Cut short: fewer records or an error, never more addresses. */
	for (size_t k = 12; k < n; k += 1 + k / 8)
		if (dns_parse_copy(&b, p, k, id) == 0)
			FUZZ_CHECK(b.naddr <= a.naddr);
}

static void fuzz_synth(const uint8_t *p, size_t n)
{
	static const uint8_t addr[4] = { 192, 0, 2, 7 };
	struct dns_question q;
	struct dns_synth syn = { .rdata = addr, .rdlen = 4, .ttl = 60 };
	struct dns_answer a;
	uint8_t out[600];
	uint8_t *d = fuzz_dup(p, n);
	int rc = dns_question_parse(&q, n ? d : d + 1, n);

	free(d);
	if (rc < 0)
		return;
	FUZZ_CHECK(q.end >= 12 + 1 + 4 && q.end <= n);
	FUZZ_CHECK(strlen(q.name) < sizeof(q.name));
	if (q.end > sizeof(out) - 16)
		return;
	size_t len = dns_answer_synth(out, sizeof(out), p, &q, &syn);
	FUZZ_CHECK(len == q.end + 16);
	FUZZ_CHECK(dns_answer_synth(out, len - 1, p, &q, &syn) == 0);
	if (q.type != DNS_TYPE_A || q.class != 1)
		return;
	FUZZ_CHECK(dns_parse_copy(&a, out, len, q.id) == 0);
	FUZZ_CHECK(a.naddr == 1 && a.addr[0].family == AF_INET);
	FUZZ_CHECK(memcmp(a.addr[0].addr, addr, 4) == 0);
}

static void fuzz_query(const uint8_t *p, size_t n)
{
	char *name = malloc(n + 1);
	uint8_t q[512];
	struct dns_answer a;

	FUZZ_CHECK(name != NULL);
	memcpy(name, p, n);
	name[n] = '\0';
	size_t len = dns_query_write(q, sizeof(q), 0x1234, name, DNS_TYPE_AAAA);
	free(name);
	if (len == 0)
		return;
	FUZZ_CHECK(len >= 12 + 2 + 4 && len <= sizeof(q));
	q[2] |= 0x80; /* QR: the question echoed back, no answers */
	FUZZ_CHECK(dns_parse_copy(&a, q, len, 0x1234) == 0);
	FUZZ_CHECK(a.naddr == 0 && a.rcode == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		fuzz_query(data + 1, size - 1);
	} else {
		fuzz_response(data + 1, size - 1);
		fuzz_synth(data + 1, size - 1);
	}
	return 0;
}
