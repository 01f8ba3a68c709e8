/*
 * rules.h - access rules: ordered lists, first match wins, pass or block.
 * Pure matching over a context the caller fills; no I/O.
 */
#ifndef STP_POLICY_RULES_H
#define STP_POLICY_RULES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

enum rule_action { RULE_BLOCK = 0, RULE_PASS = 1 };

/* Commands a rule can name (a bit each). Extensions register the higher
 * bits with their names (conf_ext.h). */
enum rule_cmd_bits {
	RULE_CMD_CONNECT = 1u << 0,
	RULE_CMD_BIND = 1u << 1,
	RULE_CMD_BINDREPLY = 1u << 2,    /* the peer connecting to a BIND socket */
	RULE_CMD_UDPASSOCIATE = 1u << 3, /* request, and each client -> target datagram */
	RULE_CMD_UDPREPLY = 1u << 4,     /* each target -> client datagram */
	RULE_CMD_TRANSPARENT = 1u << 5,
};
#define RULE_CMD_CORE_BITS 0x3Fu /* the bits above; the rest are for extensions */
/* A macro, not an enumerator: ISO C limits enumerators to int. */
#define RULE_CMD_ALL 0xFFFFFFFFu

struct rule_cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint8_t prefix;
};

struct rule_ports {
	uint16_t lo, hi; /* inclusive */
};

#define RULE_LIST_MAX 16 /* per kind of matcher in one rule */
#define RULE_STR_MAX 256
#define RULE_EXT_MAX 16 /* extensions' data slots (policy/conf_ext.h) */

struct rule {
	char file[128];
	int line;                  /* for "rule at FILE:LINE" in log lines */
	enum rule_action action;

	/* Each list: empty = any. A rule matches when every non-empty list has
	 * a match. */
	struct rule_cidr from[RULE_LIST_MAX];   size_t n_from;   /* client address */
	char listeners[RULE_LIST_MAX][64];      size_t n_listeners;
	char users[RULE_LIST_MAX][RULE_STR_MAX]; size_t n_users; /* "-" = no user */
	char groups[RULE_LIST_MAX][64];         size_t n_groups;
	uint32_t commands;                      /* rule_cmd_bits; 0 = any */
	struct rule_cidr to[RULE_LIST_MAX];     size_t n_to;     /* destination IP */
	char to_names[RULE_LIST_MAX][RULE_STR_MAX]; size_t n_to_names;
		/* "host.example" exact, ".example" suffix (matches example too) */
	struct rule_ports ports[RULE_LIST_MAX]; size_t n_ports;  /* destination port */

	bool has_time;
	uint16_t minute_from, minute_to; /* minutes since local midnight; wraps if from > to */
	uint8_t weekdays;                /* bit 0 = Sunday .. bit 6 = Saturday; 0 = any */

	int log_level;                   /* -1: default; else LOG_* for this rule's lines */
	unsigned max_sessions;           /* 0 = none: concurrent sessions matching this rule */
	unsigned idle_timeout;           /* 0 = config default */
	void *ext[RULE_EXT_MAX];         /* extensions' data (conf_ext_rule) */

	atomic_uint active;              /* sessions currently held by this rule */
};

/* What is being decided. Unknown fields are NULL/0: a rule that needs a
 * field the context lacks does not match (e.g. "to 10.0.0.0/8" for a domain
 * target not yet resolved). */
struct rule_ctx {
	const struct sockaddr *client;   /* client address */
	const char *listener;            /* listener name */
	const char *user;                /* NULL: no authentication */
	const char *const *groups;       /* the user's groups */
	size_t n_groups;
	uint32_t command;                /* one rule_cmd_bits value; 0 for client rules */
	const char *dst_name;            /* domain target, or NULL */
	const struct sockaddr *dst_addr; /* resolved or literal destination IP, or NULL */
	uint16_t dst_port;               /* host order; 0 = unknown */
	time_t now;
};

/* First rule that matches, or NULL (which means block). */
const struct rule *rules_match(const struct rule *rules, size_t n, const struct rule_ctx *ctx);

/* Whether some request of ctx->command could pass, for a destination not
 * known yet (ctx's dst fields are ignored) and, with user_unknown, for a
 * user not authenticated yet (user and group lists may match): the first
 * rule that may match and passes says yes; one that surely matches (no
 * destination, port, or unknown user condition) and blocks says no. Feature
 * discovery lists commands with it. */
bool rules_may_pass(const struct rule *rules, size_t n, const struct rule_ctx *ctx,
		    bool user_unknown);

/* "rule at FILE:LINE" or "default rule" for NULL. */
void rules_describe(const struct rule *r, char *out, size_t outlen);

bool rule_cidr_match(const struct rule_cidr *c, const struct sockaddr *sa);
/* Parses "10.0.0.0/8", "::1", "fe80::/10". 0 or -1. */
int rule_cidr_parse(struct rule_cidr *out, const char *text);

/* A slot of the rule's `sessions` limit: take (true when the rule has no
 * limit, false when it is full) and give back (nothing without a limit). */
bool rule_slot_take(const struct rule *r);
void rule_slot_give(const struct rule *r);

#endif
