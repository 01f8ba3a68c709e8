/*
 * mt_conf.c - see mt_conf.h.
 */
#include "ext/metrics/mt_conf.h"

#include <netinet/in.h>
#include <string.h>

#include "common/sockaddr.h"

static void k_http(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct mt_conf *m = data;
	conf_ext_addrs(p, s, m->http, NULL, &m->n_http, MT_HTTP_MAX);
}

static void k_allow(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct mt_conf *m = data;
	for (size_t i = 0; i < s->nargs; i++) {
		if (m->n_allow == MT_ALLOW_MAX) {
			conf_error(p, s->line, "at most %d 'allow' entries", MT_ALLOW_MAX);
			return;
		}
		if (rule_cidr_parse(&m->allow[m->n_allow], s->args[i]) < 0) {
			conf_error(p, s->line, "bad address or CIDR '%.64s' for 'allow'",
				   s->args[i]);
			continue;
		}
		m->n_allow++;
	}
}

static const struct conf_ext_key mt_keys[] = {
	{ "allow", 1, MT_ALLOW_MAX, false, k_allow },
	{ "http", 1, MT_HTTP_MAX, true, k_http },
};

static const struct conf_ext_section mt_section = {
	.name = "metrics",
	.what = "a metrics block",
	.keys = mt_keys,
	.n_keys = sizeof(mt_keys) / sizeof(mt_keys[0]),
	.settings_size = sizeof(struct mt_conf),
};

const struct conf_ext mt_conf_ext = {
	.name = "metrics",
	.section = &mt_section,
};

const struct mt_conf *mt_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &mt_conf_ext);
}

static bool loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_LOOPBACK(a))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
	}
	return false;
}

bool mt_conf_allowed(const struct mt_conf *m, const struct sockaddr *sa)
{
	if (!m || m->n_allow == 0)
		return loopback(sa);
	struct sockaddr_storage un;
	memcpy(&un, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						 : sizeof(struct sockaddr_in));
	sa_unmap(&un); /* ::ffff:a.b.c.d matches a.b.c.d/n */
	for (size_t i = 0; i < m->n_allow; i++)
		if (rule_cidr_match(&m->allow[i], (const struct sockaddr *)&un))
			return true;
	return false;
}
