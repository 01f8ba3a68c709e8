/*
 * authcache.c - positive authentication results kept for `cache-ttl`
 * seconds, so that a directory is asked once per user and password rather
 * than once per connection (a browser opens dozens).
 *
 * Entries are keyed by HMAC-SHA256(random per-cache key, user NUL pass):
 * neither the password nor an unkeyed hash of it is ever stored. A
 * 4-way set-associative table of `cache-size` entries: a full set evicts
 * its entry that expires first. Wrong passwords are never cached, so a
 * changed password works at once and an attacker's guesses always reach
 * the backend; a removed user or a revoked password keeps working until the
 * entry expires (documented in docs/config.md).
 */
#include "auth/authdir.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define WAYS 4

struct authcache_entry {
	uint8_t key[32];
	time_t expires; /* CLOCK_MONOTONIC seconds; 0 = empty */
	uint8_t n_groups;
	char (*groups)[64]; /* heap; NULL when none */
};

struct authcache {
	pthread_mutex_t lock;
	uint8_t hkey[32];
	unsigned ttl;
	size_t n_sets;
	struct authcache_entry *ents; /* n_sets * WAYS */
};

static time_t now_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

struct authcache *authcache_new(const struct auth_cache_conf *conf)
{
	if (conf->ttl == 0)
		return NULL;
	struct authcache *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->ttl = conf->ttl;
	c->n_sets = (conf->size + WAYS - 1) / WAYS;
	if (c->n_sets == 0)
		c->n_sets = 1;
	c->ents = calloc(c->n_sets * WAYS, sizeof(*c->ents));
	if (c->ents == NULL || getrandom(c->hkey, sizeof(c->hkey), 0) != (ssize_t)sizeof(c->hkey)) {
		free(c->ents);
		free(c);
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

void authcache_free(struct authcache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_sets * WAYS; i++)
		free(c->ents[i].groups);
	free(c->ents);
	pthread_mutex_destroy(&c->lock);
	explicit_bzero(c->hkey, sizeof(c->hkey));
	free(c);
}

void authcache_key(const struct authcache *c, const char *user, const char *pass, uint8_t key[32])
{
	uint8_t buf[2 * 256 + 1];
	size_t ul = strnlen(user, 255), pl = strnlen(pass, 255);
	unsigned len = 32;

	memcpy(buf, user, ul);
	buf[ul] = 0;
	memcpy(buf + ul + 1, pass, pl);
	HMAC(EVP_sha256(), c->hkey, sizeof(c->hkey), buf, ul + 1 + pl, key, &len);
	explicit_bzero(buf, sizeof(buf));
}

static struct authcache_entry *set_of(struct authcache *c, const uint8_t key[32])
{
	uint64_t h;
	memcpy(&h, key, sizeof(h));
	return &c->ents[(h % c->n_sets) * WAYS];
}

bool authcache_get(struct authcache *c, const uint8_t key[32], struct auth_job *job)
{
	bool hit = false;
	time_t now = now_sec();

	pthread_mutex_lock(&c->lock);
	struct authcache_entry *set = set_of(c, key);
	for (int i = 0; i < WAYS && !hit; i++) {
		struct authcache_entry *e = &set[i];
		if (e->expires <= now || CRYPTO_memcmp(e->key, key, 32) != 0)
			continue;
		hit = true;
		job->n_groups = e->n_groups;
		if (e->n_groups > 0)
			memcpy(job->groups, e->groups, e->n_groups * sizeof(job->groups[0]));
	}
	pthread_mutex_unlock(&c->lock);
	return hit;
}

void authcache_put(struct authcache *c, const uint8_t key[32], const struct auth_job *job)
{
	char(*groups)[64] = NULL;
	size_t n = job->n_groups;

	if (n > 0 && (groups = calloc(n, sizeof(*groups))) == NULL)
		return; /* not caching is always correct */
	if (n > 0)
		memcpy(groups, job->groups, n * sizeof(*groups));
	time_t now = now_sec();
	pthread_mutex_lock(&c->lock);
	struct authcache_entry *set = set_of(c, key), *victim = &set[0];
	for (int i = 0; i < WAYS; i++) {
		struct authcache_entry *e = &set[i];
		if (e->expires > now && CRYPTO_memcmp(e->key, key, 32) == 0) {
			victim = e; /* refresh */
			break;
		}
		if (e->expires < victim->expires)
			victim = e; /* empty or expired entries have the smallest */
	}
	char(*old)[64] = victim->groups;
	memcpy(victim->key, key, 32);
	victim->expires = now + (time_t)c->ttl;
	victim->groups = groups;
	victim->n_groups = (uint8_t)n;
	pthread_mutex_unlock(&c->lock);
	free(old);
}
