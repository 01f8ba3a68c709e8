/*
 * bd_conf.c - see bd_conf.h.
 */
#include "ext/bind/bd_conf.h"

#include <stddef.h>
#include <string.h>

static void k_number(struct conf_parser *p, const struct conf_ext_stmt *s, void *data)
{
	static const struct {
		const char *name;
		size_t off;
		unsigned min, max;
	} nums[] = {
		{ "accept-timeout", offsetof(struct bd_conf, accept_timeout), 1, 3600 },
		{ "backlog", offsetof(struct bd_conf, backlog), 1, 65535 },
		{ "max-backlog", offsetof(struct bd_conf, max_backlog), 1, 65535 },
		{ "max-binds", offsetof(struct bd_conf, max_binds), 1, 1024 },
		{ "max-peers", offsetof(struct bd_conf, max_peers), 1, 1000000 },
		{ "max-pending", offsetof(struct bd_conf, max_pending), 1, 65535 },
	};
	for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (strcmp(s->key, nums[i].name) == 0)
			conf_ext_uint(p, s, nums[i].min, nums[i].max,
				      (unsigned *)((char *)data + nums[i].off));
}

static void bd_conf_defaults(void *data)
{
	*(struct bd_conf *)data = (struct bd_conf){
		.max_binds = 16,
		.max_pending = 64,
		.max_peers = 1024,
		.accept_timeout = 30,
		.backlog = 128,
		.max_backlog = 1024,
	};
}

#define KEY1(name)                         \
	{                                  \
		name, 1, 1, true, k_number \
	}

static const struct conf_ext_key bd_keys[] = {
	KEY1("accept-timeout"), KEY1("backlog"),   KEY1("max-backlog"),
	KEY1("max-binds"),      KEY1("max-peers"), KEY1("max-pending"),
};

static const struct conf_ext_section bd_section = {
	.name = "binds",
	.what = "a binds block",
	.keys = bd_keys,
	.n_keys = sizeof(bd_keys) / sizeof(bd_keys[0]),
	.settings_size = sizeof(struct bd_conf),
	.init_defaults = bd_conf_defaults,
};

static const struct conf_ext_command bd_commands[] = {
	{ "listen", RULE_CMD_LISTEN },
	{ "listenreply", RULE_CMD_LISTENREPLY },
	{ "udpbind", RULE_CMD_UDPBIND },
	{ "udpbindreply", RULE_CMD_UDPBINDREPLY },
};

const struct conf_ext bd_conf_ext = {
	.name = "binds",
	.section = &bd_section,
	.commands = bd_commands,
	.n_commands = sizeof(bd_commands) / sizeof(bd_commands[0]),
};

const struct bd_conf *bd_conf_get(const struct stp_conf *c)
{
	return conf_ext_get(c, &bd_conf_ext);
}
