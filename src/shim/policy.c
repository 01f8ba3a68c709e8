/*
 * policy.c - stpify's configuration (environment and --config file) and
 * the bypass decisions: which targets go direct, which through the proxy.
 *
 * Precedence, lowest first: the environment (STP_PROXY, ALL_PROXY,
 * NO_PROXY, STP_LOG, ...), then the file named by STPIFY_CONFIG, then the
 * launcher's own flags (STPIFY_PROXY, STPIFY_LOG).
 *
 * Always direct: non-INET sockets, the proxy itself, and loopback unless
 * proxy_loopback is on. Fake-DNS addresses always go through the proxy.
 *
 * Auto-configuration (docs/stpify.md): the launcher fetches the proxy's
 * configuration (CMD X'F4', cached by libstp) and hands its document over
 * in STPIFY_AUTOCONF. It is applied after STP_PROXY and before every other
 * setting (explicit settings win): the proxy it names, socks5h or socks5
 * by its DNS handling, netrc credentials; and then its via / direct lists
 * and default decide what goes direct, loopback included. NO_PROXY still
 * sends what it names direct.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/sockaddr.h"
#include "shim/shim.h"

struct shim_conf shim_conf = {
	.log_level = SHIM_LOG_ERROR,
	.remote_dns = true,
	.timeout_ms = 30000,
};

void shim_log(int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (level > shim_conf.log_level)
		return;
	memcpy(line, "stpify: ", 8);
	va_start(ap, fmt);
	n = vsnprintf(line + 8, sizeof(line) - 9, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	n = n > (int)sizeof(line) - 10 ? (int)sizeof(line) - 10 : n;
	line[8 + n] = '\n';
	/* One syscall per line: threads never interleave, and no hook runs. */
	(void)!syscall(SYS_write, 2, line, (size_t)(8 + n + 1));
}

static bool conf_bool(const char *v)
{
	return v != NULL && (strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 ||
			     strcasecmp(v, "on") == 0 || strcasecmp(v, "true") == 0);
}

static int conf_level(const char *v)
{
	if (strcasecmp(v, "debug") == 0)
		return SHIM_LOG_DEBUG;
	if (strcasecmp(v, "info") == 0)
		return SHIM_LOG_INFO;
	return SHIM_LOG_ERROR;
}

static void conf_set_proxy(const char *url, const char *where)
{
	enum stp_err err;

	if (stp_proxy_parse(&shim_conf.proxy, url, &err) < 0) {
		shim_log(SHIM_LOG_ERROR, "%s: %s", where, stp_strerror(err));
		shim_conf.have_proxy = false;
		return;
	}
	shim_conf.have_proxy = true;
}

static int conf_fake4(const char *v)
{
	char buf[64];
	const char *slash = strchr(v, '/');
	struct in_addr a;
	int bits;

	if (slash == NULL || (size_t)(slash - v) >= sizeof(buf))
		return -1;
	memcpy(buf, v, (size_t)(slash - v));
	buf[slash - v] = '\0';
	bits = atoi(slash + 1);
	if (inet_pton(AF_INET, buf, &a) != 1 || bits < 1 || bits > 24)
		return -1;
	shim_conf.fake4_mask = 0xffffffffu << (32 - bits);
	shim_conf.fake4_net = ntohl(a.s_addr) & shim_conf.fake4_mask;
	return 0;
}

static int conf_fake6(const char *v)
{
	char buf[80];
	const char *slash = strchr(v, '/');
	int bits;

	if (slash == NULL || (size_t)(slash - v) >= sizeof(buf))
		return -1;
	memcpy(buf, v, (size_t)(slash - v));
	buf[slash - v] = '\0';
	bits = atoi(slash + 1);
	if (inet_pton(AF_INET6, buf, shim_conf.fake6_net) != 1 || bits < 8 || bits > 96)
		return -1;
	shim_conf.fake6_prefix = bits;
	return 0;
}

/* One setting, from the environment or a config line. */
static void conf_apply(const char *key, const char *val, const char *where)
{
	if (strcmp(key, "proxy") == 0) {
		conf_set_proxy(val, where);
	} else if (strcmp(key, "no_proxy") == 0) {
		stp_noproxy_free(shim_conf.noproxy);
		shim_conf.noproxy = stp_noproxy_new(val);
	} else if (strcmp(key, "log") == 0) {
		shim_conf.log_level = conf_level(val);
	} else if (strcmp(key, "bind") == 0) {
		shim_conf.bind = conf_bool(val);
	} else if (strcmp(key, "udp_transparent") == 0) {
		shim_conf.udp_transparent = strcasecmp(val, "auto") == 0 ? SHIM_TP_AUTO :
					    conf_bool(val)              ? SHIM_TP_YES :
									  SHIM_TP_NO;
	} else if (strcmp(key, "tunnel") == 0) {
		shim_tunnel_conf(val, where);
	} else if (strcmp(key, "serve") == 0) {
		shim_conf.serve = conf_bool(val);
	} else if (strcmp(key, "proxy_loopback") == 0) {
		shim_conf.proxy_loopback = conf_bool(val);
	} else if (strcmp(key, "dns") == 0) {
		shim_conf.remote_dns = strcasecmp(val, "local") != 0;
	} else if (strcmp(key, "timeout") == 0) {
		int s = atoi(val);
		shim_conf.timeout_ms = s > 0 ? s * 1000 : shim_conf.timeout_ms;
	} else if (strcmp(key, "fake_net") == 0) {
		if (conf_fake4(val) < 0)
			shim_log(SHIM_LOG_ERROR, "%s: bad fake_net '%s' (want A.B.C.D/1..24)",
				 where, val);
	} else if (strcmp(key, "fake_net6") == 0) {
		if (conf_fake6(val) < 0)
			shim_log(SHIM_LOG_ERROR, "%s: bad fake_net6 '%s' (want V6/8..96)",
				 where, val);
	} else {
		shim_log(SHIM_LOG_ERROR, "%s: unknown key '%s'", where, key);
	}
}

static void conf_env(const char *var, const char *key)
{
	const char *v = getenv(var);

	if (v != NULL && *v != '\0')
		conf_apply(key, v, var);
}

/* "key value" lines; '#' starts a comment. Errors as file:line. */
static void conf_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char line[1024], where[300];
	int lineno = 0;

	if (f == NULL) {
		shim_log(SHIM_LOG_ERROR, "%s: %s", path, strerror(errno));
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p = line, *key, *val, *end;
		lineno++;
		if ((end = strchr(p, '#')) != NULL)
			*end = '\0';
		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			continue;
		key = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (*p)
			*p++ = '\0';
		while (isspace((unsigned char)*p))
			p++;
		val = p;
		end = val + strlen(val);
		while (end > val && isspace((unsigned char)end[-1]))
			*--end = '\0';
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		if (*val == '\0')
			shim_log(SHIM_LOG_ERROR, "%s: '%s' needs a value", where, key);
		else
			conf_apply(key, val, where);
	}
	fclose(f);
}

/* A proxy's addresses, once: a numeric host needs no lookup; a name is
 * resolved here with the real getaddrinfo (the proxy's name is ours to
 * resolve, the application's names are not). Appended to proxy_sa. */
static void conf_proxy_addrs_of(const struct stp_proxy *p)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char port[8];

	snprintf(port, sizeof(port), "%u", p->port);
	if (shim_real.getaddrinfo(p->host, port, &hints, &res) != 0) {
		shim_log(SHIM_LOG_ERROR, "cannot resolve the proxy %s", p->host);
		return;
	}
	for (struct addrinfo *ai = res; ai && shim_conf.proxy_naddr < SHIM_PROXY_ADDRS;
	     ai = ai->ai_next) {
		int i = shim_conf.proxy_naddr++;
		memcpy(&shim_conf.proxy_sa[i], ai->ai_addr, ai->ai_addrlen);
		shim_conf.proxy_salen[i] = ai->ai_addrlen;
	}
	shim_real.freeaddrinfo(res);
}

/* The proxy's addresses, then those of the other proxies the served
 * configuration lists, in its order: connect() tries them in turn, so a
 * first proxy that does not answer fails over to the next (as a PAC's
 * "SOCKS5 a; SOCKS5 b" does in a browser). */
static void conf_proxy_addrs(void)
{
	struct stp_proxy alt;

	conf_proxy_addrs_of(&shim_conf.proxy);
	/* Only while the proxy is the served one (a --proxy or config file
	 * proxy wins, and has no alternates). */
	alt = shim_conf.proxy;
	if (shim_conf.autoconf == NULL || stp_autoconf_proxy_at(shim_conf.autoconf, 0, &alt) < 0 ||
	    alt.port != shim_conf.proxy.port || strcmp(alt.host, shim_conf.proxy.host) != 0)
		return;
	for (size_t i = 1;; i++) {
		alt = shim_conf.proxy;
		if (stp_autoconf_proxy_at(shim_conf.autoconf, i, &alt) < 0)
			break;
		conf_proxy_addrs_of(&alt);
	}
}

static void conf_autoconf(void)
{
	const char *doc = getenv("STPIFY_AUTOCONF");
	enum stp_err err;
	struct stp_proxy asked = shim_conf.proxy;

	if (doc == NULL || *doc == '\0' || !shim_conf.have_proxy)
		return;
	shim_conf.autoconf = stp_autoconf_parse(doc, strlen(doc), &err);
	if (shim_conf.autoconf == NULL ||
	    stp_autoconf_apply(shim_conf.autoconf, &shim_conf.proxy, &err) < 0) {
		shim_log(SHIM_LOG_ERROR, "STPIFY_AUTOCONF: %s", stp_strerror(err));
		stp_autoconf_free(shim_conf.autoconf);
		shim_conf.autoconf = NULL;
		return;
	}
	shim_conf.remote_dns = stp_autoconf_remote_dns(shim_conf.autoconf);
	shim_ac_init(shim_conf.autoconf, &asked);
	shim_log(SHIM_LOG_INFO, "autoconfig: profile %s",
		 stp_autoconf_profile(shim_conf.autoconf));
}

void shim_conf_load(void)
{
	const char *file = getenv("STPIFY_CONFIG");
	enum stp_err err;

	conf_fake4("240.0.0.0/4");
	conf_fake6("fd73:7470:6966::/64");
	if (stp_proxy_from_env(&shim_conf.proxy, &err) == 0)
		shim_conf.have_proxy = true;
	else if (err != STP_ERR_NO_PROXY)
		shim_log(SHIM_LOG_ERROR, "STP_PROXY/ALL_PROXY: %s", stp_strerror(err));
	shim_conf.noproxy = stp_noproxy_from_env();
	conf_autoconf();
	conf_env("STP_LOG", "log");
	conf_env("STP_BIND", "bind");
	conf_env("STP_SERVE", "serve");
	conf_env("STP_PROXY_LOOPBACK", "proxy_loopback");
	conf_env("STP_DNS", "dns");
	conf_env("STP_TIMEOUT", "timeout");
	conf_env("STP_FAKE_NET", "fake_net");
	conf_env("STP_FAKE_NET6", "fake_net6");
	conf_env("STP_UDP_TRANSPARENT", "udp_transparent");
	conf_env("STP_TUNNEL", "tunnel");
	if (file != NULL && *file != '\0')
		conf_file(file);
	conf_env("STPIFY_PROXY", "proxy");
	conf_env("STPIFY_LOG", "log");
	if (!shim_conf.have_proxy) {
		shim_log(SHIM_LOG_ERROR, "no proxy configured: everything goes direct");
		return;
	}
	conf_proxy_addrs();
	char url[600], tunnel[600];
	shim_tunnel_describe(tunnel, sizeof(tunnel));
	shim_log(SHIM_LOG_INFO, "proxy %s, loopback %s, dns %s, bind %s, udp %s, tunnel %s",
		 stp_proxy_str(&shim_conf.proxy, url, sizeof(url)),
		 shim_conf.proxy_loopback ? "proxied" : "direct",
		 shim_conf.remote_dns ? "through the proxy" : "local",
		 shim_conf.bind ? "on" : "off",
		 shim_conf.udp_transparent == SHIM_TP_YES  ? "transparent first" :
		 shim_conf.udp_transparent == SHIM_TP_AUTO ? "transparent if advertised" :
							     "associate",
		 tunnel);
}

static bool policy_is_proxy(const struct sockaddr *sa)
{
	for (int i = 0; i < shim_conf.proxy_naddr; i++)
		if (sa_equal((const struct sockaddr *)&shim_conf.proxy_sa[i], sa))
			return true;
	return false;
}

static bool policy_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
	if (IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr))
		return true;
	return IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) && s6->sin6_addr.s6_addr[12] == 127;
}

bool shim_policy_bypass_sa(const struct sockaddr *sa)
{
	if (sa == NULL || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return true;
	if (!shim_conf.have_proxy || shim_conf.proxy_naddr == 0)
		return true;
	if (fakedns_is_fake(sa))
		return false;
	if (policy_is_proxy(sa))
		return true;
	if (shim_conf.noproxy != NULL && stp_noproxy_match_addr(shim_conf.noproxy, sa))
		return true;
	const struct stp_autoconf *ac = shim_ac_current();
	if (ac != NULL)
		return stp_autoconf_direct_addr(ac, sa);
	if (policy_loopback(sa) && !shim_conf.proxy_loopback)
		return true;
	return shim_conf.noproxy != NULL && stp_noproxy_match_addr(shim_conf.noproxy, sa);
}

static bool policy_localhost(const char *name)
{
	static const char *const local[] = { "localhost", "ip6-localhost", "ip6-loopback",
					     "localhost.localdomain" };
	char self[256];
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		if (strcasecmp(name, local[i]) == 0)
			return true;
	if (n > 10 && strcasecmp(name + n - 10, ".localhost") == 0)
		return true;
	/* The machine's own name is in /etc/hosts, not in the proxy's DNS. */
	return gethostname(self, sizeof(self)) == 0 && strcasecmp(name, self) == 0;
}

bool shim_policy_bypass_name(const char *name)
{
	if (!shim_conf.have_proxy || !shim_conf.remote_dns || shim_conf.proxy_naddr == 0)
		return true;
	if (policy_localhost(name))
		return true;
	if (shim_conf.noproxy != NULL && stp_noproxy_match(shim_conf.noproxy, name))
		return true;
	const struct stp_autoconf *ac = shim_ac_current();
	return ac != NULL && stp_autoconf_direct(ac, name, 0);
}

/* sa as a socket of family (v6only: with IPV6_V6ONLY) connects to it: 0
 * when that socket reaches it, 1 when only a dual-stack IPv6 socket does
 * (*out then in AF_INET6 form, IPv4 mapped). */
static int policy_addr_for(const struct sockaddr *sa, int family, bool v6only,
			   struct sockaddr_storage *out, socklen_t *len)
{
	if (shim_sa_to_family(sa, family, out, len) == 0) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)out;
		if (!(v6only && family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)))
			return 0;
	}
	shim_sa_to_family(sa, AF_INET6, out, len); /* never fails: INET only */
	return 1;
}

int shim_policy_proxy_addr_at(int family, bool v6only, int nth, struct sockaddr_storage *out,
			      socklen_t *len)
{
	int k = 0;

	/* Same family first, in the resolver's order; then the others. */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < shim_conf.proxy_naddr; i++) {
			const struct sockaddr *sa = (const struct sockaddr *)&shim_conf.proxy_sa[i];
			if ((sa->sa_family == family) == (pass == 0) && k++ == nth)
				return policy_addr_for(sa, family, v6only, out, len);
		}
	errno = EAFNOSUPPORT;
	return -1;
}

int shim_policy_proxy_addr(int family, bool v6only, struct sockaddr_storage *out,
			   socklen_t *len)
{
	int r;

	for (int i = 0; (r = shim_policy_proxy_addr_at(family, v6only, i, out, len)) >= 0; i++)
		if (r == 0)
			return 0;
	return -1; /* EAFNOSUPPORT */
}

void shim_policy_proxy_for_name(struct stp_proxy *out)
{
	*out = shim_conf.proxy;
	/* A fake address stands for a name only the proxy can resolve. */
	if (out->kind == STP_SOCKS5)
		out->kind = STP_SOCKS5H;
	else if (out->kind == STP_SOCKS4)
		out->kind = STP_SOCKS4A;
}
