/*
 * relay.h - moves bytes between two connected TCP sockets: splice(2)
 * through a pipe per direction when it can, a bounded buffer when it must.
 * Half-close is propagated, work per event is capped, and pipes are held
 * only while bytes are in flight (an idle relay holds none).
 */
#ifndef STP_SERVER_RELAY_H
#define STP_SERVER_RELAY_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/conn.h"

struct pipepool;
struct relay;
struct stream_filter;

/* Called once when the relay ends; reason is static text. */
typedef void (*relay_done_fn)(struct relay *r, const char *reason);

/* One direction: from fd[i] to fd[1 - i]. */
struct relay_half {
	int pipe[2];        /* -1 when not held */
	size_t pipecap;     /* the held pipe's capacity: bytes asked per splice */
	size_t inpipe;      /* bytes sitting in the pipe */
	uint8_t *buf;       /* fallback buffer, or early bytes to send first */
	size_t blen, boff;  /* valid bytes [boff, blen) */
	bool eof;           /* source reached end of stream */
	bool shut;          /* shutdown(SHUT_WR) sent to the destination */
	uint64_t bytes;     /* moved so far */
};

struct relay {
	struct ev_loop *loop;
	struct pipepool *pool;
	int fd[2];               /* [0] client, [1] target */
	ev_io rd[2];             /* rd[i]: fd[i] readable, serves direction i */
	ev_io wr[2];             /* wr[i]: fd[1-i] writable, serves direction i */
	ev_timer idle;
	struct relay_half half[2];
	ev_tstamp last;          /* last byte moved */
	unsigned idle_secs;
	size_t bufsize;
	bool use_splice;
	bool running;
	/* end[0]: the client connection (borrowed from the session: with a
	 * TLS filter, both directions run buffered and plaintext exists only
	 * in user space); end[1]: the target, a plain connection. */
	struct conn *end[2];
	struct conn target;
	relay_done_fn done;
	/* Set after relay_start: the relay ends ("fin") as soon as half i
	 * has passed its source's end of stream on (TRANSPARENT's end on the
	 * target's FIN: end_after_eof[1]). */
	bool end_after_eof[2];
};

/* Starts relaying between the client connection and the target socket
 * (both non-blocking). `early` bytes (may be NULL) are sent to the target
 * before anything else. The client socket must be one this loop has been
 * watching (the session's handshake watcher, stopped just before): its
 * epoll registration is reused. The relay splices when the client
 * connection allows it (conn_can_splice). */
int relay_start(struct relay *r, struct ev_loop *loop, struct pipepool *pool,
		struct conn *client, int target, const uint8_t *early, size_t earlylen,
		unsigned idle_secs, size_t bufsize, relay_done_fn done);
/* Stops watchers and returns pipes and buffers. Does not close the fds. */
void relay_stop(struct relay *r);

/* ---- per-worker pipe cache ---- */
struct pipepool *pipepool_new(size_t max_cached);
void pipepool_free(struct pipepool *p);
/* 0 with p[0] (read end), p[1] (write end) and the pipe's capacity in
 * *cap, or -1 with errno. */
int pipepool_get(struct pipepool *p, int fds[2], size_t *cap);
/* Only empty pipes may be returned, with the capacity _get gave. */
void pipepool_put(struct pipepool *p, int fds[2], size_t cap);

#endif
