/*
 * broker_ask.c - stpd's side of the broker's channels (broker.h). Each
 * worker thread has its own channel (by worker id), used only from that
 * thread, so no lock; the main thread's channel (the last) also serves
 * privfile_open from any thread that reads a file for a reload, one
 * request at a time under main_lock.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/log.h"
#include "proto/broker.h"
#include "server/broker.h"

#define BROKER_TIMEOUT_MS 2000
/* The main thread's requests may wait for the broker to start (a module
 * opening its certificate as a worker starts) or to re-read the file. */
#define BROKER_MAIN_TIMEOUT_MS 10000
#define CHAN_MAX 1025

static int chan[CHAN_MAX]; /* stpd's ends, by worker id; main thread last */
static unsigned n_chan;
static pthread_mutex_t main_lock = PTHREAD_MUTEX_INITIALIZER;

void broker_ask_init(int *chans, unsigned n)
{
	for (unsigned i = 0; i < n && i < CHAN_MAX; i++)
		chan[i] = chans[i];
	n_chan = n;
}

void broker_ask_fini(void)
{
	for (unsigned i = 0; i < n_chan; i++)
		if (chan[i] >= 0)
			close(chan[i]);
	n_chan = 0;
}

/* Sends a request and waits for its reply (and fd). Runs on the channel's
 * own thread only. */
static int ask(int fd, const uint8_t *q, size_t qlen, struct broker_reply *rep, int timeout_ms)
{
	uint8_t buf[BROKER_REPLY_LEN + 1];
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
			      .msg_controllen = sizeof(cm.space) };
	struct pollfd p = { fd, POLLIN, 0 };
	struct socks_err err;
	size_t used;
	int got = -1;

	rep->status = 0xFF; /* none yet */
	rep->err = 0;
	if (send(fd, q, qlen, MSG_NOSIGNAL) != (ssize_t)qlen)
		return -1;
	int pr = poll(&p, 1, timeout_ms);
	if (pr <= 0) {
		errno = pr == 0 ? ETIMEDOUT : errno;
		return -1;
	}
	ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	if (n <= 0) {
		errno = n == 0 ? EPIPE : errno;
		return -1;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&got, CMSG_DATA(c), sizeof(int));
	if (broker_reply_parse(rep, buf, (size_t)n, &used, &err) != SOCKS_DONE) {
		if (got >= 0)
			close(got);
		errno = EPROTO;
		return -1;
	}
	if (rep->status != BROKER_ST_OK && got >= 0) {
		close(got);
		got = -1;
	}
	return got;
}

/* rq over worker channel ch: the fd the broker passed, or -1 with errno
 * (broker_socket's). */
static int ask_worker(unsigned ch, const struct broker_request *rq)
{
	struct broker_reply rep;
	uint8_t q[BROKER_REQUEST_MAX];

	if (ch >= n_chan || chan[ch] < 0) {
		errno = ENETUNREACH;
		return -1;
	}
	size_t qlen = broker_request_write(q, sizeof(q), rq);
	if (qlen == 0) {
		errno = EINVAL;
		return -1;
	}
	int fd = ask(chan[ch], q, qlen, &rep, BROKER_TIMEOUT_MS);
	if (fd < 0 && rep.status == 0xFF) {
		/* No reply in time (or the broker is gone): a late reply would
		 * be taken for the next request's, with another compartment's
		 * socket. The channel is dropped; this worker gets no more
		 * sockets from the broker. */
		int e = errno;
		log_warnx("broker: no answer on channel %u (%s); channel closed", ch, strerror(e));
		close(chan[ch]);
		chan[ch] = -1;
		errno = e;
		return -1;
	}
	if (fd < 0 && rep.status == BROKER_ST_REFUSED)
		errno = EACCES;
	else if (fd < 0 && rep.status == BROKER_ST_FAILED)
		errno = rep.err ? rep.err : EIO;
	return fd;
}

int broker_socket(unsigned ch, const char *in, const char *out, int domain, int type,
		  int protocol)
{
	struct broker_request rq = { .op = BROKER_OP_SOCKET };
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);

	rq.family = domain == AF_INET ? BROKER_FAMILY_INET : BROKER_FAMILY_INET6;
	rq.type = base == SOCK_STREAM ? BROKER_TYPE_STREAM : BROKER_TYPE_DGRAM;
	rq.proto = (uint8_t)protocol;
	snprintf(rq.in, sizeof(rq.in), "%s", in);
	snprintf(rq.out, sizeof(rq.out), "%s", out);
	int fd = ask_worker(ch, &rq);
	if (fd >= 0 && (type & SOCK_NONBLOCK))
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* ask() on the main thread's channel, main_lock held. Without a reply in
 * time the channel is closed for good, as a worker's is: a late reply
 * would be taken for the next request's (a file for a socket). */
static int ask_locked_main(const uint8_t *q, size_t qlen, struct broker_reply *rep)
{
	int *ch = &chan[n_chan - 1];
	if (*ch < 0) {
		errno = EPIPE;
		return -1;
	}
	int fd = ask(*ch, q, qlen, rep, BROKER_MAIN_TIMEOUT_MS);
	if (fd < 0 && rep->status == 0xFF) {
		log_warnx("broker: no answer on the main thread's channel (%s); channel closed, "
			  "reloads read files as stpd's user from now on", strerror(errno));
		close(*ch);
		*ch = -1;
	}
	return fd;
}

void broker_reload(void)
{
	struct broker_request rq = { .op = BROKER_OP_RELOAD };
	struct broker_reply rep = { .status = 0xFF };
	uint8_t q[4];
	size_t qlen = broker_request_write(q, sizeof(q), &rq);
	if (!n_chan || chan[n_chan - 1] < 0)
		return;
	pthread_mutex_lock(&main_lock);
	(void)ask_locked_main(q, qlen, &rep);
	pthread_mutex_unlock(&main_lock);
	if (rep.status != BROKER_ST_OK)
		log_warnx("broker: did not take the new configuration; it keeps allowing what the "
			  "old one did");
}

/* rq over the main thread's channel: the fd the broker passed, or -1 with
 * errno (EACCES when refused), what logged as `what`. */
static int ask_main(const struct broker_request *rq, const char *what)
{
	struct broker_reply rep = { .status = 0xFF };
	uint8_t q[BROKER_REQUEST_MAX];
	size_t qlen;

	if (!n_chan || (qlen = broker_request_write(q, sizeof(q), rq)) == 0) {
		errno = EACCES;
		return -1;
	}
	pthread_mutex_lock(&main_lock);
	int fd = ask_locked_main(q, qlen, &rep);
	pthread_mutex_unlock(&main_lock);
	if (fd >= 0)
		return fd;
	errno = rep.status == BROKER_ST_FAILED && rep.err ? rep.err : EACCES;
	log_warnx("broker: did not %s for stpd (%s)", what,
		  rep.status == BROKER_ST_REFUSED ? "not in its configuration" : strerror(errno));
	return -1;
}

int broker_open(const char *path)
{
	struct broker_request rq = { .op = BROKER_OP_OPEN };
	char what[BROKER_PATH_MAX + 16];

	snprintf(rq.path, sizeof(rq.path), "%s", path);
	snprintf(what, sizeof(what), "open %s", path);
	return ask_main(&rq, what);
}

int broker_listen(unsigned ch, const struct sockaddr *addr, socklen_t len, const char *place)
{
	struct broker_request rq = { .op = BROKER_OP_LISTEN };

	if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
		rq.family = BROKER_FAMILY_INET;
		rq.port = ntohs(a->sin_port);
		memcpy(rq.addr, &a->sin_addr, 4);
	} else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
		rq.family = BROKER_FAMILY_INET6;
		rq.port = ntohs(a->sin6_port);
		memcpy(rq.addr, &a->sin6_addr, 16);
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	snprintf(rq.out, sizeof(rq.out), "%s", place ? place : "");
	return ask_worker(ch, &rq);
}
