/*
 * rs_conf.h - the resolve extension's part of stpd.conf: the command names
 * `resolve`, `resolve-ptr` and `dns` that request rules may match, and the
 * `dns-cache { ... }` section with the DNS QUERY cache settings
 * (docs/config.md). Registered with the config registry
 * (policy/conf_ext.h) by ext_conf_register(); links with the policy
 * library alone.
 */
#ifndef STP_EXT_RESOLVE_RS_CONF_H
#define STP_EXT_RESOLVE_RS_CONF_H

#include "policy/conf_ext.h"

/* The rule_cmd_bits values of its commands (above the core's and mcast's). */
#define RULE_CMD_RESOLVE     (1u << 8)
#define RULE_CMD_RESOLVE_PTR (1u << 9)
#define RULE_CMD_DNS         (1u << 14) /* CMD X'F2' DNS QUERY */

#define RS_CACHE_ENTRIES_MAX 1000000
#define RS_CACHE_TTL_MAX     604800 /* a week, RFC 8767's cap on stale data */

/* dns-cache { entries N; max-ttl SECS; negative-ttl SECS } */
struct rs_dns_conf {
	unsigned cache_entries;      /* per worker; 0: no cache */
	unsigned cache_max_ttl;      /* a cached answer lives at most this long */
	unsigned cache_negative_ttl; /* the same for NXDOMAIN/NODATA (RFC 2308 5) */
};

extern const struct conf_ext rs_conf_ext;

const struct rs_dns_conf *rs_dns_conf_get(const struct stp_conf *c);

#endif
