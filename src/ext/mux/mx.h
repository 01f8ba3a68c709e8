/*
 * mx.h - the multiplexing extension's insides (docs/protocol.md 5.11): one
 * struct mx per SOCKS session that switched to HTTP/2 with CMD X'30' (the
 * nghttp2 server session and the client connection's I/O, mx_ext.c), one
 * struct mx_stream per CONNECT stream (a flow and its target socket,
 * mx_stream.c).
 */
#ifndef STP_EXT_MUX_MX_H
#define STP_EXT_MUX_MX_H

#include <ev.h>
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/bytebuf.h"
#include "ext/mux/mx_req.h"

struct session;
struct conn;
struct flow;
struct lookup;
struct mx_addrs;

#define MX_DOWN_BUF 16384 /* target -> client: one DATA frame's worth */

struct mx {
	struct session *s;
	struct conn *c;
	struct ev_loop *loop;
	nghttp2_session *h2;
	ev_io io;
	ev_prepare flush; /* active while output waits for the end of the loop turn */
	struct bytebuf out; /* nghttp2 output the socket did not take yet */
	bool in_step;    /* mx_step is running: no recursion */
	bool in_recv;    /* inside nghttp2_session_mem_recv: no mem_send from its callbacks */
	bool dead;       /* session_close ran */
	struct mx_stream *streams; /* nghttp2_session_del frees none of ours */
};

struct mx_stream {
	struct mx *m;
	int32_t id;
	struct flow *f;
	int fd;          /* target, -1 before connect and after close */
	ev_io io;
	ev_timer timer;  /* connect timeout */
	struct lookup *lookup;
	struct mx_addrs *addrs; /* to try, until connected */
	struct mx_req req; /* what its HEADERS said */
	char host[256];  /* a name's, for the rules on its addresses */
	uint16_t port;
	bool connected, replied;
	bool target_eof; /* the target's FIN: END_STREAM after buf */
	bool client_eof; /* END_STREAM from the client: FIN after up */
	bool deferred;   /* the data provider said DEFERRED */
	size_t downlen, downoff;
	struct bytebuf up; /* client -> target, bounded by the stream's window */
	uint64_t nup, ndown;
	struct mx_stream *prev, *next;
	/* Last: a new stream zeroes what is above, not these 16 KiB. */
	uint8_t down[MX_DOWN_BUF];
};

/* Asks for nghttp2's output to go to the client at the end of this event
 * loop turn (one write for the turn); that re-arms the client watcher and
 * closes the session when the HTTP/2 connection is over. */
void mx_step(struct mx *m);

/* mx_stream.c */
/* HEADERS complete: checks, opens the flow, starts the target. */
void mxs_start(struct mx_stream *st);
/* DATA from the client for the stream. 0, or -1 (out of memory). */
int mxs_up(struct mx_stream *st, const uint8_t *p, size_t n);
/* END_STREAM from the client. */
void mxs_client_end(struct mx_stream *st);
/* The data provider's read callback (target -> client). */
ssize_t mxs_read_cb(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
		    uint32_t *flags, nghttp2_data_source *src, void *user);
/* nghttp2 closed the stream: the flow's line, target closed, freed. */
void mxs_free(struct mx_stream *st, uint32_t error_code);
/* The session is closing: every stream ends with its reason. */
void mxs_free_all(struct mx *m, const char *reason);

#endif
