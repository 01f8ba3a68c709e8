/*
 * stats.h - what stpd counts for operators (docs/operations.md; the
 * metrics extension src/ext/metrics reads it). Every worker thread has its
 * own block of counters; the hot path adds to the block of the thread it
 * runs on with relaxed atomics (no lock, no cache line shared between
 * workers), and a scrape sums the blocks. Threads that are not workers
 * (the auth pool's, a module's own) and unit tests' loops count into one
 * shared block.
 *
 * Gauges of what is open now (sessions by command and state, the active
 * session list) are not kept on the hot path at all: stats_sessions() asks
 * each worker, through its ev_async, to walk its own session list.
 */
#ifndef STP_SERVER_STATS_H
#define STP_SERVER_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct worker;

/* Why a session or a look-up was refused (limits hit). */
enum stats_limit {
	STATS_LIM_RULE_SESSIONS, /* a client rule's `sessions` */
	STATS_LIM_SESSIONS,      /* limits { sessions } */
	STATS_LIM_PER_CLIENT,    /* limits { sessions-per-client }, or the client table */
	STATS_LIM_ACCEPT,        /* accept(2) failed: EMFILE, ENFILE, ENOBUFS, ENOMEM */
	STATS_LIM_DNS_PENDING,   /* limits { dns-pending } */
	STATS_LIM_N
};

/* Who answered an authentication. */
enum stats_backend {
	STATS_BE_NONE, /* nobody said yes (failures) */
	STATS_BE_FILE,
	STATS_BE_PAM,
	STATS_BE_LDAP,
	STATS_BE_RADIUS,
	STATS_BE_CACHE,
	STATS_BE_GSSAPI,
	STATS_BE_N
};

/* Upper bounds of the DNS latency histogram, in microseconds. */
#define STATS_DNS_BUCKETS 10
extern const unsigned stats_dns_bounds_us[STATS_DNS_BUCKETS];

typedef atomic_uint_fast64_t stats_ctr;

/* Counters only (stats_sum adds blocks as arrays of stats_ctr). */
struct stats {
	stats_ctr accepted;                  /* sessions begun */
	stats_ctr closed[256];               /* sessions ended, by command (0: none parsed) */
	stats_ctr replies[256];              /* SOCKS5 reply codes sent, sessions and flows */
	stats_ctr flows;                     /* flows (requests of control sessions) ended */
	stats_ctr bytes_up, bytes_down;      /* client->target, target->client, at the end */
	stats_ctr auth[256][STATS_BE_N][2];  /* [method][backend][ok] */
	stats_ctr dns[STATS_DNS_BUCKETS + 1]; /* look-ups per bucket; the last: above all */
	stats_ctr dns_sum_us, dns_failed;
	stats_ctr limits[STATS_LIM_N];
	stats_ctr loops;                     /* event-loop iterations (workers) */
	stats_ctr sessions;                  /* open now on this worker */
};

/* The block of the calling thread. */
struct stats *stats_here(void);
/* Makes w's block the calling thread's (worker threads, at start). */
void stats_bind(struct worker *w);

static inline void stats_add(stats_ctr *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline void stats_inc(stats_ctr *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

void stats_limit(enum stats_limit what);
void stats_auth(uint8_t method, enum stats_backend be, bool ok);
/* "file", "pam", "ldap", "radius", "cache", "gssapi" (auth_job.via); NONE otherwise. */
enum stats_backend stats_backend_named(const char *via);
/* The label of a backend in the metrics. */
const char *stats_backend_name(enum stats_backend be);
/* A DNS look-up that took us microseconds. */
void stats_dns(uint64_t us, bool ok);
/* Microseconds of CLOCK_MONOTONIC, for stats_dns. */
uint64_t stats_now_us(void);

/* The scrape side: the number of workers, the sum of every block, and
 * one worker's load (open sessions, loop iterations). */
unsigned stats_workers(void);
void stats_sum(struct stats *out);
void stats_worker_load(unsigned i, uint64_t *sessions, uint64_t *loops);

/* One open session, as the status page lists it. */
struct stats_session {
	uint64_t id;
	unsigned worker;
	const char *state; /* static strings */
	uint8_t cmd;
	bool has_cmd;      /* a request was parsed */
	char client[64], target[280], user[64], listener[32];
	uint64_t up, down; /* so far */
	double age;        /* seconds */
};

#define STATS_STATES 16
struct stats_sessions {
	uint64_t by_state_cmd[STATS_STATES][256]; /* open sessions, all of them */
	const char *state_names[STATS_STATES];
	unsigned n_states;
	struct stats_session *list; /* the first `max` (malloc'd) */
	size_t n, total;
	unsigned workers_answered, workers;
};

/* Asks every worker for its open sessions (at most max listed, all
 * counted), waiting at most timeout_ms in all for busy workers. 0, or -1
 * when another caller is collecting or memory is short. Free with
 * stats_sessions_free. */
int stats_sessions(struct stats_sessions *out, size_t max, unsigned timeout_ms);
void stats_sessions_free(struct stats_sessions *out);

/* worker.c: answers a pending stats_sessions request on the worker's loop;
 * stats_worker_gone before the loop is destroyed. */
void stats_worker_answer(struct worker *w);
void stats_worker_gone(struct worker *w);

#endif
