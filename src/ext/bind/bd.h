/*
 * bd.h - the bind extension's inside (docs/protocol.md section 5.9).
 *
 * A LISTEN control session (bd_listen.c) owns a struct bd_ctl: its TCP
 * binds (listening sockets), its UDP binds (datagram relays, bd_udp.c),
 * and its arrivals: peers accepted on a TCP bind, announced to the client
 * with an id and waiting for an ACCEPT on a new data connection. The data
 * connection may land on any worker, so arrivals are found through one
 * process-wide table (bd_claim.c) under a mutex; the claiming worker hands
 * the data connection (a struct conn, which holds no watcher) to the
 * owner's loop through the control's ev_async, and the owner relays it as
 * a flow of the control session. Everything else of a control session
 * runs on its own worker.
 */
#ifndef STP_EXT_BIND_BD_H
#define STP_EXT_BIND_BD_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ext/bind/bd_conf.h"
#include "proto/mbind.h"
#include "server/conn.h"

struct session;
struct flow;
struct dgram_relay;
struct bd_ctl;

struct bd_tcp {
	struct bd_ctl *ctl;
	uint8_t index; /* in the LISTEN list: ARRIVAL's BIND */
	int fd;
	ev_io io;
	struct flow *flow; /* the bind's own line: its peers' bytes add up here */
};

struct bd_udp {
	struct bd_ctl *ctl;
	struct flow *flow;      /* owns the datagram relay */
	struct socks_udp_hdr h; /* the last client header; names point into it */
};

enum bd_arrival_state {
	BD_PENDING,  /* announced, in the table, waiting for ACCEPT or REFUSE */
	BD_CLAIMED,  /* an ACCEPT took it: on ctl->claimed, not yet relaying */
	BD_RELAYING, /* its flow relays the data connection and the peer */
};

struct bd_arrival {
	uint8_t id[MBIND_ID_LEN];
	enum bd_arrival_state state;
	struct bd_ctl *ctl;
	struct bd_tcp *bind;
	int fd; /* the peer (the flow's once relaying) */
	struct socks_addr peer;
	struct flow *flow;
	ev_timer timer;                 /* accept-timeout while pending */
	ev_io watch;                    /* pending: the peer leaving (EOF, RST) */
	bool counted;                   /* the data connection holds a client-limits place */
	struct conn conn;               /* BD_CLAIMED: the data connection handed over */
	struct bd_arrival *prev, *next; /* ctl->arrivals */
	struct bd_arrival *hnext;       /* table chain (pending only) */
	struct bd_arrival *cnext;       /* ctl->claimed queue */
};

struct bd_ctl {
	struct session *s;
	struct ev_loop *loop;
	const struct bd_conf *conf;
	ev_async wake;       /* an ACCEPT elsewhere queued a claim */
	ev_timer body_timer; /* the LISTEN body is late */
	char user[256];
	struct sockaddr_storage client;
	struct bd_tcp tcp[MBIND_MAX];
	unsigned n_tcp;
	struct bd_udp udp[MBIND_MAX];
	unsigned n_udp;
	unsigned pending, peers;
	bool paused, started;
	struct bd_arrival *arrivals; /* every arrival of this control, any state */
	struct bd_arrival *claimed;  /* under the table's lock */
};

/* bd_listen.c */
void bd_listen_start(struct session *s);
/* bd_claim.c: the ACCEPT command, and the table. */
void bd_accept_start(struct session *s);
void bd_table_add(struct bd_arrival *a);
/* Takes a pending arrival out of the table; false when an ACCEPT already
 * took it (it is then, or will be, on ctl->claimed). */
bool bd_table_remove(struct bd_arrival *a);
/* The control is going: its pending arrivals leave the table and the
 * claimed queue is returned (the caller closes what it holds). */
struct bd_arrival *bd_table_detach(struct bd_ctl *c);
/* Pops the claimed queue (on the owner's loop). */
struct bd_arrival *bd_table_take_claimed(struct bd_ctl *c);
/* bd_udp.c: opens UDP bind i (port, the client's UDP port), fills its
 * reply entry; -1 with errno. */
int bd_udp_open(struct bd_ctl *c, unsigned i, const struct mbind_entry *e, struct mbind_bound *out);

#endif
