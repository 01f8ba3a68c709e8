/*
 * userpass.c - username/password sub-negotiation (RFC 1929).
 */
#include <string.h>

#include "proto/socks.h"
#include "proto/wire.h"

/* Any non-zero STATUS means failure (RFC 1929 section 2). */
#define USERPASS_FAIL 0x01

static bool has_nul(const uint8_t *p, size_t len)
{
	return len > 0 && memchr(p, 0, len) != NULL;
}

/* The bytes of a length-prefixed field that have arrived so far. */
static size_t arrived(size_t n, size_t off, size_t len)
{
	if (n <= off)
		return 0;
	return n - off < len ? n - off : len;
}

/*
 * +----+------+----------+------+----------+
 * |VER | ULEN |  UNAME   | PLEN |  PASSWD  |
 * +----+------+----------+------+----------+
 * | 1  |  1   | 1 to 255 |  1   | 1 to 255 |
 * +----+------+----------+------+----------+
 *
 * ULEN = 0 and PLEN = 0 parse (the server decides what to do with them).
 * A NUL inside UNAME or PASSWD is refused: both end up as C strings, and
 * "alice\0x" must not turn into "alice" on the way to the auth backend.
 */
enum socks_res socks_userpass_parse(struct socks_userpass *out, const uint8_t *p, size_t n,
				    size_t *used, struct socks_err *err)
{
	size_t ulen, plen;

	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != SOCKS_USERPASS_VER)
		return wire_bad(err, USERPASS_FAIL, "bad version");
	if (n < 2)
		return SOCKS_MORE;
	ulen = p[1];
	if (has_nul(p + 2, arrived(n, 2, ulen)))
		return wire_bad(err, USERPASS_FAIL, "NUL in username");
	if (n < 2 + ulen + 1)
		return SOCKS_MORE;
	plen = p[2 + ulen];
	if (has_nul(p + 3 + ulen, arrived(n, 3 + ulen, plen)))
		return wire_bad(err, USERPASS_FAIL, "NUL in password");
	if (n < 3 + ulen + plen)
		return SOCKS_MORE;
	out->ulen = (uint8_t)ulen;
	memcpy(out->user, p + 2, ulen);
	out->user[ulen] = '\0';
	out->plen = (uint8_t)plen;
	memcpy(out->pass, p + 3 + ulen, plen);
	out->pass[plen] = '\0';
	return wire_done(used, 3 + ulen + plen);
}

/* NULL user or pass is written as empty. 0 if either is over 255 bytes. */
size_t socks_userpass_write(uint8_t *dst, size_t cap, const char *user, const char *pass)
{
	size_t ulen = user ? strlen(user) : 0;
	size_t plen = pass ? strlen(pass) : 0;
	size_t len = 3 + ulen + plen;

	if (ulen > 255 || plen > 255 || cap < len)
		return 0;
	dst[0] = SOCKS_USERPASS_VER;
	dst[1] = (uint8_t)ulen;
	if (ulen > 0)
		memcpy(dst + 2, user, ulen);
	dst[2 + ulen] = (uint8_t)plen;
	if (plen > 0)
		memcpy(dst + 3 + ulen, pass, plen);
	return len;
}

/*
 * +----+--------+
 * |VER | STATUS |
 * +----+--------+
 * | 1  |   1    |
 * +----+--------+
 *
 * VER X'05' is accepted too: some servers echo the SOCKS version here, and
 * curl ignores this byte altogether for that reason.
 */
enum socks_res socks_userpass_status_parse(uint8_t *status, const uint8_t *p, size_t n,
					   size_t *used, struct socks_err *err)
{
	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != SOCKS_USERPASS_VER && p[0] != SOCKS5_VER)
		return wire_bad(err, USERPASS_FAIL, "bad version");
	if (n < 2)
		return SOCKS_MORE;
	*status = p[1];
	return wire_done(used, 2);
}

size_t socks_userpass_status_write(uint8_t *dst, size_t cap, uint8_t status)
{
	if (cap < 2)
		return 0;
	dst[0] = SOCKS_USERPASS_VER;
	dst[1] = status;
	return 2;
}
