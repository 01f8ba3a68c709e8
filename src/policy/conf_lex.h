/*
 * conf_lex.h - tokenizer for stpd.conf (internal to src/policy).
 *
 * The language has four kinds of token besides words: '{', '}', ';' and the
 * end of a line (statements end at a newline or ';'). '#' starts a comment
 * that runs to the end of the line. A word is any run of printable
 * characters other than whitespace, braces, ';', '#' and '"'; a quoted
 * string "..." may hold those too (escapes: \" and \\). Words are looked up
 * in a sorted keyword table; a quoted string is never a keyword.
 */
#ifndef STP_POLICY_CONF_LEX_H
#define STP_POLICY_CONF_LEX_H

#include <stdbool.h>
#include <stddef.h>

#define CONF_TOK_MAX 512 /* longest word or string, NUL included */

enum conf_tok_type {
	TOK_EOF = 0,
	TOK_NL,     /* end of line */
	TOK_SEMI,   /* ';' */
	TOK_LBRACE, /* '{' */
	TOK_RBRACE, /* '}' */
	TOK_WORD,   /* bare word: may be a keyword */
	TOK_STRING, /* "quoted": never a keyword */
	TOK_ERROR,  /* bad input; text holds the message */
};

/* Keyword ids of the core's own keys. Keep the table in conf_lex.c sorted
 * by name. Extensions' keywords (conf_ext.h) are given the ids from
 * KW_COUNT_ up, in the order they are registered. */
enum conf_kw {
	KW_NONE = 0,
	KW_AUTH,
	KW_BACKEND,
	KW_BIND_ACCEPT,
	KW_CLIENT,
	KW_COMMAND,
	KW_CONNECT,
	KW_CONNECT_ATTEMPT_DELAY,
	KW_DAYS,
	KW_DNS,
	KW_DNS_PENDING,
	KW_DRAIN,
	KW_EXTERNAL,
	KW_FORMAT,
	KW_FROM,
	KW_GROUP,
	KW_HANDSHAKE,
	KW_IDLE,
	KW_IDLE_TIMEOUT,
	KW_LEVEL,
	KW_LIMITS,
	KW_LISTEN,
	KW_LISTENER,
	KW_LOG,
	KW_METHODS,
	KW_NAME,
	KW_PAM_SERVICE,
	KW_PORT,
	KW_PROXY_PROTOCOL,
	KW_RELAY_BUFFER,
	KW_REQUEST,
	KW_RESOLVER,
	KW_SESSIONS,
	KW_SESSIONS_PER_CLIENT,
	KW_TARGET,
	KW_TIME,
	KW_TIMEOUTS,
	KW_TO,
	KW_UDP_ADVERTISE,
	KW_UDP_IDLE,
	KW_USER,
	KW_USERS_FILE,
	KW_WORKERS,
	KW_BASE,
	KW_BIND_DN,
	KW_BIND_PASSWORD_FILE,
	KW_CA_FILE,
	KW_CACHE_SIZE,
	KW_CACHE_TTL,
	KW_DOWN_TIME,
	KW_FILTER,
	KW_GROUP_ATTRIBUTE,
	KW_GROUP_BASE,
	KW_GROUP_FILTER,
	KW_GROUP_NAME_ATTRIBUTE,
	KW_LDAP,
	KW_METHOD,
	KW_NAS_IDENTIFIER,
	KW_RADIUS,
	KW_RETRIES,
	KW_SECRET_FILE,
	KW_SERVER,
	KW_STARTTLS,
	KW_TIMEOUT,
	KW_URI,
	KW_USER_DN,
	KW_TCP_FASTOPEN,
	KW_SECCOMP,
	KW_COUNT_
};
#define CONF_EXT_KW_MAX 128                   /* extensions' keywords, all together */
#define KW_ID_MAX (KW_COUNT_ + CONF_EXT_KW_MAX) /* bound of every keyword id */

struct conf_tok {
	enum conf_tok_type type;
	enum conf_kw kw; /* TOK_WORD only; KW_NONE if not a keyword (core or extension) */
	int line;
	char text[CONF_TOK_MAX];
};

struct conf_lex {
	const char *p, *end;
	int line;
};

void conf_lex_init(struct conf_lex *lx, const char *text, size_t len);
/* Reads the next token into t. Never fails: bad input gives TOK_ERROR with
 * a message, and the lexer has already skipped past it. */
void conf_lex_next(struct conf_lex *lx, struct conf_tok *t);

/* The id of a core or a registered extension keyword; KW_NONE if neither. */
enum conf_kw conf_kw_lookup(const char *word);
const char *conf_kw_name(enum conf_kw kw);
/* conf_ext.c: extensions' keywords only (ids >= KW_COUNT_). */
enum conf_kw conf_ext_kw_lookup(const char *word);
const char *conf_ext_kw_name(enum conf_kw kw);
/* For the unit test: true when the keyword table is strictly sorted and
 * covers every id once. */
bool conf_kw_table_ok(void);

#endif
