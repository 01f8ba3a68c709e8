/*
 * relay.c - see relay.h.
 *
 * Each direction i moves bytes from fd[i] to fd[1-i]. While a direction has
 * bytes waiting for its destination it stops reading its source (back
 * pressure) and watches the destination for writability instead. Early bytes
 * (sent by the client right behind its request) sit in half->buf and go out
 * before the first splice, so nothing is reordered.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/relay.h"

#include "server/conn.h"
#include "server/idle.h"

#define RELAY_ROUNDS_PER_EVENT 8 /* bound the work one busy peer gets per wake-up */

enum pump_res { PUMP_WAIT, PUMP_DONE, PUMP_FAIL };

static const char *const fail_reason[2][2] = {
	/* [direction][0 = read side, 1 = write side] */
	{ "client read error", "target write error" },
	{ "target read error", "client write error" },
};

static bool half_pending(const struct relay_half *h)
{
	return h->inpipe > 0 || h->blen > h->boff;
}

/* Direction i has bytes for its destination (for the client side behind a
 * filter: ciphertext the filter holds). */
static bool pending(const struct relay *r, int i)
{
	return half_pending(&r->half[i]) || conn_has_output(r->end[1 - i]);
}

static bool half_finished(const struct relay_half *h)
{
	return h->eof && h->shut && !half_pending(h);
}

static void half_release_pipe(struct relay *r, struct relay_half *h)
{
	if (h->pipe[0] >= 0 && h->inpipe == 0)
		pipepool_put(r->pool, h->pipe, h->pipecap);
}

/* Sends buffered bytes; with a filter on dst, through it and then its
 * output. -1 on error, 0 when it would block, 1 when empty. */
static int flush_buf(struct relay_half *h, struct conn *dst)
{
	while (h->blen > h->boff) {
		ssize_t n = conn_write(dst, h->buf + h->boff, h->blen - h->boff);
		if (n < 0)
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		h->boff += (size_t)n;
	}
	h->blen = h->boff = 0;
	return conn_flush(dst);
}

/* Drains the pipe into dst. Same results as flush_buf. */
static int flush_pipe(struct relay_half *h, int dst)
{
	while (h->inpipe > 0) {
		ssize_t n = splice(h->pipe[0], NULL, dst, NULL, h->inpipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
		}
		h->inpipe -= (size_t)n;
	}
	return 1;
}

/* Reads from src into the pipe (or the buffer). >0 bytes, 0 EOF, -1 error
 * (errno EAGAIN when there is nothing to read). *drained tells whether a
 * read was short enough to say the socket is empty: another read would
 * only return EAGAIN, a syscall the level-triggered watcher makes useless.
 * A short splice can also mean a full pipe (slots hold less than a page
 * each when segments are small), so only a pipe left less than half full
 * counts. */
static ssize_t fill(struct relay *r, struct relay_half *h, struct conn *src, bool *drained)
{
	ssize_t n;
	if (r->use_splice) {
		if (h->pipe[0] < 0 && pipepool_get(r->pool, h->pipe, &h->pipecap) < 0) {
			/* Out of fds for a pipe: the buffer still works. */
			r->use_splice = false;
			goto buffered;
		}
		do
			n = splice(src->fd, NULL, h->pipe[1], NULL, h->pipecap,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		while (n < 0 && errno == EINTR);
		if (n > 0) {
			h->inpipe += (size_t)n;
			*drained = h->inpipe < h->pipecap / 2;
		}
		if (n >= 0 || errno != EINVAL)
			return n;
		/* This pair cannot splice: fall back to the buffer for good. */
		r->use_splice = false;
		half_release_pipe(r, h);
	}
buffered:
	if (!h->buf && !(h->buf = malloc(r->bufsize)))
		return -1;
	n = conn_read(src, h->buf, r->bufsize);
	if (n > 0) {
		h->blen = (size_t)n;
		h->boff = 0;
		/* A filter may hold more than the socket says: never drained. */
		*drained = (size_t)n < r->bufsize && conn_can_splice(src);
	}
	return n;
}

static void set_interest(struct relay *r, int i)
{
	struct relay_half *h = &r->half[i];
	/* EOF seen but not yet passed on (the round budget ran out): the
	 * destination's writability brings us back to send the FIN. */
	bool want_write = pending(r, i) || (h->eof && !h->shut);
	bool want_read = !h->eof && !want_write;

	if (want_read && !ev_is_active(&r->rd[i]))
		ev_io_start(r->loop, &r->rd[i]);
	else if (!want_read && ev_is_active(&r->rd[i]))
		ev_io_stop(r->loop, &r->rd[i]);
	if (want_write && !ev_is_active(&r->wr[i]))
		ev_io_start(r->loop, &r->wr[i]);
	else if (!want_write && ev_is_active(&r->wr[i]))
		ev_io_stop(r->loop, &r->wr[i]);
}

/* Moves what it can in direction i. */
static enum pump_res pump(struct relay *r, int i, const char **why)
{
	struct relay_half *h = &r->half[i];
	struct conn *src = r->end[i], *dst = r->end[1 - i];

	bool drained = false;
	for (int round = 0; round < RELAY_ROUNDS_PER_EVENT; round++) {
		int f = flush_buf(h, dst);
		if (f > 0 && r->use_splice && h->buf) {
			/* Early bytes are out: splicing needs no buffer. */
			free(h->buf);
			h->buf = NULL;
		}
		if (f > 0)
			f = flush_pipe(h, dst->fd);
		if (f < 0) {
			*why = errno == EPROTO ? conn_why(dst) : fail_reason[i][1];
			return PUMP_FAIL;
		}
		if (f == 0)
			return PUMP_WAIT;
		if (h->eof) {
			half_release_pipe(r, h);
			if (!h->shut) {
				/* The source is done: close_notify first (TLS),
				 * then FIN. */
				f = conn_end(dst);
				if (f <= 0) {
					*why = fail_reason[i][1];
					return f < 0 ? PUMP_FAIL : PUMP_WAIT;
				}
				conn_fin(dst);
				h->shut = true;
			}
			return PUMP_DONE;
		}
		if (drained) {
			half_release_pipe(r, h);
			return PUMP_WAIT;
		}
		ssize_t n = fill(r, h, src, &drained);
		if (n == 0) {
			h->eof = true;
			continue;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				half_release_pipe(r, h);
				return PUMP_WAIT;
			}
			*why = errno == EPROTO ? conn_why(src) : fail_reason[i][0];
			return PUMP_FAIL;
		}
		h->bytes += (uint64_t)n;
		r->last = ev_now(r->loop);
	}
	/* Out of rounds: TLS may hold plaintext the socket will never signal;
	 * come back for it on the next loop iteration. */
	if (!conn_can_splice(src))
		ev_feed_event(r->loop, &r->rd[0], EV_READ);
	return PUMP_WAIT;
}

static void relay_end(struct relay *r, const char *why)
{
	relay_done_fn done = r->done;
	relay_stop(r);
	if (done)
		done(r, why);
}

static void run(struct relay *r, int i)
{
	const char *why = NULL;
	if (pump(r, i, &why) == PUMP_FAIL) {
		relay_end(r, why);
		return;
	}
	if (half_finished(&r->half[0]) && half_finished(&r->half[1])) {
		relay_end(r, "closed");
		return;
	}
	if (r->end_after_eof[i] && half_finished(&r->half[i])) {
		relay_end(r, "fin");
		return;
	}
	set_interest(r, i);
	if (i == 0 && !conn_can_splice(r->end[0]))
		set_interest(r, 1); /* reading TLS can queue output (alerts, key updates) */
}

static void on_read(EV_P_ ev_io *w, int revents)
{
	struct relay *r = w->data;
	run(r, w == &r->rd[0] ? 0 : 1);
}

static void on_write(EV_P_ ev_io *w, int revents)
{
	struct relay *r = w->data;
	run(r, w == &r->wr[0] ? 0 : 1);
}

static void on_idle(EV_P_ ev_timer *w, int revents)
{
	struct relay *r = w->data;
	if (!idle_rearm(EV_A, w, r->last, r->idle_secs))
		relay_end(r, "idle timeout");
}

int relay_start(struct relay *r, struct ev_loop *loop, struct pipepool *pool,
		struct conn *client, int target, const uint8_t *early, size_t earlylen,
		unsigned idle_secs, size_t bufsize, relay_done_fn done)
{
	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->pool = pool;
	conn_init(&r->target, target);
	r->end[0] = client;
	r->end[1] = &r->target;
	r->fd[0] = client->fd;
	r->fd[1] = target;
	r->idle_secs = idle_secs;
	r->bufsize = bufsize ? bufsize : 65536;
	r->use_splice = conn_can_splice(client);
	r->done = done;
	r->last = ev_now(loop);
	for (int i = 0; i < 2; i++) {
		r->half[i].pipe[0] = r->half[i].pipe[1] = -1;
		ev_io_init(&r->rd[i], on_read, r->fd[i], EV_READ);
		ev_io_init(&r->wr[i], on_write, r->fd[1 - i], EV_WRITE);
		r->rd[i].data = r->wr[i].data = r;
	}
	/* The session has watched the client socket for reading until now:
	 * epoll already has it, and libev must not register it again (a
	 * fresh watcher forces that, and epoll_ctl fails with EEXIST: one
	 * wasted syscall per session). Target sockets keep the flag: their
	 * fd number may belong to a file closed in this loop iteration. */
	r->rd[0].events &= ~EV__IOFDSET;
	if (earlylen > 0) {
		struct relay_half *h = &r->half[0];
		h->buf = malloc(earlylen > r->bufsize ? earlylen : r->bufsize);
		if (!h->buf)
			return -1;
		memcpy(h->buf, early, earlylen);
		h->blen = earlylen;
		h->bytes = earlylen;
	}
	r->running = true;
	if (idle_secs > 0) {
		ev_timer_init(&r->idle, on_idle, idle_secs, idle_secs);
		r->idle.data = r;
		ev_timer_start(loop, &r->idle);
	}
	set_interest(r, 0);
	set_interest(r, 1);
	if (!r->use_splice) /* plaintext TLS already decrypted behind the request */
		ev_feed_event(loop, &r->rd[0], EV_READ);
	return 0;
}

void relay_stop(struct relay *r)
{
	if (!r->running)
		return;
	r->running = false;
	for (int i = 0; i < 2; i++) {
		struct relay_half *h = &r->half[i];
		ev_io_stop(r->loop, &r->rd[i]);
		ev_io_stop(r->loop, &r->wr[i]);
		if (h->pipe[0] >= 0) {
			if (h->inpipe == 0) {
				pipepool_put(r->pool, h->pipe, h->pipecap);
			} else {
				close(h->pipe[0]);
				close(h->pipe[1]);
				h->pipe[0] = h->pipe[1] = -1;
			}
		}
		free(h->buf);
		h->buf = NULL;
	}
	ev_timer_stop(r->loop, &r->idle);
}
