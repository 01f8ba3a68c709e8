/*
 * gss_conf.h - the GSS-API module's part of stpd.conf (docs/config.md,
 * "gssapi"): the gssapi { } section and its checks. Registered with the
 * config registry (policy/conf_ext.h) by ext_conf_register(); links with
 * the policy library alone, so the unit tests and the config fuzz target
 * parse it too.
 */
#ifndef STP_EXT_GSSAPI_GSS_CONF_H
#define STP_EXT_GSSAPI_GSS_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/conf_ext.h"

#define GSS_CONF_MAPS_MAX 32
#define GSS_CONF_NAME_MAX 256

/* map PATTERN USER: an authenticated principal matching PATTERN (fnmatch(3),
 * e.g. "*@EXAMPLE.ORG") becomes USER for rules and logs; USER "%u" is the
 * principal's part before the '@'. */
struct gss_conf_map {
	char pattern[GSS_CONF_NAME_MAX];
	char user[GSS_CONF_NAME_MAX];
};

/* gssapi { keytab FILE; principal NAME; map PATTERN USER; protection LEVEL } */
struct gss_conf {
	char keytab[CONF_PATH_MAX];        /* "" = the Kerberos default (KRB5_KTNAME) */
	char principal[GSS_CONF_NAME_MAX]; /* "" = any key in the keytab */
	struct gss_conf_map maps[GSS_CONF_MAPS_MAX];
	size_t n_maps;
	unsigned min_level; /* enum gss_level: 0 none, 1, 2 (default 0) */
};

extern const struct conf_ext gss_conf_ext;

/* The settings of c (never NULL once registered). */
const struct gss_conf *gss_conf_get(const struct stp_conf *c);

/* The rule user for an authenticated principal: the first matching map's
 * user (with %u expanded), else the principal itself. */
void gss_conf_map_user(const struct gss_conf *g, const char *principal, char *user, size_t cap);

#endif
