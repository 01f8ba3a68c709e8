/*
 * authdir.h - the directory backends (LDAP, RADIUS) and the cache of
 * positive results, internal to src/auth. Checks block (they run on the
 * pool's threads) and are thread-safe.
 */
#ifndef STP_AUTH_AUTHDIR_H
#define STP_AUTH_AUTHDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "auth/authconf.h"

enum auth_result {
	AUTH_RES_OK,     /* accepted; groups filled */
	AUTH_RES_REJECT, /* the backend answered: unknown user or wrong password */
	AUTH_RES_ERROR,  /* no answer: down, timed out, misconfigured */
};

/* Reads path's first line (no newline) into out (cap bytes). 0, or -1 with
 * a message in err: unreadable, empty, longer than cap - 1. */
int authdir_read_secret(const char *path, char *out, size_t cap, char *err, size_t errlen);
/* Adds a group name to job if it fits (<= 63 bytes, no control character)
 * and there is room. */
void authdir_add_group(struct auth_job *job, const char *name, size_t len);

struct authldap;
struct authldap *authldap_new(const struct auth_ldap_conf *c, char *err, size_t errlen);
void authldap_free(struct authldap *l);
/* A TLS context shared by every LDAP connection that trusts ca_file ("" =
 * libldap's default), kept for the process's life (authldaptls.c); NULL
 * when none could be made: make one per connection then. */
void *authldap_tls_ctx(const char *uri, const char *ca_file);
/* why gets a short reason for REJECT and ERROR (never the password). */
enum auth_result authldap_check(struct authldap *l, struct auth_job *job, char *why, size_t whylen);

struct authradius;
struct authradius *authradius_new(const struct auth_radius_conf *c, char *err, size_t errlen);
void authradius_free(struct authradius *r);
enum auth_result authradius_check(struct authradius *r, struct auth_job *job, char *why,
				  size_t whylen);

struct authcache;
struct authcache *authcache_new(const struct auth_cache_conf *c);
void authcache_free(struct authcache *c);
/* key = HMAC-SHA256 under a per-cache random key of user NUL pass: the
 * cache never holds the password, nor a hash of it usable elsewhere. */
void authcache_key(const struct authcache *c, const char *user, const char *pass, uint8_t key[32]);
/* True, with job's groups filled, when key is cached and not expired. */
bool authcache_get(struct authcache *c, const uint8_t key[32], struct auth_job *job);
void authcache_put(struct authcache *c, const uint8_t key[32], const struct auth_job *job);

#endif
