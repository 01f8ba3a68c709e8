/*
 * eyeballs.c - a blocking connect to the first of several addresses that
 * answers: Happy Eyeballs v2 (RFC 8305 section 5) with poll() standing in
 * for an event loop.
 *
 * One non-blocking connect is started; when it has neither succeeded nor
 * failed after HE_ATTEMPT_DELAY_MS the next address is started too, the
 * earlier ones still running; a failure starts the next one at once. The
 * first to connect wins and the others are closed. The caller's deadline
 * bounds the whole: a proxy name whose first address drops SYNs costs 250
 * ms, not the timeout. With one address this is the plain connect + poll.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "common/addrorder.h"
#include "common/log.h"
#include "common/sockaddr.h"

struct he_run {
	const struct sockaddr_storage *a;
	size_t n, next;                    /* next: the first address not started */
	struct pollfd pfd[ADDR_ORDER_MAX]; /* the attempts in flight */
	size_t addr_of[ADDR_ORDER_MAX];    /* pfd[k] connects to a[addr_of[k]] */
	size_t nrun;
	int64_t next_at; /* CLOCK_MONOTONIC ms when the next address may start */
	int err;         /* addr_better_err() of the failures */
};

static int64_t he_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void he_log(const struct sockaddr_storage *sa, const char *result)
{
	char where[SA_STR_MAX];
	log_debug("connect to proxy %s: %s", sa_str((const struct sockaddr *)sa, where,
						    sizeof(where)), result);
}

static void he_failed(struct he_run *r, size_t i, int err)
{
	he_log(&r->a[i], strerror(err));
	r->err = addr_better_err(r->err, err);
}

/* Closes every attempt but pfd[keep] (none when keep >= nrun). */
static void he_close_others(struct he_run *r, size_t keep, const char *why)
{
	for (size_t k = 0; k < r->nrun; k++) {
		if (k == keep)
			continue;
		he_log(&r->a[r->addr_of[k]], why);
		close(r->pfd[k].fd);
	}
	r->nrun = 0;
}

/*
 * TCP Fast Open (RFC 7413) toward the proxy, where the kernel allows the
 * client side (net.ipv4.tcp_fastopen bit 1, Linux's default) and
 * STP_FASTOPEN is not "0". With TCP_FASTOPEN_CONNECT and a cookie from an
 * earlier connection, connect() returns at once and the first write (the
 * greeting, with pipelining the whole handshake) rides in the SYN; without
 * a cookie it is the usual connect that asks for one. Only with a single
 * address: a deferred connect "succeeds" before anything is known, which
 * would defeat the race between addresses.
 */
static bool he_fastopen(void)
{
	static int allowed = -1; /* once per process */
	const char *env = getenv("STP_FASTOPEN");
	if (env && strcmp(env, "0") == 0)
		return false;
	if (allowed < 0) {
		FILE *f = fopen("/proc/sys/net/ipv4/tcp_fastopen", "re");
		int v = 0;
		if (f && fscanf(f, "%d", &v) != 1)
			v = 0;
		if (f)
			fclose(f);
		allowed = (v & 1) != 0;
	}
	return allowed == 1;
}

/* Starts a[next]. The fd once connected, -2 in flight, -1 failed. */
static int he_start(struct he_run *r)
{
	size_t i = r->next++;
	const struct sockaddr *sa = (const struct sockaddr *)&r->a[i];
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		he_failed(r, i, errno);
		return -1;
	}
	if (r->n == 1 && he_fastopen()) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_FASTOPEN_CONNECT, &one, sizeof(one));
	}
	if (connect(fd, sa, sa_len(sa)) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		he_failed(r, i, errno);
		close(fd);
		return -1;
	}
	r->pfd[r->nrun] = (struct pollfd){ .fd = fd, .events = POLLOUT };
	r->addr_of[r->nrun++] = i;
	r->next_at = he_now() + HE_ATTEMPT_DELAY_MS;
	return -2;
}

/* pfd[k] is ready: the fd if it connected, else -1 (and it is dropped). */
static int he_finish(struct he_run *r, size_t k)
{
	int fd = r->pfd[k].fd, soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr == 0)
		return fd;
	he_failed(r, r->addr_of[k], soerr);
	close(fd);
	r->nrun--;
	r->pfd[k] = r->pfd[r->nrun];
	r->addr_of[k] = r->addr_of[r->nrun];
	r->next_at = he_now(); /* a failure hands over at once */
	return -1;
}

/* How long poll() may sleep: until the deadline, or until the next
 * address is due if there is one. -1 for ever. */
static int he_wait_ms(const struct he_run *r, int64_t deadline)
{
	int left = client_remaining(deadline);
	if (r->next < r->n) {
		int64_t due = r->next_at - he_now();
		int d = due < 0 ? 0 : due > 0x7fffffff ? 0x7fffffff : (int)due;
		if (left < 0 || d < left)
			left = d;
	}
	return left;
}

int client_he_connect(const struct sockaddr_storage *a, size_t n, int64_t deadline)
{
	struct he_run r = { .a = a, .n = n > ADDR_ORDER_MAX ? ADDR_ORDER_MAX : n };

	for (;;) {
		/* Start what is due: the first address, the next after the
		 * delay, or at once after failures. */
		while (r.next < r.n && (r.nrun == 0 || he_now() >= r.next_at)) {
			size_t i = r.next;
			int fd = he_start(&r);
			if (fd >= 0) {
				he_close_others(&r, r.nrun, "abandoned, another address connected");
				he_log(&a[i], "connected");
				return fd;
			}
			if (fd == -2)
				break;
		}
		if (r.nrun == 0) {
			errno = r.err ? r.err : ECONNREFUSED;
			return -1;
		}
		if (client_remaining(deadline) == 0) {
			he_close_others(&r, r.nrun, "timed out");
			errno = ETIMEDOUT;
			return -1;
		}
		int got = poll(r.pfd, r.nrun, he_wait_ms(&r, deadline));
		if (got < 0 && errno != EINTR) {
			int e = errno;
			he_close_others(&r, r.nrun, strerror(e));
			errno = e;
			return -1;
		}
		for (size_t k = 0; got > 0 && k < r.nrun; k++) {
			if (r.pfd[k].revents == 0)
				continue;
			int fd = he_finish(&r, k);
			if (fd >= 0) {
				size_t i = r.addr_of[k];
				he_close_others(&r, k, "abandoned, another address connected");
				he_log(&a[i], "connected");
				return fd;
			}
			k--; /* pfd[k] now holds the last attempt: look at it too */
		}
	}
}
