/*
 * authconf.h - the settings of the directory backends (LDAP, RADIUS) and of
 * the positive-result cache, as plain structs: the config parser
 * (src/policy) fills them, src/auth builds backends from them. No code.
 */
#ifndef STP_AUTH_AUTHCONF_H
#define STP_AUTH_AUTHCONF_H

#include <stdbool.h>
#include <stddef.h>

#define AUTHCONF_STR_MAX        512
#define AUTHCONF_RADIUS_SERVERS 8 /* radcli's SERVER_MAX */

/* Backends an `auth { backend ... }` chain may list, tried in order. */
enum auth_backend_kind {
	AUTH_KIND_FILE = 0,
	AUTH_KIND_PAM = 1,
	AUTH_KIND_LDAP = 2,
	AUTH_KIND_RADIUS = 3,
};
#define AUTH_CHAIN_MAX 4

struct auth_radius_conf {
	char servers[AUTHCONF_RADIUS_SERVERS][128]; /* "HOST:PORT" or "[V6]:PORT" */
	size_t n_servers;
	char secret_file[AUTHCONF_STR_MAX];
	unsigned timeout;        /* seconds per try (default 3) */
	unsigned retries;        /* extra tries per server (default 1) */
	char nas_identifier[64]; /* default "stpd" */
	bool chap;               /* CHAP-Password instead of User-Password */
	/* Reply attributes of an Access-Accept read as the user's groups
	 * (`group-attribute`): RADIUS attribute numbers, Class 25 and
	 * Filter-Id 11; none by default. */
	unsigned group_attrs[2];
	size_t n_group_attrs;
	int line; /* where the block starts, for messages */
};

struct auth_ldap_conf {
	char uri[AUTHCONF_STR_MAX];     /* "ldap://h:p" or "ldaps://..."; several: failover */
	bool starttls;                  /* StartTLS on ldap:// (required if on) */
	char ca_file[AUTHCONF_STR_MAX]; /* "" = system default */
	/* simple bind as the user: */
	char user_dn[AUTHCONF_STR_MAX]; /* "uid=%u,ou=people,dc=example,dc=org" */
	/* or search-then-bind: */
	char bind_dn[AUTHCONF_STR_MAX]; /* service DN; "" = anonymous search */
	char bind_password_file[AUTHCONF_STR_MAX];
	char base[AUTHCONF_STR_MAX];
	char filter[AUTHCONF_STR_MAX]; /* default "(uid=%u)" */
	/* groups: */
	char group_attribute[64];            /* e.g. "memberOf" on the user's entry */
	char group_base[AUTHCONF_STR_MAX];   /* group search base */
	char group_filter[AUTHCONF_STR_MAX]; /* "(member=%d)", %u = user, %d = user DN */
	char group_name_attribute[64];       /* default "cn" */
	unsigned timeout;                    /* seconds, connect and each operation (5) */
	int line;
};

struct auth_cache_conf {
	unsigned ttl;  /* seconds; 0 = no cache (default) */
	unsigned size; /* entries (default 1024) */
};

#endif
