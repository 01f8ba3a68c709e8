/*
 * ext_absent.c - refuses a configuration that relies on an extension this
 * stpd was built without (build options ext_tls, ext_mcast). The parser
 * still knows every section, so without this check a "tls on" listener
 * would quietly serve plaintext and a multicast rule would match nothing;
 * instead `stpd -t`, start-up and SIGHUP all say which option is missing.
 */
#include <stdio.h>
#include <string.h>

#include "policy/conf.h"
#include "server/ext.h"
#include "server/ext_config.h"

/* What of TLS the file uses, or NULL: the method, a listener or client rule
 * asking for it, or any tls { } setting off its default (d). */
static const char *tls_used(const struct stp_conf *c, const struct stp_conf *d)
{
	const struct conf_tls *t = &c->tls, *dt = &d->tls;
	if (c->auth_methods & AUTH_BIT_SSL)
		return "auth method ssl";
	for (size_t i = 0; i < c->n_listeners; i++)
		if (c->listeners[i].tls || c->listeners[i].require_tls)
			return "a listener with tls or require-tls";
	for (size_t i = 0; i < c->n_client_rules; i++)
		if (c->client_rules[i].require_tls)
			return "a client rule with require-tls";
	if (t->cert[0] || t->key[0] || t->client_ca[0] || t->client_cert != dt->client_cert ||
	    t->cert_user != dt->cert_user || t->subauth != dt->subauth ||
	    t->udp_naked != dt->udp_naked || t->min_version != dt->min_version)
		return "a tls block";
	return NULL;
}

static bool cidr_eq(const struct rule_cidr *a, const struct rule_cidr *b)
{
	return a->family == b->family && a->prefix == b->prefix &&
	       memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* What of multicast the file uses, or NULL: rules naming its commands or
 * permissions, or any mcast { } setting off its default (d). */
static const char *mcast_used(const struct stp_conf *c, const struct stp_conf *d)
{
	const struct conf_mcast *m = &c->mcast, *dm = &d->mcast;
	for (size_t i = 0; i < c->n_request_rules; i++) {
		const struct rule *r = &c->request_rules[i];
		if ((r->commands & (RULE_CMD_MCAST_JOIN | RULE_CMD_MCAST_LEAVE)) || r->mcast_perms)
			return "a request rule for mcast-join/mcast-leave";
	}
	if (strcmp(m->external_if, dm->external_if) || strcmp(m->internal_if, dm->internal_if) ||
	    !cidr_eq(&m->pool4, &dm->pool4) || !cidr_eq(&m->pool6, &dm->pool6) ||
	    m->encryption != dm->encryption || m->max_members != dm->max_members ||
	    m->max_time != dm->max_time || m->idle_timeout != dm->idle_timeout ||
	    m->rate != dm->rate || m->burst != dm->burst || m->ttl != dm->ttl)
		return "an mcast block";
	return NULL;
}

static const struct optional_ext {
	bool built;       /* from ext_config.h */
	const char *what; /* for the message */
	const char *option;
	const char *(*used)(const struct stp_conf *c, const struct stp_conf *d);
} optional[] = {
	{ STP_EXT_TLS, "TLS", "ext_tls", tls_used },
	{ STP_EXT_MCAST, "multicast", "ext_mcast", mcast_used },
};

int ext_conf_check(const struct stp_conf *c, char *err, size_t errlen)
{
	struct stp_conf *d = NULL; /* the defaults, made only when a module is missing */
	int rc = 0;
	for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]) && rc == 0; i++) {
		const struct optional_ext *e = &optional[i];
		const char *why;
		if (e->built)
			continue;
		if (!d && !(d = conf_default())) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if ((why = e->used(c, d))) {
			snprintf(err, errlen,
				 "%s: %s needs the %s extension, and this stpd was built without it "
				 "(meson option %s=false)",
				 c->path[0] ? c->path : "(embedded)", why, e->what, e->option);
			rc = -1;
		}
	}
	if (d)
		conf_unref(d);
	return rc;
}
