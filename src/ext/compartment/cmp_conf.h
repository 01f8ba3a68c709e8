/*
 * cmp_conf.h - compartments' part of stpd.conf (docs/config.md,
 * docs/compartments.md): the `compartments { }` section naming each
 * compartment's network namespace and resolver, the listen key
 * `compartment NAME` (where a listener listens), and the rule keys
 * `from-compartment NAME...` (client and request rules: the compartment a
 * session arrived in) and `to-compartment NAME` (request rules: where the
 * request's outgoing sockets are made). Registered with the config registry
 * (policy/conf_ext.h); links with the policy library alone, so the broker
 * (a forked stpd) decides with the same code.
 */
#ifndef STP_EXT_COMPARTMENT_CMP_CONF_H
#define STP_EXT_COMPARTMENT_CMP_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/conf_ext.h"
#include "proto/broker.h"

/* stpd's own network namespace: always there, never configured. */
#define CMP_HOST "host"
#define CMP_MAX 32
#define CMP_RESOLVER_MAX 256

struct cmp_entry {
	char name[BROKER_NAME_MAX + 1];
	char netns[256];                 /* a path: NAME became /run/netns/NAME */
	char resolver[CMP_RESOLVER_MAX]; /* "ADDR[:PORT],..." for c-ares; "" = stpd's */
	int line;
};

struct cmp_settings {
	struct cmp_entry c[CMP_MAX];
	unsigned n;
};

struct cmp_rule {
	char from[8][BROKER_NAME_MAX + 1];
	unsigned n_from;                 /* 0: any */
	char to[BROKER_NAME_MAX + 1];    /* "": the arriving compartment */
	int line;
};

struct cmp_listener {
	char name[BROKER_NAME_MAX + 1];
};

extern const struct conf_ext cmp_conf_ext;

const struct cmp_settings *cmp_conf_get(const struct stp_conf *c);
/* The compartment named name; NULL for CMP_HOST and unknown names. */
const struct cmp_entry *cmp_conf_find(const struct stp_conf *c, const char *name);
/* The compartment listener l listens in: CMP_HOST without the key. */
const char *cmp_listener_name(const struct conf_listener *l);
/* Where a request that passed rule r (NULL: none) from compartment in
 * makes its sockets: the rule's to-compartment, else in. */
const char *cmp_rule_out(const struct rule *r, const char *in);
/* True when the configuration lets a session arriving in `in` have a
 * socket made in `out`: out == in and some listener listens in it, or a
 * pass request rule says `to-compartment out` and its from-compartment
 * list is empty or names `in`. The broker's whole policy. */
bool cmp_conf_allows(const struct stp_conf *c, const char *in, const char *out);
/* Every compartment's namespace is there (stat): run where the file is
 * about to be used (stpd's start and reload, the broker's reload), not by
 * the parser, so a file can be checked on another machine. -1 with
 * "FILE:LINE: compartment 'NAME': netns PATH: ERROR" in err. */
int cmp_conf_check_netns(const struct stp_conf *c, char *err, size_t errlen);
/* True when the file names any compartment (section or keys). */
bool cmp_conf_used(const struct stp_conf *c);

#endif
