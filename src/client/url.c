/*
 * url.c - proxy URLs (socks5://, socks5h://, socks4://, socks4a://, their
 * TLS forms socks5+tls:// ... and socks5s:// socks5hs://, the GSS-API
 * forms socks5+gssapi:// socks5h+gssapi://) and the
 * environment variables that carry them.
 *
 *   scheme "://" [ user [ ":" pass ] "@" ] host [ ":" port ] [ "/" ]
 *                [ "?" option *( "&" option ) ]        (TLS and GSS-API schemes)
 *
 * user and pass are percent-decoded; host is a name, an IPv4 address or an
 * IPv6 address in brackets; port defaults to 1080. The options are read by
 * url_tls.c and url_gss.c.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client.h"

static const struct {
	const char *name;
	enum stp_proxy_kind kind;
	enum stp_tls_mode tls;
	bool gss;
} url_schemes[] = {
	{ "socks5", STP_SOCKS5, STP_TLS_NONE, false },
	{ "socks5h", STP_SOCKS5H, STP_TLS_NONE, false },
	{ "socks4", STP_SOCKS4, STP_TLS_NONE, false },
	{ "socks4a", STP_SOCKS4A, STP_TLS_NONE, false },
	{ "socks5+tls", STP_SOCKS5, STP_TLS_WRAP, false },
	{ "socks5h+tls", STP_SOCKS5H, STP_TLS_WRAP, false },
	{ "socks4+tls", STP_SOCKS4, STP_TLS_WRAP, false },
	{ "socks4a+tls", STP_SOCKS4A, STP_TLS_WRAP, false },
	{ "socks5s", STP_SOCKS5, STP_TLS_X86, false },
	{ "socks5hs", STP_SOCKS5H, STP_TLS_X86, false },
	{ "socks5+gssapi", STP_SOCKS5, STP_TLS_NONE, true },
	{ "socks5h+gssapi", STP_SOCKS5H, STP_TLS_NONE, true },
};

static int url_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

static int url_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into out (cap bytes with the NUL). A bad escape,
 * an encoded NUL or an overflow is -1. */
int client_url_decode(char *out, size_t cap, const char *s, size_t n)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				return -1;
			hi = url_hexval(s[i + 1]);
			lo = url_hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
			if (c == 0)
				return -1;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

int client_url_query(const char *q, int (*one)(void *opts, const char *key, const char *val),
		     void *opts)
{
	while (*q != '\0') {
		size_t n = strcspn(q, "&");
		const char *eq = memchr(q, '=', n);
		char key[20], val[STP_PATH_MAX];

		if (eq == NULL || eq == q || (size_t)(eq - q) >= sizeof(key) ||
		    memchr(q, '#', n) != NULL)
			return -1;
		memcpy(key, q, (size_t)(eq - q));
		key[eq - q] = '\0';
		if (client_url_decode(val, sizeof(val), eq + 1, n - (size_t)(eq - q) - 1) < 0 ||
		    one(opts, key, val) < 0)
			return -1;
		q += n;
		if (*q == '&')
			q++;
	}
	return 0;
}

static int url_scheme(struct stp_proxy *out, const char *url, const char **rest)
{
	const char *sep = strstr(url, "://");

	if (sep == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(url_schemes) / sizeof(url_schemes[0]); i++) {
		size_t n = strlen(url_schemes[i].name);
		if ((size_t)(sep - url) == n && strncasecmp(url, url_schemes[i].name, n) == 0) {
			out->kind = url_schemes[i].kind;
			out->tls.mode = url_schemes[i].tls;
			out->gss.on = url_schemes[i].gss;
			*rest = sep + 3;
			return 0;
		}
	}
	return -1;
}

/* user[:pass] from s[0..n). */
static int url_userinfo(struct stp_proxy *out, const char *s, size_t n)
{
	const char *colon = memchr(s, ':', n);
	size_t ulen = colon ? (size_t)(colon - s) : n;

	if (ulen == 0 || client_url_decode(out->user, sizeof(out->user), s, ulen) < 0)
		return -1;
	if (colon && client_url_decode(out->pass, sizeof(out->pass), colon + 1, n - ulen - 1) < 0)
		return -1;
	out->has_auth = true;
	return 0;
}

static bool url_hostname_ok(const char *s, size_t n)
{
	if (n == 0 || n > STP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '-' && c != '.' && c != '_')
			return false;
	}
	return true;
}

/* host[:port] from s[0..n); a bracketed IPv6 literal is unwrapped. */
static int url_hostport(struct stp_proxy *out, const char *s, size_t n, enum stp_err *err)
{
	const char *host = s, *port = NULL;
	size_t hlen;

	if (n > 0 && s[0] == '[') {
		const char *close = memchr(s, ']', n);
		struct in6_addr a6;
		char tmp[INET6_ADDRSTRLEN + 1];
		if (close == NULL || close - s - 1 <= 0 || close - s - 1 >= (long)sizeof(tmp))
			return url_fail(err, STP_ERR_URL_HOST);
		hlen = (size_t)(close - s - 1);
		memcpy(tmp, s + 1, hlen);
		tmp[hlen] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return url_fail(err, STP_ERR_URL_HOST);
		host = s + 1;
		if ((size_t)(close - s + 1) < n) {
			if (close[1] != ':')
				return url_fail(err, STP_ERR_URL_HOST);
			port = close + 2;
		}
	} else {
		const char *colon = memchr(s, ':', n);
		hlen = colon ? (size_t)(colon - s) : n;
		if (colon && memchr(colon + 1, ':', n - hlen - 1) != NULL)
			return url_fail(err, STP_ERR_URL_HOST); /* IPv6 without brackets */
		if (!url_hostname_ok(s, hlen))
			return url_fail(err, STP_ERR_URL_HOST);
		if (colon)
			port = colon + 1;
	}
	memcpy(out->host, host, hlen);
	out->host[hlen] = '\0';
	out->port = STP_DEFAULT_PORT;
	if (port != NULL) {
		size_t plen = (size_t)(s + n - port);
		unsigned long v = 0;
		if (plen == 0 || plen > 5)
			return url_fail(err, STP_ERR_URL_PORT);
		for (size_t i = 0; i < plen; i++) {
			if (!isdigit((unsigned char)port[i]))
				return url_fail(err, STP_ERR_URL_PORT);
			v = v * 10 + (unsigned long)(port[i] - '0');
		}
		if (v == 0 || v > 65535)
			return url_fail(err, STP_ERR_URL_PORT);
		out->port = (uint16_t)v;
	}
	return 0;
}

int stp_proxy_parse(struct stp_proxy *out, const char *url, enum stp_err *err)
{
	const char *auth, *end, *at;
	size_t alen;

	memset(out, 0, sizeof(*out));
	if (url == NULL || url_scheme(out, url, &auth) < 0)
		return url_fail(err, STP_ERR_URL_SCHEME);
	alen = strcspn(auth, "/?#");
	end = auth + alen;
	/* Only a bare trailing slash may follow: a proxy URL has no path.
	 * TLS schemes also take ?options. */
	const char *query = *end == '/' ? end + 1 : end;
	if (out->gss.on)
		out->gss.level = STP_GSS_CONF;
	if (out->tls.mode != STP_TLS_NONE && *query == '?') {
		if (client_url_tls_query(&out->tls, query + 1, err) < 0)
			return -1;
	} else if (out->gss.on && *query == '?') {
		if (client_url_gss_query(&out->gss, query + 1, err) < 0)
			return -1;
	} else if (*end != '\0' && strcmp(end, "/") != 0) {
		return url_fail(err, STP_ERR_URL_SYNTAX);
	}
	/* The last '@' ends the userinfo, so an unescaped '@' in a password
	 * still works, as in browsers. */
	at = NULL;
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	if (at != NULL) {
		if (url_userinfo(out, auth, (size_t)(at - auth)) < 0)
			return url_fail(err, STP_ERR_URL_USERINFO);
		alen -= (size_t)(at + 1 - auth);
		auth = at + 1;
	}
	if (url_hostport(out, auth, alen, err) < 0)
		return -1;
	if (err)
		*err = STP_OK;
	return 0;
}

int stp_proxy_from_env(struct stp_proxy *out, enum stp_err *err)
{
	static const char *const vars[] = { "STP_PROXY", "ALL_PROXY", "all_proxy" };

	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
		const char *v = getenv(vars[i]);
		if (v != NULL && *v != '\0')
			return stp_proxy_parse(out, v, err);
	}
	memset(out, 0, sizeof(*out));
	return url_fail(err, STP_ERR_NO_PROXY);
}

const char *stp_proxy_str(const struct stp_proxy *p, char *out, size_t cap)
{
	const char *scheme = "socks5";
	bool v6 = strchr(p->host, ':') != NULL;

	for (size_t i = 0; i < sizeof(url_schemes) / sizeof(url_schemes[0]); i++)
		if (url_schemes[i].kind == p->kind && url_schemes[i].tls == p->tls.mode &&
		    url_schemes[i].gss == p->gss.on)
			scheme = url_schemes[i].name;
	/* The user name is shown raw: this is for humans, not for re-parsing. */
	snprintf(out, cap, "%s://%s%s%s%s%s:%u", scheme, p->has_auth ? p->user : "",
		 p->has_auth ? "@" : "", v6 ? "[" : "", p->host, v6 ? "]" : "", p->port);
	return out;
}

bool stp_proxy_remote_dns(const struct stp_proxy *p)
{
	return p->kind == STP_SOCKS5H || p->kind == STP_SOCKS4A;
}
