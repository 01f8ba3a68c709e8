/*
 * broker.c - see broker.h. Fields are read one at a time, in the order of
 * the diagram there; a message cut anywhere is MORE.
 */
#include "proto/broker.h"

#include <string.h>

static enum socks_res bad(struct socks_err *err, const char *why)
{
	if (err) {
		err->rep = SOCKS5_REP_GENERAL_FAILURE;
		err->why = why;
	}
	return SOCKS_BAD;
}

int broker_name_ok(const char *name, size_t len)
{
	if (len == 0 || len > BROKER_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

static int fields_ok(uint8_t family, uint8_t type, uint8_t proto)
{
	if (family != BROKER_FAMILY_INET && family != BROKER_FAMILY_INET6)
		return 0;
	if (type == BROKER_TYPE_STREAM)
		return proto == BROKER_PROTO_DEFAULT || proto == BROKER_PROTO_TCP;
	if (type == BROKER_TYPE_DGRAM)
		return proto == BROKER_PROTO_DEFAULT || proto == BROKER_PROTO_UDP;
	return 0;
}

/* LEN NAME at p[*off..n): MORE, DONE (name copied, *off moved) or BAD. */
static enum socks_res name_parse(char *dst, const uint8_t *p, size_t n, size_t *off,
				 struct socks_err *err)
{
	if (*off >= n)
		return SOCKS_MORE;
	size_t len = p[*off];
	if (len == 0 || len > BROKER_NAME_MAX)
		return bad(err, "broker: bad compartment name length");
	if (n - *off - 1 < len)
		return SOCKS_MORE;
	if (!broker_name_ok((const char *)p + *off + 1, len))
		return bad(err, "broker: bad octet in compartment name");
	memcpy(dst, p + *off + 1, len);
	dst[len] = '\0';
	*off += 1 + len;
	return SOCKS_DONE;
}

/* OPEN's PATH.LEN PATH after VER OP. */
static enum socks_res path_parse(struct broker_request *out, const uint8_t *p, size_t n,
				 size_t *used, struct socks_err *err)
{
	if (n < 4)
		return SOCKS_MORE;
	size_t len = (size_t)p[2] << 8 | p[3];
	if (len == 0 || len > BROKER_PATH_MAX)
		return bad(err, "broker: bad path length");
	if (n > 4 && p[4] != '/')
		return bad(err, "broker: path not absolute");
	if (n - 4 < len)
		return SOCKS_MORE;
	if (memchr(p + 4, '\0', len))
		return bad(err, "broker: NUL in path");
	memcpy(out->path, p + 4, len);
	out->path[len] = '\0';
	*used = 4 + len;
	return SOCKS_DONE;
}

static size_t addr_len(uint8_t family)
{
	return family == BROKER_FAMILY_INET ? 4 : family == BROKER_FAMILY_INET6 ? 16 : 0;
}

/* LISTEN's FAMILY PORT ADDR PLACE.LEN PLACE after VER OP. */
static enum socks_res listen_parse(struct broker_request *out, const uint8_t *p, size_t n,
				   size_t *used, struct socks_err *err)
{
	if (n < 3)
		return SOCKS_MORE;
	size_t al = addr_len(p[2]);
	if (!al)
		return bad(err, "broker: bad family");
	if (n < 5)
		return SOCKS_MORE;
	out->family = p[2];
	out->port = (uint16_t)(p[3] << 8 | p[4]);
	if (!out->port)
		return bad(err, "broker: port 0");
	if (n < 5 + al + 1)
		return SOCKS_MORE;
	memcpy(out->addr, p + 5, al);
	size_t off = 5 + al;
	if (p[off] == 0) { /* no PLACE: stpd's own namespace */
		*used = off + 1;
		return SOCKS_DONE;
	}
	enum socks_res r = name_parse(out->out, p, n, &off, err);
	if (r == SOCKS_DONE)
		*used = off;
	return r;
}

enum socks_res broker_request_parse(struct broker_request *out, const uint8_t *p, size_t n,
				    size_t *used, struct socks_err *err)
{
	size_t off = 0;
	enum socks_res r;

	memset(out, 0, sizeof(*out));
	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != BROKER_VERSION)
		return bad(err, "broker: bad version");
	if (n < 2)
		return SOCKS_MORE;
	out->op = p[1];
	if (out->op == BROKER_OP_RELOAD) {
		*used = 2;
		return SOCKS_DONE;
	}
	if (out->op == BROKER_OP_OPEN)
		return path_parse(out, p, n, used, err);
	if (out->op == BROKER_OP_LISTEN)
		return listen_parse(out, p, n, used, err);
	if (out->op != BROKER_OP_SOCKET)
		return bad(err, "broker: unknown operation");
	if (n < 5)
		return SOCKS_MORE;
	out->family = p[2];
	out->type = p[3];
	out->proto = p[4];
	if (!fields_ok(out->family, out->type, out->proto))
		return bad(err, "broker: bad family, type or protocol");
	off = 5;
	if ((r = name_parse(out->in, p, n, &off, err)) != SOCKS_DONE)
		return r;
	if ((r = name_parse(out->out, p, n, &off, err)) != SOCKS_DONE)
		return r;
	*used = off;
	return SOCKS_DONE;
}

size_t broker_request_write(uint8_t *dst, size_t cap, const struct broker_request *r)
{
	if (r->op == BROKER_OP_RELOAD) {
		if (cap < 2)
			return 0;
		dst[0] = BROKER_VERSION;
		dst[1] = BROKER_OP_RELOAD;
		return 2;
	}
	if (r->op == BROKER_OP_OPEN) {
		size_t lp = strlen(r->path);
		if (lp == 0 || lp > BROKER_PATH_MAX || r->path[0] != '/' || cap < 4 + lp)
			return 0;
		dst[0] = BROKER_VERSION;
		dst[1] = BROKER_OP_OPEN;
		dst[2] = (uint8_t)(lp >> 8);
		dst[3] = (uint8_t)lp;
		memcpy(dst + 4, r->path, lp);
		return 4 + lp;
	}
	if (r->op == BROKER_OP_LISTEN) {
		size_t al = addr_len(r->family), lp = strlen(r->out);
		if (!al || !r->port || (lp && !broker_name_ok(r->out, lp)) || cap < 5 + al + 1 + lp)
			return 0;
		dst[0] = BROKER_VERSION;
		dst[1] = BROKER_OP_LISTEN;
		dst[2] = r->family;
		dst[3] = (uint8_t)(r->port >> 8);
		dst[4] = (uint8_t)r->port;
		memcpy(dst + 5, r->addr, al);
		dst[5 + al] = (uint8_t)lp;
		memcpy(dst + 6 + al, r->out, lp);
		return 6 + al + lp;
	}
	size_t li = strlen(r->in), lo = strlen(r->out), need = 5 + 1 + li + 1 + lo;
	if (r->op != BROKER_OP_SOCKET || !fields_ok(r->family, r->type, r->proto) ||
	    !broker_name_ok(r->in, li) || !broker_name_ok(r->out, lo) || cap < need)
		return 0;
	dst[0] = BROKER_VERSION;
	dst[1] = r->op;
	dst[2] = r->family;
	dst[3] = r->type;
	dst[4] = r->proto;
	dst[5] = (uint8_t)li;
	memcpy(dst + 6, r->in, li);
	dst[6 + li] = (uint8_t)lo;
	memcpy(dst + 7 + li, r->out, lo);
	return need;
}

enum socks_res broker_reply_parse(struct broker_reply *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err)
{
	memset(out, 0, sizeof(*out));
	if (n < 1)
		return SOCKS_MORE;
	if (p[0] != BROKER_VERSION)
		return bad(err, "broker: bad version");
	if (n < 2)
		return SOCKS_MORE;
	if (p[1] > BROKER_ST_BAD)
		return bad(err, "broker: unknown status");
	if (n < BROKER_REPLY_LEN)
		return SOCKS_MORE;
	out->status = p[1];
	out->err = (uint16_t)(p[2] << 8 | p[3]);
	*used = BROKER_REPLY_LEN;
	return SOCKS_DONE;
}

size_t broker_reply_write(uint8_t *dst, size_t cap, const struct broker_reply *r)
{
	if (cap < BROKER_REPLY_LEN || r->status > BROKER_ST_BAD)
		return 0;
	dst[0] = BROKER_VERSION;
	dst[1] = r->status;
	dst[2] = (uint8_t)(r->err >> 8);
	dst[3] = (uint8_t)r->err;
	return BROKER_REPLY_LEN;
}
