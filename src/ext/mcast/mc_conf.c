/*
 * mc_conf.c - the multicast keys of stpd.conf (mc_conf.h), registered with
 * the config registry: the core's parser knows them only through it.
 */
#include "ext/mcast/mc_conf.h"

#include <stdio.h>
#include <string.h>

#define MC_CONF_TIME_MAX 604800u /* one week, as the core's timeouts */

static struct mc_conf *settings(void *data)
{
	return data;
}

/* external-interface, internal-interface: an interface name. */
static void k_if(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct mc_conf *m = settings(data);
	char *dst = strcmp(s->key, "external-interface") == 0 ? m->external_if : m->internal_if;
	const char *v = s->args[0];
	if (v[0] == '\0' || strlen(v) >= sizeof(m->external_if) || strchr(v, '/') ||
	    strchr(v, ' '))
		conf_error(p, s->line, "bad interface name '%.64s' for '%s'", v, s->key);
	else
		snprintf(dst, sizeof(m->external_if), "%s", v);
}

/* One IPv4 and/or one IPv6 prefix, multicast, with room for groups. */
static void k_pool(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct mc_conf *m = settings(data);
	bool v4 = false, v6 = false;
	for (size_t i = 0; i < s->nargs; i++) {
		struct rule_cidr c;
		const char *v = s->args[i];
		if (rule_cidr_parse(&c, v) < 0 ||
		    (c.family == AF_INET ? (c.addr[0] & 0xF0) != 0xE0 : c.addr[0] != 0xFF)) {
			conf_error(p, s->line, "bad pool '%.64s' (want a multicast prefix)", v);
			continue;
		}
		if (c.prefix > (c.family == AF_INET ? 30 : 126)) {
			conf_error(p, s->line, "pool '%.64s' is too small", v);
			continue;
		}
		bool *seen = c.family == AF_INET ? &v4 : &v6;
		if (*seen)
			conf_error(p, s->line, "'pool' takes one IPv4 and one IPv6 prefix");
		*seen = true;
		if (c.family == AF_INET)
			m->pool4 = c;
		else
			m->pool6 = c;
	}
}

static void k_encryption(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	const char *v = s->args[0];
	unsigned *e = &settings(data)->encryption;
	if (strcmp(v, "aes-256-gcm") == 0)
		*e = MCAST_ENC_AES256GCM;
	else if (strcmp(v, "chacha20-poly1305") == 0)
		*e = MCAST_ENC_CHACHA20;
	else if (strcmp(v, "off") == 0)
		*e = MCAST_ENC_OFF;
	else
		conf_error(p, s->line,
			   "'encryption' is aes-256-gcm, chacha20-poly1305 or off, not '%.64s'", v);
}

static void k_number(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	static const struct {
		const char *name;
		size_t off;
		unsigned min, max;
	} nums[] = {
		{ "burst", offsetof(struct mc_conf, burst), 0, 1u << 30 },
		{ "idle-timeout", offsetof(struct mc_conf, idle_timeout), 0, MC_CONF_TIME_MAX },
		{ "max-members", offsetof(struct mc_conf, max_members), 0, 1000000 },
		{ "max-time", offsetof(struct mc_conf, max_time), 0, MC_CONF_TIME_MAX },
		{ "rate", offsetof(struct mc_conf, rate), 0, 1u << 30 },
		{ "ttl", offsetof(struct mc_conf, ttl), 1, 255 },
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (strcmp(s->key, nums[i].name) == 0)
			conf_ext_uint(p, s, nums[i].min, nums[i].max,
				      (unsigned *)((char *)data + nums[i].off));
}

/* mcast send | receive | send receive: what a pass rule for mcast-join
 * grants (docs/mcast.md section 6). */
static void k_rule(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	struct mc_conf_rule *r = data;
	for (size_t i = 0; i < s->nargs; i++) {
		if (strcmp(s->args[i], "send") == 0)
			r->perms |= RULE_MCAST_SEND;
		else if (strcmp(s->args[i], "receive") == 0)
			r->perms |= RULE_MCAST_RECV;
		else
			conf_error(p, s->line, "'mcast' is send and/or receive, not '%.64s'",
				   s->args[i]);
	}
}

static void mc_conf_defaults(void *data)
{
	struct mc_conf *m = settings(data);
	*m = (struct mc_conf){
		.encryption = MCAST_ENC_AES256GCM, .max_members = 64, .idle_timeout = 600,
		.ttl = 16,
	};
	rule_cidr_parse(&m->pool4, "239.255.0.0/16");
	rule_cidr_parse(&m->pool6, "ff15::/16");
}

#define KEY1(name, fn) { name, 1, 1, true, fn }

static const struct conf_ext_key mc_keys[] = {
	KEY1("burst", k_number),
	KEY1("encryption", k_encryption),
	KEY1("external-interface", k_if),
	KEY1("idle-timeout", k_number),
	KEY1("internal-interface", k_if),
	KEY1("max-members", k_number),
	KEY1("max-time", k_number),
	{ "pool", 1, 2, true, k_pool },
	KEY1("rate", k_number),
	KEY1("ttl", k_number),
};

static const struct conf_ext_section mc_section = {
	.name = "mcast",
	.what = "an mcast block",
	.keys = mc_keys,
	.n_keys = sizeof(mc_keys) / sizeof(mc_keys[0]),
	.settings_size = sizeof(struct mc_conf),
	.init_defaults = mc_conf_defaults,
};

static const struct conf_ext_rule_key mc_rule_keys[] = {
	{ CONF_IN_REQUEST_RULE, { "mcast", 1, 2, true, k_rule } },
};

static const struct conf_ext_command mc_commands[] = {
	{ "mcast-join", RULE_CMD_MCAST_JOIN },
	{ "mcast-leave", RULE_CMD_MCAST_LEAVE },
};

const struct conf_ext mc_conf_ext = {
	.name = "mcast",
	.section = &mc_section,
	.rule_keys = mc_rule_keys,
	.n_rule_keys = sizeof(mc_rule_keys) / sizeof(mc_rule_keys[0]),
	.rule_size = sizeof(struct mc_conf_rule),
	.commands = mc_commands,
	.n_commands = sizeof(mc_commands) / sizeof(mc_commands[0]),
};

const struct mc_conf *mc_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &mc_conf_ext);
}

uint8_t mc_conf_rule_perms(const struct rule *r)
{
	const struct mc_conf_rule *x = r ? conf_ext_rule(r, &mc_conf_ext) : NULL;
	return x ? x->perms : 0;
}
