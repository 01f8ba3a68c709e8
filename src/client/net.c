/*
 * net.c - deadlines, waiting on one socket or (briefly) a lock, and the TCP
 * connection to the proxy (every address of its name, Happy Eyeballs:
 * eyeballs.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/addrorder.h"
#include "common/log.h"
#include "common/sockaddr.h"

bool client_lock_briefly(pthread_mutex_t *mu, long ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until); /* timedlock's clock */
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	return pthread_mutex_timedlock(mu, &until) == 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t client_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

int client_remaining(int64_t deadline)
{
	int64_t left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	return left <= 0 ? 0 : left > 0x7fffffff ? 0x7fffffff : (int)left;
}

int client_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int left = client_remaining(deadline);
		int n = poll(&p, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		return 1; /* POLLERR/POLLHUP too: the next I/O says what happened */
	}
}

enum stp_step client_handshake_run(struct stp_handshake *h, int64_t deadline)
{
	for (;;) {
		enum stp_step r = stp_handshake_step(h);
		if (r != STP_WANT_READ && r != STP_WANT_WRITE)
			return r;
		int w = client_wait(h->fd, stp_handshake_events(h), deadline);
		if (w == 0) {
			h->err = STP_ERR_TIMEOUT;
			log_debug("handshake fd %d: timed out in %s", h->fd,
				  stp_handshake_state(h));
			return STP_ERROR;
		}
		if (w < 0) {
			h->err = STP_ERR_SYSTEM;
			h->sys_errno = errno;
			return STP_ERROR;
		}
	}
}

bool client_write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

int client_set_blocking(int fd, bool blocking)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl);
}

static int proxy_connect_one(const struct stp_proxy *proxy, int64_t deadline, enum stp_err *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	struct sockaddr_storage addrs[ADDR_ORDER_MAX];
	size_t n = 0;
	char port[8];

	client_debug_on();
	snprintf(port, sizeof(port), "%u", proxy->port);
	if (getaddrinfo(proxy->host, port, &hints, &res) != 0) {
		*err = STP_ERR_PROXY_RESOLVE;
		return -1;
	}
	for (struct addrinfo *ai = res; ai != NULL && n < ADDR_ORDER_MAX; ai = ai->ai_next) {
		if (ai->ai_addrlen > sizeof(addrs[0]))
			continue;
		memset(&addrs[n], 0, sizeof(addrs[n]));
		memcpy(&addrs[n++], ai->ai_addr, ai->ai_addrlen);
	}
	freeaddrinfo(res);
	/* getaddrinfo sorted them (RFC 6724): its first family leads. */
	if (n > 0)
		addr_interleave(addrs, n, addrs[0].ss_family);
	int fd = client_he_connect(addrs, n, deadline);
	if (fd < 0)
		*err = errno == ETIMEDOUT ? STP_ERR_TIMEOUT : STP_ERR_PROXY_UNREACHABLE;
	return fd;
}

/* The proxy, then (auto-configuration) the next served proxies in order
 * while the one before is unreachable or its name does not resolve; a
 * timeout leaves no time for the next. */
int client_proxy_connect_until(const struct stp_proxy *proxy, int64_t deadline, enum stp_err *err)
{
	struct stp_proxy alt;
	int fd = proxy_connect_one(proxy, deadline, err);

	for (size_t i = 0; fd < 0 && *err != STP_ERR_TIMEOUT && client_remaining(deadline) != 0 &&
			   client_autoconf_alternate(proxy, i, &alt);
	     i++) {
		log_debug("proxy %s:%u: %s; trying %s:%u (autoconfig)", proxy->host, proxy->port,
			  stp_strerror(*err), alt.host, alt.port);
		fd = proxy_connect_one(&alt, deadline, err);
	}
	return fd;
}

int stp_proxy_connect(const struct stp_proxy *proxy, int timeout_ms, enum stp_err *err)
{
	enum stp_err e = STP_OK;
	int fd = client_proxy_connect_until(proxy, client_deadline(timeout_ms), &e);

	if (fd >= 0 && client_set_blocking(fd, true) < 0) {
		close(fd);
		fd = -1;
		e = STP_ERR_SYSTEM;
	}
	if (err)
		*err = e;
	return fd;
}
