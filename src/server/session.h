/*
 * session.h - one client connection of stpd, from accept to the session log
 * line. A session walks the states below through session_set_state() only;
 * command handlers (cmd_*.c and extensions) take over in SS_COMMAND and hand
 * the client socket to the relay or end the session with session_close().
 */
#ifndef STP_SERVER_SESSION_H
#define STP_SERVER_SESSION_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/auth.h"
#include "policy/conf.h"
#include "proto/socks.h"
#include "server/relay.h"

struct worker;
struct listener;
struct session;
struct stp_method;
struct stream_filter;

enum session_state {
	SS_PROXYHDR,  /* reading a PROXY protocol header */
	SS_GREETING,  /* reading VER NMETHODS METHODS (or a SOCKS4 request) */
	SS_AUTH,      /* method sub-negotiation (RFC 1929) */
	SS_AUTH_WAIT, /* credentials being checked off the loop */
	SS_REQUEST,   /* reading the SOCKS5 request */
	SS_REFUSING,  /* refused at admission: answering the first bytes (refuse.c) */
	SS_COMMAND,   /* a command handler owns the session */
	SS_RELAY,     /* moving bytes */
	SS_CLOSED,
};

/* State that exists only until relaying starts (freed then, to keep idle
 * sessions small). */
struct handshake {
	uint8_t in[SOCKS_HANDSHAKE_MAX];
	size_t inlen;
	uint8_t out[SOCKS5_REPLY_MAX + 8];
	size_t outlen, outoff;
	uint8_t method;
	struct auth_job *auth;       /* only while RFC 1929 runs */
};

/* A command handler's per-session state lives behind this, freed by its own
 * destroy callback when the session closes. */
struct session_cmd_ops {
	const char *name;
	void (*destroy)(struct session *s);
};

struct session {
	uint64_t id;
	struct worker *w;
	const struct conf_listener *listener;
	struct stp_conf *conf;               /* our reference to the snapshot */
	struct snapshot *snap;

	int fd;                              /* client */
	struct sockaddr_storage client;      /* real client (after PROXY header) */
	struct sockaddr_storage local;       /* our end of the client connection; set
	                                      * only for commands other than CONNECT */

	enum session_state state;
	uint8_t version;                     /* 4 or 5 */
	uint8_t cmd;                         /* request command */
	uint8_t rep;                         /* last reply code sent (for the log) */
	bool rep_sent;
	bool closing_after_flush;            /* close once out[] is written */
	char close_reason[64];               /* ... with this reason */
	const struct stp_method *method;     /* chosen authentication method */
	bool auth_pending;                   /* an auth_job is in the pool */
	struct socks_addr target;            /* request DST */
	struct sockaddr_storage bound;       /* BND for the log */
	char user[256];                      /* "" = none */
	char (*groups)[64];                  /* the user's groups (heap), or NULL */
	size_t n_groups;
	const struct rule *rule;             /* request rule that passed the command */
	const struct rule *client_rule;      /* client rule that admitted us */
	bool rule_held, client_rule_held;    /* hold a slot of their `sessions` limit */
	bool counted_client;                 /* holds a per-client slot */
	bool refusing;                       /* counted in worker n_refusing */
	bool quiet;                          /* refused at admission: no session line */

	struct handshake *hs;                /* NULL once relaying */
	ev_io io;                            /* client readiness during the handshake */
	ev_timer timer;                      /* phase timeout / idle timeout */
	ev_tstamp started;

	/* command handler state */
	const struct session_cmd_ops *cmd_ops;
	void *cmd_data;

	/* TLS on the client side (method X'86' or a "tls on" listener), or
	 * NULL: see filter.h. The session owns it; the relay borrows it. */
	struct stream_filter *filter;
	bool require_tls;                    /* listener/client rule: only TLS methods */
	bool no_udp;                         /* X'86' without UDP-Naked: refuse UDP ASSOCIATE */
	const struct stp_method *outer_method; /* while a sub-method runs (session_run_method) */
	void (*sub_done)(struct session *s, bool ok);

	struct relay relay;                  /* valid in SS_RELAY */
	int relay_peer;                      /* relay starts when the reply is out; -1 */
	uint64_t up, down;                   /* bytes client->target, target->client */

	struct session *prev, *next;         /* worker's list, for draining */
};

/* Takes an accepted socket; the session owns it from here. */
void session_start(struct worker *w, const struct conf_listener *l, int fd,
		   const struct sockaddr_storage *peer);

void session_set_state(struct session *s, enum session_state st);
/* Writes one line to the session log and frees everything. */
void session_close(struct session *s, const char *reason);

/* Queues a SOCKS reply (v4 or v5 form chosen by s->version). When close is
 * true the session ends once it is written. Returns 0, or -1 after closing. */
int session_reply(struct session *s, uint8_t rep, const struct sockaddr *bnd, bool close);

/* Called by an authentication method when it has finished: ok moves on to
 * the request; !ok means the method already closed the session. */
void session_method_done(struct session *s, bool ok);

/* Runs method m inside the current method (sub-authentication, e.g. RFC 1929
 * inside X'86'): m gets the input from now on, and its session_method_done()
 * calls done(s, ok) instead of moving on to the request. */
void session_run_method(struct session *s, const struct stp_method *m,
			void (*done)(struct session *s, bool ok));

/* Puts a stream filter between the socket and the parsers (the session owns
 * it from here). Bytes already in the handshake buffer are input to it. -1
 * when the session was closed. */
int session_set_filter(struct session *s, struct stream_filter *f);
/* With a filter: moves plaintext into the handshake buffer and runs the
 * parsers, one TLS record at a time, while the state wants input; then
 * flushes the filter's output. Call after anything that may let the
 * session take more input (a method finishing, a phase change). */
void session_pump(struct session *s);
/* A command handler that only watches the control connection (UDP
 * ASSOCIATE) hands its bytes here when there is a filter: plaintext is
 * dropped, and the end of TLS (close_notify, or an error) closes the
 * session, returning -1. */
int session_filter_drain(struct session *s, const uint8_t *p, size_t n);

/* Queues bytes for the client and tries to write them. -1 when the session
 * was closed (write error, or closing_after_flush and all written). */
int session_send(struct session *s, const uint8_t *p, size_t n);
/* refuse.c: answer a client refused at admission, then close (takes s). */
void session_refuse(struct session *s, const char *why);
void session_refuse_input(struct session *s);
void session_refuse_end(struct session *s); /* from session_close */
/* Drops `used` bytes from the front of the handshake input. */
void session_consume(struct session *s, size_t used);
/* Re-derives the client watcher's events from the state. */
void session_update_io(struct session *s);

/* Phase timer: (re)arms s->timer for `secs` (0 = none) with cb. */
void session_arm_timer(struct session *s, unsigned secs, void (*cb)(EV_P_ ev_timer *, int));

/* The first request rule matching this session and destination, or NULL
 * (block). No side effects: session_allowed() is the checking form. */
const struct rule *session_match_rule(const struct session *s, uint32_t rule_cmd,
				      const struct sockaddr *dst_addr, const char *dst_name,
				      uint16_t dst_port);

/* Request rules. Fills a context from the session and evaluates; logs the
 * denial with the rule and returns false when blocked. dst may be NULL. */
bool session_allowed(struct session *s, uint32_t rule_cmd, const struct sockaddr *dst_addr,
		     const char *dst_name, uint16_t dst_port, bool log_denial);

/* Hands the client socket and `peer` to the relay; bytes left in the
 * handshake buffer after `used` go to the peer first. */
void session_start_relay(struct session *s, int peer);

/* "client=... user=..." prefix for log lines about this session. */
const char *session_tag(const struct session *s, char *out, size_t cap);

/* Maps errno of a failed connect/bind to a SOCKS5 reply code. */
uint8_t session_errno_rep(int err);

#endif
