/*
 * mx_req.c - see mx_req.h.
 */
#include "ext/mux/mx_req.h"

#include <arpa/inet.h>
#include <string.h>

void mx_req_header(struct mx_req *r, const uint8_t *name, size_t namelen,
		   const uint8_t *value, size_t valuelen)
{
	if (namelen == 7 && memcmp(name, ":method", 7) == 0) {
		r->is_connect = valuelen == 7 && memcmp(value, "CONNECT", 7) == 0;
	} else if (namelen == 10 && memcmp(name, ":authority", 10) == 0) {
		if (r->authlen || valuelen == 0 || valuelen > MX_AUTHORITY_MAX) {
			r->bad_authority = true;
			return;
		}
		memcpy(r->authority, value, valuelen);
		r->authority[valuelen] = '\0';
		r->authlen = valuelen;
	}
}

uint8_t mx_req_target(const struct mx_req *r, struct socks_addr *a)
{
	if (!r->is_connect || r->bad_authority || r->authlen == 0 ||
	    mx_authority_parse(r->authority, r->authlen, a) < 0)
		return SOCKS5_REP_ATYP_NOT_SUPPORTED;
	return SOCKS5_REP_SUCCEEDED;
}

/* RFC 3986 reg-name: unreserved / pct-encoded / sub-delims. '%' is let
 * through as is (a name is handed to the resolver, never decoded). */
static bool regname_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("-._~!$&'()*+,;=%", c) != NULL;
}

static int parse_port(const char *p, size_t len, uint16_t *port)
{
	unsigned long v = 0;
	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int mx_authority_parse(const char *p, size_t len, struct socks_addr *a)
{
	if (len == 0 || len > MX_AUTHORITY_MAX || memchr(p, '\0', len))
		return -1;
	const char *colon = memrchr(p, ':', len);
	if (!colon || colon == p)
		return -1;
	uint16_t port;
	if (parse_port(colon + 1, len - (size_t)(colon + 1 - p), &port) < 0)
		return -1;
	const char *host = p;
	size_t hl = (size_t)(colon - p);
	char buf[SOCKS_DOMAIN_MAX + 1];
	memset(a, 0, sizeof(*a));
	a->port = port;
	if (host[0] == '[') {
		/* An IP-literal: only IPv6 (no IPvFuture, no zone id). */
		if (hl < 4 || host[hl - 1] != ']' || hl - 2 >= sizeof(buf))
			return -1;
		memcpy(buf, host + 1, hl - 2);
		buf[hl - 2] = '\0';
		if (inet_pton(AF_INET6, buf, a->u.v6) != 1)
			return -1;
		a->atyp = SOCKS_ATYP_IPV6;
		return 0;
	}
	if (hl > SOCKS_DOMAIN_MAX)
		return -1;
	for (size_t i = 0; i < hl; i++)
		if (!regname_char((unsigned char)host[i]))
			return -1; /* also ':' of a bare IPv6 literal, brackets, '@' */
	memcpy(buf, host, hl);
	buf[hl] = '\0';
	if (inet_pton(AF_INET, buf, a->u.v4) == 1) {
		a->atyp = SOCKS_ATYP_IPV4;
		return 0;
	}
	a->atyp = SOCKS_ATYP_DOMAIN;
	a->namelen = (uint8_t)hl;
	memcpy(a->u.name, buf, hl + 1);
	return 0;
}
