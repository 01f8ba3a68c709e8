/*
 * tn_conf.h - SETUP_UDP_TUNNEL's part of stpd.conf (docs/config.md): the
 * tunnel { } section (the certificates the two stpd use with each other,
 * timeouts) and the command names request rules match: tunnel (a client's
 * X'20', checked toward the remote stpd) and tunnel-relay (another stpd's
 * X'21', checked toward the far endpoint). Links with the policy library
 * alone.
 */
#ifndef STP_EXT_TUNNEL_TN_CONF_H
#define STP_EXT_TUNNEL_TN_CONF_H

#include "policy/conf_ext.h"

/* The rule_cmd_bits values of its commands (HELPERS: 1<<17..1<<18). */
#define RULE_CMD_TUNNEL       (1u << 17) /* X'20' toward the remote stpd */
#define RULE_CMD_TUNNEL_RELAY (1u << 18) /* X'21' toward the far endpoint */

#define TN_PATH_MAX 512

/* tunnel { } */
struct tn_conf {
	char ca[TN_PATH_MAX];   /* verifies the remote stpd (local side) */
	char cert[TN_PATH_MAX]; /* the DTLS server certificate (remote side) */
	char key[TN_PATH_MAX];
	char client_cert[TN_PATH_MAX]; /* CRED X'02': presented to the remote */
	char client_key[TN_PATH_MAX];
	unsigned idle;            /* seconds without a datagram (default 120) */
	unsigned connect_timeout; /* seconds to set up with the remote (default 10) */
};

extern const struct conf_ext tn_conf_ext;

/* The settings of c (never NULL once registered). */
const struct tn_conf *tn_conf_get(const struct stp_conf *c);

#endif
