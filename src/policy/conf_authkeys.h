/*
 * conf_authkeys.h - keys of the authentication backends (internal to
 * src/policy): `backend`, the cache keys of auth { }, and the ldap { } and
 * radius { } blocks.
 */
#ifndef STP_POLICY_CONF_AUTHKEYS_H
#define STP_POLICY_CONF_AUTHKEYS_H

#include "policy/conf_parse.h"

void *conf_k_auth_backend(struct conf_parser *p, const struct conf_stmt *s, void *ctx);
/* cache-ttl, cache-size, down-time */
void *conf_k_auth_cache(struct conf_parser *p, const struct conf_stmt *s, void *ctx);
/* The ldap { } and radius { } blocks: their keys and the handlers of the
 * block statements themselves. */
extern const struct conf_section conf_sec_ldap;
extern const struct conf_section conf_sec_radius;
void *conf_k_ldap(struct conf_parser *p, const struct conf_stmt *s, void *ctx);
void *conf_k_radius(struct conf_parser *p, const struct conf_stmt *s, void *ctx);
/* The backends the chain lists have their blocks, complete. */
void conf_check_auth_backends(struct conf_parser *p, bool userpass_used);

#endif
