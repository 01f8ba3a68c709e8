/*
 * dq_cache.c - see dq_cache.h. A plain array searched linearly: a few
 * thousand entries cost microseconds, far below a resolver round trip, and
 * the cache stays one small file. Time is CLOCK_MONOTONIC seconds.
 */
#include "ext/resolve/dq_cache.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DQ_KEY_FLAGS 0x0110 /* RD and CD of the header's flags */

struct dq_entry {
	char name[256];
	uint16_t type, class, flags;
	bool edns, edns_do;
	uint8_t *answer; /* NULL: a free slot */
	size_t len;
	uint64_t stored, expires;
};

struct dq_cache {
	struct dq_entry *e;
	unsigned cap;
};

static uint64_t now_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

struct dq_cache *dq_cache_new(unsigned entries)
{
	struct dq_cache *c = calloc(1, sizeof(*c));
	if (!c || !(c->e = calloc(entries ? entries : 1, sizeof(*c->e)))) {
		free(c);
		return NULL;
	}
	c->cap = entries;
	return c;
}

void dq_cache_free(struct dq_cache *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < c->cap; i++)
		free(c->e[i].answer);
	free(c->e);
	free(c);
}

static bool dq_same(const struct dq_entry *e, const struct dq_question *q)
{
	return e->answer && e->type == q->type && e->class == q->class &&
	       e->flags == (q->flags & DQ_KEY_FLAGS) && e->edns == q->edns &&
	       e->edns_do == q->edns_do && strcasecmp(e->name, q->name) == 0;
}

static void dq_drop(struct dq_entry *e)
{
	free(e->answer);
	e->answer = NULL;
}

uint8_t *dq_cache_get(struct dq_cache *c, const struct dq_question *q, size_t *len)
{
	uint64_t now = now_secs();

	for (unsigned i = 0; c && i < c->cap; i++) {
		struct dq_entry *e = &c->e[i];
		if (!dq_same(e, q))
			continue;
		if (now >= e->expires) {
			dq_drop(e);
			return NULL;
		}
		uint8_t *a = malloc(e->len);
		if (!a)
			return NULL;
		memcpy(a, e->answer, e->len);
		a[0] = (uint8_t)(q->id >> 8);
		a[1] = (uint8_t)q->id;
		dq_age(a, e->len, (uint32_t)(now - e->stored));
		*len = e->len;
		return a;
	}
	return NULL;
}

void dq_cache_put(struct dq_cache *c, const struct dq_question *q, const uint8_t *a, size_t len,
		  uint32_t ttl)
{
	uint64_t now = now_secs();
	struct dq_entry *slot = NULL;

	if (!c || c->cap == 0 || ttl == 0)
		return;
	for (unsigned i = 0; i < c->cap && !slot; i++)
		if (dq_same(&c->e[i], q) || !c->e[i].answer || now >= c->e[i].expires)
			slot = &c->e[i];
	/* Full and fresh: the one closest to expiry makes room. */
	if (!slot) {
		slot = &c->e[0];
		for (unsigned i = 1; i < c->cap; i++)
			if (c->e[i].expires < slot->expires)
				slot = &c->e[i];
	}
	uint8_t *copy = malloc(len);
	if (!copy)
		return;
	memcpy(copy, a, len);
	dq_drop(slot);
	snprintf(slot->name, sizeof(slot->name), "%s", q->name);
	slot->type = q->type;
	slot->class = q->class;
	slot->flags = q->flags & DQ_KEY_FLAGS;
	slot->edns = q->edns;
	slot->edns_do = q->edns_do;
	slot->answer = copy;
	slot->len = len;
	slot->stored = now;
	slot->expires = now + ttl;
}

size_t dq_cache_count(const struct dq_cache *c)
{
	size_t n = 0;
	uint64_t now = now_secs();
	for (unsigned i = 0; c && i < c->cap; i++)
		n += c->e[i].answer && now < c->e[i].expires;
	return n;
}
