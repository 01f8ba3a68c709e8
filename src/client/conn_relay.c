/*
 * conn_relay.c - netcat's loop over a connection (stp_conn_relay), and the
 * relay thread that lets stp_connect hand a TLS connection to programs
 * that want a plain fd: they get one end of a socketpair, the thread joins
 * the other end to the TLS connection.
 *
 * Both directions end on their own (half-close): in_fd's EOF becomes
 * close_notify, the proxy's close_notify (or FIN) becomes SHUT_WR on
 * out_fd; when out_fd has nobody left to read it, the loop ends without
 * waiting for the proxy's end. Data already decrypted is always written out before the loop
 * polls again, since the socket may hold nothing more.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/conn.h"
#include "common/log.h"

#define RELAY_BUF 65536

struct relay {
	struct stp_conn *c;
	int in_fd, out_fd;
	uint8_t up[RELAY_BUF]; /* in_fd -> c, waiting for room in c's queue */
	size_t up_len;
	bool in_eof, up_done, down_done;
	enum stp_err err;
	bool failed;
};

static void relay_fail(struct relay *r, enum stp_err e)
{
	r->err = e;
	r->failed = true;
	r->up_done = r->down_done = true;
}

/* The target's end: passed on as a half-close (or a close for a pipe or
 * a terminal). */
static void relay_down_end(struct relay *r)
{
	r->down_done = true;
	if (shutdown(r->out_fd, SHUT_WR) < 0 && errno == ENOTSOCK)
		close(r->out_fd);
}

/* Everything the connection has now, to out_fd. */
static void relay_down(struct relay *r)
{
	uint8_t buf[RELAY_BUF];
	enum stp_err e;

	while (!r->down_done) {
		ssize_t n = stp_conn_read(r->c, buf, sizeof(buf), &e);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			relay_fail(r, e);
			return;
		}
		if (n == 0) {
			relay_down_end(r);
			return;
		}
		if (!client_write_all(r->out_fd, buf, (size_t)n)) {
			/* Nobody reads our output any more: stop taking it. */
			r->down_done = true;
			shutdown(r->c->fd, SHUT_RD);
		}
	}
}

static void relay_up(struct relay *r)
{
	enum stp_err e;

	if (r->up_len > 0) {
		if (stp_conn_write(r->c, r->up, r->up_len, &e) < 0) {
			if (errno != EAGAIN)
				relay_fail(r, e);
			return;
		}
		r->up_len = 0;
	}
	if (r->in_eof && r->up_len == 0 && !r->up_done) {
		r->up_done = true;
		if (stp_conn_shutdown(r->c, &e) < 0)
			relay_fail(r, e);
	}
}

/* True when out_fd has no reader left: the other end of a socketpair
 * closed (not just shut down for writing), or a pipe's reader went away. */
static bool out_gone(int out_fd)
{
	struct pollfd q = { .fd = out_fd };
	return poll(&q, 1, 0) == 1 && (q.revents & (POLLHUP | POLLERR));
}

static void relay_read_in(struct relay *r)
{
	ssize_t n = read(r->in_fd, r->up, sizeof(r->up));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0) {
		r->up_len = (size_t)n;
		return;
	}
	r->in_eof = true;
	/* A program that closed its end will read nothing more: stop
	 * waiting for the target's end once our close_notify is out. */
	if (!r->down_done && out_gone(r->out_fd)) {
		r->down_done = true;
		shutdown(r->c->fd, SHUT_RD);
	}
}

int stp_conn_relay(struct stp_conn *c, int in_fd, int out_fd, enum stp_err *err)
{
	struct relay *r = calloc(1, sizeof(*r));
	enum stp_err e;

	if (r == NULL) {
		if (err)
			*err = STP_ERR_NOMEM;
		return -1;
	}
	r->c = c;
	r->in_fd = in_fd;
	r->out_fd = out_fd;
	stp_conn_set_nonblocking(c, true);
	while (!(r->up_done && r->down_done)) {
		relay_down(r);
		relay_up(r);
		if (r->up_done && r->down_done)
			break;
		struct pollfd p[2] = { { .fd = -1 }, { .fd = c->fd } };
		if (!r->in_eof && r->up_len == 0) {
			p[0].fd = in_fd;
			p[0].events = POLLIN;
		}
		p[1].events = (short)((r->down_done ? 0 : POLLIN) |
				      (bytebuf_used(&c->out) > 0 ? POLLOUT : 0));
		if (p[1].events == 0)
			p[1].fd = -1; /* else a hung-up socket would wake us forever */
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			relay_fail(r, STP_ERR_SYSTEM);
			break;
		}
		if (p[1].revents & (POLLOUT | POLLERR) && stp_conn_flush(c, &e) < 0)
			relay_fail(r, e);
		if (p[0].revents)
			relay_read_in(r);
	}
	/* What is still queued (close_notify included) goes out before we
	 * hand back. */
	if (!r->failed) {
		stp_conn_set_nonblocking(c, false);
		stp_conn_flush(c, &e);
	}
	int rc = r->failed ? -1 : 0;
	if (err)
		*err = r->failed ? r->err : STP_OK;
	free(r);
	return rc;
}

/* ---- the relay thread ---- */

#define EXIT_WAIT_MS 2000

struct relay_job {
	struct stp_conn *c;
	int fd;                       /* our end of the socketpair */
	struct relay_job *prev, *next;
};

/* Running relay threads. A program that closes its fd and exits at once
 * would otherwise end while its thread still sends close_notify: at exit
 * we wait (a bounded time) for the threads whose program end is closed. */
static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t jobs_done = PTHREAD_COND_INITIALIZER;
static struct relay_job *jobs;
static pthread_once_t exit_hook_once = PTHREAD_ONCE_INIT;

static bool any_closing(void)
{
	for (struct relay_job *j = jobs; j; j = j->next)
		if (out_gone(j->fd))
			return true;
	return false;
}

static void wait_for_closing_relays(void)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += EXIT_WAIT_MS / 1000;
	until.tv_nsec += (long)(EXIT_WAIT_MS % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&jobs_lock);
	while (any_closing())
		if (pthread_cond_timedwait(&jobs_done, &jobs_lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&jobs_lock);
}

/* Registered after OpenSSL's own exit handler (the TLS connection exists
 * already), so it runs before OpenSSL is torn down. */
static void add_exit_hook(void)
{
	atexit(wait_for_closing_relays);
}

static void job_add(struct relay_job *j)
{
	pthread_once(&exit_hook_once, add_exit_hook);
	pthread_mutex_lock(&jobs_lock);
	j->prev = NULL;
	j->next = jobs;
	if (jobs)
		jobs->prev = j;
	jobs = j;
	pthread_mutex_unlock(&jobs_lock);
}

/* Unlinks and closes our end under the lock: the exit hook polls it. */
static void job_remove(struct relay_job *j)
{
	pthread_mutex_lock(&jobs_lock);
	if (j->prev)
		j->prev->next = j->next;
	else
		jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	close(j->fd);
	pthread_cond_broadcast(&jobs_done);
	pthread_mutex_unlock(&jobs_lock);
}

static void *relay_thread(void *arg)
{
	struct relay_job *j = arg;
	enum stp_err e;

	if (stp_conn_relay(j->c, j->fd, j->fd, &e) < 0)
		log_debug("relay thread fd %d: %s", j->c->fd, stp_strerror(e));
	stp_conn_close(j->c);
	/* OpenSSL's per-thread state (error queue), freed now rather than
	 * by a key destructor that races with a process exiting. */
	OPENSSL_thread_stop();
	job_remove(j);
	free(j);
	return NULL;
}

int client_conn_to_thread(struct stp_conn *c, enum stp_err *err)
{
	int sp[2];
	struct relay_job *j = malloc(sizeof(*j));
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t all, old;

	if (j == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		free(j);
		stp_conn_close(c);
		if (err)
			*err = j == NULL ? STP_ERR_NOMEM : STP_ERR_SYSTEM;
		return -1;
	}
	j->c = c;
	j->fd = sp[1];
	job_add(j);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* The application's signals stay with its own threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&tid, &attr, relay_thread, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		close(sp[0]);
		job_remove(j); /* closes sp[1] */
		free(j);
		stp_conn_close(c);
		errno = rc;
		if (err)
			*err = STP_ERR_SYSTEM;
		return -1;
	}
	if (err)
		*err = STP_OK;
	return sp[0];
}
