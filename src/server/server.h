/*
 * server.h - process-wide state of stpd: the current configuration
 * snapshot and the workers (one thread + one libev loop each).
 */
#ifndef STP_SERVER_SERVER_H
#define STP_SERVER_SERVER_H

#include <ev.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/conf.h"
#include "server/stats.h"

struct authset;
struct session;
struct udp_batch;

/* What a session runs under: the config and what was loaded from it. */
struct snapshot {
	atomic_int refs;
	struct stp_conf *conf;
	struct authset *auth; /* userpass backends; NULL unless userpass is used */
};

/* Builds a snapshot (loads the users file, reads the backends' secret
 * files). NULL with a message in err. */
struct snapshot *snapshot_new(struct stp_conf *conf, char *err, size_t errlen);
struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);

struct listener {
	struct worker *w;
	const struct conf_listener *conf; /* in the configuration of the worker's snapshot */
	struct stp_conf *held;            /* conf's, for listeners a reload opened or kept */
	int fd;
	ev_io io;
};

struct worker {
	unsigned id;
	pthread_t thread;
	struct ev_loop *loop;
	ev_async wake;              /* reload / stop requests from the main thread */
	sem_t started;              /* posted once its modules and listeners run */
	atomic_bool want_reload, want_stop;
	atomic_uint reloaded_gen;   /* the server's reload_gen its listeners follow */
	ev_timer accept_pause;      /* ENOBUFS/ENOMEM back-off */
	int spare_fd;               /* /dev/null, given up to refuse one connection at EMFILE */
	bool fd_short;              /* out of fds since fd_logged; fd_refused so far */
	double fd_logged;
	unsigned long long fd_refused, fd_refused_logged;
	ev_timer drain;
	bool draining;

	struct listener *listeners;
	size_t n_listeners;

	struct snapshot *snap;      /* current, for new sessions */
	struct resolver *resolver;
	struct pipepool *pipes;
	struct authpool_loop *auth;
	unsigned auth_orphans;      /* auth jobs of closed sessions still in the pool */

	struct session *sessions;   /* list, for draining */
	struct session *dead;       /* closed, freed before the next poll */
	ev_prepare reaper;
	unsigned n_sessions;
	unsigned n_refusing;        /* sessions in SS_REFUSING (refuse.c caps them) */
	struct udp_batch *udp;      /* datagram slots for the UDP relay, shared by sessions */

	struct stats stats;         /* this worker's counters (stats.h) */
	atomic_bool want_report;    /* stats_sessions() waits for our session list */
	bool stats_gone;            /* loop going away: ask no more (under stats.c's lock) */
};

struct server {
	struct worker *workers;
	unsigned n_workers;
	pthread_mutex_t lock;       /* guards snap */
	struct snapshot *snap;
	atomic_uint_fast64_t next_session_id;
	atomic_uint sessions;       /* open sessions, all workers */
	unsigned drain_secs;
	atomic_uint reload_gen;     /* reloads so far (main.c) */
	sem_t reloaded;             /* posted by a worker each time it applied a reload */
	bool track_reloads;         /* reloaded is initialised (stpd; not unit tests) */
};

extern struct server g_server;

/* The current snapshot, referenced for the caller. */
struct snapshot *server_snapshot(void);
/* Replaces the current snapshot (takes the caller's reference). */
void server_set_snapshot(struct snapshot *s);

/* worker.c */
int worker_init(struct worker *w, unsigned id, struct snapshot *snap, char *err, size_t errlen);
/* worker_init without listeners: the loop and what sessions use (resolver,
 * pipe cache, datagram slots, reaper). Unit tests build workers with it
 * and hand sessions socketpairs (session_start); worker_fini undoes either
 * init, on the worker's own thread, once its sessions are closed. */
int worker_init_loop(struct worker *w, unsigned id, struct snapshot *snap, char *err,
		     size_t errlen);
void worker_fini(struct worker *w);
int worker_spawn(struct worker *w);
void worker_request(struct worker *w, bool reload, bool stop);
void worker_join(struct worker *w);
/* worker_join without waiting: true once the worker has ended. */
bool worker_tryjoin(struct worker *w);
void worker_session_ended(struct worker *w);

/* listener.c */
/* 0 when no other socket listens on cl's address; -1 with the address named
 * in err otherwise. Call for every address before the first listener_open. */
int listener_check_free(const struct conf_listener *cl, char *err, size_t errlen);
/* After the workers listen: 0 when only our sockets listen on our addresses,
 * -1 with the address named in err when another one does. */
int listener_check_alone(const struct worker *ws, unsigned n_workers, char *err, size_t errlen);
/* Opens one SO_REUSEPORT listening socket for worker w (NULL: the main
 * thread at start). A bind refused for lack of privilege (a port below
 * 1024 after the drop) goes to the broker over w's channel. fd or -1 with
 * err. */
int listener_open(const struct conf_listener *cl, const struct worker *w, char *err,
		  size_t errlen);
/* TCP Fast Open on or off on a socket, listening already or not: 0 or -1
 * with errno. */
int listener_fastopen(int fd, bool on);
/* listener_reload.c: on w's thread after a reload to c, keeps, closes and
 * opens w's listeners as c's listen statements say. */
void listener_reload(struct worker *w, struct stp_conf *c);
void listener_start(struct listener *l);
void listener_pause(struct worker *w, double secs);
void listener_close_all(struct worker *w);
/* The spare descriptor a worker keeps for refusing at EMFILE; -1 on error. */
int listener_spare_open(void);

/* limits.c: global and per-client session counts. */
bool limits_acquire(const struct sockaddr *client, const struct conf_limits *lim,
		    const char **why);
void limits_release(const struct sockaddr *client);

#endif
