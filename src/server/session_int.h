/*
 * session_int.h - the core's view of a session: the state machine's data.
 * Only src/server includes this; extensions use session.h's functions.
 * A session walks the states below through session_set_state() only;
 * command handlers take over in SS_COMMAND and hand the client connection
 * to the relay or end the session with session_close().
 */
#ifndef STP_SERVER_SESSION_INT_H
#define STP_SERVER_SESSION_INT_H

#include "auth/auth.h"
#include "server/conn.h"
#include "server/relay.h"
#include "server/session.h"

struct worker;
struct listener;

/* A request of a control session (flow.h); the core's view. */
struct flow {
	struct session *s;
	unsigned n;                          /* 1, 2, ... within the session */
	uint8_t cmd;                         /* SOCKS command, for the log */
	struct socks_addr target;            /* as asked */
	const struct rule *rule;             /* passed it; its slot is held */
	uint8_t rep;
	bool rep_set;
	uint64_t up, down;
	ev_tstamp started;
	struct flow *prev, *next;
	struct dgram_relay *dgram;           /* flow_own_dgram(), or NULL */
	/* flow_relay_stream(): the flow's own byte relay. */
	bool relaying;
	struct conn client;
	struct relay relay;
	void (*relay_done)(struct flow *f, const char *reason);
	void *data;                          /* flow_set_data() */
};

/* Ends every flow still open (the session is closing) with this result. */
void flow_close_all(struct session *s, const char *result);

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
/* bytes one session_send queue may hold: a DNS QUERY answer (64 KiB) and its frame */
#define SESSION_OUT_MAX (64 * 1024 + 1024)

struct handshake {
	uint8_t in[SOCKS_HANDSHAKE_MAX];
	size_t inlen;
	/* Replies: out is out_small, or a heap block of up to SESSION_OUT_MAX
	 * for the rare command that answers with more (X'F4's document). */
	uint8_t out_small[SOCKS5_REPLY_MAX + 8];
	uint8_t *out;
	size_t outcap, outlen, outoff;
	uint8_t method;
	/* The last greeting's methods, for a method that hands back
	 * (session_method_skip), and the methods that did: never chosen again
	 * on this connection. */
	uint8_t offered[255];
	uint8_t n_offered;
	uint8_t skipped[32];
	struct auth_job *auth;       /* only while RFC 1929 runs */
};

struct session {
	uint64_t id;
	struct worker *w;
	const struct conf_listener *listener;
	struct stp_conf *conf;               /* our reference to the snapshot */
	struct snapshot *snap;

	struct conn conn;                    /* client: socket + TLS filter */
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
	const struct rule *pass_rule;        /* passed the last session_allowed() */
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
	void (*on_control)(struct session *s); /* session_watch_control() */
	struct flow *flows;                  /* open requests of a control session */
	unsigned flows_opened;               /* numbers them: id=SESSION.N */

	bool require_tls;                    /* listener/client rule: only TLS methods */
	bool no_udp;                         /* X'86' without UDP-Naked: refuse UDP ASSOCIATE */
	const struct session_dgram_guard *dgram_guard; /* a method's datagram protection, or NULL */
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
/* "relay", "auth-wait", ...: for the log and the status page. */
const char *session_state_name(enum session_state st);
/* Re-derives the client watcher's events from the state. */
void session_update_io(struct session *s);
/* Phase timer: (re)arms s->timer for `secs` (0 = none) with cb. */
void session_arm_timer(struct session *s, unsigned secs, void (*cb)(EV_P_ ev_timer *, int));
/* Hands the client socket and `peer` to the relay; bytes left in the
 * handshake buffer after `used` go to the peer first. */
void session_start_relay(struct session *s, int peer);
/* Maps errno of a failed connect/bind to a SOCKS5 reply code. */

/* refuse.c: answer a client refused at admission, then close (takes s). */
void session_refuse(struct session *s, const char *why);
void session_refuse_input(struct session *s);
void session_refuse_end(struct session *s); /* from session_close */

#endif
