/*
 * dq_cache.h - a worker's cache of DNS QUERY answers (Debian 12's c-ares
 * 1.18 has none). Keyed by the question (name case-insensitively, type,
 * class) and the query bits that change an answer (RD, CD, EDNS, DO);
 * an entry lives as long as dq_cache_ttl() allows, capped by the config.
 * Bounded: when full, the entry closest to expiry goes. One cache per
 * worker thread, so no locks.
 */
#ifndef STP_EXT_RESOLVE_DQ_CACHE_H
#define STP_EXT_RESOLVE_DQ_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ext/resolve/dq_msg.h"

struct dq_cache;

struct dq_cache *dq_cache_new(unsigned entries);
void dq_cache_free(struct dq_cache *c);
/* A copy of the answer to q (heap, the caller frees it) with q's ID and
 * its TTLs aged, its length in *len; NULL when none is fresh. */
uint8_t *dq_cache_get(struct dq_cache *c, const struct dq_question *q, size_t *len);
/* Keeps a copy of answer a for ttl seconds (0: nothing kept). */
void dq_cache_put(struct dq_cache *c, const struct dq_question *q, const uint8_t *a, size_t len,
		  uint32_t ttl);
size_t dq_cache_count(const struct dq_cache *c);

#endif
