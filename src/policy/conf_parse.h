/*
 * conf_parse.h - the recursive-descent parser's state and its tables of
 * keys (internal to src/policy).
 *
 *   file      = { sep | statement }
 *   statement = KEYWORD { value } [ block ] ( NEWLINE | ';' | before '}' | EOF )
 *   block     = '{' { sep | statement } '}'
 *   sep       = NEWLINE | ';'
 *   value     = WORD | "STRING"
 *
 * Each section (the top level, log, timeouts, limits, auth, a listener, a
 * client rule, a request rule) is a table of keys; a key gives how many
 * values it takes, whether it may appear once only, the section of its
 * block if it opens one, and the handler that checks and stores the values.
 * Extensions' sections and their keys in the core's sections come from the
 * registry (conf_ext.c) in the same form.
 */
#ifndef STP_POLICY_CONF_PARSE_H
#define STP_POLICY_CONF_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "policy/conf.h"
#include "policy/conf_ext.h"
#include "policy/conf_lex.h"

#define CONF_ARGS_MAX 64    /* values in one statement */
#define CONF_ERRORS_MAX 100 /* then give up */

struct conf_parser;
struct conf_stmt;

/* Checks and stores a statement's values. Returns what the statement's
 * block (if any) works on: the new listener or rule; ctx otherwise. */
typedef void *(*conf_key_fn)(struct conf_parser *p, const struct conf_stmt *s, void *ctx);

struct conf_section;

struct conf_key {
	enum conf_kw kw;
	unsigned min_args, max_args;
	bool once;                         /* a second one is an error */
	const struct conf_section *block;  /* section of its { } block, or NULL */
	bool block_required;
	conf_key_fn fn;
};

enum conf_section_id {
	SEC_TOP, SEC_LOG, SEC_TIMEOUTS, SEC_LIMITS, SEC_AUTH, SEC_LDAP, SEC_RADIUS,
	SEC_EXT_, /* + slot: a registered extension's section */
	SEC_GLOBAL_COUNT_ = SEC_EXT_ + CONF_EXT_MAX,
	SEC_LISTEN = SEC_GLOBAL_COUNT_, SEC_CLIENT_RULE, SEC_REQUEST_RULE,
};

struct conf_section {
	enum conf_section_id id; /* < SEC_GLOBAL_COUNT_: "once" spans every block */
	const char *what;        /* for messages: "a log block" */
	const struct conf_key *keys;
	size_t n_keys;
};

struct conf_stmt {
	enum conf_kw kw;
	const char *key; /* keyword text */
	int line;
	size_t nargs;
	struct conf_tok args[CONF_ARGS_MAX];
};

struct conf_parser {
	struct conf_lex lx;
	struct conf_tok tok; /* lookahead */
	const char *file;
	struct stp_conf *conf;
	char *err;
	size_t errlen, errpos;
	unsigned nerrors;
	bool gave_up;
	/* line where each key of a global section was first seen, 0 = never */
	int seen[SEC_GLOBAL_COUNT_][KW_ID_MAX];
	const struct conf_key *key; /* the statement's, while its handler runs */
	struct conf_stmt stmt;
};

/* conf_error() is declared in conf_ext.h. */
/* Reports running out of memory and stops the parse. */
void conf_oom(struct conf_parser *p, int line);

extern const struct conf_section conf_sec_top;
extern const struct conf_section conf_sec_listen;
extern const struct conf_section conf_sec_client_rule;
/* conf_rule_keys.c: "client pass|block", "request pass|block". */
void *conf_key_client(struct conf_parser *p, const struct conf_stmt *s, void *ctx);
void *conf_key_request(struct conf_parser *p, const struct conf_stmt *s, void *ctx);
extern const struct conf_section conf_sec_request_rule;

/* conf_keys.c: checks that need the whole file, run after parsing. */
void conf_check_final(struct conf_parser *p);

/* conf_ext.c: the registry as the parser sees it. An extension's key in
 * section sec (SEC_TOP for its section's name, SEC_LISTEN, SEC_*_RULE, its
 * own section), or NULL. */
const struct conf_key *conf_ext_find_key(enum conf_section_id sec, enum conf_kw kw);
/* Runs every registered extension's check, in registration order. */
void conf_ext_check_all(struct conf_parser *p);

#endif
