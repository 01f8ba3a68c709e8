/*
 * conf_ext.c - the registry of extensions' config (conf_ext.h): their
 * keywords, sections, keys in the core's blocks and command names, turned
 * at registration into the parser's own tables (struct conf_key, struct
 * conf_section), so that the parser treats them like the core's keys; and
 * their settings and per-listener/per-rule data in each snapshot.
 *
 * Static arrays: registration happens once, before threads, and the
 * parser then only reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sockaddr.h"
#include "policy/conf_internal.h"
#include "policy/conf_parse.h"

#define EXT_SECTION_KEYS_MAX 32 /* keys of one extension's section */
#define EXT_BLOCK_KEYS_MAX 32   /* extensions' keys in one core block, all together */
#define EXT_COMMANDS_MAX 24     /* extensions' command names, all together */

enum { BLK_LISTEN, BLK_CLIENT_RULE, BLK_REQUEST_RULE, BLK_COUNT_ };

_Static_assert(CONF_EXT_ARGS_MAX == CONF_ARGS_MAX, "a handler sees every value");

/* An extension's key as the parser sees it (k), and whose it is. */
struct ext_key {
	struct conf_key k; /* first: the parser's p->key points here */
	const struct conf_ext_key *ext;
	unsigned slot;
};

static struct {
	const struct conf_ext *ext[CONF_EXT_MAX];
	size_t n_ext;
	const char *kw[CONF_EXT_KW_MAX]; /* id KW_COUNT_ + i */
	size_t n_kw;
	/* Each extension's section (its keys are found through
	 * conf_ext_find_key), by slot. */
	struct conf_section section[CONF_EXT_MAX];
	struct ext_key section_keys[CONF_EXT_MAX][EXT_SECTION_KEYS_MAX];
	size_t n_section_keys[CONF_EXT_MAX];
	/* The keys that open those sections, at the top level. */
	struct ext_key top_keys[CONF_EXT_MAX];
	size_t n_top;
	struct ext_key block_keys[BLK_COUNT_][EXT_BLOCK_KEYS_MAX];
	size_t n_block_keys[BLK_COUNT_];
	struct conf_ext_command commands[EXT_COMMANDS_MAX];
	size_t n_commands;
} reg;

/* ---- keywords ---- */

enum conf_kw conf_ext_kw_lookup(const char *word)
{
	for (size_t i = 0; i < reg.n_kw; i++)
		if (strcmp(reg.kw[i], word) == 0)
			return (enum conf_kw)(KW_COUNT_ + i);
	return KW_NONE;
}

const char *conf_ext_kw_name(enum conf_kw kw)
{
	size_t i = (size_t)kw - KW_COUNT_;
	return kw >= KW_COUNT_ && i < reg.n_kw ? reg.kw[i] : "?";
}

/* The id of name, core or extension, adding it when new; KW_NONE when the
 * table is full or the name could never be read as one word. */
static enum conf_kw ext_kw_intern(const char *name)
{
	enum conf_kw kw = conf_kw_lookup(name);
	if (kw != KW_NONE)
		return kw;
	size_t n = strlen(name);
	if (n == 0 || n >= CONF_TOK_MAX || reg.n_kw == CONF_EXT_KW_MAX)
		return KW_NONE;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= 0x20 || (unsigned char)name[i] >= 0x7f ||
		    strchr("{};#\"", name[i]))
			return KW_NONE;
	reg.kw[reg.n_kw] = name;
	return (enum conf_kw)(KW_COUNT_ + reg.n_kw++);
}

/* ---- the handlers the parser calls for extensions' keys ---- */

/* Only the registry's keys have these handlers, so p->key is one of its
 * struct ext_key. */
static const struct ext_key *ext_key_of(const struct conf_parser *p)
{
	return (const struct ext_key *)p->key;
}

/* The extension's data for the listener or rule a statement is in,
 * allocated zeroed when first used; NULL when out of memory. */
static void *ext_slot_data(struct conf_parser *p, void **slots, size_t size, int line)
{
	unsigned slot = ext_key_of(p)->slot;
	if (!slots[slot]) {
		slots[slot] = calloc(1, size ? size : 1);
		if (!slots[slot])
			conf_oom(p, line);
	}
	return slots[slot];
}

static void ext_call(struct conf_parser *p, const struct conf_stmt *s, void *data)
{
	const char *args[CONF_EXT_ARGS_MAX];
	for (size_t i = 0; i < s->nargs && i < CONF_EXT_ARGS_MAX; i++)
		args[i] = s->args[i].text;
	struct conf_ext_stmt es = { s->key, s->line, s->nargs, args };
	ext_key_of(p)->ext->fn(p, &es, data);
}

/* "NAME { ... }": the block works on the extension's settings. */
static void *ext_key_open(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	return p->conf->ext[ext_key_of(p)->slot];
}

static void *ext_key_section(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	if (ctx)
		ext_call(p, s, ctx);
	return ctx;
}

static void *ext_key_listen(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct conf_listener *l = ctx;
	const struct conf_ext *e = reg.ext[ext_key_of(p)->slot];
	void *data = l ? ext_slot_data(p, l->ext, e->listener_size, s->line) : NULL;
	if (data)
		ext_call(p, s, data);
	return ctx;
}

static void *ext_key_rule(struct conf_parser *p, const struct conf_stmt *s, void *ctx)
{
	struct rule *r = ctx;
	const struct conf_ext *e = reg.ext[ext_key_of(p)->slot];
	void *data = r ? ext_slot_data(p, r->ext, e->rule_size, s->line) : NULL;
	if (data) {
		r->ext_match[ext_key_of(p)->slot] = e->rule_match;
		ext_call(p, s, data);
	}
	return ctx;
}

/* ---- registration ---- */

static int ext_fail(char *err, size_t errlen, const struct conf_ext *e, const char *what)
{
	if (err && errlen)
		snprintf(err, errlen, "extension %s: %s", e->name ? e->name : "?", what);
	return -1;
}

/* Fills k from an extension's key; -1 when its keyword cannot be had. */
static int ext_key_make(struct ext_key *k, const struct conf_ext_key *ek, unsigned slot,
			conf_key_fn fn)
{
	enum conf_kw kw = ext_kw_intern(ek->name);
	if (kw == KW_NONE || !ek->fn || ek->max_args > CONF_EXT_ARGS_MAX ||
	    ek->min_args > ek->max_args)
		return -1;
	k->k = (struct conf_key){ kw, ek->min_args, ek->max_args, ek->once, NULL, false, fn };
	k->ext = ek;
	k->slot = slot;
	return 0;
}

static bool core_key_taken(const struct conf_section *sec, enum conf_kw kw)
{
	for (size_t i = 0; i < sec->n_keys; i++)
		if (sec->keys[i].kw == kw)
			return true;
	return false;
}

static const struct ext_key *ext_key_find(const struct ext_key *keys, size_t n, enum conf_kw kw)
{
	for (size_t i = 0; kw != KW_NONE && i < n; i++)
		if (keys[i].k.kw == kw)
			return &keys[i];
	return NULL;
}

static int ext_add_section(const struct conf_ext *e, unsigned slot, char *err, size_t errlen)
{
	const struct conf_ext_section *sec = e->section;
	struct ext_key *keys = reg.section_keys[slot];
	if (sec->n_keys > EXT_SECTION_KEYS_MAX)
		return ext_fail(err, errlen, e, "too many section keys");
	for (size_t i = 0; i < sec->n_keys; i++) {
		if (ext_key_make(&keys[i], &sec->keys[i], slot, ext_key_section) < 0 ||
		    ext_key_find(keys, i, keys[i].k.kw))
			return ext_fail(err, errlen, e, "bad or duplicate section key");
	}
	reg.n_section_keys[slot] = sec->n_keys;
	/* No keys of its own: conf_ext_find_key finds them by the id. */
	reg.section[slot] = (struct conf_section){ (enum conf_section_id)(SEC_EXT_ + slot),
						   sec->what, NULL, 0 };
	struct ext_key *top = &reg.top_keys[reg.n_top];
	enum conf_kw kw = ext_kw_intern(sec->name);
	if (kw == KW_NONE || core_key_taken(&conf_sec_top, kw) ||
	    ext_key_find(reg.top_keys, reg.n_top, kw))
		return ext_fail(err, errlen, e, "bad or taken section name");
	top->k = (struct conf_key){ kw, 0, 0, false, &reg.section[slot], true, ext_key_open };
	top->ext = NULL;
	top->slot = slot;
	reg.n_top++;
	return 0;
}

static const struct conf_section *const core_blocks[BLK_COUNT_] = {
	&conf_sec_listen, &conf_sec_client_rule, &conf_sec_request_rule,
};

static int ext_add_block_key(const struct conf_ext *e, unsigned slot,
			     const struct conf_ext_rule_key *rk, char *err, size_t errlen)
{
	static const conf_key_fn fns[BLK_COUNT_] = { ext_key_listen, ext_key_rule, ext_key_rule };
	unsigned b = rk->in == CONF_IN_LISTEN ? BLK_LISTEN :
		     rk->in == CONF_IN_CLIENT_RULE ? BLK_CLIENT_RULE : BLK_REQUEST_RULE;
	struct ext_key *k = &reg.block_keys[b][reg.n_block_keys[b]];
	if (reg.n_block_keys[b] == EXT_BLOCK_KEYS_MAX)
		return ext_fail(err, errlen, e, "too many keys in the core's blocks");
	if (ext_key_make(k, &rk->key, slot, fns[b]) < 0 || core_key_taken(core_blocks[b], k->k.kw) ||
	    ext_key_find(reg.block_keys[b], reg.n_block_keys[b], k->k.kw))
		return ext_fail(err, errlen, e, "bad or taken rule key");
	reg.n_block_keys[b]++;
	return 0;
}

static int ext_add_command(const struct conf_ext *e, const struct conf_ext_command *c,
			   char *err, size_t errlen)
{
	uint32_t bit;
	bool one_bit = c->bit && (c->bit & (c->bit - 1)) == 0;
	if (reg.n_commands == EXT_COMMANDS_MAX)
		return ext_fail(err, errlen, e, "too many commands");
	if (!c->name || !one_bit || (c->bit & RULE_CMD_CORE_BITS) ||
	    strcmp(conf_command_name(c->bit), "unknown") != 0 || cv_command(c->name, &bit) == 0)
		return ext_fail(err, errlen, e, "bad or taken command name or bit");
	reg.commands[reg.n_commands++] = *c;
	return 0;
}

/* The tables' counts, to undo a registration that failed half-way. */
struct reg_mark {
	size_t n_kw, n_top, n_block_keys[BLK_COUNT_], n_commands;
};

static int ext_add(const struct conf_ext *e, unsigned slot, char *err, size_t errlen)
{
	if (e->section && ext_add_section(e, slot, err, errlen) < 0)
		return -1;
	for (size_t i = 0; i < e->n_rule_keys; i++)
		if (ext_add_block_key(e, slot, &e->rule_keys[i], err, errlen) < 0)
			return -1;
	for (size_t i = 0; i < e->n_commands; i++)
		if (ext_add_command(e, &e->commands[i], err, errlen) < 0)
			return -1;
	return 0;
}

int conf_ext_register(const struct conf_ext *e, char *err, size_t errlen)
{
	for (size_t i = 0; i < reg.n_ext; i++)
		if (reg.ext[i] == e)
			return 0;
	if (reg.n_ext == CONF_EXT_MAX)
		return ext_fail(err, errlen, e, "too many extensions");
	struct reg_mark m = { reg.n_kw, reg.n_top, { 0 }, reg.n_commands };
	memcpy(m.n_block_keys, reg.n_block_keys, sizeof(m.n_block_keys));
	unsigned slot = (unsigned)reg.n_ext;
	if (ext_add(e, slot, err, errlen) < 0) {
		reg.n_kw = m.n_kw;
		reg.n_top = m.n_top;
		memcpy(reg.n_block_keys, m.n_block_keys, sizeof(m.n_block_keys));
		reg.n_commands = m.n_commands;
		reg.n_section_keys[slot] = 0;
		return -1;
	}
	reg.ext[reg.n_ext++] = e;
	return 0;
}

/* ---- extensions left out of this build ---- */

#define CONF_EXT_ABSENT_MAX CONF_EXT_MAX

static struct absent_ext {
	const struct conf_ext *e;
	const char *what, *option;
} absent[CONF_EXT_ABSENT_MAX];
static size_t n_absent;

int conf_ext_register_absent(const struct conf_ext *e, const char *what, const char *option,
			     char *err, size_t errlen)
{
	for (size_t i = 0; i < n_absent; i++)
		if (absent[i].e == e)
			return 0; /* again: a no-op, as conf_ext_register */
	if (n_absent == CONF_EXT_ABSENT_MAX)
		return ext_fail(err, errlen, e, "too many absent extensions");
	absent[n_absent++] = (struct absent_ext){ e, what, option };
	return 0;
}

static bool absent_names(const struct conf_ext *e, const char *word)
{
	if (e->section && strcmp(e->section->name, word) == 0)
		return true;
	for (size_t i = 0; e->section && i < e->section->n_keys; i++)
		if (strcmp(e->section->keys[i].name, word) == 0)
			return true;
	for (size_t i = 0; i < e->n_rule_keys; i++)
		if (strcmp(e->rule_keys[i].key.name, word) == 0)
			return true;
	for (size_t i = 0; i < e->n_commands; i++)
		if (strcmp(e->commands[i].name, word) == 0)
			return true;
	return false;
}

const char *conf_ext_absent_hint(const char *word, char *buf, size_t cap)
{
	for (size_t i = 0; i < n_absent; i++) {
		if (!absent_names(absent[i].e, word))
			continue;
		snprintf(buf, cap, "'%.64s' needs %s, and this stpd was built without it (meson "
			 "option %s=false)", word, absent[i].what, absent[i].option);
		return buf;
	}
	return NULL;
}

/* ---- what the parser asks ---- */

const struct conf_key *conf_ext_find_key(enum conf_section_id sec, enum conf_kw kw)
{
	const struct ext_key *k = NULL;
	if (sec == SEC_TOP)
		k = ext_key_find(reg.top_keys, reg.n_top, kw);
	else if (sec >= SEC_EXT_ && sec < SEC_EXT_ + CONF_EXT_MAX)
		k = ext_key_find(reg.section_keys[sec - SEC_EXT_], reg.n_section_keys[sec - SEC_EXT_],
				 kw);
	else if (sec == SEC_LISTEN)
		k = ext_key_find(reg.block_keys[BLK_LISTEN], reg.n_block_keys[BLK_LISTEN], kw);
	else if (sec == SEC_CLIENT_RULE)
		k = ext_key_find(reg.block_keys[BLK_CLIENT_RULE], reg.n_block_keys[BLK_CLIENT_RULE],
				 kw);
	else if (sec == SEC_REQUEST_RULE)
		k = ext_key_find(reg.block_keys[BLK_REQUEST_RULE],
				 reg.n_block_keys[BLK_REQUEST_RULE], kw);
	return k ? &k->k : NULL;
}

void conf_ext_check_all(struct conf_parser *p)
{
	for (size_t i = 0; i < reg.n_ext; i++) {
		const struct conf_ext_section *sec = reg.ext[i]->section;
		if (sec && sec->check && p->conf->ext[i])
			sec->check(p, p->conf, p->conf->ext[i]);
	}
}

int conf_ext_command_bit(const char *name, uint32_t *bit)
{
	for (size_t i = 0; i < reg.n_commands; i++) {
		if (strcmp(reg.commands[i].name, name) == 0) {
			*bit = reg.commands[i].bit;
			return 0;
		}
	}
	return -1;
}

const char *conf_ext_command_name(uint32_t bit)
{
	for (size_t i = 0; i < reg.n_commands; i++)
		if (reg.commands[i].bit == bit)
			return reg.commands[i].name;
	return NULL;
}

const char *conf_ext_command_at(size_t i)
{
	return i < reg.n_commands ? reg.commands[i].name : NULL;
}

/* ---- value helpers (conf_keys.c words the core's the same way) ---- */

void conf_ext_uint(struct conf_parser *p, const struct conf_ext_stmt *s, unsigned min,
		   unsigned max, unsigned *out)
{
	if (cv_uint(s->args[0], min, max, out) < 0)
		conf_error(p, s->line, "'%s' wants a number from %u to %u, not '%.64s'", s->key, min,
			   max, s->args[0]);
}

void conf_ext_bool(struct conf_parser *p, const struct conf_ext_stmt *s, bool *out)
{
	if (cv_bool(s->args[0], out) < 0)
		conf_error(p, s->line, "'%s' is on or off, not '%.64s'", s->key, s->args[0]);
}

void conf_ext_string(struct conf_parser *p, const struct conf_ext_stmt *s, char *dst, size_t cap)
{
	size_t n = strlen(s->args[0]);
	if (n >= cap || n == 0) {
		conf_error(p, s->line, "'%s' wants 1 to %zu characters", s->key, cap - 1);
		return;
	}
	memcpy(dst, s->args[0], n + 1);
}

void conf_ext_file(struct conf_parser *p, const struct conf_ext_stmt *s, char *dst, size_t cap)
{
	conf_ext_string(p, s, dst, cap);
	conf_ext_note_file(p, s);
}

void conf_ext_note_file(struct conf_parser *p, const struct conf_ext_stmt *s)
{
	struct stp_conf *c = p->conf;
	if (strlen(s->args[0]) >= CONF_PATH_MAX)
		return;
	if (c->n_files == CONF_FILES_MAX) {
		conf_error(p, s->line, "too many files named (at most %d)", CONF_FILES_MAX);
		return;
	}
	memcpy(c->files[c->n_files++], s->args[0], strlen(s->args[0]) + 1);
}

void conf_ext_addrs(struct conf_parser *p, const struct conf_ext_stmt *s,
		    struct sockaddr_storage *addr, socklen_t *len, size_t *n, size_t max)
{
	for (size_t i = 0; i < s->nargs; i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		if (sa_parse(&ss, &sl, s->args[i], 0) < 0 || sa_port((struct sockaddr *)&ss) == 0) {
			conf_error(p, s->line, "bad address '%.64s' for '%s' (want IP:PORT or [V6]:PORT)",
				   s->args[i], s->key);
			continue;
		}
		if (*n == max) {
			conf_error(p, s->line, "at most %zu '%s' addresses", max, s->key);
			return;
		}
		addr[*n] = ss;
		if (len)
			len[*n] = sl;
		(*n)++;
	}
}

/* ---- the data in a snapshot ---- */

int conf_ext_settings_init(struct stp_conf *c)
{
	for (size_t i = 0; i < reg.n_ext; i++) {
		const struct conf_ext_section *sec = reg.ext[i]->section;
		if (!sec)
			continue;
		c->ext[i] = calloc(1, sec->settings_size ? sec->settings_size : 1);
		if (!c->ext[i])
			return -1;
		if (sec->init_defaults)
			sec->init_defaults(c->ext[i]);
	}
	return 0;
}

void conf_ext_settings_free(struct stp_conf *c)
{
	for (size_t i = 0; i < CONF_EXT_MAX; i++) {
		if (!c->ext[i])
			continue;
		if (i < reg.n_ext && reg.ext[i]->section && reg.ext[i]->section->free)
			reg.ext[i]->section->free(c->ext[i]);
		free(c->ext[i]);
		c->ext[i] = NULL;
	}
}

void conf_ext_slots_free(void **slots)
{
	for (size_t i = 0; i < CONF_EXT_MAX; i++) {
		free(slots[i]);
		slots[i] = NULL;
	}
}

static int ext_slot(const struct conf_ext *e)
{
	for (size_t i = 0; i < reg.n_ext; i++)
		if (reg.ext[i] == e)
			return (int)i;
	return -1;
}

const void *conf_ext_get(const struct stp_conf *c, const struct conf_ext *e)
{
	int i = ext_slot(e);
	return i < 0 ? NULL : c->ext[i];
}

const void *conf_ext_listener(const struct conf_listener *l, const struct conf_ext *e)
{
	int i = ext_slot(e);
	return i < 0 ? NULL : l->ext[i];
}

const void *conf_ext_rule(const struct rule *r, const struct conf_ext *e)
{
	int i = ext_slot(e);
	return i < 0 ? NULL : r->ext[i];
}

unsigned conf_auth_used(const struct stp_conf *c)
{
	unsigned bits = c->auth_methods;
	for (size_t i = 0; i < reg.n_ext; i++)
		if (reg.ext[i]->auth_used)
			bits |= reg.ext[i]->auth_used(c, c->ext[i]);
	return bits;
}
