/*
 * conf_parse.c - the recursive-descent driver for stpd.conf: statements,
 * blocks, error recovery, and the two entry points conf_parse_string() and
 * conf_load(). The keys themselves are in conf_keys.c and conf_rule_keys.c.
 *
 * Errors never stop the parse (until CONF_ERRORS_MAX): the bad statement is
 * skipped up to its end, braces balanced, and parsing goes on so one run
 * reports every mistake as "file:line: message".
 */
#include "policy/conf_ext.h"
#include "policy/conf_parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/privfile.h"
#include "policy/conf_internal.h"

#define CONF_FILE_MAX (1024 * 1024) /* a config larger than this is a mistake */

/* Appends text to the error buffer, truncating at errlen. */
static void conf_err_append(struct conf_parser *p, const char *text)
{
	size_t n = strlen(text);
	if (!p->err || p->errpos + 1 >= p->errlen)
		return;
	if (n > p->errlen - p->errpos - 1)
		n = p->errlen - p->errpos - 1;
	memcpy(p->err + p->errpos, text, n);
	p->errpos += n;
	p->err[p->errpos] = '\0';
}

void conf_error(struct conf_parser *p, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (p->gave_up)
		return;
	int w = snprintf(msg, sizeof(msg), "%s:%d: ", p->file, line);
	if (w < 0 || (size_t)w >= sizeof(msg))
		w = 0;
	va_start(ap, fmt);
	vsnprintf(msg + w, sizeof(msg) - (size_t)w, fmt, ap);
	va_end(ap);
	conf_err_append(p, msg);
	conf_err_append(p, "\n");
	if (++p->nerrors >= CONF_ERRORS_MAX) {
		snprintf(msg, sizeof(msg), "%s:%d: too many errors, giving up\n", p->file, line);
		conf_err_append(p, msg);
		p->gave_up = true;
	}
}

void conf_oom(struct conf_parser *p, int line)
{
	conf_error(p, line, "out of memory");
	p->gave_up = true;
}

static void conf_advance(struct conf_parser *p)
{
	if (p->gave_up) {
		p->tok.type = TOK_EOF;
		return;
	}
	conf_lex_next(&p->lx, &p->tok);
}

static bool conf_at_end_of_stmt(const struct conf_parser *p)
{
	enum conf_tok_type t = p->tok.type;
	return t == TOK_NL || t == TOK_SEMI || t == TOK_RBRACE || t == TOK_EOF;
}

/* Skips to the end of the current statement: past the next newline or ';'
 * outside braces, or up to (not past) a '}' that closes the enclosing
 * block. A block inside the statement is skipped whole. */
static void conf_skip_stmt(struct conf_parser *p)
{
	int depth = 0;
	for (;;) {
		switch (p->tok.type) {
		case TOK_EOF:
			return;
		case TOK_LBRACE:
			depth++;
			break;
		case TOK_RBRACE:
			if (depth == 0)
				return;
			depth--;
			break;
		case TOK_NL:
		case TOK_SEMI:
			if (depth == 0) {
				conf_advance(p);
				return;
			}
			break;
		default:
			break;
		}
		conf_advance(p);
	}
}

/* Describes the lookahead for "unexpected X" messages. */
static const char *conf_tok_desc(const struct conf_tok *t, char *buf, size_t cap)
{
	switch (t->type) {
	case TOK_EOF: return "end of file";
	case TOK_NL: return "end of line";
	case TOK_SEMI: return "';'";
	case TOK_LBRACE: return "'{'";
	case TOK_RBRACE: return "'}'";
	default: break;
	}
	snprintf(buf, cap, "'%.64s'", t->text);
	return buf;
}

static void conf_parse_stmt(struct conf_parser *p, const struct conf_section *sec, void *ctx,
			    int *seen);

static void conf_parse_block(struct conf_parser *p, const struct conf_section *sec, void *ctx)
{
	int local_seen[KW_ID_MAX] = { 0 };
	int *seen = sec->id < SEC_GLOBAL_COUNT_ ? p->seen[sec->id] : local_seen;
	int open_line = p->tok.line;
	conf_advance(p); /* '{' */
	for (;;) {
		switch (p->tok.type) {
		case TOK_NL:
		case TOK_SEMI:
			conf_advance(p);
			break;
		case TOK_RBRACE:
			conf_advance(p);
			return;
		case TOK_EOF:
			conf_error(p, p->tok.line, "missing '}' for the block opened at line %d",
				   open_line);
			return;
		default:
			conf_parse_stmt(p, sec, ctx, seen);
			break;
		}
	}
}

/* The section's own keys, then those extensions add to it. */
static const struct conf_key *conf_find_key(const struct conf_section *sec, enum conf_kw kw)
{
	for (size_t i = 0; kw != KW_NONE && i < sec->n_keys; i++)
		if (sec->keys[i].kw == kw)
			return &sec->keys[i];
	return conf_ext_find_key(sec->id, kw);
}

/* Reads the values after the key. False (error reported) on a lexer error
 * or too many values. */
static bool conf_read_args(struct conf_parser *p, const struct conf_key *k)
{
	struct conf_stmt *s = &p->stmt;
	s->nargs = 0;
	while (p->tok.type == TOK_WORD || p->tok.type == TOK_STRING) {
		if (s->nargs < CONF_ARGS_MAX)
			s->args[s->nargs] = p->tok;
		s->nargs++;
		conf_advance(p);
	}
	if (p->tok.type == TOK_ERROR) {
		conf_error(p, p->tok.line, "%s", p->tok.text);
		return false;
	}
	if (s->nargs < k->min_args || s->nargs > k->max_args) {
		if (k->min_args == k->max_args)
			conf_error(p, s->line, "'%s' takes %u value%s, not %zu", s->key, k->min_args,
				   k->min_args == 1 ? "" : "s", s->nargs);
		else if (s->nargs < k->min_args)
			conf_error(p, s->line, "'%s' needs at least %u value%s", s->key, k->min_args,
				   k->min_args == 1 ? "" : "s");
		else
			conf_error(p, s->line, "'%s' takes at most %u values, not %zu", s->key,
				   k->max_args, s->nargs);
		return false;
	}
	return true;
}

/* Looks up the keyword at the lookahead in sec; reports and skips the
 * statement when it is not one of sec's keys. */
static const struct conf_key *conf_stmt_key(struct conf_parser *p, const struct conf_section *sec)
{
	char buf[80], hint[200];
	const struct conf_tok *t = &p->tok;
	const struct conf_key *k = NULL;
	if (t->type == TOK_WORD)
		k = conf_find_key(sec, t->kw);
	if (k)
		return k;
	if (t->type == TOK_ERROR)
		conf_error(p, t->line, "%s", t->text);
	else if (t->type == TOK_WORD && t->kw != KW_NONE)
		conf_error(p, t->line, "'%s' is not valid in %s", t->text, sec->what);
	else if (t->type == TOK_WORD && conf_ext_absent_hint(t->text, hint, sizeof(hint)))
		conf_error(p, t->line, "%s", hint);
	else if (t->type == TOK_WORD)
		conf_error(p, t->line, "unknown keyword '%.64s' in %s", t->text, sec->what);
	else
		conf_error(p, t->line, "expected a keyword in %s, got %s", sec->what,
			   conf_tok_desc(t, buf, sizeof(buf)));
	conf_skip_stmt(p);
	return NULL;
}

static void conf_parse_stmt(struct conf_parser *p, const struct conf_section *sec, void *ctx,
			    int *seen)
{
	char buf[80];
	const struct conf_key *k = conf_stmt_key(p, sec);
	if (!k)
		return;
	struct conf_stmt *s = &p->stmt;
	s->kw = k->kw;
	s->key = conf_kw_name(k->kw);
	s->line = p->tok.line;
	conf_advance(p);
	if (!conf_read_args(p, k)) {
		conf_skip_stmt(p);
		return;
	}
	if (k->once && seen[k->kw]) {
		conf_error(p, s->line, "duplicate '%s' in %s (first at line %d)", s->key, sec->what,
			   seen[k->kw]);
		conf_skip_stmt(p);
		return;
	}
	if (!seen[k->kw])
		seen[k->kw] = s->line; /* the first: whole-file checks point there */
	p->key = k;
	void *block_ctx = k->fn(p, s, ctx);
	/* p->stmt is reused by the statements of the block: keep what we need. */
	const char *key = s->key;
	int line = s->line;
	if (p->tok.type == TOK_LBRACE) {
		if (k->block) {
			conf_parse_block(p, k->block, block_ctx);
		} else {
			conf_error(p, p->tok.line, "'%s' takes no block", key);
			conf_skip_stmt(p);
			return;
		}
	} else if (k->block_required) {
		conf_error(p, line, "'%s' needs a block: %s { ... }", key, key);
	}
	if (p->tok.type == TOK_NL || p->tok.type == TOK_SEMI) {
		conf_advance(p);
	} else if (!conf_at_end_of_stmt(p)) {
		conf_error(p, p->tok.line, "expected the end of the '%s' statement, got %s", key,
			   conf_tok_desc(&p->tok, buf, sizeof(buf)));
		conf_skip_stmt(p);
	}
}

int conf_first_line(const struct conf_parser *p, const char *key)
{
	enum conf_kw kw = conf_kw_lookup(key);
	return kw == KW_NONE ? 0 : p->seen[SEC_TOP][kw];
}

static void conf_parse_file(struct conf_parser *p)
{
	conf_advance(p);
	while (p->tok.type != TOK_EOF) {
		switch (p->tok.type) {
		case TOK_NL:
		case TOK_SEMI:
			conf_advance(p);
			break;
		case TOK_RBRACE:
			conf_error(p, p->tok.line, "'}' without a block to close");
			conf_advance(p);
			break;
		default:
			conf_parse_stmt(p, &conf_sec_top, p->conf, p->seen[SEC_TOP]);
			break;
		}
	}
}

struct stp_conf *conf_parse_string(const char *name, const char *text, size_t len, char *err,
				   size_t errlen)
{
	struct conf_parser *p = calloc(1, sizeof(*p));
	struct stp_conf *c = conf_new();
	if (err && errlen)
		err[0] = '\0';
	if (!p || !c) {
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory\n", name);
		free(p);
		conf_unref(c);
		return NULL;
	}
	snprintf(c->path, sizeof(c->path), "%s", name);
	p->file = name;
	p->conf = c;
	p->err = err;
	p->errlen = err ? errlen : 0;
	conf_lex_init(&p->lx, text, len);
	conf_parse_file(p);
	if (!p->gave_up)
		conf_check_final(p);
	if (p->nerrors == 0 && conf_fill_defaults(c) < 0)
		conf_oom(p, p->lx.line);
	bool ok = p->nerrors == 0;
	free(p);
	if (!ok) {
		conf_unref(c);
		return NULL;
	}
	return c;
}

static char *conf_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	/* After the drop to `user` a root-only file is opened by the broker. */
	FILE *f = privfile_fopen(path);
	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %s\n", path, strerror(errno));
		return NULL;
	}
	char *buf = malloc(CONF_FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		snprintf(err, errlen, "%s: out of memory\n", path);
		return NULL;
	}
	*len = fread(buf, 1, CONF_FILE_MAX + 1, f);
	bool bad = ferror(f) != 0;
	int e = errno;
	fclose(f);
	if (bad || *len > CONF_FILE_MAX) {
		if (bad)
			snprintf(err, errlen, "%s: cannot read: %s\n", path, strerror(e));
		else
			snprintf(err, errlen, "%s: larger than %d bytes\n", path, CONF_FILE_MAX);
		free(buf);
		return NULL;
	}
	return buf;
}

struct stp_conf *conf_load(const char *path, char *err, size_t errlen)
{
	char dummy[1];
	size_t len;
	if (!err || errlen == 0) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	if (strlen(path) >= CONF_PATH_MAX) {
		snprintf(err, errlen, "%s: path too long\n", path);
		return NULL;
	}
	char *text = conf_read_file(path, &len, err, errlen);
	if (!text)
		return NULL;
	struct stp_conf *c = conf_parse_string(path, text, len, err, errlen);
	free(text);
	return c;
}
