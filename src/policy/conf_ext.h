/*
 * conf_ext.h - how an extension adds to stpd.conf without touching
 * src/policy (docs/architecture.md, "How to add an extension: config").
 *
 * An extension describes, in a struct conf_ext of its own:
 * - a top-level section "NAME { ... }" with its own table of keys, looked
 *   up by string, and its settings: a block of settings_size bytes in every
 *   snapshot (conf_ext_get), set to its defaults by init_defaults, checked
 *   as a whole by check after the file is parsed, released by free;
 * - keys inside blocks the core owns (listen blocks, client and request
 *   rules), each writing into the extension's data for that listener or
 *   rule (conf_ext_listener, conf_ext_rule; NULL when the block had none);
 * - the command names rules may use ("command NAME"), with their
 *   rule_cmd_bits value.
 * It is registered once with conf_ext_register() before the first snapshot
 * is made (conf_parse_string, conf_load, conf_default); the registry is
 * then only read, from any thread.
 */
#ifndef STP_POLICY_CONF_EXT_H
#define STP_POLICY_CONF_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/conf.h"

struct conf_parser; /* opaque here: handlers pass it to conf_error() */

/* One statement, as a handler sees it. */
struct conf_ext_stmt {
	const char *key;         /* the keyword, for messages */
	int line;
	size_t nargs;            /* within the key's min_args..max_args */
	const char *const *args;
};

/* Checks and stores a statement's values into data: the extension's
 * settings (section keys) or its data for the listener or rule the
 * statement is in (zeroed when first used). Errors go to conf_error(). */
typedef void (*conf_ext_key_fn)(struct conf_parser *p, const struct conf_ext_stmt *s,
				void *data);

struct conf_ext_key {
	const char *name;            /* the keyword */
	unsigned min_args, max_args; /* max_args at most CONF_EXT_ARGS_MAX */
	bool once;                   /* a second one (in the section, the rule) is an error */
	conf_ext_key_fn fn;
};

/* The blocks of the core an extension may add keys to. */
enum conf_ext_block { CONF_IN_LISTEN, CONF_IN_CLIENT_RULE, CONF_IN_REQUEST_RULE };

struct conf_ext_rule_key {
	enum conf_ext_block in;
	struct conf_ext_key key;
};

/* "NAME { ... }" at the top level; may appear more than once, and a key
 * marked once may then appear in one of them only. */
struct conf_ext_section {
	const char *name;
	const char *what;            /* for messages: "a NAME block" */
	const struct conf_ext_key *keys;
	size_t n_keys;
	size_t settings_size;        /* the block conf_ext_get() returns */
	void (*init_defaults)(void *settings);
	/* Checks that need the whole file (the snapshot is complete but for
	 * the embedded defaults); errors go to conf_error() with a line. */
	void (*check)(struct conf_parser *p, const struct stp_conf *c, const void *settings);
	/* Releases what the settings own, not the block itself. */
	void (*free)(void *settings);
};

struct conf_ext_command {
	const char *name;            /* as rules write it: "command NAME" */
	uint32_t bit;                /* one rule_cmd_bits value above the core's */
};

struct conf_ext {
	const char *name;                       /* for registration errors */
	const struct conf_ext_section *section; /* NULL: none */
	const struct conf_ext_rule_key *rule_keys;
	size_t n_rule_keys;
	size_t listener_size;                   /* data per listen block using its keys */
	size_t rule_size;                       /* data per rule using its keys */
	const struct conf_ext_command *commands;
	size_t n_commands;
	/* conf_auth_bits the extension runs inside its own methods (a
	 * sub-authentication), so that the core loads what they need.
	 * settings is NULL for an extension without a section. */
	unsigned (*auth_used)(const struct stp_conf *c, const void *settings);
	/* Optional: a condition its rule keys add. A rule holding data of e
	 * matches only when this returns true for the request (ctx); rules
	 * without e's keys are not asked. Pure: runs on any thread. */
	bool (*rule_match)(const void *rule_data, const struct rule_ctx *ctx);
};

#define CONF_EXT_ARGS_MAX 64 /* values of one statement (CONF_ARGS_MAX) */

/* Registers e (a static object: the registry keeps the pointer). 0, also
 * when e is registered already; -1 with a message in err when the tables
 * are full, a section or command name is taken, or a command bit is the
 * core's or another extension's. Not thread-safe: call before threads. */
int conf_ext_register(const struct conf_ext *e, char *err, size_t errlen);

/* An extension this program was built without (a build option): its
 * section, keys and command names stay known to the parser, and using one
 * is an error saying so: "'tls' needs WHAT, and this stpd was built without
 * it (meson option OPTION=false)". Not thread-safe: call before threads. */
int conf_ext_register_absent(const struct conf_ext *e, const char *what, const char *option,
			     char *err, size_t errlen);
/* For the parser: that error text when `word` belongs to an absent
 * extension, else NULL. */
const char *conf_ext_absent_hint(const char *word, char *buf, size_t cap);

/* e's settings in c; NULL when e was not registered when c was made. */
const void *conf_ext_get(const struct stp_conf *c, const struct conf_ext *e);
/* e's data for a listener or a rule; NULL when its block had no key of e. */
const void *conf_ext_listener(const struct conf_listener *l, const struct conf_ext *e);
const void *conf_ext_rule(const struct rule *r, const struct conf_ext *e);

/* Reports "file:line: message" (conf_parse.c). */
void conf_error(struct conf_parser *p, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The line of the first top-level statement with keyword key ("auth", or
 * an extension's section name), 0 when there is none: where whole-file
 * checks point. */
int conf_first_line(const struct conf_parser *p, const char *key);

/* Value helpers worded like the core's messages; on bad input they report
 * and leave *out alone. A number from min to max: */
void conf_ext_uint(struct conf_parser *p, const struct conf_ext_stmt *s, unsigned min,
		   unsigned max, unsigned *out);
/* on or off: */
void conf_ext_bool(struct conf_parser *p, const struct conf_ext_stmt *s, bool *out);
/* 1 to cap - 1 characters, copied into dst: */
void conf_ext_string(struct conf_parser *p, const struct conf_ext_stmt *s, char *dst, size_t cap);
/* The same for a path stpd reads (a certificate, a key, a keytab): also
 * noted in the snapshot, so that the privileged broker may open it for a
 * reload after the privilege drop (conf_names_file). */
void conf_ext_file(struct conf_parser *p, const struct conf_ext_stmt *s, char *dst, size_t cap);
/* Only the noting, for a module that keeps the path itself. */
void conf_ext_note_file(struct conf_parser *p, const struct conf_ext_stmt *s);

/* Numeric IP:PORT or [V6]:PORT arguments (a port required: they are bound
 * at start), appended to addr[] (and len[] unless NULL) up to max. */
void conf_ext_addrs(struct conf_parser *p, const struct conf_ext_stmt *s,
		    struct sockaddr_storage *addr, socklen_t *len, size_t *n, size_t max);

/* The name of one rule_cmd_bits value, the core's or registered; "-" for
 * 0, "unknown" for others. */
const char *conf_command_name(uint32_t bit);
/* c->auth_methods and the methods extensions run inside their own. */
unsigned conf_auth_used(const struct stp_conf *c);

#endif
