/*
 * featdoc.h - the features document of method X'87' and command X'F3'
 * (feature discovery, docs/protocol.md section 5.6): what a listener
 * offers to one client, as a list of self-describing entries.
 *
 *   document:  +------+-------+-----+---------+
 *              | FVER | FLAGS | LEN | ENTRIES |    FVER X'01', LEN MSB first,
 *              +------+-------+-----+---------+    LEN <= FEAT_DOC_MAX
 *              |  1   |   1   |  2  |   LEN   |
 *              +------+-------+-----+---------+
 *
 *   entry:     +-------+------+------+------+------+------+-------+
 *              | SCOPE | CODE | TYPE | NLEN | NAME | VLEN | VALUE |
 *              +-------+------+------+------+------+------+-------+
 *              |   1   |  1   |  1   |  1   | NLEN |  1   | VLEN  |
 *              +-------+------+------+------+------+------+-------+
 *
 * Pure (libc only, no allocation): stpd's discovery module writes it,
 * libstp parses it. The parsed document points into the caller's bytes.
 */
#ifndef STP_PROTO_FEATDOC_H
#define STP_PROTO_FEATDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

#define FEAT_VER       0x01
#define FEAT_HDR_LEN   4
#define FEAT_DOC_MAX   4096 /* LEN above this is BAD: a client buffers the whole document */
#define FEAT_NAME_MAX  32
#define FEAT_ENTRY_MAX (5 + FEAT_NAME_MAX + 255)

enum feat_flag {
	FEAT_FLAG_TRUNCATED = 0x01, /* entries were left out: they did not fit */
};

enum feat_scope {
	FEAT_SCOPE_SERVER = 0x00,  /* CODE 0: the listener as a whole */
	FEAT_SCOPE_METHOD = 0x01,  /* CODE: a METHOD it offers */
	FEAT_SCOPE_COMMAND = 0x02, /* CODE: a CMD it offers */
	FEAT_SCOPE_VERSION = 0x03, /* CODE: a protocol version (4 or 5) */
};

enum feat_type {
	FEAT_T_UINT = 0x01,  /* VLEN 1..8, unsigned, MSB first */
	FEAT_T_TEXT = 0x02,  /* VLEN 0..255 bytes X'20'..X'7E' */
	FEAT_T_CODES = 0x03, /* VLEN 0..255 octets (codes: methods, commands, suites...) */
	FEAT_T_FLAG = 0x04,  /* VLEN 0: present means true */
};

struct feat_entry {
	uint8_t scope, code, type;
	uint8_t nlen, vlen;
	char name[FEAT_NAME_MAX + 1]; /* NUL-terminated */
	const uint8_t *value;         /* points into the document */
	uint64_t uint;                /* FEAT_T_UINT: the value */
};

struct feat_doc {
	uint8_t ver, flags;
	uint16_t len;
	const uint8_t *body; /* the LEN entry bytes, inside the parsed buffer */
};

/*
 * One document from p[0..n). MORE until all LEN bytes are in; BAD (rep
 * X'01') for LEN > FEAT_DOC_MAX or, with FVER X'01', a malformed entry (one
 * that runs past LEN, NLEN 0 or > 32, a name byte outside [a-z0-9-], a
 * FEAT_T_UINT of VLEN 0 or > 8, a FEAT_T_FLAG with a value, a FEAT_T_TEXT
 * byte outside X'20'..X'7E'). Another FVER is DONE with no entries checked:
 * its length still frames it, and a client skips it. Unknown SCOPE and TYPE
 * values are well-formed (skipped by readers: forward compatibility).
 */
enum socks_res feat_doc_parse(struct feat_doc *out, const uint8_t *p, size_t n, size_t *used,
			      struct socks_err *err);

/* The entry at *off (start at 0) of a parsed FVER X'01' document; advances
 * *off. false at the end. */
bool feat_next(const struct feat_doc *d, size_t *off, struct feat_entry *e);
/* The first entry with this scope, code and name, or false. */
bool feat_find(const struct feat_doc *d, uint8_t scope, uint8_t code, const char *name,
	       struct feat_entry *e);

/* A document being written into buf. Entries that do not fit are left out
 * and set FEAT_FLAG_TRUNCATED, and so are all entries after them (the
 * document stays a prefix of the whole: write what matters first). With keep_* set (feat_writer_keep), entries
 * about a method or command not kept are dropped silently: modules
 * describe themselves without knowing what this client is offered. */
struct feat_writer {
	uint8_t *buf;
	size_t cap, len;
	uint8_t flags;
	bool filter;
	uint8_t keep[2][32]; /* [0] methods, [1] commands: bit per code */
};

/* cap at least FEAT_HDR_LEN; at most FEAT_HDR_LEN + FEAT_DOC_MAX is used. */
void feat_writer_init(struct feat_writer *w, uint8_t *buf, size_t cap);
/* From now on, method/command entries need their code kept. */
void feat_writer_keep(struct feat_writer *w, uint8_t scope, uint8_t code);
bool feat_writer_kept(const struct feat_writer *w, uint8_t scope, uint8_t code);
/* false when the entry is malformed (a bad name, VLEN) or did not fit
 * (then FEAT_FLAG_TRUNCATED is set). */
bool feat_put(struct feat_writer *w, uint8_t scope, uint8_t code, uint8_t type, const char *name,
	      const uint8_t *value, size_t vlen);
bool feat_put_uint(struct feat_writer *w, uint8_t scope, uint8_t code, const char *name,
		   uint64_t v);
bool feat_put_text(struct feat_writer *w, uint8_t scope, uint8_t code, const char *name,
		   const char *text);
bool feat_put_codes(struct feat_writer *w, uint8_t scope, uint8_t code, const char *name,
		    const uint8_t *codes, size_t n);
bool feat_put_flag(struct feat_writer *w, uint8_t scope, uint8_t code, const char *name);
/* Writes the header; returns the document's length (FEAT_HDR_LEN + LEN). */
size_t feat_writer_finish(struct feat_writer *w);

const char *feat_scope_name(uint8_t scope);

#endif
