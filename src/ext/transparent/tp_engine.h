/* src/ext/transparent/tp_engine.h — copy VERBATIM (both the tp and nft helpers create this
 * file with exactly this text, so the merge is clean; extend it only by adding at the end).
 *
 * The relay-engine seam of TRANSPARENT: seed 003's N2, between the control side (the module
 * answering CMD X'04') and the relay that moves the PTCL packets. Engines: "user" (user space:
 * splice relay / datagram core, tp_user.c), "kernel" (nftables pinholes + conntrack,
 * tp_nft.c), "remote" (a separate relay daemon spoken to over N2, tp_remote.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ev_loop;
struct tp_conf; /* tp_conf.h: the `transparent { }` section */

/* One relay configuration the control side asks for. */
struct tp_assoc {
	uint8_t ptcl;                /* 6 TCP, 17 UDP */
	struct sockaddr_storage src; /* S.ADDR:S.PORT exactly: anything else is dropped */
	struct sockaddr_storage dst; /* DST.ADDR:DST.PORT, already resolved */
	struct sockaddr_storage bnd; /* address to receive on, on the client's side; port 0 = any */
	bool end_on_fin;             /* TCP: the association ends when the target sends FIN */
	uint32_t idle_ms;            /* end after this long without a packet; 0 = never */
	/* Where the user engine makes the association's sockets (the compartments' seam,
	 * server/ext.h open_socket): the client-facing ones (target false) in the compartment
	 * S is in, the target-facing ones where the rule sends the session; socket(2)'s result.
	 * NULL: socket(2) here. Engines that cannot make their sockets this way (kernel,
	 * remote) are never given an association whose sockets belong elsewhere. */
	int (*open_socket)(void *sock_ctx, bool target, int domain, int type);
	void *sock_ctx;
};

/* up = client -> target, down = target -> client */
struct tp_counters {
	uint64_t pkts_up, bytes_up, pkts_down, bytes_down;
};

struct tp_engine_cb {
	/* open finished: rep 0 and the BND the client must send to, else a SOCKS reply code
	 * (then the relay is gone; the control side does not call close). May be called from
	 * inside open() for a synchronous engine. */
	void (*opened)(void *arg, uint8_t rep, const struct sockaddr_storage *bnd);
	/* the relay ended on the engine's side ("fin", "idle", "relay-lost", ...): final
	 * counters; the relay is gone, the control side does not call close */
	void (*ended)(void *arg, const char *why, const struct tp_counters *c);
};

struct tp_engine; /* one per worker loop, opaque */
struct tp_relay;  /* one per association, opaque */

struct tp_engine_ops {
	const char *name; /* "user", "kernel", "remote": the value of `engine` in the config */
	struct tp_engine *(*create)(struct ev_loop *loop, const struct tp_conf *conf, char *err,
	                            size_t errlen);
	void (*destroy)(struct tp_engine *e); /* closes every relay it still has */
	/* Start one association. NULL: refused at once (errno set; no callback follows). */
	struct tp_relay *(*open)(struct tp_engine *e, const struct tp_assoc *a,
	                         const struct tp_engine_cb *cb, void *arg);
	void (*counters)(struct tp_relay *r, struct tp_counters *out);
	/* Tear down now: when it returns no further packet of this association passes
	 * (kernel: rules and conntrack entries gone). Final counters in *final (may be NULL). */
	void (*close)(struct tp_relay *r, struct tp_counters *final);
};

/* tp_engines.c: the engines built in, by name; NULL if none has that name. */
const struct tp_engine_ops *tp_engine_find(const char *name);

/* tp_rep.c: the SOCKS reply for an engine's refusal (errno of a NULL open, or of a relay
 * that refused over N2), one table for stpd's module and stp-relayd (docs/protocol.md §5.8):
 * EPROTONOSUPPORT X'09', EAFNOSUPPORT X'08', ENETUNREACH/EHOSTUNREACH X'03', EACCES/EPERM
 * X'02', anything else (EADDRNOTAVAIL, EADDRINUSE, EIO, ECONNREFUSED: the relay is down) X'01'. */
uint8_t tp_rep_of_errno(int err);
