/*
 * tls_conf.h - the TLS module's part of stpd.conf (docs/tls.md): the
 * tls { } section, "tls" and "require-tls" in listen blocks, "require-tls"
 * in client rules, and the checks over the whole file. Registered with the
 * config registry (policy/conf_ext.h) by ext_conf_register() before any
 * config is parsed; links with the policy library alone.
 */
#ifndef STP_EXT_TLS_TLS_CONF_H
#define STP_EXT_TLS_TLS_CONF_H

#include <stdbool.h>

#include "policy/conf_ext.h"

enum tls_conf_client_cert { TLS_CLIENT_CERT_NONE = 0, TLS_CLIENT_CERT_OPTIONAL = 1,
			    TLS_CLIENT_CERT_REQUIRE = 2 };

/* tls { }: the server side of TLS, for method X'86' and "tls on" listeners. */
struct tls_conf {
	char cert[CONF_PATH_MAX];       /* PEM chain; "" = none */
	char key[CONF_PATH_MAX];        /* PEM private key */
	char client_ca[CONF_PATH_MAX];  /* CAs for client certificates; "" = none */
	enum tls_conf_client_cert client_cert; /* default none */
	bool cert_user;                 /* a verified client cert's CN is the user */
	unsigned subauth;               /* conf_auth_bits allowed inside X'86'; 0 = none */
	bool udp_naked;                 /* agree to UDP-Naked (default on) */
	unsigned min_version;           /* 12 or 13 (default 12) */
};

/* listen { tls on; require-tls on } */
struct tls_conf_listener {
	bool tls;                       /* TLS from the first byte (SOCKS over TLS) */
	bool require_tls;               /* only methods X'86'/X'06' (downgrade protection) */
};

/* client pass { require-tls on } */
struct tls_conf_rule {
	bool require_tls;
};

extern const struct conf_ext tls_conf_ext;

/* The settings of c (never NULL once registered). */
const struct tls_conf *tls_conf_get(const struct stp_conf *c);
/* A listener's and a client rule's keys; false when absent (l, r may be NULL). */
bool tls_conf_listener_tls(const struct conf_listener *l);
bool tls_conf_listener_require(const struct conf_listener *l);
bool tls_conf_rule_require(const struct rule *r);

#endif
