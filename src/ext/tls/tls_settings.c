/*
 * tls_settings.c - the TLS module's view of the configuration (tls { },
 * auth { methods ssl }, listen { tls; require-tls }, client rules'
 * require-tls, parsed by tls_conf.c): the one place the rest of src/ext/tls
 * reads struct stp_conf.
 */
#include <string.h>

#include "ext/tls/tls_conf.h"
#include "ext/tls/tls_int.h"

void tls_settings_get(const struct stp_conf *c, const struct conf_listener *l,
		      const struct rule *r, struct tls_settings *out)
{
	const struct tls_conf *t = tls_conf_get(c);
	memset(out, 0, sizeof(*out));
	out->params.cert = t->cert;
	out->params.key = t->key;
	out->params.client_ca = t->client_ca;
	out->params.client_cert = t->client_cert == TLS_CLIENT_CERT_REQUIRE  ? TLS_CERT_REQUIRE :
				  t->client_cert == TLS_CLIENT_CERT_OPTIONAL ? TLS_CERT_OPTIONAL :
									       TLS_CERT_NONE;
	out->params.min_version = t->min_version == 13 ? 13 : 12;
	out->method_ssl = c->auth_methods & AUTH_BIT_SSL;
	out->cert_user = t->cert_user;
	out->subauth = t->subauth;
	out->udp_naked = t->udp_naked;
	out->listener_tls = tls_conf_listener_tls(l);
	out->require_tls = tls_conf_listener_require(l) || tls_conf_rule_require(r);
}
