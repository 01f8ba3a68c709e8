/*
 * proxyproto.c - PROXY protocol v1 (text) and v2 (binary) headers.
 *
 * Address text is parsed here by hand: inet_pton is a libc socket
 * function, and the codec links nothing but the pure string routines.
 */
#include <string.h>

#include "proto/proxyproto.h"
#include "proto/wire.h"

#define PP_BAD(err, why) wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, why)

static const uint8_t pp2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
				    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char pp1_sig[] = "PROXY ";
#define PP1_SIG_LEN (sizeof(pp1_sig) - 1)

/* A slice of the v1 line. */
struct pp_tok {
	const uint8_t *s;
	size_t n;
};

static bool pp_isdigit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static int pp_hexval(uint8_t c)
{
	if (pp_isdigit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool pp_tok_is(struct pp_tok t, const char *word)
{
	size_t len = strlen(word);

	return t.n == len && memcmp(t.s, word, len) == 0;
}

/* 0..65535 in decimal, no sign, no leading zero (so "0" but not "080"). */
static bool pp_port(struct pp_tok t, uint16_t *out)
{
	unsigned long v = 0;

	if (t.n == 0 || t.n > 5 || (t.n > 1 && t.s[0] == '0'))
		return false;
	for (size_t i = 0; i < t.n; i++) {
		if (!pp_isdigit(t.s[i]))
			return false;
		v = v * 10 + (unsigned long)(t.s[i] - '0');
	}
	if (v > 65535)
		return false;
	*out = (uint16_t)v;
	return true;
}

/* Dotted quad, exactly four decimal parts 0..255 without leading zeros. */
static bool pp_inet4(const uint8_t *s, size_t n, uint8_t out[4])
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start;
		unsigned v = 0;

		if (part > 0) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
		start = i;
		while (i < n && pp_isdigit(s[i]) && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
			return false;
		out[part] = (uint8_t)v;
	}
	return i == n;
}

/*
 * RFC 4291 section 2.2 text: eight groups of 1-4 hex digits, one "::"
 * standing for at least one zero group, and an optional dotted-quad tail.
 */
static bool pp_inet6(const uint8_t *s, size_t n, uint8_t out[16])
{
	uint8_t buf[16] = {0};
	size_t o = 0, i = 0, gap = sizeof(buf) + 1; /* gap: where "::" sits */

	if (n >= 2 && s[0] == ':' && s[1] == ':') {
		gap = 0;
		i = 2;
	}
	while (i < n) {
		size_t start = i;
		unsigned v = 0;

		while (i < n && pp_hexval(s[i]) >= 0 && i - start < 5)
			v = v << 4 | (unsigned)pp_hexval(s[i++]);
		if (i < n && s[i] == '.' && i > start) {
			/* The dotted quad is the last 32 bits, so it ends the text. */
			if (o + 4 > sizeof(buf) || !pp_inet4(s + start, n - start, buf + o))
				return false;
			o += 4;
			break;
		}
		if (i == start || i - start > 4 || o + 2 > sizeof(buf))
			return false;
		wire_put16(buf + o, (uint16_t)v);
		o += 2;
		if (i == n)
			break;
		if (s[i++] != ':' || i == n)
			return false;
		if (s[i] == ':') {
			if (gap <= sizeof(buf))
				return false;
			gap = o;
			i++;
		}
	}
	if (gap > sizeof(buf)) {
		if (o != sizeof(buf))
			return false;
	} else {
		if (o == sizeof(buf))
			return false;
		memmove(buf + sizeof(buf) - (o - gap), buf + gap, o - gap);
		memset(buf + gap, 0, sizeof(buf) - o);
	}
	memcpy(out, buf, sizeof(buf));
	return true;
}

/* Splits line into tokens at single spaces; false on an empty token. */
static bool pp_split(const uint8_t *line, size_t n, struct pp_tok *tok, size_t max, size_t *count)
{
	size_t k = 0, start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && line[i] != ' ')
			continue;
		if (i == start || k == max)
			return false;
		tok[k].s = line + start;
		tok[k++].n = i - start;
		start = i + 1;
	}
	*count = k;
	return true;
}

/* "TCP4 a b p q" or "TCP6 a b p q", after "PROXY ", without CRLF. */
static enum socks_res pp1_fields(struct proxy_hdr *out, const uint8_t *line, size_t n,
				 struct socks_err *err)
{
	struct pp_tok t[5];
	size_t count;
	bool ok;

	if (!pp_split(line, n, t, 5, &count) || count != 5)
		return PP_BAD(err, "PROXY v1: bad field count");
	if (pp_tok_is(t[0], "TCP4")) {
		out->family = PROXY_FAM_INET;
		ok = pp_inet4(t[1].s, t[1].n, out->src) && pp_inet4(t[2].s, t[2].n, out->dst);
	} else if (pp_tok_is(t[0], "TCP6")) {
		out->family = PROXY_FAM_INET6;
		ok = pp_inet6(t[1].s, t[1].n, out->src) && pp_inet6(t[2].s, t[2].n, out->dst);
	} else {
		return PP_BAD(err, "PROXY v1: unknown protocol");
	}
	if (!ok)
		return PP_BAD(err, "PROXY v1: bad address");
	if (!pp_port(t[3], &out->sport) || !pp_port(t[4], &out->dport))
		return PP_BAD(err, "PROXY v1: bad port");
	return SOCKS_DONE;
}

/*
 * v1: one text line of at most 107 bytes, CRLF included.
 *   "PROXY" SP ( "TCP4" | "TCP6" ) SP srcaddr SP dstaddr SP srcport SP dstport CRLF
 *   "PROXY" SP "UNKNOWN" [ SP anything ] CRLF
 */
static enum socks_res pp1_parse(struct proxy_hdr *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err)
{
	size_t lim = n < PROXYPROTO_V1_MAX ? n : PROXYPROTO_V1_MAX;
	size_t cr = 0, rest;
	const uint8_t *line;
	struct proxy_hdr h;
	enum socks_res r;

	if (memcmp(p, pp1_sig, n < PP1_SIG_LEN ? n : PP1_SIG_LEN) != 0)
		return PP_BAD(err, "not a PROXY header");
	while (cr < lim && p[cr] != '\r' && p[cr] != '\n')
		cr++;
	if (cr == lim)
		return n >= PROXYPROTO_V1_MAX ? PP_BAD(err, "PROXY v1: line too long") : SOCKS_MORE;
	if (p[cr] == '\n' || cr < PP1_SIG_LEN)
		return PP_BAD(err, "PROXY v1: bad line end");
	if (cr + 2 > PROXYPROTO_V1_MAX)
		return PP_BAD(err, "PROXY v1: line too long");
	if (n < cr + 2)
		return SOCKS_MORE;
	if (p[cr + 1] != '\n')
		return PP_BAD(err, "PROXY v1: bad line end");
	line = p + PP1_SIG_LEN;
	rest = cr - PP1_SIG_LEN;
	memset(&h, 0, sizeof(h)); /* padding too: callers may compare bytes */
	if (rest >= 7 && memcmp(line, "UNKNOWN", 7) == 0 && (rest == 7 || line[7] == ' ')) {
		/* The spec says to ignore whatever follows UNKNOWN. */
		h.local = true;
		h.family = PROXY_FAM_UNSPEC;
	} else {
		r = pp1_fields(&h, line, rest, err);
		if (r != SOCKS_DONE)
			return r;
	}
	memcpy(out, &h, sizeof(h)); /* out is only written on DONE */
	return wire_done(used, cr + 2);
}

/*
 * v2:
 * +--------------+---------+-----+-----+----------------+------+
 * | signature    | ver|cmd | fam | len | addresses      | TLVs |
 * +--------------+---------+-----+-----+----------------+------+
 * | 12           | 1       | 1   | 2   | 12 / 36 / 216  | rest |
 * +--------------+---------+-----+-----+----------------+------+
 *  ver is the high nibble (2); cmd 0 = LOCAL, 1 = PROXY. fam's high nibble
 *  is the family (0 UNSPEC, 1 INET, 2 INET6, 3 UNIX), its low nibble the
 *  transport (1 STREAM, 2 DGRAM). len counts everything after these 16.
 *  INET:  src(4) dst(4) sport(2) dport(2).
 *  INET6: src(16) dst(16) sport(2) dport(2).
 */
enum { PP2_LOCAL = 0x0, PP2_PROXY = 0x1 };
enum {
	PP2_UNSPEC = 0x00,
	PP2_TCP4 = 0x11,
	PP2_UDP4 = 0x12,
	PP2_TCP6 = 0x21,
	PP2_UDP6 = 0x22,
};

/* Bytes of address block fam needs, or -1 if stp does not take fam. */
static int pp2_addr_len(uint8_t fam)
{
	switch (fam) {
	case PP2_UNSPEC:
		return 0;
	case PP2_TCP4:
	case PP2_UDP4:
		return 12;
	case PP2_TCP6:
	case PP2_UDP6:
		return 36;
	default:
		return -1;
	}
}

static void pp2_addrs(struct proxy_hdr *out, uint8_t fam, const uint8_t *a)
{
	size_t alen = (fam >> 4) == 1 ? 4 : 16;

	out->family = alen == 4 ? PROXY_FAM_INET : PROXY_FAM_INET6;
	memcpy(out->src, a, alen);
	memcpy(out->dst, a + alen, alen);
	out->sport = wire_get16(a + 2 * alen);
	out->dport = wire_get16(a + 2 * alen + 2);
}

static enum socks_res pp2_parse(struct proxy_hdr *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err)
{
	uint8_t cmd, fam = 0;
	size_t len;
	int alen = 0;

	if (memcmp(p, pp2_sig, n < sizeof(pp2_sig) ? n : sizeof(pp2_sig)) != 0)
		return PP_BAD(err, "not a PROXY header");
	if (n < 13)
		return SOCKS_MORE;
	cmd = p[12] & 0x0F;
	if ((p[12] >> 4) != 2)
		return PP_BAD(err, "PROXY v2: bad version");
	if (cmd != PP2_LOCAL && cmd != PP2_PROXY)
		return PP_BAD(err, "PROXY v2: bad command");
	if (n < 14)
		return SOCKS_MORE;
	/* LOCAL ignores the family: the socket's endpoints are the real ones. */
	if (cmd == PP2_PROXY) {
		fam = p[13];
		alen = pp2_addr_len(fam);
		if (alen < 0)
			return PP_BAD(err, "PROXY v2: unsupported address family");
	}
	if (n < PROXYPROTO_V2_HDR)
		return SOCKS_MORE;
	len = wire_get16(p + 14);
	if (len > PROXYPROTO_V2_LEN_MAX)
		return PP_BAD(err, "PROXY v2: header too long");
	if (len < (size_t)alen)
		return PP_BAD(err, "PROXY v2: address block too short");
	if (n < PROXYPROTO_V2_HDR + len)
		return SOCKS_MORE;
	memset(out, 0, sizeof(*out));
	if (alen == 0)
		out->local = true;
	else
		pp2_addrs(out, fam, p + PROXYPROTO_V2_HDR);
	return wire_done(used, PROXYPROTO_V2_HDR + len);
}

enum socks_res proxyproto_parse(struct proxy_hdr *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err)
{
	if (n < 1)
		return SOCKS_MORE;
	if (p[0] == pp1_sig[0])
		return pp1_parse(out, p, n, used, err);
	if (p[0] == pp2_sig[0])
		return pp2_parse(out, p, n, used, err);
	return PP_BAD(err, "not a PROXY header");
}
