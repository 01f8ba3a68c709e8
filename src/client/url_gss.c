/*
 * url_gss.c - the ?options of a GSS-API proxy URL (socks5+gssapi://,
 * socks5h+gssapi://; docs/client.md):
 *
 *   gss-service=NAME       the proxy's service: host-based "service@host",
 *                          a bare "service" (@ the proxy's host added), or a
 *                          Kerberos principal "service/host@REALM"
 *   gss-protection=LEVEL   none, integrity or confidentiality
 *   gss-mech=krb5|spnego
 *
 * Values are percent-decoded; a key given twice keeps the last value; an
 * unknown key or a bad value is STP_ERR_URL_OPTION.
 */
#include <ctype.h>
#include <string.h>

#include "client/client.h"

static int gss_service(char *out, size_t cap, const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n >= cap)
		return -1;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._@/", *p))
			return -1;
	memcpy(out, v, n + 1);
	return 0;
}

static int gss_one(void *opts, const char *key, const char *v)
{
	struct stp_gss_opts *o = opts;

	if (strcmp(key, "gss-service") == 0)
		return gss_service(o->service, sizeof(o->service), v);
	if (strcmp(key, "gss-protection") == 0) {
		if (strcmp(v, "none") == 0)
			o->level = STP_GSS_NONE;
		else if (strcmp(v, "integrity") == 0)
			o->level = STP_GSS_INTEGRITY;
		else if (strcmp(v, "confidentiality") == 0)
			o->level = STP_GSS_CONF;
		else
			return -1;
		return 0;
	}
	if (strcmp(key, "gss-mech") == 0) {
		if (strcmp(v, "krb5") == 0)
			o->spnego = false;
		else if (strcmp(v, "spnego") == 0)
			o->spnego = true;
		else
			return -1;
		return 0;
	}
	return -1;
}

int client_url_gss_query(struct stp_gss_opts *o, const char *q, enum stp_err *err)
{
	if (client_url_query(q, gss_one, o) < 0) {
		if (err)
			*err = STP_ERR_URL_OPTION;
		return -1;
	}
	return 0;
}

bool client_proxy_needs_conn(const struct stp_proxy *p)
{
	return p->tls.mode != STP_TLS_NONE || p->gss.on;
}
