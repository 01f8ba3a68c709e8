/*
 * rs_conf.c - see rs_conf.h: the command names rules use, and the
 * `dns-cache` section (the DNS QUERY cache).
 */
#include "ext/resolve/rs_conf.h"

#include <stddef.h>
#include <string.h>

static void k_number(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct rs_dns_conf *d = data;
	if (strcmp(s->key, "entries") == 0)
		conf_ext_uint(p, s, 0, RS_CACHE_ENTRIES_MAX, &d->cache_entries);
	else if (strcmp(s->key, "max-ttl") == 0)
		conf_ext_uint(p, s, 0, RS_CACHE_TTL_MAX, &d->cache_max_ttl);
	else if (strcmp(s->key, "negative-ttl") == 0)
		conf_ext_uint(p, s, 0, RS_CACHE_TTL_MAX, &d->cache_negative_ttl);
}

static void rs_conf_defaults(void *data)
{
	*(struct rs_dns_conf *)data = (struct rs_dns_conf){
		.cache_entries = 1024,
		.cache_max_ttl = 86400,
		.cache_negative_ttl = 3600,
	};
}

static const struct conf_ext_key rs_keys[] = {
	{ "entries", 1, 1, true, k_number },
	{ "max-ttl", 1, 1, true, k_number },
	{ "negative-ttl", 1, 1, true, k_number },
};

static const struct conf_ext_section rs_section = {
	.name = "dns-cache",
	.what = "a dns-cache block",
	.keys = rs_keys,
	.n_keys = sizeof(rs_keys) / sizeof(rs_keys[0]),
	.settings_size = sizeof(struct rs_dns_conf),
	.init_defaults = rs_conf_defaults,
};

static const struct conf_ext_command rs_commands[] = {
	{ "resolve", RULE_CMD_RESOLVE },
	{ "resolve-ptr", RULE_CMD_RESOLVE_PTR },
	{ "dns", RULE_CMD_DNS },
};

const struct conf_ext rs_conf_ext = {
	.name = "resolve",
	.section = &rs_section,
	.commands = rs_commands,
	.n_commands = sizeof(rs_commands) / sizeof(rs_commands[0]),
};

const struct rs_dns_conf *rs_dns_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &rs_conf_ext);
}
