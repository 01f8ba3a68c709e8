/*
 * bd_conf.h - the bind extension's part of stpd.conf (docs/config.md): the
 * binds { } section (limits per control connection, the accept timeout)
 * and the command names request rules match: listen, listenreply,
 * udpbind, udpbindreply. Registered by ext_conf_register(); links with the
 * policy library alone.
 */
#ifndef STP_EXT_BIND_BD_CONF_H
#define STP_EXT_BIND_BD_CONF_H

#include "policy/conf_ext.h"

/* The rule_cmd_bits values of its commands (HELPERS: 1<<10..1<<13). */
#define RULE_CMD_LISTEN       (1u << 10) /* a LISTEN request with TCP binds */
#define RULE_CMD_LISTENREPLY  (1u << 11) /* each peer arriving at a TCP bind */
#define RULE_CMD_UDPBIND      (1u << 12) /* a LISTEN request with UDP binds */
#define RULE_CMD_UDPBINDREPLY (1u << 13) /* each datagram from / to a peer of a UDP bind */

/* binds { } */
struct bd_conf {
	unsigned max_binds;      /* binds per control connection (default 16) */
	unsigned max_pending;    /* announced, unclaimed arrivals per control connection (64) */
	unsigned max_peers;      /* peers relaying at once per control connection (1024) */
	unsigned accept_timeout; /* seconds an arrival waits for its ACCEPT (30) */
	unsigned backlog;        /* listen(2) backlog when the client asks 0 (128) */
	unsigned max_backlog;    /* the most a client may ask (1024) */
};

extern const struct conf_ext bd_conf_ext;

/* The settings of c (never NULL once registered). */
const struct bd_conf *bd_conf_get(const struct stp_conf *c);

#endif
