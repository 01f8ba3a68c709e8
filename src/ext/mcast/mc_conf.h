/*
 * mc_conf.h - the multicast extension's part of stpd.conf (docs/mcast.md,
 * docs/config.md): the mcast { } section, the `mcast` key of request rules
 * and the command names mcast-join and mcast-leave. Registered with the
 * config registry (policy/conf_ext.h) by ext_conf_register() before any
 * config is parsed; links with the policy library alone.
 */
#ifndef STP_EXT_MCAST_MC_CONF_H
#define STP_EXT_MCAST_MC_CONF_H

#include <stdint.h>

#include "policy/conf_ext.h"

/* The rule_cmd_bits values of its commands (above the core's). */
#define RULE_CMD_MCAST_JOIN (1u << 6)
#define RULE_CMD_MCAST_LEAVE (1u << 7)

/* What a pass rule for mcast-join grants (its `mcast` key). */
#define RULE_MCAST_SEND 0x01u
#define RULE_MCAST_RECV 0x02u

enum mc_conf_encryption {          /* the same numbers as the KEY block's SUITE */
	MCAST_ENC_OFF = 0,
	MCAST_ENC_AES256GCM = 1,
	MCAST_ENC_CHACHA20 = 2,
};

/* mcast { } */
struct mc_conf {
	char external_if[16];          /* real groups are joined here; "" = route lookup */
	char internal_if[16];          /* intranet groups and members' packets; "" = route */
	struct rule_cidr pool4, pool6; /* intranet groups (239.255.0.0/16, ff15::/16) */
	unsigned encryption;           /* mc_conf_encryption (default AES-256-GCM) */
	unsigned max_members;          /* per group (default 64; 0 = no limit) */
	unsigned max_time;             /* seconds one membership lasts (0 = no limit) */
	unsigned idle_timeout;         /* relay without a packet (default 600; 0 = never) */
	unsigned rate;                 /* bytes/s per group, both ways (0 = no limit) */
	unsigned burst;                /* token bucket depth in bytes (0 = one second of rate) */
	unsigned ttl;                  /* multicast hop limit (default 16) */
};

/* request pass { mcast send receive } */
struct mc_conf_rule {
	uint8_t perms;                 /* RULE_MCAST_*; 0 = both */
};

extern const struct conf_ext mc_conf_ext;

/* The settings of c (never NULL once registered). */
const struct mc_conf *mc_conf_get(const struct stp_conf *c);
/* A rule's `mcast` key: RULE_MCAST_* bits, 0 when absent (r may be NULL). */
uint8_t mc_conf_rule_perms(const struct rule *r);

#endif
