/*
 * autoconf.c - see autoconf.h: the X'F4' document frame and its lines.
 */
#include "proto/autoconf.h"

#include <string.h>

static enum socks_res bad(struct socks_err *err, const char *why)
{
	err->rep = SOCKS5_REP_GENERAL_FAILURE;
	err->why = why;
	return SOCKS_BAD;
}

static bool key_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static bool value_char(uint8_t c)
{
	return c >= 0x20 && c <= 0x7E;
}

/* One line at doc[off..len): its parts, and the offset after its LF; 0
 * with err set when it is malformed. */
static size_t line_parse(const uint8_t *doc, size_t len, size_t off, struct acdoc_line *l,
			 struct socks_err *err)
{
	size_t i = off;

	while (i < len && key_char(doc[i]))
		i++;
	if (i == off || i - off > ACDOC_KEY_MAX) {
		bad(err, i == off ? "autoconfig: line without a key" : "autoconfig: key too long");
		return 0;
	}
	l->key = (const char *)doc + off;
	l->key_len = i - off;
	if (i >= len || doc[i] != ' ') {
		bad(err, "autoconfig: key not followed by one space");
		return 0;
	}
	size_t v = ++i;
	while (i < len && value_char(doc[i]))
		i++;
	if (i == v || doc[v] == ' ' || i - v > ACDOC_VALUE_MAX) {
		bad(err, i == v ? "autoconfig: empty value" : "autoconfig: bad value");
		return 0;
	}
	if (i >= len || doc[i] != '\n') {
		bad(err, "autoconfig: line not ended by LF, or a byte outside X'20'-X'7E'");
		return 0;
	}
	l->value = (const char *)doc + v;
	l->value_len = i - v;
	return i + 1;
}

/* "stp-autoconfig 1": a decimal version without leading zeros. */
static bool version_ok(const struct acdoc_line *l)
{
	unsigned long v = 0;

	if (!acdoc_key_is(l, ACDOC_MAGIC) || l->value_len > 5 || l->value[0] == '0')
		return false;
	for (size_t i = 0; i < l->value_len; i++) {
		if (l->value[i] < '0' || l->value[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(l->value[i] - '0');
	}
	return v == ACDOC_VERSION;
}

enum socks_res acdoc_check(const uint8_t *doc, size_t len, struct socks_err *err)
{
	struct acdoc_line l;
	size_t off = 0;

	if (len == 0 || len > ACDOC_MAX)
		return bad(err, "autoconfig: document empty or over 8192 bytes");
	while (off < len) {
		size_t next = line_parse(doc, len, off, &l, err);
		if (next == 0)
			return SOCKS_BAD;
		if (off == 0 && !version_ok(&l))
			return bad(err, "autoconfig: first line is not 'stp-autoconfig 1'");
		off = next;
	}
	return SOCKS_DONE;
}

/*
 *   +----+----+------------+
 *   |   LEN   |    DOC     |
 *   +----+----+------------+
 *   |    2    | 1 to 8192  |
 */
enum socks_res acdoc_frame_parse(const uint8_t *p, size_t n, size_t *used, const uint8_t **doc,
				 size_t *doclen, struct socks_err *err)
{
	if (n < ACDOC_HDR)
		return SOCKS_MORE;
	size_t len = (size_t)p[0] << 8 | p[1];
	if (len == 0 || len > ACDOC_MAX)
		return bad(err, "autoconfig: LEN 0 or over 8192");
	if (n < ACDOC_HDR + len)
		return SOCKS_MORE;
	if (acdoc_check(p + ACDOC_HDR, len, err) != SOCKS_DONE)
		return SOCKS_BAD;
	*doc = p + ACDOC_HDR;
	*doclen = len;
	*used = ACDOC_HDR + len;
	return SOCKS_DONE;
}

bool acdoc_next(const uint8_t *doc, size_t len, size_t *off, struct acdoc_line *line)
{
	struct socks_err err;

	if (*off >= len)
		return false;
	size_t next = line_parse(doc, len, *off, line, &err);
	if (next == 0)
		return false;
	*off = next;
	return true;
}

bool acdoc_key_is(const struct acdoc_line *line, const char *key)
{
	return strlen(key) == line->key_len && memcmp(line->key, key, line->key_len) == 0;
}

size_t acdoc_put(uint8_t *dst, size_t cap, size_t at, const char *key, const char *value)
{
	size_t kl = strlen(key), vl = strlen(value);

	if (kl == 0 || kl > ACDOC_KEY_MAX || vl == 0 || vl > ACDOC_VALUE_MAX || value[0] == ' ')
		return 0;
	for (size_t i = 0; i < kl; i++)
		if (!key_char((uint8_t)key[i]))
			return 0;
	for (size_t i = 0; i < vl; i++)
		if (!value_char((uint8_t)value[i]))
			return 0;
	if (at > cap || cap - at < kl + vl + 2 || at + kl + vl + 2 > ACDOC_MAX)
		return 0;
	memcpy(dst + at, key, kl);
	dst[at + kl] = ' ';
	memcpy(dst + at + kl + 1, value, vl);
	dst[at + kl + 1 + vl] = '\n';
	return at + kl + vl + 2;
}

size_t acdoc_put_version(uint8_t *dst, size_t cap)
{
	return acdoc_put(dst, cap, 0, ACDOC_MAGIC, "1");
}

size_t acdoc_frame_header(uint8_t *dst, size_t cap, size_t doclen)
{
	if (cap < ACDOC_HDR || doclen == 0 || doclen > ACDOC_MAX)
		return 0;
	dst[0] = (uint8_t)(doclen >> 8);
	dst[1] = (uint8_t)doclen;
	return ACDOC_HDR;
}
