/*
 * tp_conf.h - TRANSPARENT's part of stpd.conf (docs/config.md): the
 * `transparent { }` section (which relay engine, its N2 endpoint, the end
 * on the target's FIN, the idle time) and the request-rule key `ptcl`.
 * Registered with the config registry (policy/conf_ext.h) by
 * ext_conf_register(); links with the policy library alone.
 */
#ifndef STP_EXT_TRANSPARENT_TP_CONF_H
#define STP_EXT_TRANSPARENT_TP_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "policy/conf_ext.h"

enum tp_engine_kind { TP_ENGINE_USER, TP_ENGINE_KERNEL, TP_ENGINE_REMOTE };
struct tp_conf {
	enum tp_engine_kind engine; /* `engine user|kernel|remote`, default user */
	const char *engine_name;    /* "user", "kernel", "remote" */
	char *relay;                /* `relay unix:PATH` or `relay HOST:PORT` (TLS) for engine remote */
	char *relay_ca, *relay_cert, *relay_key; /* `relay-tls-ca/-cert/-key FILE` */
	bool end_on_fin;            /* `end-on-fin yes|no`, default yes */
	uint32_t idle_ms;           /* `idle SECONDS`, default 300 */
};

/* A request rule's `ptcl tcp|udp ...`: which PTCLs a pass rule for
 * `transparent` grants (no key: both). */
#define TP_RULE_PTCL_TCP 0x1u
#define TP_RULE_PTCL_UDP 0x2u
struct tp_conf_rule {
	unsigned ptcls;
};

extern const struct conf_ext tp_conf_ext;

/* The section's settings in c (defaults when the file has none). */
const struct tp_conf *tp_conf_get(const struct stp_conf *c);
/* True when the file had a `transparent { }` block with a key in it. */
bool tp_conf_present(const struct stp_conf *c);
/* The PTCLs rule r grants (TP_RULE_PTCL_*). */
unsigned tp_conf_rule_ptcls(const struct rule *r);

#endif
