/*
 * gss_conf.c - the gssapi { } section (gss_conf.h), registered with the
 * config registry: the core's parser knows it only through it.
 */
#include "ext/gssapi/gss_conf.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

#include "proto/gssframe.h"

static struct gss_conf *settings(void *data)
{
	return data;
}

static void k_keytab(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	conf_ext_file(p, s, settings(data)->keytab, CONF_PATH_MAX);
}

static void k_principal(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	conf_ext_string(p, s, settings(data)->principal, GSS_CONF_NAME_MAX);
}

static void k_map(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct gss_conf *g = settings(data);
	if (g->n_maps == GSS_CONF_MAPS_MAX) {
		conf_error(p, s->line, "more than %d 'map' lines", GSS_CONF_MAPS_MAX);
		return;
	}
	if (strlen(s->args[0]) >= GSS_CONF_NAME_MAX || strlen(s->args[1]) >= GSS_CONF_NAME_MAX ||
	    !s->args[0][0] || !s->args[1][0]) {
		conf_error(p, s->line,
			   "'map' takes a principal pattern and a user name of 1 to %d "
			   "characters",
			   GSS_CONF_NAME_MAX - 1);
		return;
	}
	struct gss_conf_map *m = &g->maps[g->n_maps++];
	snprintf(m->pattern, sizeof(m->pattern), "%s", s->args[0]);
	snprintf(m->user, sizeof(m->user), "%s", s->args[1]);
}

static void k_protection(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	const char *v = s->args[0];
	if (strcmp(v, "none") == 0)
		settings(data)->min_level = GSS_LEVEL_NONE;
	else if (strcmp(v, "integrity") == 0)
		settings(data)->min_level = GSS_LEVEL_INTEGRITY;
	else if (strcmp(v, "confidentiality") == 0)
		settings(data)->min_level = GSS_LEVEL_CONF;
	else
		conf_error(p, s->line,
			   "'protection' is none, integrity or confidentiality, not '%.64s'", v);
}

static void gss_conf_check(struct conf_parser *p, const struct stp_conf *c, const void *data)
{
	const struct gss_conf *g = data;
	int line = conf_first_line(p, "gssapi");
	if (line && !(c->auth_methods & AUTH_BIT_GSSAPI))
		conf_error(p, line, "a gssapi block without 'methods gssapi' in auth");
	(void)g;
}

#define KEY1(name, fn)               \
	{                            \
		name, 1, 1, true, fn \
	}

static const struct conf_ext_key gss_keys[] = {
	KEY1("keytab", k_keytab),
	{ "map", 2, 2, false, k_map },
	KEY1("principal", k_principal),
	KEY1("protection", k_protection),
};

static const struct conf_ext_section gss_section = {
	.name = "gssapi",
	.what = "a gssapi block",
	.keys = gss_keys,
	.n_keys = sizeof(gss_keys) / sizeof(gss_keys[0]),
	.settings_size = sizeof(struct gss_conf),
	.check = gss_conf_check,
};

const struct conf_ext gss_conf_ext = {
	.name = "gssapi",
	.section = &gss_section,
};

const struct gss_conf *gss_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &gss_conf_ext);
}

void gss_conf_map_user(const struct gss_conf *g, const char *principal, char *user, size_t cap)
{
	for (size_t i = 0; g && i < g->n_maps; i++) {
		const struct gss_conf_map *m = &g->maps[i];
		if (fnmatch(m->pattern, principal, 0) != 0)
			continue;
		if (strcmp(m->user, "%u") == 0) {
			size_t n = strcspn(principal, "@");
			snprintf(user, cap, "%.*s", (int)n, principal);
		} else {
			snprintf(user, cap, "%s", m->user);
		}
		return;
	}
	snprintf(user, cap, "%s", principal);
}
