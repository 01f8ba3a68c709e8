/*
 * featdoc.c - the features document (featdoc.h, docs/protocol.md 5.6):
 * parse, walk and write. Everything is checked once in feat_doc_parse, so
 * feat_next can trust the bytes it walks.
 */
#include "proto/featdoc.h"

#include <string.h>

#include "proto/wire.h"

static bool feat_name_ok(const uint8_t *p, size_t n)
{
	if (n == 0 || n > FEAT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

static bool feat_value_ok(uint8_t type, const uint8_t *v, size_t n)
{
	switch (type) {
	case FEAT_T_UINT:
		return n >= 1 && n <= 8;
	case FEAT_T_FLAG:
		return n == 0;
	case FEAT_T_TEXT:
		for (size_t i = 0; i < n; i++)
			if (v[i] < 0x20 || v[i] > 0x7E)
				return false;
		return true;
	default:
		return true; /* FEAT_T_CODES, and unknown types: any octets */
	}
}

/* The entry at p[0..n): its length, or 0 when it is malformed. */
static size_t feat_entry_check(const uint8_t *p, size_t n)
{
	if (n < 4)
		return 0;
	size_t nlen = p[3];
	if (n < 4 + nlen + 1 || !feat_name_ok(p + 4, nlen))
		return 0;
	size_t vlen = p[4 + nlen];
	size_t total = 5 + nlen + vlen;
	if (n < total || !feat_value_ok(p[2], p + 5 + nlen, vlen))
		return 0;
	return total;
}

/*
 * +------+-------+-----+---------+
 * | FVER | FLAGS | LEN | ENTRIES |
 * +------+-------+-----+---------+
 * |  1   |   1   |  2  |   LEN   |
 * +------+-------+-----+---------+
 */
enum socks_res feat_doc_parse(struct feat_doc *out, const uint8_t *p, size_t n, size_t *used,
			      struct socks_err *err)
{
	if (n < FEAT_HDR_LEN)
		return SOCKS_MORE;
	size_t len = wire_get16(p + 2);
	if (len > FEAT_DOC_MAX)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "features document too long");
	if (n < FEAT_HDR_LEN + len)
		return SOCKS_MORE;
	if (p[0] == FEAT_VER) {
		for (size_t off = 0; off < len;) {
			size_t e = feat_entry_check(p + FEAT_HDR_LEN + off, len - off);
			if (e == 0)
				return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE,
						"malformed features entry");
			off += e;
		}
	}
	out->ver = p[0];
	out->flags = p[1];
	out->len = (uint16_t)len;
	out->body = p + FEAT_HDR_LEN;
	return wire_done(used, FEAT_HDR_LEN + len);
}

bool feat_next(const struct feat_doc *d, size_t *off, struct feat_entry *e)
{
	if (d->ver != FEAT_VER || *off >= d->len)
		return false;
	const uint8_t *p = d->body + *off;
	size_t total = feat_entry_check(p, d->len - *off);
	if (total == 0)
		return false; /* not from feat_doc_parse */
	e->scope = p[0];
	e->code = p[1];
	e->type = p[2];
	e->nlen = p[3];
	memcpy(e->name, p + 4, e->nlen);
	e->name[e->nlen] = '\0';
	e->vlen = p[4 + e->nlen];
	e->value = p + 5 + e->nlen;
	e->uint = 0;
	if (e->type == FEAT_T_UINT)
		for (size_t i = 0; i < e->vlen; i++)
			e->uint = e->uint << 8 | e->value[i];
	*off += total;
	return true;
}

bool feat_find(const struct feat_doc *d, uint8_t scope, uint8_t code, const char *name,
	       struct feat_entry *e)
{
	size_t off = 0;
	while (feat_next(d, &off, e))
		if (e->scope == scope && e->code == code && strcmp(e->name, name) == 0)
			return true;
	return false;
}

/* ---- writing ---- */

void feat_writer_init(struct feat_writer *w, uint8_t *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	w->cap = cap < FEAT_HDR_LEN + FEAT_DOC_MAX ? cap : FEAT_HDR_LEN + FEAT_DOC_MAX;
	w->len = FEAT_HDR_LEN;
}

static int feat_keep_slot(uint8_t scope)
{
	return scope == FEAT_SCOPE_METHOD ? 0 : scope == FEAT_SCOPE_COMMAND ? 1 : -1;
}

void feat_writer_keep(struct feat_writer *w, uint8_t scope, uint8_t code)
{
	int k = feat_keep_slot(scope);
	w->filter = true;
	if (k >= 0)
		w->keep[k][code / 8] |= (uint8_t)(1u << (code % 8));
}

bool feat_writer_kept(const struct feat_writer *w, uint8_t scope, uint8_t code)
{
	int k = feat_keep_slot(scope);
	return !w->filter || k < 0 || (w->keep[k][code / 8] & (1u << (code % 8)));
}

bool feat_put(struct feat_writer *w, uint8_t scope, uint8_t code, uint8_t type, const char *name,
	      const uint8_t *value, size_t vlen)
{
	size_t nlen = strlen(name);
	if (!feat_name_ok((const uint8_t *)name, nlen) || vlen > 255 ||
	    !feat_value_ok(type, value, vlen) || w->len < FEAT_HDR_LEN)
		return false;
	if (!feat_writer_kept(w, scope, code))
		return true; /* about something this client is not offered */
	size_t total = 5 + nlen + vlen;
	/* Once one entry is left out, so are all after it: the document is
	 * always a prefix, and writers put what matters most first. */
	if ((w->flags & FEAT_FLAG_TRUNCATED) || w->cap < w->len || w->cap - w->len < total) {
		w->flags |= FEAT_FLAG_TRUNCATED;
		return false;
	}
	uint8_t *p = w->buf + w->len;
	p[0] = scope;
	p[1] = code;
	p[2] = type;
	p[3] = (uint8_t)nlen;
	memcpy(p + 4, name, nlen);
	p[4 + nlen] = (uint8_t)vlen;
	if (vlen)
		memcpy(p + 5 + nlen, value, vlen);
	w->len += total;
	return true;
}

bool feat_put_uint(struct feat_writer *w, uint8_t scope, uint8_t code, const char *name, uint64_t v)
{
	uint8_t b[8];
	size_t n = 1;
	while (n < 8 && (v >> (8 * n)) != 0)
		n++;
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return feat_put(w, scope, code, FEAT_T_UINT, name, b, n);
}

bool feat_put_text(struct feat_writer *w, uint8_t scope, uint8_t code, const char *name,
		   const char *text)
{
	return feat_put(w, scope, code, FEAT_T_TEXT, name, (const uint8_t *)text, strlen(text));
}

bool feat_put_codes(struct feat_writer *w, uint8_t scope, uint8_t code, const char *name,
		    const uint8_t *codes, size_t n)
{
	return feat_put(w, scope, code, FEAT_T_CODES, name, codes, n);
}

bool feat_put_flag(struct feat_writer *w, uint8_t scope, uint8_t code, const char *name)
{
	return feat_put(w, scope, code, FEAT_T_FLAG, name, NULL, 0);
}

size_t feat_writer_finish(struct feat_writer *w)
{
	if (w->cap < FEAT_HDR_LEN)
		return 0;
	w->buf[0] = FEAT_VER;
	w->buf[1] = w->flags;
	wire_put16(w->buf + 2, (uint16_t)(w->len - FEAT_HDR_LEN));
	return w->len;
}

const char *feat_scope_name(uint8_t scope)
{
	switch (scope) {
	case FEAT_SCOPE_SERVER:
		return "server";
	case FEAT_SCOPE_METHOD:
		return "method";
	case FEAT_SCOPE_COMMAND:
		return "command";
	case FEAT_SCOPE_VERSION:
		return "version";
	default:
		return "unknown";
	}
}
