/*
 * session.h - what commands and authentication methods (the core's and the
 * extensions') may do with a session: one client connection of stpd, from
 * accept to its session log line. struct session itself is the core's
 * (session_int.h); an extension only ever holds a pointer and calls these.
 *
 * A command handler owns the session from its start(): it answers with
 * session_reply()/session_send(), ends it with session_close() or
 * session_finish(), keeps reading the control connection with
 * session_read_control(), and keeps its own state behind
 * session_set_handler().
 */
#ifndef STP_SERVER_SESSION_H
#define STP_SERVER_SESSION_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "policy/conf.h"
#include "proto/socks.h"

struct session;
struct stp_method;
struct stream_filter;
struct resolver;

/* A command handler's per-session state lives behind this, freed by its own
 * destroy callback when the session closes. */
struct session_cmd_ops {
	const char *name;
	void (*destroy)(struct session *s);
};

/* ---- what the session is ---- */

struct ev_loop *session_loop(const struct session *s);
const struct stp_conf *session_conf(const struct session *s);
const struct conf_listener *session_listener(const struct session *s);
/* The client rule that admitted the session (NULL: none yet). */
const struct rule *session_client_rule(const struct session *s);
/* The real client (after any PROXY header). */
const struct sockaddr_storage *session_client(const struct session *s);
/* The request: CMD and DST (valid from the command's start()). */
uint8_t session_cmd(const struct session *s);
const struct socks_addr *session_target(const struct session *s);
/* The authenticated user, "" for none. */
const char *session_user(const struct session *s);
/* Names the user (e.g. from a client certificate); drops any groups. */
void session_set_user(struct session *s, const char *user);
/* The stream filter on the client connection (the TLS module's), or NULL. */
struct stream_filter *session_filter(const struct session *s);
/* Why the session is closing (inside a handler's destroy: the session's
 * result), or "" while it is not. */
const char *session_close_reason(const struct session *s);
/* The worker's asynchronous resolver (resolve.h), shared by its sessions. */
struct resolver *session_resolver(const struct session *s);
/* Whether r is the worker's own resolver (the one `resolver` configures),
 * not a compartment's: answers kept across sessions must not mix them. */
bool session_resolver_is_default(const struct session *s, const struct resolver *r);
/* Closed, or closing once what is queued is written: take no more input. */
bool session_ending(const struct session *s);

/* Policy flags a method sets for the rest of the session. */
void session_require_tls(struct session *s, bool on);  /* only TLS methods */
void session_refuse_udp(struct session *s, bool on);   /* refuse UDP ASSOCIATE */
/* True after session_refuse_udp(s, true): commands that carry datagrams
 * (UDP ASSOCIATE, a LISTEN's UDP binds) are refused with X'07'. */
bool session_udp_refused(const struct session *s);

/* A method whose protection covers datagrams too (GSS-API, RFC 1961
 * section 5) sets this: UDP ASSOCIATE then runs every client datagram
 * through unseal and every datagram to the client through seal (the
 * dgram_ops of the same names, dgram.h), with ctx. The guard must live as
 * long as the session's connection (e.g. in its stream filter). */
struct session_dgram_guard {
	int (*unseal)(void *ctx, uint8_t *p, size_t len);
	uint8_t *(*seal)(void *ctx, uint8_t *p, size_t *len, size_t room);
	void *ctx;
};
void session_set_dgram_guard(struct session *s, const struct session_dgram_guard *g);
const struct session_dgram_guard *session_dgram_guard(const struct session *s);
/* The method code the log line names (a sub-method inside X'86'). */
void session_set_method_code(struct session *s, uint8_t code);

/* ---- input and output ---- */

/* The plaintext read and not yet consumed (the handshake buffer), and its
 * capacity: a parser that needs more than the capacity can never finish. */
const uint8_t *session_input(const struct session *s, size_t *len, size_t *cap);

/* From now on (NULL: no more), the control connection is watched: its
 * plaintext, whatever carries it (plain, X'86', a TLS listener), is added to
 * the input and on_input(s) runs; the client's end of the connection or an
 * error closes the session. Reading pauses while output is queued. */
void session_watch_control(struct session *s, void (*on_input)(struct session *s));

/* The command's state: ops->destroy(s) runs when the session closes. */
void session_set_handler(struct session *s, const struct session_cmd_ops *ops, void *data);
void *session_handler_data(const struct session *s);

/* Records the reply code for the session's log line when a command writes
 * its own reply form (session_reply does this itself). */
void session_note_reply(struct session *s, uint8_t rep);
/* What the session's log line reports as bound= (an extension's BND). */
void session_set_bound(struct session *s, const struct sockaddr *sa);
/* The session ends, with this reason, once what is queued (and anything
 * queued next) is written. */
void session_close_after_output(struct session *s, const char *reason);
/* A final reply: queues REP (v4 or v5 form) and ends the session with
 * `reason` once it is written. -1 (always: the session is over). */
int session_finish(struct session *s, uint8_t rep, const char *reason);

/* Hands the client connection (socket and filter) to the caller and ends
 * the session with `reason` (its log line is written): for a data
 * connection another session's flow carries from here (the bind
 * extension's ACCEPT). The session must have nothing queued for the
 * client. 0, or -1 (nothing changed) when output is still queued or the
 * session is over. The conn holds no watcher: another worker may use it.
 * When `counted` is not NULL the connection keeps its place in the client
 * limits (limits { sessions, sessions-per-client }): *counted says whether
 * it held one, and the caller gives it back with session_uncount() (the
 * session's client address) when the connection ends. */
struct conn;
int session_take_conn(struct session *s, struct conn *out, bool *counted, const char *reason);
/* Gives back a place in the client limits kept by session_take_conn. */
void session_uncount(const struct sockaddr_storage *client);
/* For a command that runs the client connection itself for the rest of
 * the session (multiplexing, src/ext/mux): stops the session's watcher and
 * timer and returns the connection, which the session keeps owning (the
 * caller reads and writes it with its own watcher on conn->fd, never
 * session_send; session_close closes it). Input already buffered stays in
 * session_input(). NULL when output is still queued or the session is over. */
struct conn *session_run_conn(struct session *s);
/* Where a bind of this session listens: the listener's external address
 * when it has one, else our end of the client connection; port 0. */
void session_bind_address(const struct session *s, struct sockaddr_storage *out);

/* ---- log lines ---- */

/* A warning / info line prefixed with the session's tag (id, client,
 * user). */
void session_warnx(const struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void session_info(const struct session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The SOCKS5 reply code for a socket error (ECONNREFUSED X'05', ...). */
uint8_t session_errno_rep(int err);

/* Writes one line to the session log and frees everything. */
void session_close(struct session *s, const char *reason);

/* Queues a SOCKS reply (v4 or v5 form chosen by s->version). When close is
 * true the session ends once it is written. Returns 0, or -1 after closing. */
int session_reply(struct session *s, uint8_t rep, const struct sockaddr *bnd, bool close);
/* The same with BND as a SOCKS address, which may be a name (ATYP X'03'). */
int session_reply_addr(struct session *s, uint8_t rep, const struct socks_addr *bnd, bool close);

/* Called by an authentication method when it has finished: ok moves on to
 * the request; !ok means the method already closed the session. */
void session_method_done(struct session *s, bool ok);

/* Called by a method that answers without authenticating (X'87', feature
 * discovery) once its answer is queued: it is never chosen again on this
 * connection, and the session chooses again among the other methods of the
 * greeting as if they had been offered alone (a method choice, or X'FF'),
 * or, when there were none, waits for a new greeting. */
void session_method_skip(struct session *s);

/* The methods this session would choose among, in preference order, were
 * the client to offer every one: enabled by the config, allowed by the
 * listener's and client rule's TLS policy, not skipped. Returns the count
 * (at most cap). */
size_t session_methods_acceptable(const struct session *s, uint8_t *out, size_t cap);

/* Runs method m inside the current method (sub-authentication, e.g. RFC 1929
 * inside X'86'): m gets the input from now on, and its session_method_done()
 * calls done(s, ok) instead of moving on to the request. */
void session_run_method(struct session *s, const struct stp_method *m,
			void (*done)(struct session *s, bool ok));

/* Puts a stream filter between the socket and the parsers (the session owns
 * it from here). Bytes already in the handshake buffer are input to it. -1
 * when the session was closed. */
int session_set_filter(struct session *s, struct stream_filter *f);
/* Removes the stream filter a method set when it turns out to change
 * nothing (GSS-API with no per-message protection), so that the relay can
 * splice: the plaintext it holds moves to the handshake buffer. Only when
 * nothing waits to be sent and all its plaintext fits: true when removed
 * (the filter is freed), false when it stays (it still works, only slower). */
bool session_drop_filter(struct session *s);
/* With a filter: moves plaintext into the handshake buffer and runs the
 * parsers, one TLS record at a time, while the state wants input; then
 * flushes the filter's output. Call after anything that may let the
 * session take more input (a method finishing, a phase change). */
void session_pump(struct session *s);
/* For a command that keeps reading the control connection after its reply
 * (multicast JOIN/LEAVE, UDP ASSOCIATE): appends the client's plaintext,
 * whatever the connection's filter, to s->hs->in. The count added (0: none
 * now), or -1 when the session was closed (the client's end of stream, a
 * read or TLS error). */
int session_read_control(struct session *s);

/* Queues bytes for the client and tries to write them. -1 when the session
 * was closed (write error, or closing_after_flush and all written). Up to
 * SESSION_OUT_MAX (64 KiB + 1 KiB) may be queued: beyond the reply
 * buffer's size, the queue moves to a heap block. */
int session_send(struct session *s, const uint8_t *p, size_t n);
/* Bytes queued for the client and not yet written: a command that carries
 * datagrams on the control connection (a tunnel's TLS transport) drops one
 * rather than overfill the queue (session_send closes the session then). */
size_t session_output_queued(const struct session *s);
/* Drops `used` bytes from the front of the handshake input. */
void session_consume(struct session *s, size_t used);


/* The first request rule matching this session and destination, or NULL
 * (block). No side effects: session_allowed() is the checking form. */
const struct rule *session_match_rule(const struct session *s, uint32_t rule_cmd,
				      const struct sockaddr *dst_addr, const char *dst_name,
				      uint16_t dst_port);

/* Whether a request of rule_cmd from this session could pass the request
 * rules for some destination (rules_may_pass); before authentication
 * (user_known false) rules naming users or groups may match too. */
bool session_may_pass(const struct session *s, uint32_t rule_cmd, bool user_known);

/* Request rules. Fills a context from the session and evaluates; logs the
 * denial with the rule and returns false when blocked. dst may be NULL. */
bool session_allowed(struct session *s, uint32_t rule_cmd, const struct sockaddr *dst_addr,
		     const char *dst_name, uint16_t dst_port, bool log_denial);
/* The rule that passed the session's last session_allowed(), or NULL. */
const struct rule *session_pass_rule(const struct session *s);

/* An outgoing socket for the request that session_allowed() last passed,
 * made where that rule says (the compartments' seam, ext.h open_socket):
 * socket(2)'s arguments and result. Commands call this, never socket(). */
int session_socket(struct session *s, int domain, int type, int protocol);
/* The resolver for this session's names, as rule r (the rule matching the
 * request by name, or NULL) says: a module's (ext.h resolver), else the
 * worker's; NULL when the module's could not be made (look-ups with it
 * fail). */
struct resolver *session_resolver_for(struct session *s, const struct rule *r);


/* "client=... user=..." prefix for log lines about this session. */
const char *session_tag(const struct session *s, char *out, size_t cap);


#endif
