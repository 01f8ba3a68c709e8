/*
 * fuzz_url.c - proxy URLs (src/client/url.c) with the ?options of the TLS
 * schemes (url_tls.c), as `stp --proxy`, STP_PROXY/ALL_PROXY and stpify's
 * config give them. Input: the URL (a NUL ends it early, as in a C string).
 *
 * Checks: 0 with STP_OK and a usable result (non-empty host, port 1-65535,
 * a key exactly when a cert) or -1 with a URL error; every string field
 * NUL-terminated inside its buffer; without credentials, the URL printed
 * by stp_proxy_str parses back to the same kind, TLS mode, host and port.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "stp/stp.h"

static void url_check_strings(const struct stp_proxy *p)
{
	FUZZ_CHECK(memchr(p->host, '\0', sizeof(p->host)) != NULL);
	FUZZ_CHECK(memchr(p->user, '\0', sizeof(p->user)) != NULL);
	FUZZ_CHECK(memchr(p->pass, '\0', sizeof(p->pass)) != NULL);
	FUZZ_CHECK(memchr(p->tls.sni, '\0', sizeof(p->tls.sni)) != NULL);
	FUZZ_CHECK(memchr(p->tls.ca, '\0', sizeof(p->tls.ca)) != NULL);
	FUZZ_CHECK(memchr(p->tls.cert, '\0', sizeof(p->tls.cert)) != NULL);
	FUZZ_CHECK(memchr(p->tls.key, '\0', sizeof(p->tls.key)) != NULL);
}

static int url_err_ok(enum stp_err e)
{
	return e == STP_ERR_URL_SCHEME || e == STP_ERR_URL_USERINFO || e == STP_ERR_URL_HOST ||
	       e == STP_ERR_URL_PORT || e == STP_ERR_URL_SYNTAX || e == STP_ERR_URL_OPTION;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *url = malloc(size + 1);
	struct stp_proxy *p = malloc(sizeof(*p)), *q = malloc(sizeof(*q));
	char str[2 * STP_NAME_MAX + 64];
	enum stp_err err = STP_OK;

	FUZZ_CHECK(url != NULL && p != NULL && q != NULL);
	memcpy(url, data, size);
	url[size] = '\0';
	int rc = stp_proxy_parse(p, url, &err);
	FUZZ_CHECK(rc == 0 || rc == -1);
	if (rc < 0) {
		FUZZ_CHECK(url_err_ok(err));
		goto out;
	}
	FUZZ_CHECK(err == STP_OK);
	url_check_strings(p);
	FUZZ_CHECK(p->host[0] != '\0' && p->port != 0);
	FUZZ_CHECK((p->tls.key[0] != '\0') == (p->tls.cert[0] != '\0'));
	if (p->tls.mode == STP_TLS_NONE)
		FUZZ_CHECK(!p->tls.insecure && !p->tls.udp_naked && p->tls.ca[0] == '\0' &&
			   p->tls.sni[0] == '\0' && p->tls.cert[0] == '\0');
	if (!p->has_auth)
		FUZZ_CHECK(p->user[0] == '\0' && p->pass[0] == '\0');
	else
		FUZZ_CHECK(p->user[0] != '\0');
	stp_proxy_str(p, str, sizeof(str));
	FUZZ_CHECK(memchr(str, '\0', sizeof(str)) != NULL);
	if (!p->has_auth) {
		FUZZ_CHECK(stp_proxy_parse(q, str, &err) == 0);
		FUZZ_CHECK(q->kind == p->kind && q->tls.mode == p->tls.mode);
		FUZZ_CHECK(strcmp(q->host, p->host) == 0 && q->port == p->port);
	}
out:
	free(q);
	free(p);
	free(url);
	return 0;
}
