/*
 * url_tls.c - the ?options of a TLS proxy URL (docs/client.md):
 *
 *   ca=FILE          PEM CA certificates to trust (default: the system store)
 *   cert=FILE        PEM client certificate (chain)
 *   key=FILE         its private key (default: the cert file)
 *   insecure=1       no certificate verification at all (never the default)
 *   sni=NAME         server name sent, and the name the certificate must carry
 *   udp-naked=1      UDP allowed (X'86': the UDP-Naked option is offered)
 *
 * Values are percent-decoded; a key given twice keeps the last value; an
 * unknown key or a bad value is STP_ERR_URL_OPTION.
 */
#include <ctype.h>
#include <string.h>

#include "client/client.h"

static int opt_bool(bool *out, const char *v)
{
	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
		*out = true;
	else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static int opt_path(char *out, size_t cap, const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n >= cap)
		return -1;
	memcpy(out, v, n + 1);
	return 0;
}

/* A DNS name (the certificate must carry it): letters, digits, '-', '.'. */
static int opt_name(char *out, size_t cap, const char *v)
{
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
			return -1;
	return opt_path(out, cap, v);
}

/* One key=value pair. */
static int opt_one(void *opts, const char *key, const char *v)
{
	struct stp_tls_opts *o = opts;

	if (strcmp(key, "ca") == 0)
		return opt_path(o->ca, sizeof(o->ca), v);
	if (strcmp(key, "cert") == 0)
		return opt_path(o->cert, sizeof(o->cert), v);
	if (strcmp(key, "key") == 0)
		return opt_path(o->key, sizeof(o->key), v);
	if (strcmp(key, "sni") == 0)
		return opt_name(o->sni, sizeof(o->sni), v);
	if (strcmp(key, "insecure") == 0)
		return opt_bool(&o->insecure, v);
	if (strcmp(key, "udp-naked") == 0)
		return opt_bool(&o->udp_naked, v);
	return -1;
}

int client_url_tls_query(struct stp_tls_opts *o, const char *q, enum stp_err *err)
{
	if (client_url_query(q, opt_one, o) < 0)
		goto bad;
	/* A key alone is useless; the key file defaults to the cert file,
	 * which may hold both. */
	if (o->key[0] != '\0' && o->cert[0] == '\0')
		goto bad;
	if (o->cert[0] != '\0' && o->key[0] == '\0')
		memcpy(o->key, o->cert, sizeof(o->key));
	return 0;
bad:
	if (err)
		*err = STP_ERR_URL_OPTION;
	return -1;
}
