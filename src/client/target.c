/*
 * target.c - what the application asked for (a name, a literal, a
 * sockaddr) turned into the wire address the proxy kind wants, and the
 * proxy's wire addresses turned back into struct stp_addr.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "client/client.h"
#include "common/sockaddr.h"

bool client_literal_parse(struct sockaddr_storage *out, socklen_t *len, const char *host,
		       uint16_t port)
{
	char tmp[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(host);
	struct sockaddr_in *s4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;

	memset(out, 0, sizeof(*out));
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']' && n - 2 < sizeof(tmp)) {
		memcpy(tmp, host + 1, n - 2);
		tmp[n - 2] = '\0';
		host = tmp;
	}
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*len = sizeof(*s4);
		return true;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*len = sizeof(*s6);
		return true;
	}
	return false;
}

/* Blocking getaddrinfo for socks5:// and socks4:// (SOCKS4 wants IPv4). */
static int target_resolve(struct socks_addr *out, const char *host, uint16_t port, bool v4only)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	int rc = -1;

	hints.ai_family = v4only ? AF_INET : AF_UNSPEC;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return -1;
	for (struct addrinfo *ai = res; ai != NULL && rc < 0; ai = ai->ai_next)
		if (sa_to_socks(out, ai->ai_addr) == 0)
			rc = 0;
	freeaddrinfo(res);
	out->port = port;
	return rc;
}

static int target_name(struct socks_addr *out, const struct stp_proxy *p, const char *host,
		       uint16_t port, enum stp_err *err)
{
	struct sockaddr_storage ss;
	socklen_t len;
	size_t n = strlen(host);

	if (client_literal_parse(&ss, &len, host, port))
		return sa_to_socks(out, (struct sockaddr *)&ss);
	if (n == 0 || n > SOCKS_DOMAIN_MAX) {
		*err = STP_ERR_TARGET_NAME;
		return -1;
	}
	if (stp_proxy_remote_dns(p)) {
		memset(out, 0, sizeof(*out));
		out->atyp = SOCKS_ATYP_DOMAIN;
		out->namelen = (uint8_t)n;
		memcpy(out->u.name, host, n + 1);
		out->port = port;
		return 0;
	}
	if (target_resolve(out, host, port, p->kind == STP_SOCKS4) < 0) {
		*err = STP_ERR_TARGET_RESOLVE;
		return -1;
	}
	return 0;
}

int client_target_encode(struct socks_addr *out, const struct stp_proxy *p, const char *host,
		      uint16_t port, const struct sockaddr *sa, enum stp_err *err)
{
	bool socks4 = p->kind == STP_SOCKS4 || p->kind == STP_SOCKS4A;

	*err = STP_OK;
	if (sa != NULL) {
		if (sa_to_socks(out, sa) < 0)
			*err = STP_ERR_TARGET_FAMILY;
	} else if (host == NULL) {
		/* BIND and UDP ASSOCIATE may not know the other side. */
		memset(out, 0, sizeof(*out));
		out->atyp = SOCKS_ATYP_IPV4;
		out->port = port;
	} else if (target_name(out, p, host, port, err) < 0 && *err == STP_OK) {
		*err = STP_ERR_TARGET_FAMILY;
	}
	if (*err == STP_OK && socks4 && out->atyp == SOCKS_ATYP_IPV6)
		*err = STP_ERR_TARGET_FAMILY;
	return *err == STP_OK ? 0 : -1;
}

void client_addr_from_socks(struct stp_addr *out, const struct socks_addr *a)
{
	memset(out, 0, sizeof(*out));
	out->port = a->port;
	if (a->atyp == SOCKS_ATYP_DOMAIN) {
		memcpy(out->name, a->u.name, (size_t)a->namelen + 1);
		return;
	}
	if (sa_from_socks(&out->sa, &out->salen, a) < 0)
		out->salen = 0;
}

bool client_addr_unspecified(const struct stp_addr *a)
{
	if (a->salen == 0)
		return false;
	if (a->sa.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (a->sa.ss_family == AF_INET6)
		return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
	return false;
}

const char *stp_addr_str(const struct stp_addr *a, char *out, size_t cap)
{
	if (a->salen > 0)
		return sa_str((const struct sockaddr *)&a->sa, out, cap);
	snprintf(out, cap, "%s:%u", a->name[0] ? a->name : "-", a->port);
	return out;
}
