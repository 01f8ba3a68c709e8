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

/* Keyword ids. Keep the table in conf_lex.c sorted by name. */
enum conf_kw {
	KW_NONE = 0,
	KW_AUTH,
	KW_BACKEND,
	KW_BIND_ACCEPT,
	KW_CERT,
	KW_CERT_USER,
	KW_CLIENT,
	KW_CLIENT_CA,
	KW_CLIENT_CERT,
	KW_COMMAND,
	KW_CONNECT,
	KW_CONNECT_ATTEMPT_DELAY,
	KW_DAYS,
	KW_DNS,
	KW_DNS_PENDING,
	KW_EXTERNAL,
	KW_FORMAT,
	KW_FROM,
	KW_GROUP,
	KW_HANDSHAKE,
	KW_IDLE,
	KW_IDLE_TIMEOUT,
	KW_KEY,
	KW_LEVEL,
	KW_LIMITS,
	KW_LISTEN,
	KW_LISTENER,
	KW_LOG,
	KW_METHODS,
	KW_MIN_VERSION,
	KW_NAME,
	KW_PAM_SERVICE,
	KW_PORT,
	KW_PROXY_PROTOCOL,
	KW_RELAY_BUFFER,
	KW_REQUEST,
	KW_REQUIRE_TLS,
	KW_RESOLVER,
	KW_SESSIONS,
	KW_SESSIONS_PER_CLIENT,
	KW_SUBAUTH,
	KW_TARGET,
	KW_TIME,
	KW_TIMEOUTS,
	KW_TLS,
	KW_TO,
	KW_UDP_ADVERTISE,
	KW_UDP_IDLE,
	KW_UDP_NAKED,
	KW_USER,
	KW_USERS_FILE,
	KW_WORKERS,
	KW_BURST,
	KW_ENCRYPTION,
	KW_EXTERNAL_INTERFACE,
	KW_INTERNAL_INTERFACE,
	KW_MAX_MEMBERS,
	KW_MAX_TIME,
	KW_MCAST,
	KW_POOL,
	KW_RATE,
	KW_TTL,
	KW_COUNT_
};

struct conf_tok {
	enum conf_tok_type type;
	enum conf_kw kw; /* TOK_WORD only; KW_NONE if not a keyword */
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

enum conf_kw conf_kw_lookup(const char *word);
const char *conf_kw_name(enum conf_kw kw);
/* For the unit test: true when the keyword table is strictly sorted and
 * covers every id once. */
bool conf_kw_table_ok(void);

#endif
