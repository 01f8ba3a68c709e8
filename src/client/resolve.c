/*
 * resolve.c - name look-ups through the proxy: Tor's RESOLVE X'F0' and
 * RESOLVE_PTR X'F1', and stp's DNS QUERY X'F2' (docs/protocol.md §5.3,
 * §5.4). Each is one request on a connection of its own, through any
 * SOCKS5 proxy URL (plain, TLS, X'86'); the proxy closes after the answer.
 * The DNS message itself is the caller's: libstp only frames it.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "client/client.h"
#include "client/conn.h"
#include "proto/dnsq.h"

static int rs_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

static enum stp_err rs_rep_err(uint8_t rep)
{
	if (rep >= SOCKS5_REP_GENERAL_FAILURE && rep <= SOCKS5_REP_PTCL_NOT_SUPPORTED)
		return (enum stp_err)(STP_ERR_REP_GENERAL_FAILURE + rep - 1);
	return STP_ERR_REP_OTHER;
}

/* Greeting, authentication and a request with cmd and dst; the first
 * reply in *bound. NULL with *err (STP_ERR_REP_* when the proxy said no). */
static struct stp_conn *rs_open(const struct stp_proxy *proxy, uint8_t cmd,
				const struct socks_addr *dst, int64_t deadline,
				struct stp_addr *bound, enum stp_err *err)
{
	static const struct sockaddr_in any = { .sin_family = AF_INET };
	struct stp_handshake h;
	struct stp_conn *c;

	if (!proxy) {
		rs_fail(err, STP_ERR_INVALID);
		return NULL;
	}
	if (proxy->kind != STP_SOCKS5 && proxy->kind != STP_SOCKS5H) {
		rs_fail(err, STP_ERR_UNSUPPORTED); /* SOCKS4 has no such command */
		return NULL;
	}
	if (!(c = client_conn_connect(proxy, deadline, err)))
		return NULL;
	if (client_conn_hs_init(c, &h, proxy, STP_CMD_CONNECT, NULL, 0,
				(const struct sockaddr *)&any, err) < 0) {
		stp_conn_close(c);
		return NULL;
	}
	/* The engine's request becomes ours. */
	bool bad = client_handshake_set_request(&h, cmd, dst) < 0;
	if (bad || client_conn_hs_run(c, &h, deadline) != STP_DONE) {
		enum stp_err e = bad ? STP_ERR_INVALID : h.err ? h.err : STP_ERR_PROTOCOL;
		int saved = h.sys_errno ? h.sys_errno : stp_err_errno(e);
		stp_conn_close(c);
		errno = saved;
		rs_fail(err, e);
		return NULL;
	}
	*bound = h.bound;
	return c;
}

/* A whole RFC 1928 reply read from c (BIND's second reply, F2's second). */
static int rs_read_reply(struct stp_conn *c, struct socks5_reply *r, int64_t deadline,
			 enum stp_err *err)
{
	uint8_t buf[SOCKS5_REPLY_MAX];
	size_t len = 0, used;
	struct socks_err perr;

	for (;;) {
		switch (socks5_reply_parse(r, buf, len, &used, &perr)) {
		case SOCKS_DONE:
			return 0;
		case SOCKS_BAD:
			return rs_fail(err, STP_ERR_PROTOCOL);
		case SOCKS_MORE:
			break;
		}
		if (len == sizeof(buf) || conn_read_exact(c, buf + len, 1, deadline, err) < 0)
			return -1;
		len++;
	}
}

int stp_resolve(const struct stp_proxy *proxy, const char *host, struct stp_addr *out,
		int timeout_ms, enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	struct socks_addr dst = { .atyp = SOCKS_ATYP_DOMAIN };
	size_t len = host ? strlen(host) : 0;
	struct stp_conn *c;

	if (len == 0 || len > SOCKS_DOMAIN_MAX || !out)
		return rs_fail(err, host && out ? STP_ERR_TARGET_NAME : STP_ERR_INVALID);
	dst.namelen = (uint8_t)len;
	memcpy(dst.u.name, host, len + 1);
	if (!(c = rs_open(proxy, SOCKS_CMD_RESOLVE, &dst, deadline, out, err)))
		return -1;
	stp_conn_close(c);
	if (out->salen == 0)
		return rs_fail(err, STP_ERR_PROTOCOL); /* a name is no answer here */
	if (err)
		*err = STP_OK;
	return 0;
}

int stp_resolve_ptr(const struct stp_proxy *proxy, const struct sockaddr *sa, char *name,
		    size_t cap, int timeout_ms, enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	struct socks_addr dst = { 0 };
	struct stp_addr bound;
	struct stp_conn *c;

	if (!sa || !name || cap == 0)
		return rs_fail(err, STP_ERR_INVALID);
	if (sa->sa_family == AF_INET) {
		dst.atyp = SOCKS_ATYP_IPV4;
		memcpy(dst.u.v4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		dst.atyp = SOCKS_ATYP_IPV6;
		memcpy(dst.u.v6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else {
		return rs_fail(err, STP_ERR_TARGET_FAMILY);
	}
	if (!(c = rs_open(proxy, SOCKS_CMD_RESOLVE_PTR, &dst, deadline, &bound, err)))
		return -1;
	stp_conn_close(c);
	if (bound.salen != 0 || bound.name[0] == '\0')
		return rs_fail(err, STP_ERR_PROTOCOL);
	if (strlen(bound.name) >= cap)
		return rs_fail(err, STP_ERR_INVALID);
	memcpy(name, bound.name, strlen(bound.name) + 1);
	if (err)
		*err = STP_OK;
	return 0;
}

/* The second reply and LEN ANSWER: the answer's length, or -1. */
static ssize_t dq_read_answer(struct stp_conn *c, void *answer, size_t cap, int64_t deadline,
			      enum stp_err *err)
{
	struct socks5_reply r;
	struct dnsq_frame f;
	struct socks_err perr;
	uint8_t hdr[DNSQ_FRAME_HDR];
	size_t len, used;

	if (rs_read_reply(c, &r, deadline, err) < 0)
		return -1;
	if (r.rep != SOCKS5_REP_SUCCEEDED)
		return rs_fail(err, rs_rep_err(r.rep));
	if (conn_read_exact(c, hdr, sizeof(hdr), deadline, err) < 0)
		return -1;
	/* The codec judges LEN: MORE (the message follows) or BAD. */
	if (dnsq_answer_parse(&f, hdr, sizeof(hdr), &used, &perr) == SOCKS_BAD)
		return rs_fail(err, STP_ERR_PROTOCOL);
	len = (size_t)hdr[0] << 8 | hdr[1];
	if (len > cap) {
		errno = EMSGSIZE;
		return rs_fail(err, STP_ERR_INVALID);
	}
	if (conn_read_exact(c, answer, len, deadline, err) < 0)
		return -1;
	return (ssize_t)len;
}

ssize_t stp_dns_query(const struct stp_proxy *proxy, const char *qname, uint16_t qtype,
		      const void *query, size_t len, void *answer, size_t cap, int timeout_ms,
		      enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	struct socks_addr dst = { .atyp = SOCKS_ATYP_DOMAIN, .port = qtype };
	uint8_t frame[DNSQ_FRAME_HDR + DNSQ_QUERY_MAX];
	size_t nlen = qname ? strlen(qname) : 0, flen;
	struct stp_addr bound;
	struct stp_conn *c;
	ssize_t n;

	if (!qname || !query || !answer)
		return rs_fail(err, STP_ERR_INVALID);
	/* The root's QNAME is "" in c-ares' spelling: "." on the wire. */
	if (nlen == 0)
		qname = ".", nlen = 1;
	if (nlen > SOCKS_DOMAIN_MAX)
		return rs_fail(err, STP_ERR_TARGET_NAME);
	if (len < DNSQ_MSG_MIN || len > DNSQ_QUERY_MAX)
		return rs_fail(err, STP_ERR_INVALID);
	dst.namelen = (uint8_t)nlen;
	memcpy(dst.u.name, qname, nlen + 1);
	flen = dnsq_frame_write(frame, sizeof(frame), query, len);
	if (!(c = rs_open(proxy, SOCKS_CMD_DNS_QUERY, &dst, deadline, &bound, err)))
		return -1;
	if (conn_write_all(c, frame, flen, deadline, err) < 0) {
		stp_conn_close(c);
		return -1;
	}
	n = dq_read_answer(c, answer, cap, deadline, err);
	stp_conn_close(c);
	if (n >= 0 && err)
		*err = STP_OK;
	return n;
}
