/*
 * mbind.h - the bind extension's wire formats (docs/protocol.md section
 * "Binds for application servers"): LISTEN X'10' (N TCP and UDP binds on
 * one control connection), the messages on that control connection after
 * its reply (ARRIVAL, CLOSED from the server; REFUSE from the client), and
 * ACCEPT X'11', which a new data connection sends to take one arrival.
 *
 * Same contract as socks.h: pure, allocation-free, MORE/DONE/BAD with a
 * reply code, writers return the bytes written or 0 when cap is too small.
 */
#ifndef STP_PROTO_MBIND_H
#define STP_PROTO_MBIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

enum {
	MBIND_CMD_LISTEN = 0x10, /* N binds, one control connection */
	MBIND_CMD_ACCEPT = 0x11, /* a data connection takes an arrival */
};

enum {
	MBIND_REP_NO_ARRIVAL = 0x0A, /* ACCEPT: no such arrival for this client */
	MBIND_REP_LIMIT = 0x0B,      /* LISTEN: over a per-control-connection limit */
	/* CLOSED: the peer closed or reset its connection before an ACCEPT. */
	MBIND_REP_PEER_GONE = SOCKS5_REP_CONN_REFUSED,
};

enum { MBIND_KIND_TCP = 0x01, MBIND_KIND_UDP = 0x02 };

#define MBIND_MAX    16 /* binds in one LISTEN */
#define MBIND_ID_LEN 8

/* ---- LISTEN request: VER CMD RSV ATYP DST.ADDR DST.PORT NBIND {KIND PORT ARG} ---- */
struct mbind_entry {
	uint8_t kind;  /* MBIND_KIND_* */
	uint16_t port; /* port asked for on the server, 0: any */
	uint16_t arg;  /* TCP: backlog (0: server default); UDP: the client's
	                * UDP source port (0: learned from its first datagram) */
};

struct mbind_request {
	struct socks_addr dst; /* the peers expected (all-zero: any) */
	uint8_t n;
	struct mbind_entry e[MBIND_MAX];
};

#define MBIND_REQUEST_MAX (SOCKS5_REQUEST_MAX + 1 + MBIND_MAX * 5)

/* BAD: VER not 5 (X'01'), CMD not X'10' (X'07'), RSV not 0 (X'01'), a bad
 * address (socks_addr_parse's codes), NBIND 0 or over MBIND_MAX (X'01'),
 * an unknown KIND (X'07'). */
enum socks_res mbind_request_parse(struct mbind_request *out, const uint8_t *p, size_t n,
				   size_t *used, struct socks_err *err);
size_t mbind_request_write(uint8_t *dst, size_t cap, const struct mbind_request *r);

/* ---- LISTEN reply: VER REP RSV ATYP BND.ADDR BND.PORT [NBIND {KIND BND [RELAY]}] ---- */
struct mbind_bound {
	uint8_t kind;
	struct socks_addr bnd;   /* where peers reach the bind */
	struct socks_addr relay; /* UDP: where the client's datagrams go */
};

struct mbind_reply {
	uint8_t rep;
	struct socks_addr bnd; /* the first bind's address (all-zero on failure) */
	uint8_t n;             /* 0 unless REP is X'00' */
	struct mbind_bound b[MBIND_MAX];
};

#define MBIND_REPLY_MAX (SOCKS5_REPLY_MAX + 1 + MBIND_MAX * (1 + 2 * SOCKS_ADDR_MAX))

/* NBIND and the list follow exactly when REP is X'00'. BAD: VER not 5,
 * NBIND 0 or over MBIND_MAX, an unknown KIND, a bad address. */
enum socks_res mbind_reply_parse(struct mbind_reply *out, const uint8_t *p, size_t n, size_t *used,
				 struct socks_err *err);
/* Writes r; r->n and the list only when r->rep is X'00'. */
size_t mbind_reply_write(uint8_t *dst, size_t cap, const struct mbind_reply *r);

/* ---- control messages after a LISTEN reply ---- */
enum {
	MBIND_MSG_ARRIVAL = 0x01, /* server: TYPE BIND ID(8) ATYP PEER.ADDR PEER.PORT */
	MBIND_MSG_CLOSED = 0x02,  /* server: TYPE ID(8) REP */
	MBIND_MSG_REFUSE = 0x03,  /* client: TYPE ID(8) */
};

struct mbind_msg {
	uint8_t type;
	uint8_t bind; /* ARRIVAL: index in the LISTEN list */
	uint8_t id[MBIND_ID_LEN];
	uint8_t rep;            /* CLOSED: why */
	struct socks_addr peer; /* ARRIVAL */
};

#define MBIND_MSG_MAX (1 + 1 + MBIND_ID_LEN + SOCKS_ADDR_MAX)

/* One message from the front of p. BAD: an unknown TYPE (X'07'), a bad
 * address. */
enum socks_res mbind_msg_parse(struct mbind_msg *out, const uint8_t *p, size_t n, size_t *used,
			       struct socks_err *err);
size_t mbind_msg_write(uint8_t *dst, size_t cap, const struct mbind_msg *m);

/* ---- ACCEPT request: VER X'11' RSV ATYP PEER.ADDR PEER.PORT ID(8) ----
 * The reply is an RFC 1928 reply naming the peer. */
struct mbind_accept {
	struct socks_addr peer; /* as the ARRIVAL named it */
	uint8_t id[MBIND_ID_LEN];
};

#define MBIND_ACCEPT_MAX (SOCKS5_REQUEST_MAX + MBIND_ID_LEN)

enum socks_res mbind_accept_parse(struct mbind_accept *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err);
size_t mbind_accept_write(uint8_t *dst, size_t cap, const struct mbind_accept *a);

#endif
