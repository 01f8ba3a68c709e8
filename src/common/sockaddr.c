/*
 * sockaddr.c - see sockaddr.h.
 */
#include "common/sockaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sa_from_socks(struct sockaddr_storage *out, socklen_t *len, const struct socks_addr *a)
{
	memset(out, 0, sizeof(*out));
	if (a->atyp == SOCKS_ATYP_IPV4) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)out;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(a->port);
		memcpy(&s4->sin_addr, a->u.v4, 4);
		*len = sizeof(*s4);
		return 0;
	}
	if (a->atyp == SOCKS_ATYP_IPV6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(a->port);
		memcpy(&s6->sin6_addr, a->u.v6, 16);
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

int sa_to_socks(struct socks_addr *out, const struct sockaddr *sa)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		out->atyp = SOCKS_ATYP_IPV4;
		memcpy(out->u.v4, &s4->sin_addr, 4);
		out->port = ntohs(s4->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		out->port = ntohs(s6->sin6_port);
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			out->atyp = SOCKS_ATYP_IPV4;
			memcpy(out->u.v4, s6->sin6_addr.s6_addr + 12, 4);
		} else {
			out->atyp = SOCKS_ATYP_IPV6;
			memcpy(out->u.v6, &s6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

const char *sa_str(const struct sockaddr *sa, char *out, size_t cap)
{
	char host[INET6_ADDRSTRLEN];
	if (sa == NULL) {
		snprintf(out, cap, "-");
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		snprintf(out, cap, "%s:%u", host, ntohs(s4->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		snprintf(out, cap, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		snprintf(out, cap, "(family %d)", sa->sa_family);
	}
	return out;
}

const char *socks_addr_str(const struct socks_addr *a, char *out, size_t cap)
{
	if (a->atyp == SOCKS_ATYP_DOMAIN) {
		/* Names are client input: print only safe characters. */
		char safe[SOCKS_DOMAIN_MAX + 1];
		size_t i;
		for (i = 0; i < a->namelen && a->u.name[i]; i++) {
			unsigned char c = (unsigned char)a->u.name[i];
			safe[i] = (c > 0x20 && c < 0x7f) ? (char)c : '?';
		}
		safe[i] = '\0';
		snprintf(out, cap, "%s:%u", safe, a->port);
		return out;
	}
	struct sockaddr_storage ss;
	socklen_t len;
	if (sa_from_socks(&ss, &len, a) < 0) {
		snprintf(out, cap, "(atyp %u)", a->atyp);
		return out;
	}
	return sa_str((struct sockaddr *)&ss, out, cap);
}

int sa_parse(struct sockaddr_storage *out, socklen_t *len, const char *text, int default_port)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port = NULL;
	size_t hl;

	memset(out, 0, sizeof(*out));
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (!end)
			return -1;
		hl = (size_t)(end - text - 1);
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, text + 1, hl);
		host[hl] = '\0';
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -1;
	} else {
		const char *colon = strrchr(text, ':');
		/* More than one colon without brackets: a bare IPv6 address. */
		if (colon && strchr(text, ':') == colon) {
			hl = (size_t)(colon - text);
			port = colon + 1;
		} else {
			hl = strlen(text);
		}
		if (hl >= sizeof(host))
			return -1;
		memcpy(host, text, hl);
		host[hl] = '\0';
	}
	long p = default_port;
	if (port) {
		char *e;
		p = strtol(port, &e, 10);
		if (*port == '\0' || *e != '\0')
			return -1;
	}
	if (p < 0 || p > 65535)
		return -1;
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)p);
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

socklen_t sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

unsigned sa_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

void sa_set_port(struct sockaddr *sa, unsigned port)
{
	if (sa->sa_family == AF_INET)
		((struct sockaddr_in *)sa)->sin_port = htons((uint16_t)port);
	else if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)sa)->sin6_port = htons((uint16_t)port);
}

void sa_unmap(struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
		return;
	struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = s6->sin6_port };
	memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &s4, sizeof(s4));
}

bool sa_equal_addr(const struct sockaddr *a, const struct sockaddr *b)
{
	struct socks_addr x, y;
	if (sa_to_socks(&x, a) < 0 || sa_to_socks(&y, b) < 0 || x.atyp != y.atyp)
		return false;
	return x.atyp == SOCKS_ATYP_IPV4 ? memcmp(x.u.v4, y.u.v4, 4) == 0
					 : memcmp(x.u.v6, y.u.v6, 16) == 0;
}

bool sa_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	return sa_equal_addr(a, b) && sa_port(a) == sa_port(b);
}
