/*
 * rs_conf.h - the Tor RESOLVE extension's part of stpd.conf: the command
 * names `resolve` and `resolve-ptr` that request rules may match
 * (docs/config.md). Registered with the config registry (policy/conf_ext.h)
 * by ext_conf_register(); links with the policy library alone.
 */
#ifndef STP_EXT_RESOLVE_RS_CONF_H
#define STP_EXT_RESOLVE_RS_CONF_H

#include "policy/conf_ext.h"

/* The rule_cmd_bits values of its commands (above the core's and mcast's). */
#define RULE_CMD_RESOLVE     (1u << 8)
#define RULE_CMD_RESOLVE_PTR (1u << 9)

extern const struct conf_ext rs_conf_ext;

#endif
