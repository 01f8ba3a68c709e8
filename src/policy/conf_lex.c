/*
 * conf_lex.c - tokenizer for stpd.conf. See conf_lex.h for the token rules.
 */
#include "policy/conf_lex.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kw_entry {
	const char *name;
	enum conf_kw kw;
};

/* Sorted by strcmp() order: conf_kw_lookup() uses bsearch(). */
static const struct kw_entry kw_table[] = {
	{ "auth", KW_AUTH },
	{ "backend", KW_BACKEND },
	{ "base", KW_BASE },
	{ "bind-accept", KW_BIND_ACCEPT },
	{ "bind-dn", KW_BIND_DN },
	{ "bind-password-file", KW_BIND_PASSWORD_FILE },
	{ "ca-file", KW_CA_FILE },
	{ "cache-size", KW_CACHE_SIZE },
	{ "cache-ttl", KW_CACHE_TTL },
	{ "client", KW_CLIENT },
	{ "command", KW_COMMAND },
	{ "connect", KW_CONNECT },
	{ "connect-attempt-delay", KW_CONNECT_ATTEMPT_DELAY },
	{ "days", KW_DAYS },
	{ "dns", KW_DNS },
	{ "dns-pending", KW_DNS_PENDING },
	{ "down-time", KW_DOWN_TIME },
	{ "drain", KW_DRAIN },
	{ "external", KW_EXTERNAL },
	{ "filter", KW_FILTER },
	{ "format", KW_FORMAT },
	{ "from", KW_FROM },
	{ "group", KW_GROUP },
	{ "group-attribute", KW_GROUP_ATTRIBUTE },
	{ "group-base", KW_GROUP_BASE },
	{ "group-filter", KW_GROUP_FILTER },
	{ "group-name-attribute", KW_GROUP_NAME_ATTRIBUTE },
	{ "handshake", KW_HANDSHAKE },
	{ "idle", KW_IDLE },
	{ "idle-timeout", KW_IDLE_TIMEOUT },
	{ "ldap", KW_LDAP },
	{ "level", KW_LEVEL },
	{ "limits", KW_LIMITS },
	{ "listen", KW_LISTEN },
	{ "listener", KW_LISTENER },
	{ "log", KW_LOG },
	{ "method", KW_METHOD },
	{ "methods", KW_METHODS },
	{ "name", KW_NAME },
	{ "nas-identifier", KW_NAS_IDENTIFIER },
	{ "pam-service", KW_PAM_SERVICE },
	{ "port", KW_PORT },
	{ "proxy-protocol", KW_PROXY_PROTOCOL },
	{ "radius", KW_RADIUS },
	{ "relay-buffer", KW_RELAY_BUFFER },
	{ "request", KW_REQUEST },
	{ "resolver", KW_RESOLVER },
	{ "retries", KW_RETRIES },
	{ "seccomp", KW_SECCOMP },
	{ "secret-file", KW_SECRET_FILE },
	{ "server", KW_SERVER },
	{ "sessions", KW_SESSIONS },
	{ "sessions-per-client", KW_SESSIONS_PER_CLIENT },
	{ "starttls", KW_STARTTLS },
	{ "target", KW_TARGET },
	{ "tcp-fastopen", KW_TCP_FASTOPEN },
	{ "time", KW_TIME },
	{ "timeout", KW_TIMEOUT },
	{ "timeouts", KW_TIMEOUTS },
	{ "to", KW_TO },
	{ "udp-advertise", KW_UDP_ADVERTISE },
	{ "udp-idle", KW_UDP_IDLE },
	{ "uri", KW_URI },
	{ "user", KW_USER },
	{ "user-dn", KW_USER_DN },
	{ "users-file", KW_USERS_FILE },
	{ "workers", KW_WORKERS },
};
#define KW_TABLE_LEN (sizeof(kw_table) / sizeof(kw_table[0]))

static int kw_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct kw_entry *)elem)->name);
}

enum conf_kw conf_kw_lookup(const char *word)
{
	const struct kw_entry *e = bsearch(word, kw_table, KW_TABLE_LEN, sizeof(kw_table[0]),
					   kw_cmp);
	return e ? e->kw : conf_ext_kw_lookup(word);
}

const char *conf_kw_name(enum conf_kw kw)
{
	if (kw >= KW_COUNT_)
		return conf_ext_kw_name(kw);
	for (size_t i = 0; i < KW_TABLE_LEN; i++)
		if (kw_table[i].kw == kw)
			return kw_table[i].name;
	return "?";
}

bool conf_kw_table_ok(void)
{
	bool seen[KW_COUNT_] = { false };
	if (KW_TABLE_LEN != KW_COUNT_ - 1)
		return false;
	for (size_t i = 0; i < KW_TABLE_LEN; i++) {
		if (i > 0 && strcmp(kw_table[i - 1].name, kw_table[i].name) >= 0)
			return false;
		if (kw_table[i].kw <= KW_NONE || kw_table[i].kw >= KW_COUNT_ ||
		    seen[kw_table[i].kw])
			return false;
		seen[kw_table[i].kw] = true;
	}
	return true;
}

void conf_lex_init(struct conf_lex *lx, const char *text, size_t len)
{
	lx->p = text;
	lx->end = text + len;
	lx->line = 1;
}

static bool lex_is_word_char(char c)
{
	unsigned char u = (unsigned char)c;
	return u > 0x20 && u < 0x7f && c != '{' && c != '}' && c != ';' && c != '#' && c != '"';
}

static void lex_error(struct conf_tok *t, const char *msg)
{
	t->type = TOK_ERROR;
	snprintf(t->text, sizeof(t->text), "%s", msg);
}

/* Skips spaces and comments, never the newline that ends a comment. */
static void lex_skip_blank(struct conf_lex *lx)
{
	while (lx->p < lx->end) {
		char c = *lx->p;
		if (c == ' ' || c == '\t' || c == '\r') {
			lx->p++;
		} else if (c == '#') {
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
		} else {
			break;
		}
	}
}

static void lex_word(struct conf_lex *lx, struct conf_tok *t)
{
	size_t n = 0;
	bool too_long = false;
	while (lx->p < lx->end && lex_is_word_char(*lx->p)) {
		if (n + 1 < sizeof(t->text))
			t->text[n++] = *lx->p;
		else
			too_long = true;
		lx->p++;
	}
	t->text[n] = '\0';
	if (too_long) {
		lex_error(t, "word too long (at most 511 characters)");
		return;
	}
	t->type = TOK_WORD;
	t->kw = conf_kw_lookup(t->text);
}

/* A quoted string ends on the same line; \" and \\ are the only escapes. */
static void lex_string(struct conf_lex *lx, struct conf_tok *t)
{
	size_t n = 0;
	bool too_long = false, bad_char = false;
	lx->p++; /* opening quote */
	for (;;) {
		if (lx->p >= lx->end || *lx->p == '\n') {
			lex_error(t, "unterminated quoted string");
			return;
		}
		char c = *lx->p++;
		if (c == '"')
			break;
		if (c == '\\' && lx->p < lx->end && (*lx->p == '"' || *lx->p == '\\'))
			c = *lx->p++;
		if ((unsigned char)c < 0x20 && c != '\t')
			bad_char = true;
		if (n + 1 < sizeof(t->text))
			t->text[n++] = c;
		else
			too_long = true;
	}
	t->text[n] = '\0';
	if (too_long)
		lex_error(t, "quoted string too long (at most 511 characters)");
	else if (bad_char)
		lex_error(t, "control character in quoted string");
	else
		t->type = TOK_STRING;
}

void conf_lex_next(struct conf_lex *lx, struct conf_tok *t)
{
	t->kw = KW_NONE;
	t->text[0] = '\0';
	lex_skip_blank(lx);
	t->line = lx->line;
	if (lx->p >= lx->end) {
		t->type = TOK_EOF;
		return;
	}
	char c = *lx->p;
	switch (c) {
	case '\n':
		lx->p++;
		lx->line++;
		t->type = TOK_NL;
		return;
	case ';':
		lx->p++;
		t->type = TOK_SEMI;
		return;
	case '{':
		lx->p++;
		t->type = TOK_LBRACE;
		return;
	case '}':
		lx->p++;
		t->type = TOK_RBRACE;
		return;
	case '"':
		lex_string(lx, t);
		return;
	default:
		break;
	}
	if (lex_is_word_char(c)) {
		lex_word(lx, t);
		return;
	}
	lx->p++;
	t->type = TOK_ERROR;
	snprintf(t->text, sizeof(t->text), "unexpected character 0x%02x", (unsigned char)c);
}
