/*
 * tn_conf.c - see tn_conf.h: the tunnel { } section and the command names.
 */
#include "ext/tunnel/tn_conf.h"

#include <string.h>

static void k_path(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tn_conf *c = data;
	char *dst = strcmp(s->key, "ca") == 0          ? c->ca :
		    strcmp(s->key, "cert") == 0        ? c->cert :
		    strcmp(s->key, "key") == 0         ? c->key :
		    strcmp(s->key, "client-cert") == 0 ? c->client_cert :
							 c->client_key;
	conf_ext_file(p, s, dst, TN_PATH_MAX); /* the broker may open it (privpem.h) */
}

static void k_number(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct tn_conf *c = data;
	if (strcmp(s->key, "idle") == 0)
		conf_ext_uint(p, s, 1, 86400, &c->idle);
	else
		conf_ext_uint(p, s, 1, 600, &c->connect_timeout);
}

static void tn_conf_defaults(void *data)
{
	*(struct tn_conf *)data = (struct tn_conf){ .idle = 120, .connect_timeout = 10 };
}

static const struct conf_ext_key tn_keys[] = {
	{ "ca", 1, 1, true, k_path },
	{ "cert", 1, 1, true, k_path },
	{ "client-cert", 1, 1, true, k_path },
	{ "client-key", 1, 1, true, k_path },
	{ "connect-timeout", 1, 1, true, k_number },
	{ "idle", 1, 1, true, k_number },
	{ "key", 1, 1, true, k_path },
};

static const struct conf_ext_section tn_section = {
	.name = "tunnel",
	.what = "a tunnel block",
	.keys = tn_keys,
	.n_keys = sizeof(tn_keys) / sizeof(tn_keys[0]),
	.settings_size = sizeof(struct tn_conf),
	.init_defaults = tn_conf_defaults,
};

static const struct conf_ext_command tn_commands[] = {
	{ "tunnel", RULE_CMD_TUNNEL },
	{ "tunnel-relay", RULE_CMD_TUNNEL_RELAY },
};

const struct conf_ext tn_conf_ext = {
	.name = "tunnel",
	.section = &tn_section,
	.commands = tn_commands,
	.n_commands = sizeof(tn_commands) / sizeof(tn_commands[0]),
};

const struct tn_conf *tn_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &tn_conf_ext);
}
