/*
 * ext.h - how commands and authentication methods plug into stpd.
 *
 * The core's own commands (CONNECT, BIND, UDP ASSOCIATE) and methods (none,
 * username/password) are registered exactly like extensions: the session
 * code only ever looks them up here. An extension fills in a struct stp_ext
 * (every callback optional) and is listed in ext_registry.c.
 */
#ifndef STP_SERVER_EXT_H
#define STP_SERVER_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;
struct worker;
struct stp_conf;
struct feat_writer;
struct rule;
struct resolver;
struct conf_listener;
struct broker_hook;

/* One name=value pair a module adds to a session's or deny's log line. */
struct ext_log_field {
	const char *key;  /* static */
	char value[80];
};
#define EXT_LOG_FIELDS_MAX 4
struct ext_gauge;

struct stp_command {
	uint8_t code;       /* SOCKS5 CMD */
	uint32_t rule_bit;  /* rule_cmd_bits value rules match on */
	bool socks4;        /* reachable from a SOCKS4 request (same CD code) */
	/* Owns the session from here: must end in session_start_relay(),
	 * session_close(), or keep the session with its own watchers. The
	 * request is in s->target. */
	void (*start)(struct session *s);
};

struct stp_method {
	uint8_t code;       /* RFC 1928 METHOD */
	bool (*enabled)(const struct stp_conf *c);
	/* Runs after the method choice is sent. Must eventually call
	 * session_method_done(s, ok). */
	void (*start)(struct session *s);
	/* New client bytes in s->hs->in while in SS_AUTH. */
	void (*on_input)(struct session *s);
};

struct stp_ext {
	const char *name;
	const struct stp_command *commands;
	size_t n_commands;
	const struct stp_method *methods; /* in server preference order */
	size_t n_methods;
	/* Its methods bring TLS (X'86', X'06'): the only kind a listener or
	 * client rule with require-tls accepts, and never chosen inside TLS. */
	bool methods_tls;
	/* Its methods carry no credentials and no traffic and end with
	 * session_method_skip (X'87'): offered even where only TLS methods
	 * are (require-tls). */
	bool methods_informational;
	/* Optional: whether this session may have one of its methods (after
	 * the method's enabled, which sees only the config), e.g. by rules on
	 * the client's address. */
	bool (*method_offered)(const struct session *s, uint8_t code);
	int (*worker_init)(struct worker *w);
	void (*worker_fini)(struct worker *w);
	/* A new session was admitted (after any PROXY header), before the
	 * greeting is read: may install a filter (session_set_filter) or close the
	 * session, returning -1 then. */
	int (*session_open)(struct session *s);
	/* Process-wide parts (a thread serving outside sessions, e.g. the
	 * autoconfig HTTP listener): started once by stpd's main thread after
	 * the workers' listeners are open and before privileges are dropped,
	 * with every signal blocked (threads it makes inherit that); stopped
	 * after the workers have ended. -1 with a message in err: stpd exits. */
	int (*server_start)(const struct stp_conf *c, char *err, size_t errlen);
	void (*server_stop)(void);
	/* Feature discovery (docs/protocol.md 5.6): adds entries about the
	 * module's commands and methods, and server-wide limits it owns, to
	 * the features document for this session (proto/featdoc.h). Entries
	 * about a command or method this client is not offered are dropped by
	 * the writer, so a module writes what it knows without checking. */
	void (*describe)(const struct session *s, struct feat_writer *w);
	/* Optional: false when c gives the module's commands nothing to do
	 * (they then answer X'07' themselves, e.g. X'F4' without a profile),
	 * so discovery does not list them. */
	bool (*commands_enabled)(const struct stp_conf *c);
	/* `stpd -t`: a line about how the module will run under c (e.g.
	 * TRANSPARENT's engine), printed as "NAME: TEXT"; NULL: none. */
	void (*conf_report)(const struct stp_conf *c, char *buf, size_t cap);

	/* Where sockets are made (the compartments' seam): a module may make a
	 * socket somewhere else than stpd's own network namespace. Each
	 * returns an fd, -1 with errno when it owns the decision and failed,
	 * or EXT_NOT_MINE to leave it to the next module (and, last, to
	 * socket(2)).
	 * open_socket: an outgoing socket of session s whose request passed
	 * rule r (session_socket()). listen_socket: a listening socket for
	 * listener cl, from the main thread before privileges are dropped, or
	 * from a worker's thread for a listener a reload adds. */
	int (*open_socket)(struct session *s, const struct rule *r, int domain, int type,
			   int protocol);
	int (*listen_socket)(const struct conf_listener *cl, int domain, int type, int protocol);
	/* Where listener cl listens, when a module's listen_socket makes its
	 * socket elsewhere than stpd's own namespace: a key (a compartment's
	 * name), else NULL. On SIGHUP each worker keeps a listener whose
	 * address and place the new file still has, closes the others and
	 * opens the new ones (listener_reload.c); the broker binds a port
	 * below 1024 there (LISTEN's PLACE) if its copy of the file lists it
	 * in that place. listen_socket is then called on a worker's thread. */
	const char *(*listener_place)(const struct conf_listener *cl);
	/* The resolver for names of session s's request, which rule r (may be
	 * NULL) matches by name; NULL: the worker's; EXT_RESOLVER_FAILED: the
	 * module's, which it could not make (look-ups then fail rather than go
	 * to the worker's). */
	struct resolver *(*resolver)(struct session *s, const struct rule *r);
	/* Fields for the session line (r: the rule that passed the request, or
	 * NULL) and the deny line (r: the denying rule, or NULL); returns how
	 * many it wrote into f[0..max). */
	size_t (*log_fields)(const struct session *s, const struct rule *r, bool deny,
			     struct ext_log_field *f, size_t max);
	/* After SIGHUP installed a new configuration (main thread). */
	void (*reloaded)(const struct stp_conf *c);
	/* After worker w took the new configuration c for its new sessions
	 * (w's thread, after reloaded): per-worker state that depends on the
	 * configuration, and sessions the new one no longer allows
	 * (worker_end_sessions). */
	void (*worker_reloaded)(struct worker *w, const struct stp_conf *c);
	/* Metrics (docs/operations.md): the module's gauges now, at most cap
	 * of them; how many it wrote. Called from the metrics thread at
	 * scrape time, never on a session's loop. */
	size_t (*gauges)(struct ext_gauge *out, size_t cap);
	/* Where open_socket puts session s's sockets under rule r (NULL: the
	 * side facing its client), as a short name written to buf; false when
	 * the module leaves them in stpd's own namespace. A module that shares
	 * sockets between sessions (multicast relays) shares them only between
	 * sessions whose sockets are in one place, and a relay engine that
	 * cannot make its sockets through open_socket refuses such sessions. */
	bool (*socket_place)(const struct session *s, const struct rule *r, char *buf, size_t cap);
	/* The module's part of the privileged broker (server/broker.h): the
	 * SOCKET requests it serves there, the capabilities it needs. */
	const struct broker_hook *broker;
	/* Privilege separation (docs/operations.md §8): the capabilities
	 * (bits 1ULL << CAP_*) that c's use of the module needs on the
	 * workers while serving, which no broker can do for them, with what
	 * and why in buf; 0 for none. A dropping stpd keeps exactly these on
	 * its threads, as `user`, and no other. */
	uint64_t (*worker_caps)(const struct stp_conf *c, char *buf, size_t cap);
};

/* One gauge of a module: a Prometheus metric name ("stp_" + module
 * prefix), its help text, and its value. */
struct ext_gauge {
	const char *name;
	const char *help;
	uint64_t value;
};

/* Every module's gauges, in registry order; how many were written. */
size_t ext_gauges(struct ext_gauge *out, size_t cap);

#define EXT_NOT_MINE (-2)
#define EXT_RESOLVER_FAILED ((struct resolver *)-1)

/* The configuration a worker runs under (for worker_init checks). */
const struct stp_conf *worker_conf(const struct worker *w);
/* The worker's event loop (for a module that sets up per-worker state in
 * worker_init, e.g. TRANSPARENT's relay engine). */
struct ev_loop *worker_loop(const struct worker *w);

/* The configuration new sessions get now (after any reload), referenced
 * for the caller, who conf_unref()s it; NULL before stpd serves. For a
 * module's own threads, which hold no session (snapshot.c). */
struct stp_conf *ext_conf_current(void);

/* Runs every module's server_start (signals blocked meanwhile); -1 with
 * err when one fails. ext_server_stop runs the server_stops. */
int ext_server_start(const struct stp_conf *c, char *err, size_t errlen);
void ext_server_stop(void);

/* Every module's worker_caps under c, together; buf gets "NAME: why"
 * for each that needs any ("; " between). */
uint64_t ext_worker_caps(const struct stp_conf *c, char *buf, size_t cap);

/* The static registry (ext_registry.c). */
const struct stp_ext *const *ext_all(size_t *n);
const struct stp_command *ext_find_command(uint8_t code);
/* A registered method by code, enabled or not (NULL when unknown). */
const struct stp_method *ext_find_method(uint8_t code);
/* True when method `code` belongs to a module whose methods bring TLS. */
bool ext_method_tls(uint8_t code);
/* True when method `code` belongs to a module whose methods are
 * informational (methods_informational). */
bool ext_method_informational(uint8_t code);
/* False when method `code`'s module says this session may not have it. */
bool ext_method_offered(const struct session *s, uint8_t code);
/* Runs every module's session_open; -1 when one closed the session. */
int ext_session_open(struct session *s);
/* The socket seam (above): the first module that owns it, else socket(2). */
int ext_open_socket(struct session *s, const struct rule *r, int domain, int type, int protocol);
int ext_listen_socket(const struct conf_listener *cl, int domain, int type, int protocol);
/* The first module's socket_place for (s, r) in buf; false and "" when no
 * module moves those sockets (stpd's own namespace). */
bool ext_socket_place(const struct session *s, const struct rule *r, char *buf, size_t cap);
#define EXT_SOCKET_PLACE_MAX 136 /* a place's buffer: "IN->OUT", names up to 63 octets */
/* The first module's listener_place key for cl, or NULL. */
const char *ext_listener_place(const struct conf_listener *cl);
/* The first module's resolver for r, or NULL. */
struct resolver *ext_resolver(struct session *s, const struct rule *r);
/* Every module's log fields, in registry order; how many. */
size_t ext_log_fields(const struct session *s, const struct rule *r, bool deny,
		      struct ext_log_field *f, size_t max);
void ext_reloaded(const struct stp_conf *c);
void ext_worker_reloaded(struct worker *w, const struct stp_conf *c);

/* Ends each of w's sessions for which judge() returns true, with the
 * reason it wrote into why (the session's close reason); r is the rule
 * that passed the session's request (NULL before one). judge must not
 * close sessions itself. From w's thread. How many ended. */
#define EXT_REASON_MAX 64
unsigned worker_end_sessions(struct worker *w,
			     bool (*judge)(const struct session *s, const struct rule *r,
					   void *ctx, char *why, size_t whylen),
			     void *ctx);
/* Runs every module's describe, in registry order. */
void ext_describe(const struct session *s, struct feat_writer *w);
/* The first method, in preference order, that the config enables and the
 * client offers; NULL when none. */
const struct stp_method *ext_choose_method(const struct stp_conf *c, const uint8_t *offered,
					   size_t n_offered);

/* Built-in modules (each listed in the registry only when its build option,
 * ext_tls, ext_mcast, ext_resolve or ext_autoconf, is on: ext/ext_config.h). */
extern const struct stp_ext ext_core;
extern const struct stp_ext ext_tls;   /* src/ext/tls */
extern const struct stp_ext ext_mcast; /* src/ext/mcast */
extern const struct stp_ext ext_resolve; /* src/ext/resolve */
extern const struct stp_ext ext_gssapi; /* src/ext/gssapi */
extern const struct stp_ext ext_autoconf; /* src/ext/autoconf */
extern const struct stp_ext ext_discovery; /* src/ext/discovery */
extern const struct stp_ext ext_transparent; /* src/ext/transparent */
extern const struct stp_ext ext_bind;    /* src/ext/bind */
extern const struct stp_ext ext_compartment; /* src/ext/compartment */
extern const struct stp_ext ext_tunnel;  /* src/ext/tunnel */
extern const struct stp_ext ext_metrics; /* src/ext/metrics */
extern const struct stp_ext ext_mux;     /* src/ext/mux */

#endif
