/*
 * tp_n2chan.c - N2's byte stream: buffered non-blocking reads and writes
 * over a plain socket or an OpenSSL connection, messages cut by the N2
 * codec (src/proto/n2.c).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "ext/transparent/tp_n2chan.h"

void n2chan_init(struct n2chan *c, int fd, SSL *ssl)
{
	c->fd = fd;
	c->ssl = ssl;
	c->inlen = 0;
	c->outlen = 0;
}

void n2chan_close(struct n2chan *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* One read into the free part of in: >0 bytes, 0 EOF, -1 EAGAIN, -2 error. */
static long read_some(struct n2chan *c)
{
	size_t room = sizeof(c->in) - c->inlen;

	if (c->ssl) {
		int n = SSL_read(c->ssl, c->in + c->inlen, (int)room);

		if (n > 0)
			return n;
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return -1;
		case SSL_ERROR_ZERO_RETURN:
			return 0;
		default:
			ERR_clear_error();
			return -2;
		}
	}
	ssize_t n = recv(c->fd, c->in + c->inlen, room, 0);

	if (n > 0)
		return n;
	if (n == 0)
		return 0;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
}

int n2chan_fill(struct n2chan *c)
{
	/* Stop when the buffer is full: the owner takes messages out first.
	 * A full buffer never holds less than one whole message (N2_MSG_MAX
	 * is far below N2CHAN_IN), so this cannot stall. */
	while (c->inlen < sizeof(c->in)) {
		long n = read_some(c);

		if (n == -1)
			return 1;
		if (n == 0)
			return 0;
		if (n < 0)
			return -1;
		c->inlen += (size_t)n;
	}
	return 1;
}

int n2chan_next(struct n2chan *c, struct n2_msg *m, const char **why)
{
	struct socks_err err = { 0, NULL };
	size_t used = 0;

	switch (n2_parse(m, c->in, c->inlen, &used, &err)) {
	case SOCKS_MORE:
		return 0;
	case SOCKS_BAD:
		*why = err.why;
		return -1;
	default:
		break;
	}
	memmove(c->in, c->in + used, c->inlen - used);
	c->inlen -= used;
	return 1;
}

int n2chan_send(struct n2chan *c, const struct n2_msg *m)
{
	size_t n = n2_write(c->out + c->outlen, sizeof(c->out) - c->outlen, m);

	if (n == 0)
		return -1;
	c->outlen += n;
	return 0;
}

/* One write from the start of out: >0 bytes, -1 EAGAIN, -2 error. */
static long write_some(struct n2chan *c)
{
	if (c->ssl) {
		int n = SSL_write(c->ssl, c->out, (int)c->outlen);

		if (n > 0)
			return n;
		switch (SSL_get_error(c->ssl, n)) {
		case SSL_ERROR_WANT_READ:
		case SSL_ERROR_WANT_WRITE:
			return -1;
		default:
			ERR_clear_error();
			return -2;
		}
	}
	ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);

	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
}

int n2chan_flush(struct n2chan *c)
{
	while (c->outlen > 0) {
		long n = write_some(c);

		if (n == -1)
			return 1;
		if (n < 0)
			return -1;
		memmove(c->out, c->out + n, c->outlen - (size_t)n);
		c->outlen -= (size_t)n;
	}
	return 0;
}

bool n2chan_pending(const struct n2chan *c)
{
	return c->ssl && SSL_pending(c->ssl) > 0;
}
