/*
 * limits.c - session counts for the whole server and per client address,
 * shared by all workers. A small open-addressing table under one mutex: it
 * is touched once at accept and once at close.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/sockaddr.h"
#include "server/server.h"

#define LIMITS_SLOTS 65536 /* power of two, > sessions the fd limit allows */

struct client_slot {
	uint8_t addr[16];
	uint32_t count; /* 0 = free (tombstones are not needed: see release) */
};

static struct client_slot table[LIMITS_SLOTS];
static unsigned total;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void key_of(const struct sockaddr *sa, uint8_t key[16])
{
	struct socks_addr a;
	memset(key, 0, 16);
	if (sa_to_socks(&a, sa) < 0)
		return;
	if (a.atyp == SOCKS_ATYP_IPV4) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, a.u.v4, 4);
	} else {
		memcpy(key, a.u.v6, 16);
	}
}

static size_t hash(const uint8_t key[16])
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	return (size_t)h & (LIMITS_SLOTS - 1);
}

/* The slot holding key, or the free slot where it would go. */
static struct client_slot *find(const uint8_t key[16])
{
	size_t i = hash(key);
	for (size_t n = 0; n < LIMITS_SLOTS; n++, i = (i + 1) & (LIMITS_SLOTS - 1))
		if (table[i].count == 0 || memcmp(table[i].addr, key, 16) == 0)
			return &table[i];
	return NULL;
}

bool limits_acquire(const struct sockaddr *client, const struct conf_limits *lim,
		    const char **why)
{
	uint8_t key[16];
	bool ok = false;

	key_of(client, key);
	pthread_mutex_lock(&lock);
	struct client_slot *slot = find(key);
	if (lim->max_sessions && total >= lim->max_sessions)
		*why = "server session limit reached";
	else if (!slot)
		*why = "client table full";
	else if (lim->max_sessions_per_client && slot->count >= lim->max_sessions_per_client)
		*why = "session limit for this client reached";
	else {
		memcpy(slot->addr, key, 16);
		slot->count++;
		total++;
		ok = true;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

/* Removing from linear probing: re-insert the rest of the cluster so
 * lookups never stop early at the hole. */
static void remove_slot(size_t hole)
{
	size_t i = (hole + 1) & (LIMITS_SLOTS - 1);
	table[hole].count = 0;
	while (table[i].count != 0) {
		struct client_slot moved = table[i];
		table[i].count = 0;
		*find(moved.addr) = moved;
		i = (i + 1) & (LIMITS_SLOTS - 1);
	}
}

void limits_release(const struct sockaddr *client)
{
	uint8_t key[16];
	key_of(client, key);
	pthread_mutex_lock(&lock);
	struct client_slot *slot = find(key);
	if (slot && slot->count > 0) {
		total--;
		if (--slot->count == 0)
			remove_slot((size_t)(slot - table));
	}
	pthread_mutex_unlock(&lock);
}
