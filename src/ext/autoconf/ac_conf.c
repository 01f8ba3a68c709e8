/*
 * ac_conf.c - the autoconfig keys of stpd.conf (ac_conf.h), registered
 * with the config registry: the core's parser knows them only through it.
 *
 * A section key takes the statement's values only, so profiles are written
 * as a run of keys: `profile NAME` starts one, and the profile keys after
 * it (in this block or a later autoconfig block) belong to it.
 */
#include "ext/autoconf/ac.h"
#include "ext/autoconf/ac_conf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sockaddr.h"
#include "proto/autoconf.h"

static struct ac_conf *settings(void *data)
{
	return data;
}

/* The profile keys write into the last `profile`; none yet is an error. */
static struct ac_profile *current(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct ac_conf *ac = settings(data);
	if (ac->n_profiles == 0) {
		conf_error(p, s->line, "'%s' needs a 'profile NAME' before it", s->key);
		return NULL;
	}
	return &ac->profiles[ac->n_profiles - 1];
}

/* Keys a profile may set once: a bit each. */
static bool once_in_profile(struct conf_parser *p, const struct conf_ext_stmt *s,
			    struct ac_profile *pr, unsigned bit)
{
	if (pr->seen & bit) {
		conf_error(p, s->line, "duplicate '%s' in profile '%s'", s->key, pr->name);
		return false;
	}
	pr->seen |= bit;
	return true;
}

static bool name_ok(const char *v)
{
	size_t n = strlen(v);
	if (n == 0 || n >= AC_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(v[i] == '-' || v[i] == '_' || v[i] == '.' || (v[i] >= 'a' && v[i] <= 'z') ||
		      (v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= '0' && v[i] <= '9')))
			return false;
	return true;
}

static void k_profile(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct ac_conf *ac = settings(data);
	const char *v = s->args[0];

	if (!name_ok(v)) {
		conf_error(p, s->line, "bad profile name '%.64s' (letters, digits, '.', '_', '-')",
			   v);
		return;
	}
	if (ac_conf_profile(ac, v)) {
		conf_error(p, s->line, "duplicate profile '%s'", v);
		return;
	}
	struct ac_profile *np = realloc(ac->profiles, (ac->n_profiles + 1) * sizeof(*np));
	if (!np) {
		conf_error(p, s->line, "out of memory");
		return;
	}
	ac->profiles = np;
	struct ac_profile *pr = &np[ac->n_profiles++];
	memset(pr, 0, sizeof(*pr));
	snprintf(pr->name, sizeof(pr->name), "%s", v);
	pr->line = s->line;
	pr->refresh = 3600;
}

/* HOST:PORT with a numeric address, as clients connect to it. */
static void k_http(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct ac_conf *ac = settings(data);
	conf_ext_addrs(p, s, ac->http, ac->http_len, &ac->n_http, AC_HTTP_MAX);
	ac->http_line = s->line;
}

/* HOST:PORT: a name is fine (clients resolve it), the port is required;
 * nothing a PAC string or a document line could not carry. */
static bool proxy_ok(struct conf_parser *p, const struct conf_ext_stmt *s, const char *v)
{
	const char *colon = strrchr(v, ':');
	unsigned port = 0;
	if (!colon || colon == v || sscanf(colon + 1, "%u", &port) != 1 || port == 0 ||
	    port > 65535 || strlen(v) >= AC_ENTRY_MAX ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:[]") !=
		    strlen(v)) {
		conf_error(p, s->line, "bad proxy '%.64s' (want HOST:PORT or [V6]:PORT)", v);
		return false;
	}
	return true;
}

static void k_proxy(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct ac_profile *pr = current(p, s, data);
	if (!pr || !once_in_profile(p, s, pr, 1u << 0))
		return;
	for (size_t i = 0; i < s->nargs && i < AC_PROXIES_MAX; i++)
		if (proxy_ok(p, s, s->args[i]))
			snprintf(pr->proxies[pr->n_proxies++], AC_ENTRY_MAX, "%s", s->args[i]);
}

/* The NO_PROXY grammar libstp reads (docs/client.md): "*", a name (which
 * also stands for the names under it), ".suffix", an IP or a CIDR. */
static bool entry_ok(const char *v)
{
	struct rule_cidr c;
	size_t n = strlen(v);

	if (n == 0 || n >= AC_ENTRY_MAX)
		return false;
	if (strcmp(v, "*") == 0 || rule_cidr_parse(&c, v) == 0)
		return true;
	const char *name = v[0] == '.' ? v + 1 : v;
	if (*name == '\0' || name[0] == '.' || strstr(name, ".."))
		return false;
	for (; *name; name++)
		if (!(*name == '-' || *name == '_' || *name == '.' ||
		      (*name >= 'a' && *name <= 'z') || (*name >= 'A' && *name <= 'Z') ||
		      (*name >= '0' && *name <= '9')))
			return false;
	return true;
}

/* direct and via: the same grammar, two lists. */
static void k_list(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct ac_profile *pr = current(p, s, data);
	if (!pr)
		return;
	bool via = strcmp(s->key, "via") == 0;
	char(*list)[AC_ENTRY_MAX] = via ? pr->via : pr->direct;
	size_t *n = via ? &pr->n_via : &pr->n_direct;
	for (size_t i = 0; i < s->nargs; i++) {
		if (!entry_ok(s->args[i])) {
			conf_error(p, s->line,
				   "bad '%s' entry '%.64s' (want *, a host name, "
				   ".suffix, an address or a CIDR)",
				   s->key, s->args[i]);
			continue;
		}
		if (*n == AC_LIST_MAX) {
			conf_error(p, s->line, "at most %d '%s' entries per profile", AC_LIST_MAX,
				   s->key);
			return;
		}
		snprintf(list[(*n)++], AC_ENTRY_MAX, "%s", s->args[i]);
	}
}

static void k_route(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct ac_profile *pr = current(p, s, data);
	if (!pr || !proxy_ok(p, s, s->args[0]))
		return;
	for (size_t i = 1; i < s->nargs; i++) {
		if (strlen(s->args[0]) + 1 + strlen(s->args[i]) > ACDOC_VALUE_MAX) {
			conf_error(p, s->line, "'route' proxy and destination over %d characters",
				   ACDOC_VALUE_MAX);
			continue;
		}
		if (!entry_ok(s->args[i])) {
			conf_error(
				p, s->line,
				"bad 'route' destination '%.64s' (want *, a host name, .suffix, an "
				"address or a CIDR)",
				s->args[i]);
			continue;
		}
		if (pr->n_routes == AC_LIST_MAX) {
			conf_error(p, s->line, "at most %d 'route' destinations per profile",
				   AC_LIST_MAX);
			return;
		}
		struct ac_route_entry *r = &pr->routes[pr->n_routes++];
		snprintf(r->proxy, sizeof(r->proxy), "%s", s->args[0]);
		snprintf(r->dest, sizeof(r->dest), "%s", s->args[i]);
	}
}

static void k_direct_port(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct ac_profile *pr = current(p, s, data);
	if (!pr)
		return;
	for (size_t i = 0; i < s->nargs; i++) {
		unsigned lo, hi;
		char tail;
		int k = sscanf(s->args[i], "%u-%u%c", &lo, &hi, &tail);
		if (k == 1)
			hi = lo;
		if ((k != 1 && k != 2) || lo == 0 || hi > 65535 || lo > hi ||
		    strspn(s->args[i], "0123456789-") != strlen(s->args[i])) {
			conf_error(p, s->line, "bad port '%.64s' (want 1-65535, or LOW-HIGH)",
				   s->args[i]);
			continue;
		}
		if (pr->n_ports == AC_PORTS_MAX) {
			conf_error(p, s->line, "at most %d 'direct-port' ranges per profile",
				   AC_PORTS_MAX);
			return;
		}
		pr->ports[pr->n_ports++] = (struct ac_ports){ (unsigned short)lo,
							      (unsigned short)hi };
	}
}

/* One word out of a list, into *out. */
static void word(struct conf_parser *p, const struct conf_ext_stmt *s, const char *const *words,
		 size_t n, int *out)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->args[0], words[i]) == 0) {
			*out = (int)i;
			return;
		}
	conf_error(p, s->line, "'%s' is %s%s%s%s%s, not '%.64s'", s->key, words[0],
		   n > 2 ? ", " : " or ", words[1], n > 2 ? " or " : "", n > 2 ? words[2] : "",
		   s->args[0]);
}

static void k_enum(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	static const char *const routes[] = { "proxy", "direct" };
	static const char *const methods[] = { "none", "userpass", "tls" };
	static const char *const creds[] = { "none", "netrc" };
	static const char *const dns[] = { "remote", "local" };
	struct ac_profile *pr = current(p, s, data);
	int v = 0;

	if (!pr)
		return;
	if (strcmp(s->key, "default") == 0 && once_in_profile(p, s, pr, 1u << 1)) {
		word(p, s, routes, 2, &v);
		pr->dflt = (enum ac_route)v;
	} else if (strcmp(s->key, "method") == 0 && once_in_profile(p, s, pr, 1u << 2)) {
		word(p, s, methods, 3, &v);
		pr->method = (enum ac_method)v;
	} else if (strcmp(s->key, "credentials") == 0 && once_in_profile(p, s, pr, 1u << 3)) {
		word(p, s, creds, 2, &v);
		pr->creds = (enum ac_creds)v;
	} else if (strcmp(s->key, "dns") == 0 && once_in_profile(p, s, pr, 1u << 4)) {
		word(p, s, dns, 2, &v);
		pr->dns = (enum ac_dns)v;
	}
}

static void k_refresh(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct ac_profile *pr = current(p, s, data);
	if (pr && once_in_profile(p, s, pr, 1u << 5))
		conf_ext_uint(p, s, AC_REFRESH_MIN, AC_REFRESH_MAX, &pr->refresh);
}

/* request pass { profile NAME } */
static void k_rule(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct ac_conf_rule *r = data;
	if (!name_ok(s->args[0]))
		conf_error(p, s->line, "bad profile name '%.64s'", s->args[0]);
	else
		snprintf(r->profile, sizeof(r->profile), "%s", s->args[0]);
}

/* Every `profile` a rule names exists; an http listener needs a profile. */
static void ac_check(struct conf_parser *p, const struct stp_conf *c, const void *data)
{
	const struct ac_conf *ac = data;
	for (size_t i = 0; i < c->n_request_rules; i++) {
		const char *name = ac_conf_rule_profile(&c->request_rules[i]);
		if (name && !ac_conf_profile(ac, name))
			conf_error(p, c->request_rules[i].line, "no autoconfig profile '%s'", name);
	}
	if (ac->n_http > 0 && ac->n_profiles == 0)
		conf_error(p, ac->http_line, "'http' serves profiles, and there is none");
	/* Every profile fits in one X'F4' document, with room for the default
	 * listener the snapshot may still get as its proxy line. */
	uint8_t *doc = malloc(ACDOC_MAX);
	for (size_t i = 0; doc && i < ac->n_profiles; i++)
		if (ac_doc_build(doc, ACDOC_MAX - AC_ENTRY_MAX, c, &ac->profiles[i]) == 0)
			conf_error(p, ac->profiles[i].line,
				   "profile '%s' is over %d bytes as a document (docs/protocol.md "
				   "5.5): fewer entries",
				   ac->profiles[i].name, ACDOC_MAX - AC_ENTRY_MAX);
	free(doc);
}

static void ac_free(void *data)
{
	struct ac_conf *ac = settings(data);
	free(ac->profiles);
	ac->profiles = NULL;
	ac->n_profiles = 0;
}

#define KEY1(name, fn)                \
	{                             \
		name, 1, 1, false, fn \
	}

static const struct conf_ext_key ac_keys[] = {
	KEY1("credentials", k_enum),
	KEY1("default", k_enum),
	{ "direct", 1, CONF_EXT_ARGS_MAX, false, k_list },
	{ "direct-port", 1, AC_PORTS_MAX, false, k_direct_port },
	KEY1("dns", k_enum),
	{ "http", 1, AC_HTTP_MAX, true, k_http },
	KEY1("method", k_enum),
	KEY1("profile", k_profile),
	{ "proxy", 1, AC_PROXIES_MAX, false, k_proxy },
	KEY1("refresh", k_refresh),
	{ "route", 2, CONF_EXT_ARGS_MAX, false, k_route },
	{ "via", 1, CONF_EXT_ARGS_MAX, false, k_list },
};

static const struct conf_ext_section ac_section = {
	.name = "autoconfig",
	.what = "an autoconfig block",
	.keys = ac_keys,
	.n_keys = sizeof(ac_keys) / sizeof(ac_keys[0]),
	.settings_size = sizeof(struct ac_conf),
	.check = ac_check,
	.free = ac_free,
};

static const struct conf_ext_rule_key ac_rule_keys[] = {
	{ CONF_IN_REQUEST_RULE, { "profile", 1, 1, true, k_rule } },
};

static const struct conf_ext_command ac_commands[] = {
	{ "autoconfig", RULE_CMD_AUTOCONFIG },
};

const struct conf_ext ac_conf_ext = {
	.name = "autoconfig",
	.section = &ac_section,
	.rule_keys = ac_rule_keys,
	.n_rule_keys = sizeof(ac_rule_keys) / sizeof(ac_rule_keys[0]),
	.rule_size = sizeof(struct ac_conf_rule),
	.commands = ac_commands,
	.n_commands = sizeof(ac_commands) / sizeof(ac_commands[0]),
};

const struct ac_conf *ac_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &ac_conf_ext);
}

const char *ac_conf_rule_profile(const struct rule *r)
{
	const struct ac_conf_rule *x = r ? conf_ext_rule(r, &ac_conf_ext) : NULL;
	return x && x->profile[0] ? x->profile : NULL;
}

const struct ac_profile *ac_conf_profile(const struct ac_conf *ac, const char *name)
{
	for (size_t i = 0; ac && i < ac->n_profiles; i++)
		if (strcmp(ac->profiles[i].name, name) == 0)
			return &ac->profiles[i];
	return NULL;
}

const struct ac_profile *ac_conf_select(const struct stp_conf *c, struct rule_ctx *ctx,
					const struct rule **rule)
{
	const struct ac_conf *ac = ac_conf_get(c);
	ctx->command = RULE_CMD_AUTOCONFIG;
	*rule = rules_match(c->request_rules, c->n_request_rules, ctx);
	if (!ac || ac->n_profiles == 0 || !*rule || (*rule)->action != RULE_PASS)
		return NULL;
	const char *name = ac_conf_rule_profile(*rule);
	return name ? ac_conf_profile(ac, name) : &ac->profiles[0];
}
