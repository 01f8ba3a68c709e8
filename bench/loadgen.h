/*
 * loadgen.h - shared pieces of the benchmark load generator.
 *
 * loadgen measures one SOCKS5 proxy (or, with --direct, no proxy at all)
 * against targets it runs itself on 127.0.0.2, 127.0.0.3, ... Every mode
 * follows one timeline driven by the main thread through run->phase:
 *
 *   SETUP   workers connect (and, through a proxy, do the SOCKS handshake)
 *   WARMUP  traffic flows, nothing is counted
 *   MEASURE counters run for --duration seconds
 *   STOP    workers close everything and return
 *
 * Only loopback addresses are ever used, and every loop is bounded by the
 * phase (set from a timer) and by an error cap.
 */
#ifndef STP_BENCH_LOADGEN_H
#define STP_BENCH_LOADGEN_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto/socks.h"

#define LG_MAX_TARGETS 32
#define LG_MAX_THREADS 64
#define LG_ERROR_CAP 10000 /* a worker gives up after this many failures */
#define LG_OP_TIMEOUT_NS (5ull * 1000000000ull)
#define LG_TICK_MS 10

enum lg_mode { LG_THROUGHPUT, LG_CONNRATE, LG_IDLE, LG_UDP };
enum lg_dir { LG_UP, LG_DOWN };
enum lg_phase { LG_SETUP, LG_WARMUP, LG_MEASURE, LG_STOP };

struct lg_opts {
	enum lg_mode mode;
	bool direct;
	struct sockaddr_in proxy;
	int threads;        /* client threads */
	int target_threads; /* threads serving the targets */
	int ntargets;       /* target addresses 127.0.0.2 .. */
	double duration;    /* measured seconds */
	double warmup;      /* seconds before measuring */
	int streams;        /* throughput streams, UDP flows */
	enum lg_dir dir;
	int clients;        /* connrate: concurrent clients */
	int sessions;       /* idle: sessions to hold open */
	pid_t pid;          /* idle: the proxy process to measure */
	int window;         /* udp: datagrams in flight per flow */
	size_t size;        /* udp datagram / connrate echo payload */
	const char *user;   /* --userpass: RFC 1929 credentials, or NULL */
	const char *pass;
	bool tls;           /* --tls: SOCKS over TLS (lg_tls.c) */
	bool blocking;      /* --blocking: the threaded path of lg_tls.c, TLS or not */
	bool mux;           /* --mux: connrate as HTTP/2 streams over X'30' (lg_mux.c) */
	int mux_conns;      /* --mux-conns: multiplexed connections (default: threads) */
};

/* ---- targets (lg_target.c) ---- */
enum lg_tkind { LG_T_SINK, LG_T_SOURCE, LG_T_ECHO, LG_T_UDP_ECHO };

struct lg_targets {
	enum lg_tkind kind;
	int n;                               /* addresses in use */
	struct sockaddr_in addr[LG_MAX_TARGETS];
	int nthreads;
	pthread_t th[LG_MAX_THREADS];
	int ep[LG_MAX_THREADS];
	atomic_bool stop;
	atomic_uint_fast64_t bytes_in;      /* received by sinks */
};

int lg_targets_start(struct lg_targets *t, enum lg_tkind kind, int naddr, int nthreads,
		     char *err, size_t errlen);
void lg_targets_stop(struct lg_targets *t);

/* ---- one run, shared by the main thread and the workers ---- */
struct lg_run {
	const struct lg_opts *o;
	struct lg_targets *tg;
	atomic_int phase;               /* enum lg_phase */
	atomic_uint_fast64_t ready;     /* connections set up */
	atomic_uint_fast64_t failed;    /* connections that never got set up */
	atomic_uint_fast64_t errors;    /* failures after SETUP */
	atomic_uint_fast64_t bytes;     /* bytes the clients received (MEASURE) */
	atomic_uint_fast64_t count;     /* cycles or datagrams (MEASURE) */
	pthread_mutex_t lock;           /* guards first_error */
	char first_error[160];
};

void lg_run_error(struct lg_run *run, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ---- client connection with the SOCKS5 handshake (lg_conn.c) ---- */
enum lg_hs {
	LG_HS_CONNECTING,
	LG_HS_GREETING,  /* sending the method greeting */
	LG_HS_CHOICE,    /* waiting for the method choice */
	LG_HS_AUTH,      /* sending the RFC 1929 username/password */
	LG_HS_AUTH_STATUS, /* waiting for its status */
	LG_HS_REQUEST,   /* sending the request */
	LG_HS_REPLY,     /* waiting for the reply */
	LG_HS_DONE,
};

enum lg_step { LG_STEP_MORE, LG_STEP_DONE, LG_STEP_FAIL };

struct lg_conn {
	int fd;
	enum lg_hs hs;
	int state;         /* mode-specific state once hs is DONE */
	uint8_t cmd;       /* SOCKS_CMD_CONNECT or SOCKS_CMD_UDP_ASSOCIATE */
	bool direct;
	uint32_t events;   /* current epoll interest */
	struct socks_addr dst;
	uint8_t out[3 + SOCKS_USERPASS_MAX + SOCKS5_REQUEST_MAX]; /* all three, pipelined */
	size_t outlen, outoff;
	uint8_t in[512];
	size_t inlen;
	size_t surplus;    /* bytes after the reply, at in + inlen - surplus */
	struct socks5_reply reply;
	uint64_t started;  /* ns, when connect() was called */
	uint64_t deadline; /* ns, for the current operation */
	const char *why;   /* static text for the last failure */
	size_t done_bytes; /* mode-specific progress */
	void *user;
};

/* Opens a non-blocking connection to `to` (the proxy, or the target itself
 * when c->direct), watched by epoll `ep` with data.ptr = c. */
int lg_conn_open(struct lg_conn *c, int ep, const struct sockaddr_in *to, uint8_t cmd,
		 const struct socks_addr *dst, bool direct);
/* Advances the handshake on an epoll event. */
enum lg_step lg_conn_step(struct lg_conn *c, int ep, uint32_t events);
/* Changes the epoll interest (no syscall when unchanged). */
int lg_conn_watch(struct lg_conn *c, int ep, uint32_t events);
void lg_conn_close(struct lg_conn *c);
/* Credentials for every later handshake (NULL user: method none only). */
void lg_conn_userpass(const char *user, const char *pass);
/* --pipeline: greeting, RFC 1929 and request in one write (before workers start). */
void lg_conn_pipeline(bool on);
void lg_addr_from_sin(struct socks_addr *a, const struct sockaddr_in *sin);

/* ---- helpers (lg_util.c) ---- */
uint64_t lg_now_ns(void);
void lg_sleep_s(double secs);
int lg_set_nonblock(int fd);
void lg_raise_nofile(void);
int lg_parse_addr(struct sockaddr_in *sin, const char *s);
bool lg_is_loopback(const struct sockaddr_in *sin);
/* A server's footprint: sums over the process and its descendants. PSS
 * splits shared pages between the processes that map them, so a forking
 * server (Dante) is not charged its libraries once per child. */
struct lg_usage {
	long rss_kb, pss_kb, fds;
	int nprocs;
};
int lg_proc_usage(pid_t pid, struct lg_usage *u);
/* Waits until run->phase leaves SETUP or `secs` pass; true when all
 * `want` connections are ready. */
bool lg_wait_ready(struct lg_run *run, uint64_t want, double secs);
/* p-th percentile (0..100) of n sorted samples. */
uint32_t lg_percentile(const uint32_t *sorted, size_t n, double p);

/* ---- the modes (lg_stream.c, lg_cycle.c, lg_idle.c, lg_udp.c) ---- */
struct lg_result {
	double seconds;       /* measured interval */
	double mb_s;          /* throughput */
	double per_s;         /* connrate cycles/s or udp datagrams/s */
	double p50_ms, p90_ms, p99_ms;
	uint64_t sent, received;
	double loss_pct;
	struct lg_usage base, held;
	double kb_per_session, rss_kb_per_session, fds_per_session;
	uint64_t sessions;
	bool has_mem;
};

int lg_mode_throughput(struct lg_run *run, struct lg_result *res);
int lg_mode_connrate(struct lg_run *run, struct lg_result *res);
int lg_mode_idle(struct lg_run *run, struct lg_result *res);
int lg_mode_udp(struct lg_run *run, struct lg_result *res);
/* --tls / --blocking: throughput and connrate with one blocking connection
 * per thread (lg_tls.c). */
int lg_mode_blocking(struct lg_run *run, struct lg_result *res);
/* --mux: connrate as streams of multiplexed connections (lg_mux.c). */
int lg_mode_mux(struct lg_run *run, struct lg_result *res);

/* One client thread and the connections it owns. */
struct lg_worker {
	struct lg_run *run;
	int id;
	int ep;
	pthread_t th;
	struct lg_conn *conns;
	size_t nconns;
	uint64_t nerrors;
	uint32_t *lat;     /* connrate: latency samples in microseconds */
	size_t nlat, caplat;
	void *mode;        /* mode-specific per-worker data */
};

/* Creates o->threads workers (epoll each) sharing `total` connections;
 * 0 or -1 with the reason in err. */
int lg_workers_init(struct lg_run *run, struct lg_worker *w, size_t total, char *err,
		    size_t errlen);
int lg_workers_start(struct lg_run *run, struct lg_worker *w, void *(*fn)(void *));
void lg_workers_finish(struct lg_run *run, struct lg_worker *w);
/* Counts a failure; false once the worker should give up. */
bool lg_worker_fail(struct lg_worker *w, struct lg_conn *c, const char *what);
typedef void (*lg_event_fn)(struct lg_worker *w, struct lg_conn *c, uint32_t events);
/* Called with a static reason; must count the failure and close c. */
typedef void (*lg_fail_fn)(struct lg_worker *w, struct lg_conn *c, const char *why);
/* Runs until STOP: dispatches epoll events to fn, hands connections past
 * their deadline (c->deadline != 0 and still open) to fail. */
void lg_worker_loop(struct lg_worker *w, lg_event_fn fn, lg_fail_fn fail);
/* Drives the handshake of c: -1 failed (counted, closed), 0 in progress,
 * 1 done (counted as ready when count_ready). */
int lg_worker_handshake(struct lg_worker *w, struct lg_conn *c, uint32_t events,
			bool count_ready);
/* The proxy, or the target itself with --direct. */
const struct sockaddr_in *lg_first_hop(const struct lg_run *run, int tidx);

/* WARMUP -> MEASURE -> STOP on the main thread; *delta is how much `counter`
 * grew while measuring. Returns the measured seconds. */
double lg_timeline(struct lg_run *run, atomic_uint_fast64_t *counter, uint64_t *delta);
/* Seconds of setup allowed before a run is declared failed. */
#define LG_SETUP_SECS 30.0

#endif
