/*
 * mx_conf.h - the multiplexing extension's part of stpd.conf: the command
 * name `mux` that request rules match (CMD X'30'), and the `mux { ... }`
 * section (docs/config.md). Links with the policy library alone.
 */
#ifndef STP_EXT_MUX_MX_CONF_H
#define STP_EXT_MUX_MX_CONF_H

#include "policy/conf_ext.h"
#include "proto/socks.h"

#define RULE_CMD_MUX (1u << 20) /* CMD X'30' MUX */

#define MX_CMD_MUX     SOCKS_CMD_MUX          /* X'30', docs/protocol.md 5.11 */
#define MX_REP_REFUSED SOCKS5_REP_MUX_REFUSED /* X'0E' */

/* mux { max-streams N; window BYTES } */
struct mx_conf {
	unsigned max_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS */
	unsigned window;      /* SETTINGS_INITIAL_WINDOW_SIZE, per stream */
};

extern const struct conf_ext mx_conf_ext;

const struct mx_conf *mx_conf_get(const struct stp_conf *c);

#endif
