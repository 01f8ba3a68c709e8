/*
 * n2.c - the N2 message codec (docs/protocol.md, "N2: control server to
 * relay proxy"). The header says how long the body is, so a body is parsed
 * only once it is all in: inside it, running short is BAD, not MORE.
 */
#include <string.h>

#include "proto/n2.h"
#include "proto/wire.h"

#define N2_COUNTERS_LEN 32

/* A cursor over one complete body. */
struct cur {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

static const uint8_t *take(struct cur *c, size_t k)
{
	const uint8_t *at = c->p + c->off;

	if (c->bad || c->n - c->off < k) {
		c->bad = true;
		return NULL;
	}
	c->off += k;
	return at;
}

static uint8_t get8(struct cur *c)
{
	const uint8_t *q = take(c, 1);

	return q ? q[0] : 0;
}

static uint32_t get32(struct cur *c)
{
	const uint8_t *q = take(c, 4);

	return q ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3] : 0;
}

static uint64_t get64(struct cur *c)
{
	uint64_t hi = get32(c);

	return hi << 32 | get32(c);
}

static size_t ip_len(uint8_t atyp)
{
	return atyp == SOCKS_ATYP_IPV4 ? 4 : atyp == SOCKS_ATYP_IPV6 ? 16 : 0;
}

/* ATYP ADDR PORT with ATYP X'01' or X'04' only. */
static void get_addr(struct cur *c, struct n2_addr *a)
{
	const uint8_t *q;
	size_t alen;

	memset(a, 0, sizeof(*a));
	a->atyp = get8(c);
	alen = ip_len(a->atyp);
	if (alen == 0) {
		c->bad = true;
		return;
	}
	q = take(c, alen);
	if (q)
		memcpy(a->ip, q, alen);
	q = take(c, 2);
	if (q)
		a->port = wire_get16(q);
}

static void get_counters(struct cur *c, struct n2_counters *k)
{
	k->pkts_up = get64(c);
	k->bytes_up = get64(c);
	k->pkts_down = get64(c);
	k->bytes_down = get64(c);
}

/* ENDED's WLEN WHY: 1..N2_WHY_MAX printable ASCII bytes (space included). */
static void get_why(struct cur *c, char *why)
{
	uint8_t wlen = get8(c);
	const uint8_t *q;

	if (wlen == 0 || wlen > N2_WHY_MAX) {
		c->bad = true;
		return;
	}
	q = take(c, wlen);
	if (!q)
		return;
	for (size_t i = 0; i < wlen; i++) {
		if (q[i] < 0x20 || q[i] > 0x7E) {
			c->bad = true;
			return;
		}
		why[i] = (char)q[i];
	}
	why[wlen] = '\0';
}

static bool parse_body(struct n2_msg *m, const uint8_t *p, size_t n)
{
	struct cur c = { p, n, 0, false };

	switch (m->type) {
	case N2_HELLO:
		m->u.version = get8(&c);
		break;
	case N2_OPEN:
		m->u.open.ptcl = get8(&c);
		m->u.open.flags = get8(&c);
		m->u.open.idle_ms = get32(&c);
		get_addr(&c, &m->u.open.src);
		get_addr(&c, &m->u.open.dst);
		get_addr(&c, &m->u.open.bnd);
		if (m->u.open.flags & ~N2_OPEN_END_ON_FIN)
			c.bad = true;
		break;
	case N2_OPENED:
		m->u.opened.rep = get8(&c);
		get_addr(&c, &m->u.opened.bnd);
		break;
	case N2_COUNTERS:
	case N2_CLOSE:
		break;
	case N2_COUNTS:
	case N2_CLOSED:
		get_counters(&c, &m->u.counts);
		break;
	case N2_ENDED:
		get_why(&c, m->u.ended.why);
		get_counters(&c, &m->u.ended.c);
		break;
	default:
		return false;
	}
	return !c.bad && c.off == n;
}

/*
 * +------+------+------+----------+
 * | TYPE |  ID  | LEN  |   BODY   |
 * +------+------+------+----------+
 * |  1   |  4   |  2   |   LEN    |
 * +------+------+------+----------+
 */
enum socks_res n2_parse(struct n2_msg *out, const uint8_t *p, size_t n, size_t *used,
			struct socks_err *err)
{
	struct n2_msg m;
	uint32_t id;
	size_t len;

	if (n < 1)
		return SOCKS_MORE;
	if (p[0] < N2_HELLO || p[0] > N2_ENDED)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "N2: unknown message type");
	if (n < N2_HDR_LEN)
		return SOCKS_MORE;
	id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	if ((p[0] == N2_HELLO) != (id == 0))
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "N2: ID 0 is HELLO's alone");
	len = wire_get16(p + 5);
	if (len > N2_BODY_MAX)
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "N2: message too long");
	if (n < N2_HDR_LEN + len)
		return SOCKS_MORE;
	memset(&m, 0, sizeof(m));
	m.type = p[0];
	m.id = id;
	if (!parse_body(&m, p + N2_HDR_LEN, len))
		return wire_bad(err, SOCKS5_REP_GENERAL_FAILURE, "N2: bad message body");
	*out = m;
	return wire_done(used, N2_HDR_LEN + len);
}

/* ---- writer: fills a body buffer, then the header in front of it ---- */
struct wcur {
	uint8_t *p;
	size_t cap, off;
	bool bad;
};

static void put(struct wcur *w, const void *src, size_t k)
{
	if (w->bad || w->cap - w->off < k) {
		w->bad = true;
		return;
	}
	memcpy(w->p + w->off, src, k);
	w->off += k;
}

static void put8(struct wcur *w, uint8_t v)
{
	put(w, &v, 1);
}

static void put32(struct wcur *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	put(w, b, 4);
}

static void put64(struct wcur *w, uint64_t v)
{
	put32(w, (uint32_t)(v >> 32));
	put32(w, (uint32_t)v);
}

static void put_addr(struct wcur *w, const struct n2_addr *a)
{
	size_t alen = ip_len(a->atyp);
	uint8_t port[2];

	if (alen == 0) {
		w->bad = true;
		return;
	}
	put8(w, a->atyp);
	put(w, a->ip, alen);
	wire_put16(port, a->port);
	put(w, port, 2);
}

static void put_counters(struct wcur *w, const struct n2_counters *k)
{
	put64(w, k->pkts_up);
	put64(w, k->bytes_up);
	put64(w, k->pkts_down);
	put64(w, k->bytes_down);
}

static void put_why(struct wcur *w, const char *why)
{
	size_t wlen = strnlen(why, N2_WHY_MAX + 1);

	if (wlen == 0 || wlen > N2_WHY_MAX) {
		w->bad = true;
		return;
	}
	for (size_t i = 0; i < wlen; i++)
		if (why[i] < 0x20 || why[i] > 0x7E)
			w->bad = true;
	put8(w, (uint8_t)wlen);
	put(w, why, wlen);
}

static void write_body(struct wcur *w, const struct n2_msg *m)
{
	switch (m->type) {
	case N2_HELLO:
		put8(w, m->u.version);
		break;
	case N2_OPEN:
		if (m->u.open.flags & ~N2_OPEN_END_ON_FIN)
			w->bad = true;
		put8(w, m->u.open.ptcl);
		put8(w, m->u.open.flags);
		put32(w, m->u.open.idle_ms);
		put_addr(w, &m->u.open.src);
		put_addr(w, &m->u.open.dst);
		put_addr(w, &m->u.open.bnd);
		break;
	case N2_OPENED:
		put8(w, m->u.opened.rep);
		put_addr(w, &m->u.opened.bnd);
		break;
	case N2_COUNTERS:
	case N2_CLOSE:
		break;
	case N2_COUNTS:
	case N2_CLOSED:
		put_counters(w, &m->u.counts);
		break;
	case N2_ENDED:
		put_why(w, m->u.ended.why);
		put_counters(w, &m->u.ended.c);
		break;
	default:
		w->bad = true;
	}
}

size_t n2_write(uint8_t *dst, size_t cap, const struct n2_msg *m)
{
	uint8_t body[N2_BODY_MAX];
	struct wcur w = { body, sizeof(body), 0, false };

	/* Built aside first, so a cap too small leaves dst untouched. */
	write_body(&w, m);
	if (w.bad || (m->type == N2_HELLO) != (m->id == 0) || cap < N2_HDR_LEN + w.off)
		return 0;
	dst[0] = m->type;
	dst[1] = (uint8_t)(m->id >> 24);
	dst[2] = (uint8_t)(m->id >> 16);
	dst[3] = (uint8_t)(m->id >> 8);
	dst[4] = (uint8_t)m->id;
	wire_put16(dst + 5, (uint16_t)w.off);
	memcpy(dst + N2_HDR_LEN, body, w.off);
	return N2_HDR_LEN + w.off;
}

const char *n2_type_name(uint8_t type)
{
	static const char *const names[] = {
		[N2_HELLO] = "HELLO",       [N2_OPEN] = "OPEN",     [N2_OPENED] = "OPENED",
		[N2_COUNTERS] = "COUNTERS", [N2_COUNTS] = "COUNTS", [N2_CLOSE] = "CLOSE",
		[N2_CLOSED] = "CLOSED",     [N2_ENDED] = "ENDED",
	};

	if (type >= N2_HELLO && type <= N2_ENDED)
		return names[type];
	return "unknown";
}
