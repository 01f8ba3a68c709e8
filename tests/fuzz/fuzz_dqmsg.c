/*
 * fuzz_dqmsg.c - what stpd reads in DNS QUERY messages
 * (src/ext/resolve/dq_msg.c, with c-ares for names): the client's query
 * (dq_question) and the resolver's answer (dq_cache_ttl, dq_age), and the
 * cache that keeps answers (dq_cache.c).
 *
 * Checks: nothing reads past the message (ASan, on an exact-size copy);
 * a question's name fits; aging by 0 changes nothing and aging never
 * touches the header (a forged message may point names into TTL fields,
 * so nothing more can be said of it); an answer put in the cache comes
 * back, as long, with the asker's ID and the same header.
 */
#include <stdlib.h>
#include <string.h>

#include "ext/resolve/dq_cache.h"
#include "ext/resolve/dq_msg.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dq_question q, q2;
	uint8_t *m;
	uint32_t ttl;

	if (size > 65535)
		return 0;
	m = fuzz_dup(data, size);
	if (dq_question(&q, m, size) == 0)
		FUZZ_CHECK(strlen(q.name) < sizeof(q.name));
	ttl = dq_cache_ttl(m, size, 3600);
	dq_age(m, size, 0);
	FUZZ_CHECK(memcmp(m, data, size) == 0);
	dq_age(m, size, 5);
	if (size >= 12)
		FUZZ_CHECK(memcmp(m, data, 12) == 0);
	(void)dq_question(&q2, m, size);
	(void)dq_cache_ttl(m, size, 3600);
	if (ttl > 0 && dq_question(&q, data, size) == 0) {
		struct dq_cache *c = dq_cache_new(2);
		size_t len = 0;
		FUZZ_CHECK(c != NULL);
		dq_cache_put(c, &q, data, size, ttl);
		q.id ^= 0x5a5a;
		uint8_t *hit = dq_cache_get(c, &q, &len);
		FUZZ_CHECK(hit != NULL && len == size);
		FUZZ_CHECK(hit[0] == (uint8_t)(q.id >> 8) && hit[1] == (uint8_t)q.id);
		/* Past the ID only TTLs may differ (aged by the clock). */
		FUZZ_CHECK(memcmp(hit + 2, data + 2, 10) == 0);
		free(hit);
		dq_cache_free(c);
	}
	free(m);
	return 0;
}
