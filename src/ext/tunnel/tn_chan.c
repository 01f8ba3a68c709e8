/*
 * tn_chan.c - see tn_chan.h.
 */
#include "ext/tunnel/tn_chan.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "proto/tunnel.h"

void tn_chan_init(struct tn_chan *c, int stopfd)
{
	c->tcp = c->dfd = -1;
	c->stopfd = stopfd;
	c->tctx = c->dctx = NULL;
	c->tls = c->dtls = NULL;
	c->inlen = c->outlen = 0;
	c->stopped = false;
}

void tn_chan_close(struct tn_chan *c)
{
	if (c->dtls) {
		SSL_shutdown(c->dtls); /* close_notify: the far end stops at once */
		SSL_free(c->dtls);
	}
	if (c->tls) {
		SSL_shutdown(c->tls);
		SSL_free(c->tls);
	}
	SSL_CTX_free(c->dctx);
	SSL_CTX_free(c->tctx);
	if (c->dfd >= 0)
		close(c->dfd);
	if (c->tcp >= 0)
		close(c->tcp);
	ERR_clear_error();
	tn_chan_init(c, c->stopfd);
}

long long tn_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tn_chan_wait(struct tn_chan *c, int fd, short ev, long long deadline)
{
	for (;;) {
		long long left = deadline - tn_now_ms();
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		struct pollfd p[2] = { { fd, ev, 0 }, { c->stopfd, POLLIN, 0 } };
		int n = poll(p, 2, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR)
			return -1;
		if (n > 0 && p[1].revents) {
			c->stopped = true;
			errno = ECANCELED;
			return -1;
		}
		if (n > 0 && p[0].revents)
			return 0;
	}
}

/* After an SSL call failed with err: waits as OpenSSL asks (DTLS
 * retransmits on its timer). 0 to retry, -1 to give up. */
static int ssl_wait(struct tn_chan *c, SSL *ssl, int fd, int err, long long deadline)
{
	struct timeval tv;
	long long until = deadline;
	if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
		return -1;
	if (ssl == c->dtls && DTLSv1_get_timeout(ssl, &tv) == 1) {
		long long t = tn_now_ms() + tv.tv_sec * 1000 + tv.tv_usec / 1000 + 1;
		if (t < until)
			until = t;
	}
	if (tn_chan_wait(c, fd, err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, until) < 0) {
		if (c->stopped || until == deadline)
			return -1;
		if (DTLSv1_handle_timeout(ssl) < 0)
			return -1;
	}
	return 0;
}

int tn_chan_handshake(struct tn_chan *c, SSL *ssl, int fd, long long deadline)
{
	for (;;) {
		int r = SSL_do_handshake(ssl);
		if (r == 1)
			return 0;
		if (ssl_wait(c, ssl, fd, SSL_get_error(ssl, r), deadline) < 0)
			return -1;
	}
}

int tn_chan_write(struct tn_chan *c, const uint8_t *p, size_t n, long long deadline)
{
	while (n) {
		size_t w = 0;
		int r = SSL_write_ex(c->tls, p, n, &w);
		if (r == 1) {
			p += w;
			n -= w;
			continue;
		}
		if (ssl_wait(c, c->tls, c->tcp, SSL_get_error(c->tls, r), deadline) < 0)
			return -1;
	}
	return 0;
}

int tn_chan_read_now(struct tn_chan *c)
{
	size_t got = 0;
	if (c->inlen == sizeof(c->in))
		return 1; /* full: the caller parses first */
	int r = SSL_read_ex(c->tls, c->in + c->inlen, sizeof(c->in) - c->inlen, &got);
	if (r == 1) {
		c->inlen += got;
		return 1;
	}
	int e = SSL_get_error(c->tls, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	errno = e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0) ? 0 :
		e == SSL_ERROR_SYSCALL                                               ? errno :
										       EPROTO;
	return -1;
}

int tn_chan_read(struct tn_chan *c, long long deadline)
{
	for (;;) {
		int r = tn_chan_read_now(c);
		if (r != 0)
			return r > 0 ? 0 : -1;
		if (tn_chan_wait(c, c->tcp, POLLIN, deadline) < 0)
			return -1;
	}
}

bool tn_chan_queue_frame(struct tn_chan *c, const uint8_t *p, size_t n)
{
	if (c->outlen + TUNNEL_FRAME_HDR + n > sizeof(c->out))
		return false;
	tunnel_frame_head(c->out + c->outlen, n);
	memcpy(c->out + c->outlen + TUNNEL_FRAME_HDR, p, n);
	c->outlen += TUNNEL_FRAME_HDR + n;
	return true;
}

int tn_chan_flush(struct tn_chan *c)
{
	while (c->outlen) {
		size_t w = 0;
		int r = SSL_write_ex(c->tls, c->out, c->outlen, &w);
		if (r != 1) {
			int e = SSL_get_error(c->tls, r);
			return e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? 0 : -1;
		}
		memmove(c->out, c->out + w, c->outlen - w);
		c->outlen -= w;
	}
	return 0;
}
