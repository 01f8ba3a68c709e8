/*
 * conn.c - client connection I/O, plain or through a stream filter. See
 * conn.h. The only place in stpd that calls recv/send on a client socket.
 */
#include "server/conn.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/filter.h"

/* Ciphertext read per recv: a full TLS record and its header. */
#define CONN_CIPHER_CHUNK (16384 + 512)

void conn_init(struct conn *c, int fd)
{
	c->fd = fd;
	c->filter = NULL;
	c->fin = false;
}

int conn_set_filter(struct conn *c, struct stream_filter *f, const uint8_t *early, size_t n)
{
	c->filter = f;
	if (n > 0 && f->ops->input(f, early, n) < 0) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

static ssize_t recv_some(int fd, uint8_t *buf, size_t cap)
{
	ssize_t n;
	do
		n = recv(fd, buf, cap, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n;
}

static ssize_t recv_conn(struct conn *c, uint8_t *buf, size_t cap)
{
	ssize_t n = recv_some(c->fd, buf, cap);
	if (n == 0)
		c->fin = true;
	return n;
}

ssize_t conn_read(struct conn *c, uint8_t *buf, size_t cap)
{
	struct stream_filter *f = c->filter;
	if (!f)
		return recv_conn(c, buf, cap);
	for (;;) {
		ssize_t n = f->ops->read(f, buf, cap);
		if (n > 0)
			return n;
		if (n == FILTER_EOF)
			return 0;
		if (n == FILTER_ERROR) {
			errno = EPROTO;
			return -1;
		}
		uint8_t cipher[CONN_CIPHER_CHUNK];
		n = recv_conn(c, cipher, sizeof(cipher));
		if (n <= 0)
			return n; /* a FIN without close_notify counts as the end */
		if (f->ops->input(f, cipher, (size_t)n) < 0) {
			errno = EPROTO;
			return -1;
		}
	}
}

static ssize_t send_some(int fd, const uint8_t *p, size_t n)
{
	ssize_t r;
	do
		r = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	return r;
}

int conn_flush(struct conn *c)
{
	struct stream_filter *f = c->filter;
	const uint8_t *p;
	size_t len;
	if (!f)
		return 1;
	while ((len = f->ops->output(f, &p)) > 0) {
		ssize_t n = send_some(c->fd, p, len);
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		f->ops->output_done(f, (size_t)n);
	}
	return 1;
}

ssize_t conn_write(struct conn *c, const uint8_t *p, size_t n)
{
	struct stream_filter *f = c->filter;
	if (!f)
		return send_some(c->fd, p, n);
	if (f->ops->write(f, p, n) < 0) {
		errno = EPROTO;
		return -1;
	}
	return conn_flush(c) < 0 ? -1 : (ssize_t)n;
}

ssize_t conn_write_clear(struct conn *c, const uint8_t *p, size_t n)
{
	return send_some(c->fd, p, n);
}

bool conn_has_output(const struct conn *c)
{
	const uint8_t *p;
	return c->filter && c->filter->ops->output(c->filter, &p) > 0;
}

int conn_end(struct conn *c)
{
	if (!c->filter)
		return 1;
	c->filter->ops->shutdown(c->filter);
	return conn_flush(c);
}

void conn_fin(struct conn *c)
{
	shutdown(c->fd, SHUT_WR);
}

int conn_peer_gone(struct conn *c)
{
	uint8_t b;
	ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

void conn_drop_filter(struct conn *c)
{
	if (c->filter) {
		c->filter->ops->free(c->filter);
		c->filter = NULL;
	}
}

bool conn_can_splice(const struct conn *c)
{
	return !c->filter;
}

const char *conn_why(const struct conn *c)
{
	return c->filter ? c->filter->why : "";
}

const char *conn_kind(const struct conn *c)
{
	return c->filter ? c->filter->ops->name : "plain";
}

void conn_close(struct conn *c)
{
	if (c->filter) {
		/* Our close_notify (X'04' for X'86'), or the alert a failed
		 * handshake left, goes out if the socket takes it now. */
		conn_end(c);
		c->filter->ops->free(c->filter);
		c->filter = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}
