/*
 * fakedns.c - the name <-> fake address table that keeps DNS off the
 * network: getaddrinfo hands out an address from a reserved range
 * (240.0.0.0/4 and fd73:7470:6966::/64 by default), and connect() or
 * sendto() to that address sends the name to the proxy (ATYP X'03').
 *
 * Entry i is 240.0.0.0 + 1 + i and fd73:7470:6966::(1 + i): both families
 * share the entry. The table lives in a MAP_SHARED anonymous mapping made
 * before any fork, so a name resolved in a child connects in the parent
 * and the other way round; its mutex is process-shared and robust (a
 * process that dies holding it does not wedge the others). When the table
 * is full the oldest entry is reused.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>

#include "shim/shim.h"

#define FAKE_CAP 8192

struct fake_table {
	pthread_mutex_t lock;
	uint32_t count; /* entries in use */
	uint32_t next;  /* the slot to fill next (wraps when full) */
	char names[FAKE_CAP][STP_NAME_MAX + 1];
};

static struct fake_table *fake;
static uint32_t fake_cap;

void fakedns_init(void)
{
	pthread_mutexattr_t at;
	uint32_t range = ~shim_conf.fake4_mask + 1u; /* addresses in the v4 range */

	fake = mmap(NULL, sizeof(*fake), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		    -1, 0);
	if (fake == MAP_FAILED) {
		fake = NULL;
		shim_log(SHIM_LOG_ERROR, "fake DNS table: %s", strerror(errno));
		return;
	}
	fake_cap = range - 2 < FAKE_CAP ? range - 2 : FAKE_CAP;
	pthread_mutexattr_init(&at);
	pthread_mutexattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&at, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&fake->lock, &at);
	pthread_mutexattr_destroy(&at);
}

static void fake_lock(void)
{
	if (pthread_mutex_lock(&fake->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&fake->lock);
}

static void fake_unlock(void) { pthread_mutex_unlock(&fake->lock); }

static void fake_make(uint32_t idx, int family, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
		uint32_t be = htonl(idx + 1);
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, shim_conf.fake6_net, 16);
		memcpy(s6->sin6_addr.s6_addr + 12, &be, 4);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)out;
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(shim_conf.fake4_net + idx + 1);
	}
}

int fakedns_addr(const char *name, int family, struct sockaddr_storage *out)
{
	uint32_t idx = UINT32_MAX;
	size_t n = strlen(name);

	if (fake == NULL || n == 0 || n > STP_NAME_MAX)
		return -1;
	if (name[n - 1] == '.' && n > 1)
		n--; /* "example.com." is "example.com" */
	fake_lock();
	for (uint32_t i = 0; i < fake->count; i++) {
		if (strncasecmp(fake->names[i], name, n) == 0 && fake->names[i][n] == '\0') {
			idx = i;
			break;
		}
	}
	if (idx == UINT32_MAX) {
		idx = fake->next;
		memcpy(fake->names[idx], name, n);
		fake->names[idx][n] = '\0';
		fake->next = (fake->next + 1) % fake_cap;
		if (fake->count < fake_cap)
			fake->count++;
	}
	fake_unlock();
	fake_make(idx, family, out);
	return 0;
}

/* The table index sa stands for, or -1. */
static int64_t fake_index(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		if ((a & shim_conf.fake4_mask) != shim_conf.fake4_net)
			return -1;
		return (int64_t)(a - shim_conf.fake4_net) - 1;
	}
	if (sa->sa_family != AF_INET6)
		return -1;
	const uint8_t *p = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	if (IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)p)) {
		struct sockaddr_in s4 = { .sin_family = AF_INET };
		memcpy(&s4.sin_addr, p + 12, 4);
		return fake_index((struct sockaddr *)&s4);
	}
	int bits = shim_conf.fake6_prefix;
	for (int b = 0; b < bits; b++) {
		int byte = b / 8, bit = 7 - b % 8;
		if (((p[byte] >> bit) & 1) != ((shim_conf.fake6_net[byte] >> bit) & 1))
			return -1;
	}
	uint32_t be;
	memcpy(&be, p + 12, 4);
	return (int64_t)ntohl(be) - 1;
}

bool fakedns_is_fake(const struct sockaddr *sa)
{
	return fake != NULL && sa != NULL && fake_index(sa) >= 0;
}

bool fakedns_name(const struct sockaddr *sa, char *name, size_t cap)
{
	int64_t idx;
	bool ok = false;

	if (fake == NULL || (idx = fake_index(sa)) < 0 || idx >= fake_cap)
		return false;
	fake_lock();
	if ((uint32_t)idx < fake->count && strlen(fake->names[idx]) < cap) {
		strcpy(name, fake->names[idx]);
		ok = true;
	}
	fake_unlock();
	return ok;
}
