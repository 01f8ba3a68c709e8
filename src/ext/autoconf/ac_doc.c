/*
 * ac_doc.c - one profile written out for clients: the X'F4' document
 * (lines, docs/protocol.md 5.5) and the PAC file (browsers, system proxy
 * settings). Both come from the same struct ac_profile, so the two forms
 * never disagree. Pure: no I/O, no allocation.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/sockaddr.h"
#include "ext/autoconf/ac.h"
#include "policy/rules.h"
#include "proto/autoconf.h"

static const char *const route_name[] = { "proxy", "direct" };
static const char *const method_name[] = { "none", "userpass", "tls" };
static const char *const creds_name[] = { "none", "netrc" };
static const char *const dns_name[] = { "remote", "local" };

bool ac_proxy_at(const struct stp_conf *c, const struct ac_profile *pr, size_t i, char *out,
		 size_t cap)
{
	if (pr->n_proxies > 0) {
		if (i >= pr->n_proxies)
			return false;
		snprintf(out, cap, "%s", pr->proxies[i]);
		return true;
	}
	if (i > 0 || c->n_listeners == 0)
		return false;
	sa_str((const struct sockaddr *)&c->listeners[0].addr, out, cap);
	return true;
}

/* ---- the X'F4' document ---- */

size_t ac_doc_build(uint8_t *dst, size_t cap, const struct stp_conf *c, const struct ac_profile *pr)
{
	char v[ACDOC_VALUE_MAX + 1];
	size_t at = acdoc_put_version(dst, cap);

#define PUT(k, val)                                                         \
	do {                                                                \
		if (at == 0 || (at = acdoc_put(dst, cap, at, k, val)) == 0) \
			return 0;                                           \
	} while (0)
	PUT("profile", pr->name);
	snprintf(v, sizeof(v), "%u", pr->refresh);
	PUT("refresh", v);
	for (size_t i = 0; ac_proxy_at(c, pr, i, v, sizeof(v)); i++)
		PUT("proxy", v);
	PUT("method", method_name[pr->method]);
	PUT("credentials", creds_name[pr->creds]);
	PUT("dns", dns_name[pr->dns]);
	PUT("default", route_name[pr->dflt]);
	for (size_t i = 0; i < pr->n_routes; i++) {
		snprintf(v, sizeof(v), "%s %s", pr->routes[i].proxy, pr->routes[i].dest);
		PUT("route", v);
	}
	for (size_t i = 0; i < pr->n_via; i++)
		PUT("via", pr->via[i]);
	for (size_t i = 0; i < pr->n_direct; i++)
		PUT("direct", pr->direct[i]);
	for (size_t i = 0; i < pr->n_ports; i++) {
		if (pr->ports[i].lo == pr->ports[i].hi)
			snprintf(v, sizeof(v), "%u", pr->ports[i].lo);
		else
			snprintf(v, sizeof(v), "%u-%u", pr->ports[i].lo, pr->ports[i].hi);
		PUT("direct-port", v);
	}
#undef PUT
	return at;
}

/* ---- the PAC file ---- */

struct pac_out {
	char *p;
	size_t cap, len;
	bool full;
};

static void pac_add(struct pac_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pac_add(struct pac_out *o, const char *fmt, ...)
{
	va_list ap;
	if (o->full)
		return;
	va_start(ap, fmt);
	int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->full = true;
	else
		o->len += (size_t)n;
}

/* A CIDR as the test the PAC runs on an address literal (never on a name:
 * isInNet would resolve it, and libstp never resolves for this either). */
static void pac_cidr(struct pac_out *o, const struct rule_cidr *c, const char *ret)
{
	char a[64];
	inet_ntop(c->family, c->addr, a, sizeof(a));
	if (c->family == AF_INET) {
		uint32_t m = c->prefix ? 0xFFFFFFFFu << (32 - c->prefix) : 0;
		pac_add(o, "\tif (v4 && isInNet(h, \"%s\", \"%u.%u.%u.%u\")) return \"%s\";\n", a,
			m >> 24, (m >> 16) & 255, (m >> 8) & 255, m & 255, ret);
	} else {
		pac_add(o,
			"\tif (v6 && typeof isInNetEx == \"function\" && isInNetEx(h, \"%s/%u\")) "
			"return \"%s\";\n",
			a, c->prefix, ret);
	}
}

/* One entry of via (ret: the proxies) or direct (ret: DIRECT). */
static void pac_entry(struct pac_out *o, const char *e, const char *ret)
{
	struct rule_cidr c;
	if (strcmp(e, "*") == 0) {
		pac_add(o, "\treturn \"%s\";\n", ret);
	} else if (rule_cidr_parse(&c, e) == 0) {
		pac_cidr(o, &c, ret);
	} else {
		/* "name" and ".name" both mean the name and every name under it
		 * (NO_PROXY as curl reads it). */
		const char *n = e[0] == '.' ? e + 1 : e;
		pac_add(o, "\tif (h == \"%s\" || dnsDomainIs(h, \".%s\")) return \"%s\";\n", n, n,
			ret);
	}
}

size_t ac_pac_build(char *dst, size_t cap, const struct stp_conf *c, const struct ac_profile *pr,
		    const struct sockaddr *client)
{
	struct pac_out o = { dst, cap, 0, false };
	char who[SA_STR_MAX], proxy[AC_ENTRY_MAX];
	char via[AC_PROXIES_MAX * (AC_ENTRY_MAX + 8)];
	struct pac_out v = { via, sizeof(via), 0, false };

	if (cap == 0)
		return 0;
	/* "SOCKS5 a; SOCKS5 b": the browser tries them in order. */
	for (size_t i = 0; ac_proxy_at(c, pr, i, proxy, sizeof(proxy)); i++)
		pac_add(&v, "%sSOCKS5 %s", i ? "; " : "", proxy);
	if (v.len == 0 || v.full)
		return 0;
	/* The client's address, not its port: the file is cached and reused. */
	const void *a = client->sa_family == AF_INET6 ?
				(const void *)&((const struct sockaddr_in6 *)client)->sin6_addr :
				(const void *)&((const struct sockaddr_in *)client)->sin_addr;
	if (!inet_ntop(client->sa_family, a, who, sizeof(who)))
		snprintf(who, sizeof(who), "?");
	pac_add(&o, "// stpd autoconfig: profile \"%s\" for %s; refresh %u s\n", pr->name, who,
		pr->refresh);
	pac_add(&o, "function FindProxyForURL(url, host) {\n");
	pac_add(&o, "\tvar h = host.toLowerCase();\n");
	pac_add(&o, "\tif (h.charAt(0) == \"[\") h = h.substring(1, h.length - 1);\n");
	pac_add(&o, "\tvar v4 = /^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$/.test(h);\n");
	pac_add(&o, "\tvar v6 = h.indexOf(\":\") >= 0;\n");
	for (size_t i = 0; i < pr->n_routes; i++) {
		char one[AC_ENTRY_MAX + 8];
		snprintf(one, sizeof(one), "SOCKS5 %s", pr->routes[i].proxy);
		pac_entry(&o, pr->routes[i].dest, one);
	}
	for (size_t i = 0; i < pr->n_via; i++)
		pac_entry(&o, pr->via[i], via);
	if (pr->n_ports > 0) {
		pac_add(&o,
			"\tvar m = /^[a-z0-9+.-]+:\\/\\/(\\[[^\\]]*\\]|[^\\/:?#]*)(:([0-9]+))?/i"
			".exec(url);\n");
		pac_add(&o, "\tvar port = m && m[3] ? parseInt(m[3], 10) : "
			    "(url.substring(0, 6).toLowerCase() == \"https:\" ? 443 : 80);\n");
		for (size_t i = 0; i < pr->n_ports; i++)
			pac_add(&o, "\tif (port >= %u && port <= %u) return \"DIRECT\";\n",
				pr->ports[i].lo, pr->ports[i].hi);
	}
	for (size_t i = 0; i < pr->n_direct; i++)
		pac_entry(&o, pr->direct[i], "DIRECT");
	pac_add(&o, "\treturn \"%s\";\n}\n", pr->dflt == AC_ROUTE_DIRECT ? "DIRECT" : via);
	return o.full ? 0 : o.len;
}
