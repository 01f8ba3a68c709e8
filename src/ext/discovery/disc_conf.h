/*
 * disc_conf.h - the feature discovery extension's part of stpd.conf: the
 * command name `discover` that request rules match (docs/config.md): a
 * client (and, for CMD X'F3', a user) whose discovery request the rules
 * block is not offered method X'87' and gets X'02' for X'F3'. Registered by
 * ext_conf_register(); links with the policy library alone.
 */
#ifndef STP_EXT_DISCOVERY_DISC_CONF_H
#define STP_EXT_DISCOVERY_DISC_CONF_H

#include "policy/conf_ext.h"

#define RULE_CMD_DISCOVER (1u << 15)

extern const struct conf_ext disc_conf_ext;

#endif
