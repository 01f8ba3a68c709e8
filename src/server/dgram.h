/*
 * dgram.h - the datagram relay core: one client-facing UDP socket pinned to
 * one client, target-facing sockets per address family, per-datagram rule
 * checks, counters, an idle timeout, batched I/O (udpbatch.h). What a
 * client datagram means is its user's business, through an ops table:
 *
 *   client -> target   decap(datagram) -> destination + payload offset
 *   target -> client   encap(from, payload) -> header written in front
 *   both               allow(direction, address) -> relay or drop
 *
 * UDP ASSOCIATE (cmd_udp.c) decaps and encaps the RFC 1928 section 7
 * header; a user relaying naked payloads (TRANSPARENT's PTCL UDP) returns
 * a fixed destination and no header. The relay knows no session: its user
 * writes the log lines and ends the relay.
 *
 * Pinning: only datagrams from the pinned address are relayed. The port is
 * fixed (pin_port) or learned from the first datagram from that address;
 * once known, the client-facing socket is connected to it, so the kernel
 * drops other sources and replies need no address.
 */
#ifndef STP_SERVER_DGRAM_H
#define STP_SERVER_DGRAM_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "server/udpbatch.h"

/* Bytes encap may write in front of a payload (the batch's headroom). */
#define DGRAM_HEADROOM UDP_HEADROOM

struct dgram_relay;
struct resolver;

enum dgram_dir {
	DGRAM_UP,   /* client -> target: addr is the destination */
	DGRAM_DOWN, /* target -> client: addr is the sender */
};

/* Where a client datagram goes, as decap found it. */
struct socks_udp_hdr;

struct dgram_dst {
	struct sockaddr_storage addr; /* with its port; unused when name is set */
	const char *name;             /* or a name the relay resolves (cached); must
	                               * stay valid until the next decap call */
	uint16_t port;                /* with name: the port, host order */
};

/* How one user frames its datagrams. ctx is dgram_params.ctx. */
struct dgram_ops {
	/* A datagram p[0..len) from the pinned client: fills *dst (name NULL
	 * unless by name) and *hdrlen, the offset of the payload. -1 drops it
	 * (the user counts why). */
	int (*decap)(void *ctx, const uint8_t *p, size_t len, struct dgram_dst *dst,
		     size_t *hdrlen);
	/* A payload from `from` going to the client: writes the header into the
	 * DGRAM_HEADROOM bytes before payload, ending where it starts (no
	 * copy), and returns its length (0: none). */
	size_t (*encap)(void *ctx, const struct sockaddr *from, uint8_t *payload, size_t len);
	/* May a datagram go to / come from addr (port set; name: how the client
	 * named it, or NULL)? log: it would be this relay's first denial.
	 * NULL: everything is allowed. Denials are counted by the relay. */
	bool (*allow)(void *ctx, enum dgram_dir dir, const struct sockaddr *addr, const char *name,
		      bool log);
	/* No datagram relayed for idle_secs. The user ends the relay (it may
	 * free it in here). */
	void (*idle)(void *ctx);
	/* Optional: a per-message protection around whole client datagrams
	 * (GSS-API, RFC 1961 section 5). unseal runs before decap on what the
	 * client sent, p[0..len) in its slot, and rewrites it in place into
	 * what decap reads: the new length (never more than len), or -1 to
	 * drop it (counted as bad). seal runs after encap on the datagram for
	 * the client, p[0..*len) with `room` writable bytes before p: it writes
	 * the sealed datagram ending where p[0..*len) ended and returns its
	 * start (at most room bytes before p), with *len updated; NULL drops. */
	int (*unseal)(void *ctx, uint8_t *p, size_t len);
	uint8_t *(*seal)(void *ctx, uint8_t *p, size_t *len, size_t room);
};

struct dgram_params {
	struct ev_loop *loop;
	struct udp_batch *batch;              /* the worker's slots, shared by its relays */
	struct resolver *resolver;            /* for names from decap (NULL: none resolve) */
	const struct dgram_ops *ops;
	void *ctx;
	struct sockaddr_storage local;        /* the client-facing socket's address (port 0: any) */
	struct sockaddr_storage pin;          /* the client's address, and port if pin_port */
	bool pin_port;                        /* the port is fixed, not learned */
	const struct sockaddr_storage *source; /* target sockets of its family bind to it
	                                        * (NULL: the kernel picks) */
	unsigned idle_secs;                   /* 0: no idle timeout */
	/* A target-facing socket made by the user (a UDP bind's public port,
	 * which peers send to unasked): the relay takes it over as its socket
	 * of that family and reads it from the start. */
	bool has_target_fd;
	int target_fd;
	/* Where its sockets are made (the compartments' seam): the
	 * client-facing one (target false) and the target-facing ones;
	 * socket(2)'s result. NULL: socket(2) here. */
	int (*open_socket)(void *sock_ctx, bool target, int domain, int type);
	void *sock_ctx;
};

struct dgram_counts {
	uint64_t up, down;             /* datagrams relayed */
	uint64_t up_bytes, down_bytes; /* their payload bytes */
	uint64_t foreign;              /* from another source than the pinned client */
	uint64_t early;                /* from a target before the client's port was known */
	uint64_t denied;               /* refused by ops->allow */
	uint64_t unresolved;           /* to a name that did not resolve (or waited) */
	uint64_t send_err;             /* refused by the kernel, or no target socket */
	uint64_t unsealed_bad;         /* dropped by ops->unseal or ops->seal */
};

/* Opens the client-facing socket on p->local and writes where it is bound
 * to *bound (IPv4-mapped addresses unmapped). Nothing is read until
 * dgram_relay_start. NULL with errno set on failure. */
struct dgram_relay *dgram_relay_new(const struct dgram_params *p, struct sockaddr_storage *bound);
/* Starts relaying (and the idle clock). */
void dgram_relay_start(struct dgram_relay *r);
/* Stops, closes every socket, cancels a pending look-up. NULL is fine. */
void dgram_relay_free(struct dgram_relay *r);
const struct dgram_counts *dgram_relay_counts(const struct dgram_relay *r);

/* ---- for commands (dgram_session.c) ---- */
struct session;
/* Fills in what comes from the session: loop, the worker's slots and
 * resolver, local (our end of the control connection, any port), source
 * (the listener's external address), idle_secs (timeouts { udp-idle }).
 * ops, ctx and the pin are the command's. */
void dgram_params_from_session(struct dgram_params *p, const struct session *s);
/* What a reply advertises for the bound address: the listener's
 * udp-advertise address (behind NAT), the port kept. */
void dgram_advertised(const struct session *s, struct sockaddr_storage *bound);

#endif

/* RFC 1928 section 7 framing, shared by the relays that speak it (UDP
 * ASSOCIATE, the binds' UDP ports): the destination a parsed header names,
 * and an encap op writing the header that names a datagram's sender into
 * the headroom before its payload (its ctx and len are unused). */
void dgram_socks_dst(const struct socks_udp_hdr *h, struct dgram_dst *dst);
size_t dgram_socks_encap(void *ctx, const struct sockaddr *from, uint8_t *payload, size_t len);
