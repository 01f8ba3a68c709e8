/*
 * mc.h - the multicast extension's pieces and how they meet (docs/mcast.md).
 *
 * Threads: members' control connections are sessions on any worker; the
 * relays all live on one dedicated thread, the hub, with its own libev
 * loop. The hub's relay table is shared under one mutex:
 *   - a worker joins and leaves under the lock (a JOIN creates the relay's
 *     sockets and joins the real group right there, so the reply can say
 *     whether it worked), then wakes the hub with ev_async to start or
 *     close the relay's watchers, which only the hub thread touches;
 *   - the hub thread takes the lock for each batch of datagrams (member
 *     lookups, replay windows) and, when a relay ends on its own (idle,
 *     bandwidth), marks each member kicked and wakes its session's worker
 *     through the ev_async the session registered with the member.
 * Only the hub thread does crypto and packet I/O; workers only do JOIN,
 * LEAVE and notices.
 */
#ifndef STP_EXT_MCAST_MC_H
#define STP_EXT_MCAST_MC_H

#include <ev.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "mcrypto/mc_replay.h"
#include "policy/conf.h"
#include "proto/mcast.h"
#include "server/ext.h"

struct session;
struct mc_relay;

/* What a relay runs under, taken from the snapshot of the session that
 * created it. */
struct mc_settings {
	char ext_if[IF_NAMESIZE];   /* "" = let routing choose */
	char int_if[IF_NAMESIZE];
	struct rule_cidr pool4, pool6;
	uint8_t suite;              /* MCAST_SUITE_NONE: encryption off */
	unsigned max_members;       /* per group, 0 = no limit */
	unsigned max_time;          /* seconds one member may stay, 0 = no limit */
	unsigned idle;              /* relay ends after this long without a packet, 0 = never */
	uint64_t rate;              /* bytes/s per group, both directions, 0 = no limit */
	uint64_t burst;             /* token bucket depth in bytes */
	unsigned ttl;               /* multicast hop limit on both sides */
};

void mc_settings_get(const struct stp_conf *c, struct mc_settings *out);

/* A relay is found by group, port and source filter. */
struct mc_key {
	int family;
	uint8_t group[16];
	uint16_t port;
	struct mcast_filter filter; /* sources sorted, unused bytes zero */
	/* Where its sockets are (ext_socket_place: "" = stpd's own namespace):
	 * members of one group in two compartments get two relays. */
	char place[EXT_SOCKET_PLACE_MAX];
};

/* Where a relay's sockets are made (the compartments' seam, server/ext.h
 * open_socket), called by the joining worker: outside = the real group's
 * side (the compartment of the rule that passed the JOIN), else the
 * members' side (the compartment they arrived in). NULL open: socket(2). */
struct mc_sockets {
	int (*open)(void *ctx, bool outside, int domain, int type);
	void *ctx;
};

/* Builds a key; 0, or -1 when the sources' family differs from the group's. */
int mc_key_make(struct mc_key *k, const struct socks_addr *group, const struct mcast_filter *f);

/* One member of one group. Owned by the session (mc_session.c); linked into
 * its relay while joined. Fields marked (lock) change under the hub lock. */
struct mc_member {
	uint32_t id;                          /* set by the hub, unique in its relay */
	uint8_t perms;                        /* MCAST_KEYF_SEND | MCAST_KEYF_RECV */
	uint8_t send_key[MCAST_KEY_LEN];      /* when perms has SEND */
	struct sockaddr_storage client;       /* control connection's IP, port 0 */
	struct ev_loop *loop;                 /* the session's worker */
	ev_async *notify;                     /* woken when kicked */

	struct mc_relay *relay;               /* (lock) NULL once out of the relay */
	struct mc_member *next;               /* (lock) relay's list */
	struct mc_replay win;                 /* (lock) hub thread only */
	uint8_t kicked;                       /* (lock) notice code, 0 = none */
	uint64_t sent, dropped;               /* (lock) packets from this member */
	uint64_t sent_bytes;                  /* (lock) payload bytes of `sent` */
};

/* What a JOIN hands back to the session. */
struct mc_grant {
	struct sockaddr_storage int_sa;       /* intranet group and port */
	uint8_t suite;
	uint8_t recv_key[MCAST_KEY_LEN];
	bool created;                         /* this JOIN started the relay */
};

/* ---- the hub (mc_hub.c) ---- */
int mc_hub_attach(void);   /* worker_init: the first one starts the hub thread */
void mc_hub_detach(void);  /* worker_fini: the last one stops it */

/* Adds m (id, perms, send_key, client, loop, notify set by the caller) to
 * the relay of k, creating it if needed. 0 and *g filled; or -1 with the
 * reply code in *rep and static text in *why. */
int mc_hub_join(struct mc_member *m, const struct mc_key *k, const struct mc_settings *set,
		const struct mc_sockets *sk, struct mc_grant *g, uint8_t *rep, const char **why);
/* Takes m out of its relay (if still in one); the relay ends with its last
 * member. */
void mc_hub_leave(struct mc_member *m);
/* The metrics' gauges (stp_ext.gauges): relays and their members. */
struct ext_gauge;
size_t mc_hub_gauges(struct ext_gauge *out, size_t cap);
/* Reads m->kicked under the lock. */
uint8_t mc_hub_kicked(struct mc_member *m);

/* ---- relays (mc_relay.c); every call holds the hub lock ---- */
struct mc_relay *mc_relay_open(const struct mc_key *k, const struct mc_settings *set,
			       const struct mc_sockets *sk, const struct sockaddr_storage *int_sa,
			       const char **why);
/* Hub thread: starts the watchers on the hub loop. */
void mc_relay_start(struct mc_relay *r, struct ev_loop *loop);
/* Hub thread: stops watchers, closes the sockets (leaving the real group),
 * logs the counters and frees r. Members must be gone already. */
void mc_relay_free(struct mc_relay *r, struct ev_loop *loop, const char *why);
bool mc_relay_is(const struct mc_relay *r, const struct mc_key *k);
const struct sockaddr_storage *mc_relay_intranet(const struct mc_relay *r);
void mc_relay_grant(const struct mc_relay *r, struct mc_grant *g);
unsigned mc_relay_members(const struct mc_relay *r);
int mc_relay_add(struct mc_relay *r, struct mc_member *m, uint8_t *rep, const char **why);
/* Unlinks m; true when r is now empty. */
bool mc_relay_remove(struct mc_relay *r, struct mc_member *m);
/* Any thread, hub lock held: relays the member datagrams already waiting,
 * e.g. before a member leaves (its last packet, sent just before the
 * LEAVE, may not have been read by the hub thread yet). Never ends r: a
 * datagram over the rate is dropped instead. */
void mc_relay_drain(struct mc_relay *r, ev_tstamp now);
/* Empties r's member list and returns it (for mc_hub_relay_ended). */
struct mc_member *mc_relay_take_members(struct mc_relay *r);
/* "group:port" for log lines. */
const char *mc_relay_name(const struct mc_relay *r);

/* Called by the relay (hub thread, lock held) when it must end on its
 * own: every member is kicked with note and r is freed. */
void mc_hub_relay_ended(struct mc_relay *r, uint8_t note, const char *why);
/* The hub thread's shared crypto context and scratch buffers. */
struct mc_aead *mc_hub_aead(void);
uint8_t *mc_hub_buf(size_t *cap);
uint8_t *mc_hub_out(size_t *cap);
void mc_hub_lock(void);
void mc_hub_unlock(void);

/* ---- policy (mc_policy.c) ---- */
/* Opens the membership's flow when the rules pass the JOIN, with the
 * MCAST_KEYF_* bits they grant in *perms; NULL when blocked (logged). */
struct flow;
struct mcast_request;
struct flow *mc_policy_open(struct session *s, const struct mcast_request *req, uint8_t *perms);

/* ---- commands (mc_session.c) ---- */
void mc_cmd_join(struct session *s);
void mc_cmd_leave(struct session *s);

#endif
