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
	int (*worker_init)(struct worker *w);
	void (*worker_fini)(struct worker *w);
	/* A new session was admitted (after any PROXY header), before the
	 * greeting is read: may install a filter (session_set_filter) or close the
	 * session, returning -1 then. */
	int (*session_open)(struct session *s);
};

/* The configuration a worker runs under (for worker_init checks). */
const struct stp_conf *worker_conf(const struct worker *w);

/* The static registry (ext_registry.c). */
const struct stp_ext *const *ext_all(size_t *n);
const struct stp_command *ext_find_command(uint8_t code);
/* A registered method by code, enabled or not (NULL when unknown). */
const struct stp_method *ext_find_method(uint8_t code);
/* True when method `code` belongs to a module whose methods bring TLS. */
bool ext_method_tls(uint8_t code);
/* Runs every module's session_open; -1 when one closed the session. */
int ext_session_open(struct session *s);
/* The first method, in preference order, that the config enables and the
 * client offers; NULL when none. */
const struct stp_method *ext_choose_method(const struct stp_conf *c, const uint8_t *offered,
					   size_t n_offered);

/* Built-in modules (each listed in the registry only when its build option,
 * ext_tls, ext_mcast or ext_resolve, is on: ext/ext_config.h). */
extern const struct stp_ext ext_core;
extern const struct stp_ext ext_tls;   /* src/ext/tls */
extern const struct stp_ext ext_mcast; /* src/ext/mcast */
extern const struct stp_ext ext_resolve; /* src/ext/resolve */
extern const struct stp_ext ext_bind;    /* src/ext/bind */

#endif
