/*
 * stats.c - see stats.h: the counting side, what the hot path calls (no
 * global state but the shared block; unit tests link it alone).
 * stats_scrape.c sums the blocks and collects the open sessions.
 */
#include "server/stats.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/sockaddr.h"
#include "server/server.h"
#include "server/session_int.h"

const unsigned stats_dns_bounds_us[STATS_DNS_BUCKETS] = {
	500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 500000, 2000000,
};

struct stats stats_shared; /* threads that are not workers (stats_scrape.c sums it) */
static _Thread_local struct stats *here;

struct stats *stats_here(void)
{
	return here ? here : &stats_shared;
}

void stats_bind(struct worker *w)
{
	here = &w->stats;
}

void stats_limit(enum stats_limit what)
{
	stats_inc(&stats_here()->limits[what]);
}

void stats_auth(uint8_t method, enum stats_backend be, bool ok)
{
	stats_inc(&stats_here()->auth[method][be][ok]);
}

static const char *const backend_names[STATS_BE_N] = {
	[STATS_BE_NONE] = "none",     [STATS_BE_FILE] = "file",     [STATS_BE_PAM] = "pam",
	[STATS_BE_LDAP] = "ldap",     [STATS_BE_RADIUS] = "radius", [STATS_BE_CACHE] = "cache",
	[STATS_BE_GSSAPI] = "gssapi",
};

enum stats_backend stats_backend_named(const char *via)
{
	for (int i = 1; via && i < STATS_BE_N; i++)
		if (strcmp(via, backend_names[i]) == 0)
			return (enum stats_backend)i;
	return STATS_BE_NONE;
}

const char *stats_backend_name(enum stats_backend be)
{
	return be < STATS_BE_N ? backend_names[be] : "none";
}

uint64_t stats_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void stats_dns(uint64_t us, bool ok)
{
	struct stats *st = stats_here();
	size_t b = 0;
	while (b < STATS_DNS_BUCKETS && us > stats_dns_bounds_us[b])
		b++;
	stats_inc(&st->dns[b]);
	stats_add(&st->dns_sum_us, us);
	if (!ok)
		stats_inc(&st->dns_failed);
}

