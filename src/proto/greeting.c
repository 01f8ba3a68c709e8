/*
 * greeting.c - method negotiation (RFC 1928 section 3): the client's
 * greeting and the server's method choice.
 */
#include <string.h>

#include "proto/socks.h"
#include "proto/wire.h"

/*
 * +----+----------+----------+
 * |VER | NMETHODS | METHODS  |
 * +----+----------+----------+
 * | 1  |    1     | 1 to 255 |
 * +----+----------+----------+
 *
 * NMETHODS = 0 is accepted: the server then answers X'FF' (no acceptable
 * method), which is more useful to the client than a dropped connection.
 */
enum socks_res socks5_greeting_parse(struct socks5_greeting *out, const uint8_t *p, size_t n,
				     size_t *used, struct socks_err *err)
{
	size_t nm;

	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != SOCKS5_VER)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad version");
	if (n < 2)
		return SOCKS_MORE;
	nm = p[1];
	if (n < 2 + nm)
		return SOCKS_MORE;
	out->nmethods = (uint8_t)nm;
	if (nm > 0)
		memcpy(out->methods, p + 2, nm);
	return wire_done(used, 2 + nm);
}

size_t socks5_greeting_write(uint8_t *dst, size_t cap, const uint8_t *methods, size_t nmethods)
{
	if (nmethods > 255 || cap < 2 + nmethods)
		return 0;
	dst[0] = SOCKS5_VER;
	dst[1] = (uint8_t)nmethods;
	if (nmethods > 0)
		memcpy(dst + 2, methods, nmethods);
	return 2 + nmethods;
}

bool socks5_greeting_has(const struct socks5_greeting *g, uint8_t method)
{
	return g->nmethods > 0 && memchr(g->methods, method, g->nmethods) != NULL;
}

/*
 * +----+--------+
 * |VER | METHOD |
 * +----+--------+
 * | 1  |   1    |
 * +----+--------+
 */
enum socks_res socks5_choice_parse(uint8_t *method, const uint8_t *p, size_t n, size_t *used,
				   struct socks_err *err)
{
	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != SOCKS5_VER)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "bad version");
	if (n < 2)
		return SOCKS_MORE;
	*method = p[1];
	return wire_done(used, 2);
}

size_t socks5_choice_write(uint8_t *dst, size_t cap, uint8_t method)
{
	if (cap < 2)
		return 0;
	dst[0] = SOCKS5_VER;
	dst[1] = method;
	return 2;
}
