/*
 * conn.h - the client connection below a session: a socket and, when the
 * client speaks TLS (method X'86' or a "tls on" listener), the stream filter
 * in front of it. Every byte stpd reads from or writes to a client goes
 * through here, so a caller never knows whether the connection is TLS
 * (redis connection.h has the same idea); only the relay asks, to know
 * whether it may splice(2).
 *
 * Results follow recv(2)/send(2): a byte count, 0 for the end of the stream
 * (a FIN, or TLS close_notify), -1 with errno (EAGAIN: nothing now; EPROTO:
 * the filter failed, conn_why() says how).
 */
#ifndef STP_SERVER_CONN_H
#define STP_SERVER_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct stream_filter;

struct conn {
	int fd;                       /* non-blocking TCP socket, -1 once closed */
	struct stream_filter *filter; /* NULL: plain; owned */
	bool fin;                     /* the socket reached its end (not only TLS's) */
};

void conn_init(struct conn *c, int fd);

/* Puts a filter in front of the socket (the conn owns it from here). `early`
 * bytes, already read from the socket, are its first input. 0, or -1 with
 * errno EPROTO. */
int conn_set_filter(struct conn *c, struct stream_filter *f, const uint8_t *early,
		    size_t n);

/* Up to cap bytes of plaintext. With a filter, what it already holds comes
 * first and at most one TLS record is returned per call, so a caller can
 * switch phases between records; the socket is read only when the filter
 * holds nothing. */
ssize_t conn_read(struct conn *c, uint8_t *buf, size_t cap);

/* Plain: one non-blocking send (a short count is normal). Filter: the
 * filter takes all n bytes, then as much output as the socket accepts goes
 * out; returns n. */
ssize_t conn_write(struct conn *c, const uint8_t *p, size_t n);

/* Writes to the socket past the filter: only for the cleartext that comes
 * before TLS starts (the method choice). One send, as conn_write plain. */
ssize_t conn_write_clear(struct conn *c, const uint8_t *p, size_t n);

/* Sends what the filter holds: 1 all out (always, when plain), 0 when the
 * socket would block, -1 on error. */
int conn_flush(struct conn *c);
/* The filter holds bytes for the socket. */
bool conn_has_output(const struct conn *c);

/* Queues the orderly end of our side (TLS close_notify) and flushes it:
 * conn_flush's results. Plain: 1. The FIN is conn_fin's. */
int conn_end(struct conn *c);
/* shutdown(SHUT_WR). */
void conn_fin(struct conn *c);

/* For a command waiting with the client silent: 1 when the client has
 * closed or reset the connection, 0 otherwise. Consumes nothing. */
int conn_peer_gone(struct conn *c);

/* Frees the filter: from here the socket carries plaintext. For a filter
 * that turned out to change nothing (GSS-API at protection level 0); the
 * caller has taken its plaintext and checked it has no output. */
void conn_drop_filter(struct conn *c);

/* splice(2) can move this connection's bytes (no filter). */
bool conn_can_splice(const struct conn *c);

/* The filter's last error ("" when none or plain). */
const char *conn_why(const struct conn *c);
/* "tls"/"x86" or "plain", for logs. */
const char *conn_kind(const struct conn *c);

/* Orderly end if it can go out now, frees the filter, closes the socket. */
void conn_close(struct conn *c);

#endif
