/*
 * udptunnel.c - stpify's UDP through a tunnel (SETUP_UDP_TUNNEL X'20',
 * docs/protocol.md 5.10; docs/stpify.md "UDP through a tunnel"): the
 * `tunnel` setting (STP_TUNNEL) names a remote stpd and the destinations
 * it leads to. A datagram (or connect()) of the program to one of them
 * gets, on its own socket, an association whose request is X'20' instead
 * of UDP ASSOCIATE (udpassoc.c makes it with libstp's handshake engine and
 * stp_handshake_tunnel, the request stp_tunnel_open sends): the proxy, the
 * local stpd, carries the datagrams through the remote stpd to that one
 * destination. This file holds the setting and the request.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sockaddr.h"
#include "shim/shim.h"

static struct {
	bool on;
	int transport; /* STP_TUNNEL_DTLS or STP_TUNNEL_TLS */
	char host[256];
	uint16_t port;
	char user[256], pass[256];
	struct stp_noproxy *dests; /* NULL: every proxied destination */
} tun;

/* [USER[:PASS]@]HOST:PORT (n bytes at s), HOST a name, an IPv4 or a
 * [bracketed] IPv6 address. 0, or -1. */
static int parse_authority(const char *s, size_t n)
{
	char buf[800], *host, *at, *colon, *end;

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	host = buf;
	if ((at = strrchr(buf, '@')) != NULL) {
		*at = '\0';
		host = at + 1;
		if ((colon = strchr(buf, ':')) != NULL) {
			*colon = '\0';
			if (!colon[1] || strlen(colon + 1) >= sizeof(tun.pass))
				return -1;
			strcpy(tun.pass, colon + 1);
		}
		if (!buf[0] || strlen(buf) >= sizeof(tun.user))
			return -1;
		strcpy(tun.user, buf);
	}
	if ((colon = strrchr(host, ':')) == NULL || colon == host)
		return -1;
	*colon = '\0';
	long port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 1 || port > 65535)
		return -1;
	size_t hl = strlen(host);
	if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
		host[hl - 1] = '\0';
		host++;
	}
	if (!host[0] || strlen(host) >= sizeof(tun.host))
		return -1;
	strcpy(tun.host, host);
	tun.port = (uint16_t)port;
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

int shim_tunnel_conf(const char *val, const char *where)
{
	const char *p = val, *sep;
	char list[1024];
	size_t n = 0;

	memset(tun.user, 0, sizeof(tun.user));
	memset(tun.pass, 0, sizeof(tun.pass));
	stp_noproxy_free(tun.dests);
	tun.dests = NULL;
	tun.on = false;
	tun.transport = STP_TUNNEL_DTLS;
	if (strncmp(p, "dtls://", 7) == 0) {
		p += 7;
	} else if (strncmp(p, "tls://", 6) == 0) {
		tun.transport = STP_TUNNEL_TLS;
		p += 6;
	} else if (strstr(p, "://") && strstr(p, "://") < p + strcspn(p, " \t")) {
		shim_log(SHIM_LOG_ERROR, "%s: tunnel: want dtls:// or tls://", where);
		return -1;
	}
	for (sep = p; *sep && !isspace((unsigned char)*sep); sep++)
		;
	if (parse_authority(p, (size_t)(sep - p)) < 0) {
		shim_log(SHIM_LOG_ERROR, "%s: tunnel: want [dtls|tls://][USER[:PASS]@]HOST:PORT",
			 where);
		return -1;
	}
	if (tun.user[0] && !tun.pass[0]) {
		const char *pw = getenv("STP_TUNNEL_PASSWORD");
		if (!pw || !*pw || strlen(pw) >= sizeof(tun.pass)) {
			shim_log(SHIM_LOG_ERROR, "%s: tunnel: user %s needs STP_TUNNEL_PASSWORD",
				 where, tun.user);
			return -1;
		}
		strcpy(tun.pass, pw);
	}
	/* the destinations: NO_PROXY's syntax, spaces or commas between them */
	for (p = sep; *p && n + 1 < sizeof(list); p++)
		list[n++] = isspace((unsigned char)*p) ? ',' : *p;
	list[n] = '\0';
	if (strspn(list, ",") != n && (tun.dests = stp_noproxy_new(list)) == NULL)
		return -1;
	tun.on = true;
	return 0;
}

bool shim_tunnel_on(void)
{
	return tun.on;
}

bool shim_tunnel_wants(const struct sockaddr *dst)
{
	char name[STP_NAME_MAX + 1];

	if (!tun.on || dst == NULL || (dst->sa_family != AF_INET && dst->sa_family != AF_INET6))
		return false;
	if (tun.dests == NULL)
		return true;
	if (fakedns_is_fake(dst)) /* a name the program looked up: the list's names */
		return fakedns_name(dst, name, sizeof(name)) && stp_noproxy_match(tun.dests, name);
	struct sockaddr_storage ss;
	memcpy(&ss, dst, sa_len(dst));
	sa_unmap(&ss);
	return stp_noproxy_match_addr(tun.dests, (struct sockaddr *)&ss);
}

int shim_tunnel_request(struct stp_handshake *h, const struct sockaddr *far, enum stp_err *err)
{
	char host[STP_NAME_MAX + 1];
	struct stp_tunnel_opts o = {
		.remote_host = tun.host,
		.remote_port = tun.port,
		.transport = tun.transport,
		.user = tun.user[0] ? tun.user : NULL,
		.password = tun.user[0] ? tun.pass : NULL,
		.far_host = host,
		.far_port = (uint16_t)sa_port(far),
	};
	/* a fake address: the name goes to the remote stpd, which resolves it */
	if (fakedns_is_fake(far)) {
		if (!fakedns_name(far, host, sizeof(host))) {
			*err = STP_ERR_TARGET_RESOLVE;
			return -1;
		}
	} else {
		struct sockaddr_storage ss;
		memcpy(&ss, far, sa_len(far));
		sa_unmap(&ss);
		const void *a = ss.ss_family == AF_INET ?
					(const void *)&((struct sockaddr_in *)&ss)->sin_addr :
					(const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
		if (!inet_ntop(ss.ss_family, a, host, sizeof(host))) {
			*err = STP_ERR_TARGET_FAMILY;
			return -1;
		}
	}
	return stp_handshake_tunnel(h, &o, err);
}

void shim_tunnel_describe(char *out, size_t cap)
{
	if (!tun.on) {
		snprintf(out, cap, "off");
		return;
	}
	snprintf(out, cap, "%s://%s%s%s:%u", tun.transport == STP_TUNNEL_TLS ? "tls" : "dtls",
		 tun.user, tun.user[0] ? "@" : "", tun.host, tun.port);
}
