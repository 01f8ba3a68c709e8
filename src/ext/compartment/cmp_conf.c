/*
 * cmp_conf.c - see cmp_conf.h.
 */
#include "ext/compartment/cmp_conf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "policy/conf.h"
#include "policy/rules.h"

static bool name_valid(struct conf_parser *p, const struct conf_ext_stmt *s, const char *v)
{
	if (broker_name_ok(v, strlen(v)))
		return true;
	conf_error(p, s->line,
		   "bad compartment name '%.64s' (1-%d of A-Z a-z 0-9 _ . -)", v, BROKER_NAME_MAX);
	return false;
}

/* compartment NAME netns NS [resolver ADDR[:PORT][,ADDR...]] */
static void k_compartment(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct cmp_settings *st = data;
	const char *name = s->args[0];
	struct cmp_entry e = { .line = s->line };

	if (!name_valid(p, s, name))
		return;
	if (strcmp(name, CMP_HOST) == 0) {
		conf_error(p, s->line, "'%s' is stpd's own namespace and cannot be configured",
			   CMP_HOST);
		return;
	}
	for (unsigned i = 0; i < st->n; i++)
		if (strcmp(st->c[i].name, name) == 0) {
			conf_error(p, s->line, "duplicate compartment '%s' (first at line %d)", name,
				   st->c[i].line);
			return;
		}
	if (st->n == CMP_MAX) {
		conf_error(p, s->line, "too many compartments (at most %d)", CMP_MAX);
		return;
	}
	snprintf(e.name, sizeof(e.name), "%s", name);
	for (size_t i = 1; i < s->nargs; i += 2) {
		const char *k = s->args[i], *v = i + 1 < s->nargs ? s->args[i + 1] : NULL;
		if (!v) {
			conf_error(p, s->line, "'%s' needs a value", k);
			return;
		}
		if (strcmp(k, "netns") == 0) {
			int n = v[0] == '/' ? snprintf(e.netns, sizeof(e.netns), "%s", v)
					    : snprintf(e.netns, sizeof(e.netns), "/run/netns/%s", v);
			if (n < 0 || (size_t)n >= sizeof(e.netns) ||
			    (v[0] != '/' && strchr(v, '/'))) {
				conf_error(p, s->line, "bad netns '%.64s' (a name or an absolute path)",
					   v);
				return;
			}
		} else if (strcmp(k, "resolver") == 0) {
			if (strlen(v) >= sizeof(e.resolver)) {
				conf_error(p, s->line, "resolver list too long");
				return;
			}
			snprintf(e.resolver, sizeof(e.resolver), "%s", v);
		} else {
			conf_error(p, s->line, "'%.64s' is not a compartment setting (netns, resolver)",
				   k);
			return;
		}
	}
	if (!e.netns[0]) {
		conf_error(p, s->line, "compartment '%s' needs 'netns NAME|PATH'", name);
		return;
	}
	st->c[st->n++] = e;
}

static void k_listen(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct cmp_listener *l = data;
	if (name_valid(p, s, s->args[0]))
		snprintf(l->name, sizeof(l->name), "%s", s->args[0]);
}

static void k_from(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct cmp_rule *r = data;
	r->line = s->line;
	for (size_t i = 0; i < s->nargs; i++) {
		if (r->n_from == sizeof(r->from) / sizeof(r->from[0])) {
			conf_error(p, s->line, "too many compartments in '%s'", s->key);
			return;
		}
		if (name_valid(p, s, s->args[i]))
			snprintf(r->from[r->n_from++], sizeof(r->from[0]), "%s", s->args[i]);
	}
}

static void k_to(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct cmp_rule *r = data;
	r->line = s->line;
	if (name_valid(p, s, s->args[0]))
		snprintf(r->to, sizeof(r->to), "%s", s->args[0]);
}

static bool known(const struct cmp_settings *st, const char *name)
{
	if (strcmp(name, CMP_HOST) == 0)
		return true;
	for (unsigned i = 0; i < st->n; i++)
		if (strcmp(st->c[i].name, name) == 0)
			return true;
	return false;
}

static void check_rules(struct conf_parser *p, const struct cmp_settings *st,
			const struct rule *rules, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct cmp_rule *r = conf_ext_rule(&rules[i], &cmp_conf_ext);
		if (!r)
			continue;
		for (unsigned j = 0; j < r->n_from; j++)
			if (!known(st, r->from[j]))
				conf_error(p, r->line, "unknown compartment '%s'", r->from[j]);
		if (r->to[0] && !known(st, r->to))
			conf_error(p, r->line, "unknown compartment '%s'", r->to);
	}
}

static void cmp_check(struct conf_parser *p, const struct stp_conf *c, const void *settings)
{
	const struct cmp_settings *st = settings;
	for (size_t i = 0; i < c->n_listeners; i++) {
		const char *name = cmp_listener_name(&c->listeners[i]);
		if (!known(st, name))
			conf_error(p, conf_first_line(p, "listen"),
				   "listen %s: unknown compartment '%s'", c->listeners[i].name, name);
	}
	check_rules(p, st, c->client_rules, c->n_client_rules);
	check_rules(p, st, c->request_rules, c->n_request_rules);
	for (size_t i = 0; i < c->n_client_rules; i++) {
		const struct cmp_rule *r = conf_ext_rule(&c->client_rules[i], &cmp_conf_ext);
		if (r && r->to[0])
			conf_error(p, r->line, "'to-compartment' is for request rules");
	}
}

/* A rule with from-compartment matches sessions that arrived there. */
static bool cmp_rule_match(const void *data, const struct rule_ctx *ctx)
{
	const struct cmp_rule *r = data;
	if (r->n_from == 0)
		return true;
	if (!ctx->listener_conf)
		return false; /* no listener (a PAC request): no compartment known */
	const char *in = cmp_listener_name(ctx->listener_conf);
	for (unsigned i = 0; i < r->n_from; i++)
		if (strcmp(r->from[i], in) == 0)
			return true;
	return false;
}

static const struct conf_ext_key section_keys[] = {
	{ "compartment", 3, 5, false, k_compartment },
};

static const struct conf_ext_section section = {
	.name = "compartments",
	.what = "a compartments block",
	.keys = section_keys,
	.n_keys = sizeof(section_keys) / sizeof(section_keys[0]),
	.settings_size = sizeof(struct cmp_settings),
	.check = cmp_check,
};

static const struct conf_ext_rule_key rule_keys[] = {
	{ CONF_IN_LISTEN, { "compartment", 1, 1, true, k_listen } },
	{ CONF_IN_CLIENT_RULE, { "from-compartment", 1, 8, true, k_from } },
	{ CONF_IN_REQUEST_RULE, { "from-compartment", 1, 8, true, k_from } },
	{ CONF_IN_REQUEST_RULE, { "to-compartment", 1, 1, true, k_to } },
};

const struct conf_ext cmp_conf_ext = {
	.name = "compartment",
	.section = &section,
	.rule_keys = rule_keys,
	.n_rule_keys = sizeof(rule_keys) / sizeof(rule_keys[0]),
	.listener_size = sizeof(struct cmp_listener),
	.rule_size = sizeof(struct cmp_rule),
	.rule_match = cmp_rule_match,
};

const struct cmp_settings *cmp_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &cmp_conf_ext);
}

const struct cmp_entry *cmp_conf_find(const struct stp_conf *c, const char *name)
{
	const struct cmp_settings *st = cmp_conf_get(c);
	for (unsigned i = 0; st && i < st->n; i++)
		if (strcmp(st->c[i].name, name) == 0)
			return &st->c[i];
	return NULL;
}

const char *cmp_listener_name(const struct conf_listener *l)
{
	const struct cmp_listener *cl = l ? conf_ext_listener(l, &cmp_conf_ext) : NULL;
	return cl && cl->name[0] ? cl->name : CMP_HOST;
}

const char *cmp_rule_out(const struct rule *r, const char *in)
{
	const struct cmp_rule *cr = r ? conf_ext_rule(r, &cmp_conf_ext) : NULL;
	return cr && cr->to[0] ? cr->to : in;
}

static bool rule_from_has(const struct cmp_rule *r, const char *in)
{
	if (r->n_from == 0)
		return true;
	for (unsigned i = 0; i < r->n_from; i++)
		if (strcmp(r->from[i], in) == 0)
			return true;
	return false;
}

bool cmp_conf_allows(const struct stp_conf *c, const char *in, const char *out)
{
	if (strcmp(in, out) == 0) {
		for (size_t i = 0; i < c->n_listeners; i++)
			if (strcmp(cmp_listener_name(&c->listeners[i]), in) == 0)
				return true;
		return false;
	}
	for (size_t i = 0; i < c->n_request_rules; i++) {
		const struct rule *r = &c->request_rules[i];
		const struct cmp_rule *cr = conf_ext_rule(r, &cmp_conf_ext);
		if (r->action == RULE_PASS && cr && strcmp(cr->to, out) == 0 &&
		    rule_from_has(cr, in))
			return true;
	}
	return false;
}

bool cmp_conf_used(const struct stp_conf *c)
{
	const struct cmp_settings *st = cmp_conf_get(c);
	return st && st->n > 0;
}

int cmp_conf_check_netns(const struct stp_conf *c, char *err, size_t errlen)
{
	const struct cmp_settings *st = cmp_conf_get(c);
	struct stat sb;
	for (unsigned i = 0; st && i < st->n; i++)
		if (stat(st->c[i].netns, &sb) < 0) {
			snprintf(err, errlen, "%s:%d: compartment '%s': netns %s: %s",
				 c->path[0] ? c->path : "(embedded)", st->c[i].line, st->c[i].name,
				 st->c[i].netns, strerror(errno));
			return -1;
		}
	return 0;
}
