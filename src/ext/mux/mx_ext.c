/*
 * mx_ext.c - CMD X'30' MUX (docs/protocol.md 5.11): after the reply X'00'
 * the client connection speaks HTTP/2 (RFC 9113) with stpd as the server;
 * nghttp2 does the framing, flow control, limits and abuse handling, this
 * file moves its bytes through the session's conn (plain or TLS alike).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ext/mux/mx.h"
#include "ext/mux/mx_conf.h"
#include "proto/featdoc.h"
#include "server/conn.h"
#include "server/ext.h"
#include "server/session.h"

#define MX_IN_CHUNK 16384
/* Abuse limits (nghttp2 options): queued SETTINGS/PING ACKs the client
 * has not read, entries in one SETTINGS frame, RST_STREAMs from the
 * client (token bucket: burst, then per second; "rapid reset"),
 * CONTINUATION frames after one HEADERS. Past any: GOAWAY, closed. */
#define MX_MAX_OUTBOUND_ACK 1000
#define MX_MAX_SETTINGS 32
#define MX_RST_BURST 1000
#define MX_RST_RATE 33
#define MX_MAX_CONTINUATIONS 8
#define MX_OUT_BATCH 65536 /* gathered per write; the rest waits for the next */

static void mx_destroy(struct session *s)
{
	struct mx *m = session_handler_data(s);
	if (!m)
		return;
	m->dead = true;
	ev_io_stop(m->loop, &m->io);
	ev_prepare_stop(m->loop, &m->flush);
	mxs_free_all(m, session_close_reason(s));
	nghttp2_session_del(m->h2);
	bytebuf_free(&m->out);
	free(m);
}

static const struct session_cmd_ops mx_ops = { "mux", mx_destroy };

static void mx_end(struct mx *m, const char *reason)
{
	if (!m->dead)
		session_close(m->s, reason); /* runs mx_destroy */
}

/* Writes what is pending; then gathers what nghttp2 has (one frame per
 * mem_send) into one buffer and writes that with one call: a loop turn
 * that answered 30 streams costs one write (one TLS record), not 90.
 * 1 all out, 0 would block, -1 error. */
static ssize_t h2_next(void *h2, const uint8_t **chunk)
{
	return nghttp2_session_mem_send(h2, chunk);
}

static int mx_flush(struct mx *m)
{
	for (;;) {
		const uint8_t *q;
		size_t len;
		while ((len = bytebuf_peek(&m->out, &q)) > 0) {
			ssize_t n = conn_write(m->c, q, len);
			if (n < 0)
				return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
			bytebuf_consume(&m->out, (size_t)n);
		}
		int f = conn_flush(m->c);
		if (f <= 0)
			return f;
		if (bytebuf_gather(&m->out, MX_OUT_BATCH, h2_next, m->h2) < 0)
			return -1;
		if (bytebuf_used(&m->out) == 0)
			return 1;
	}
}

/* What mx_step asks for, done now. */
static void mx_step_now(struct mx *m)
{
	if (m->dead || m->in_step || m->in_recv)
		return; /* the caller of mem_recv steps once it returns */
	ev_prepare_stop(m->loop, &m->flush);
	m->in_step = true;
	int f = mx_flush(m);
	m->in_step = false;
	if (f < 0) {
		mx_end(m, "client write error");
		return;
	}
	if (f > 0 && !nghttp2_session_want_read(m->h2) && !nghttp2_session_want_write(m->h2)) {
		mx_end(m, "mux: goaway");
		return;
	}
	/* Input pauses while output waits: a client that does not read gets
	 * no more answers queued (nghttp2's own flood limits do the rest). */
	int ev = f == 0 ? EV_WRITE : EV_READ;
	if (!(m->io.events & ev) || (m->io.events & ~ev & (EV_READ | EV_WRITE))) {
		ev_io_stop(m->loop, &m->io);
		ev_io_modify(&m->io, ev); /* same fd: no new epoll registration */
		ev_io_start(m->loop, &m->io);
	}
}

static void on_flush(EV_P_ ev_prepare *w, int revents)
{
	(void)loop;
	(void)revents;
	mx_step_now(w->data);
}

/* Output leaves once per event-loop turn: the prepare watcher runs after
 * every callback of the turn, so each target event and stream answer only
 * marks the connection, and the turn's frames go out in one write. */
void mx_step(struct mx *m)
{
	if (!m->dead && !ev_is_active(&m->flush))
		ev_prepare_start(m->loop, &m->flush);
}

static int mx_feed(struct mx *m, const uint8_t *p, size_t n)
{
	m->in_recv = true;
	ssize_t r = nghttp2_session_mem_recv(m->h2, p, n);
	m->in_recv = false;
	if (r < 0) {
		session_info(m->s, "mux: %s", nghttp2_strerror((int)r));
		/* nghttp2 queued GOAWAY where the error allows one: try to send it. */
		mx_flush(m);
		mx_end(m, r == NGHTTP2_ERR_FLOODED ? "mux: flood" : "mux: protocol error");
		return -1;
	}
	return 0;
}

static void on_client(EV_P_ ev_io *w, int revents)
{
	struct mx *m = w->data;
	(void)loop;
	if (revents & EV_WRITE) {
		mx_step_now(m);
		return;
	}
	uint8_t buf[MX_IN_CHUNK];
	while (!m->dead) {
		ssize_t n = conn_read(m->c, buf, sizeof(buf));
		if (n == 0) {
			mx_end(m, "control connection closed");
			return;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			mx_end(m, errno == EPROTO ? conn_why(m->c) : "control connection error");
			return;
		}
		if (mx_feed(m, buf, (size_t)n) < 0)
			return;
		if (bytebuf_used(&m->out) > 0)
			break;
	}
	mx_step(m);
}

/* ---- nghttp2 callbacks ---- */

static int cb_begin_headers(nghttp2_session *h2, const nghttp2_frame *fr, void *user)
{
	struct mx *m = user;
	if (fr->hd.type != NGHTTP2_HEADERS || fr->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	struct mx_stream *st = malloc(sizeof(*st));
	if (!st)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST for this stream */
	memset(st, 0, offsetof(struct mx_stream, down));
	st->m = m;
	st->id = fr->hd.stream_id;
	st->fd = -1;
	if (nghttp2_session_set_stream_user_data(h2, st->id, st) != 0) {
		free(st);
		return 0;
	}
	st->next = m->streams;
	if (m->streams)
		m->streams->prev = st;
	m->streams = st;
	return 0;
}

static int cb_header(nghttp2_session *h2, const nghttp2_frame *fr, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user)
{
	(void)flags;
	(void)user;
	if (fr->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct mx_stream *st = nghttp2_session_get_stream_user_data(h2, fr->hd.stream_id);
	if (st)
		mx_req_header(&st->req, name, namelen, value, valuelen);
	return 0;
}

static int cb_frame_recv(nghttp2_session *h2, const nghttp2_frame *fr, void *user)
{
	(void)user;
	struct mx_stream *st = nghttp2_session_get_stream_user_data(h2, fr->hd.stream_id);
	if (!st)
		return 0;
	if (fr->hd.type == NGHTTP2_HEADERS && fr->headers.cat == NGHTTP2_HCAT_REQUEST)
		mxs_start(st);
	if ((fr->hd.type == NGHTTP2_HEADERS || fr->hd.type == NGHTTP2_DATA) &&
	    (fr->hd.flags & NGHTTP2_FLAG_END_STREAM))
		mxs_client_end(st);
	return 0;
}

static int cb_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
			 size_t len, void *user)
{
	(void)flags;
	(void)user;
	/* The connection's window opens at once, each stream's only as its
	 * target takes the bytes (mxs_up): a slow target holds back its own
	 * stream, never the others. Memory: at most max-streams x window. */
	nghttp2_session_consume_connection(h2, len);
	struct mx_stream *st = nghttp2_session_get_stream_user_data(h2, id);
	if (!st || mxs_up(st, data, len) < 0)
		nghttp2_submit_rst_stream(h2, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
	return 0;
}

static int cb_stream_close(nghttp2_session *h2, int32_t id, uint32_t error_code, void *user)
{
	(void)user;
	struct mx_stream *st = nghttp2_session_get_stream_user_data(h2, id);
	if (st) {
		nghttp2_session_set_stream_user_data(h2, id, NULL);
		mxs_free(st, error_code);
	}
	return 0;
}

static nghttp2_session *mx_h2_new(struct mx *m, const struct mx_conf *mc)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	nghttp2_session *h2 = NULL;
	if (nghttp2_session_callbacks_new(&cbs) != 0)
		return NULL;
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
	if (nghttp2_option_new(&opt) == 0) {
		/* Window updates go out when the target took the bytes
		 * (mxs_up -> nghttp2_session_consume): the client's send
		 * window is our buffer's bound. */
		nghttp2_option_set_no_auto_window_update(opt, 1);
		/* Flood limits, set here so they do not depend on the library's
		 * defaults (docs/protocol.md 5.11; tests in test_mux.py): */
		nghttp2_option_set_max_outbound_ack(opt, MX_MAX_OUTBOUND_ACK);
		nghttp2_option_set_max_settings(opt, MX_MAX_SETTINGS);
		nghttp2_option_set_stream_reset_rate_limit(opt, MX_RST_BURST, MX_RST_RATE);
		nghttp2_option_set_max_continuations(opt, MX_MAX_CONTINUATIONS);
		if (nghttp2_session_server_new2(&h2, cbs, m, opt) != 0)
			h2 = NULL;
		nghttp2_option_del(opt);
	}
	nghttp2_session_callbacks_del(cbs);
	if (!h2)
		return NULL;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, mc->max_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, mc->window },
	};
	if (nghttp2_submit_settings(h2, NGHTTP2_FLAG_NONE, iv, 2) != 0) {
		nghttp2_session_del(h2);
		return NULL;
	}
	return h2;
}

static void mx_start(struct session *s)
{
	if (!session_allowed(s, RULE_CMD_MUX, NULL, NULL, 0, true)) {
		session_finish(s, MX_REP_REFUSED, "mux refused");
		return;
	}
	struct mx *m = calloc(1, sizeof(*m));
	if (m)
		m->h2 = mx_h2_new(m, mx_conf_get(session_conf(s)));
	if (!m || !m->h2) {
		free(m);
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	m->s = s;
	m->loop = session_loop(s);
	session_set_handler(s, &mx_ops, m);
	if (session_reply(s, SOCKS5_REP_SUCCEEDED, NULL, false) < 0)
		return;
	m->c = session_run_conn(s);
	if (!m->c) {
		session_close(s, "mux: reply not written");
		return;
	}
	ev_io_init(&m->io, on_client, m->c->fd, EV_READ);
	m->io.data = m;
	ev_prepare_init(&m->flush, on_flush);
	m->flush.data = m;
	ev_io_start(m->loop, &m->io);
	/* The client's preface may have come right behind the request. */
	size_t len, cap;
	const uint8_t *in = session_input(s, &len, &cap);
	if (len > 0) {
		if (mx_feed(m, in, len) < 0)
			return;
		session_consume(s, len);
	}
	mx_step(m);
	/* A filter may already hold decrypted input: read it now. */
	if (!m->dead && m->c->filter)
		on_client(m->loop, &m->io, EV_READ);
}

/* Discovery (docs/protocol.md 5.6): X'30' is in `commands` when the rules
 * may pass it (the core lists registered commands); these say its limits. */
static void mx_describe(const struct session *s, struct feat_writer *w)
{
	const struct mx_conf *mc = mx_conf_get(session_conf(s));
	feat_put_uint(w, FEAT_SCOPE_COMMAND, MX_CMD_MUX, "max-streams", mc->max_streams);
	feat_put_uint(w, FEAT_SCOPE_COMMAND, MX_CMD_MUX, "window", mc->window);
}

static const struct stp_command mx_commands[] = {
	{ MX_CMD_MUX, RULE_CMD_MUX, false, mx_start },
};

const struct stp_ext ext_mux = {
	.name = "mux",
	.commands = mx_commands,
	.n_commands = sizeof(mx_commands) / sizeof(mx_commands[0]),
	.describe = mx_describe,
};
