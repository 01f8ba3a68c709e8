/*
 * ext_conf.c - see ext_conf.h. Order matters where the core lists what
 * extensions add: the checks run, and command names are listed in
 * messages, in this order. An extension this build left out (options
 * ext_tls, ext_mcast) is registered as absent: its keywords stay known and
 * using one says which option is off.
 */
#include "ext/ext_conf.h"

#include <stdio.h>

#include "ext/autoconf/ac_conf.h"
#include "ext/discovery/disc_conf.h"
#include "ext/bind/bd_conf.h"
#include "ext/compartment/cmp_conf.h"
#include "ext/ext_config.h"
#include "ext/gssapi/gss_conf.h"
#include "ext/mcast/mc_conf.h"
#include "ext/metrics/mt_conf.h"
#include "ext/resolve/rs_conf.h"
#include "ext/tls/tls_conf.h"
#include "ext/transparent/tp_conf.h"
#include "ext/tunnel/tn_conf.h"
#include "ext/mux/mx_conf.h"
#include "policy/conf_ext.h"

static const struct ext_conf_entry {
	const struct conf_ext *conf;
	bool built;
	const char *what, *option;
} ext_confs[] = {
	{ &tls_conf_ext, STP_EXT_TLS, "the TLS extension", "ext_tls" },
	{ &mc_conf_ext, STP_EXT_MCAST, "the multicast extension", "ext_mcast" },
	{ &rs_conf_ext, STP_EXT_RESOLVE, "the RESOLVE extension", "ext_resolve" },
	{ &gss_conf_ext, STP_EXT_GSSAPI, "the GSS-API extension", "ext_gssapi" },
	{ &ac_conf_ext, STP_EXT_AUTOCONF, "the autoconfig extension", "ext_autoconf" },
	{ &disc_conf_ext, STP_EXT_DISCOVERY, "the feature discovery extension", "ext_discovery" },
	{ &tp_conf_ext, STP_EXT_TRANSPARENT, "the TRANSPARENT extension", "ext_transparent" },
	{ &bd_conf_ext, STP_EXT_BIND, "the bind extension", "ext_bind" },
	{ &cmp_conf_ext, STP_EXT_COMPARTMENT, "the compartment extension", "ext_compartment" },
	{ &tn_conf_ext, STP_EXT_TUNNEL, "the tunnel extension", "ext_tunnel" },
	{ &mt_conf_ext, STP_EXT_METRICS, "the metrics extension", "ext_metrics" },
	{ &mx_conf_ext, STP_EXT_MUX, "the multiplexing extension", "ext_mux" },
};

static int register_list(bool all, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(ext_confs) / sizeof(ext_confs[0]); i++) {
		const struct ext_conf_entry *e = &ext_confs[i];
		int rc = e->built || all
				 ? conf_ext_register(e->conf, err, errlen)
				 : conf_ext_register_absent(e->conf, e->what, e->option, err, errlen);
		if (rc < 0)
			return -1;
	}
	return 0;
}

int ext_conf_register(char *err, size_t errlen)
{
	return register_list(false, err, errlen);
}

int ext_conf_register_all(char *err, size_t errlen)
{
	return register_list(true, err, errlen);
}

int ext_conf_check(const struct stp_conf *c, char *err, size_t errlen)
{
	if (!STP_EXT_TLS && (c->auth_methods & AUTH_BIT_SSL)) {
		snprintf(err, errlen, "%s: auth method ssl needs the TLS extension, and this stpd "
			 "was built without it (meson option ext_tls=false)",
			 c->path[0] ? c->path : "(embedded)");
		return -1;
	}
	if (!STP_EXT_GSSAPI && (c->auth_methods & AUTH_BIT_GSSAPI)) {
		snprintf(err, errlen, "%s: auth method gssapi needs the GSS-API extension, and this "
			 "stpd was built without it (meson option ext_gssapi=false)",
			 c->path[0] ? c->path : "(embedded)");
		return -1;
	}
	if (STP_EXT_COMPARTMENT && cmp_conf_check_netns(c, err, errlen) < 0)
		return -1;
	return 0;
}
