/*
 * lookup.c - stp_lookup: a name's address, resolved where feature
 * discovery says is best. A proxy that offers RESOLVE X'F0' to this client
 * answers from its own DNS view and nothing leaves here; otherwise a URL
 * that resolves locally (socks5://, socks4://) does so with getaddrinfo,
 * and one that promised remote names (socks5h://, socks4a://) refuses.
 */
#include <netdb.h>
#include <string.h>

#include "client/conn.h"
#include "common/log.h"
#include "proto/socks.h"

static int lookup_fail(enum stp_err *err, enum stp_err e)
{
	if (err)
		*err = e;
	return -1;
}

static int lookup_proxy(const struct stp_proxy *proxy, const char *name, struct stp_addr *out,
			int timeout_ms, enum stp_err *err)
{
	/* The name goes to the proxy as it is: a socks5h request. */
	struct stp_proxy p = *proxy;
	int64_t deadline = client_deadline(timeout_ms);
	struct stp_handshake h;
	enum stp_err e = STP_OK;

	p.kind = STP_SOCKS5H;
	struct stp_conn *c = client_conn_connect(&p, deadline, &e);
	if (c == NULL)
		return lookup_fail(err, e);
	if (client_conn_hs_init(c, &h, &p, STP_CMD_RESOLVE, name, 0, NULL, &e) < 0) {
		stp_conn_close(c);
		return lookup_fail(err, e);
	}
	enum stp_step r = client_conn_hs_run(c, &h, deadline);
	stp_conn_close(c);
	if (r != STP_DONE)
		return lookup_fail(err, h.err);
	*out = h.bound;
	out->port = 0;
	if (err)
		*err = STP_OK;
	return 0;
}

static int lookup_local(const char *name, struct stp_addr *out, enum stp_err *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL;
	if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL)
		return lookup_fail(err, STP_ERR_TARGET_RESOLVE);
	memset(out, 0, sizeof(*out));
	memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
	out->salen = res->ai_addrlen;
	freeaddrinfo(res);
	if (err)
		*err = STP_OK;
	return 0;
}

int stp_lookup(const struct stp_proxy *proxy, const char *name, struct stp_addr *out,
	       bool *via_proxy, int timeout_ms, enum stp_err *err)
{
	struct stp_features f;
	enum stp_err ferr;
	bool remote = false;

	if (proxy == NULL || name == NULL || out == NULL || name[0] == '\0' ||
	    strlen(name) > STP_NAME_MAX)
		return lookup_fail(err, name && name[0] ? STP_ERR_TARGET_NAME : STP_ERR_INVALID);
	/* Discovery decides; a proxy we cannot ask is as one without it. */
	if (stp_features_get(proxy, &f, 0, timeout_ms, &ferr) == 0)
		remote = stp_features_has_command(&f, SOCKS_CMD_RESOLVE);
	log_debug("lookup %s: %s", name, remote ? "RESOLVE through the proxy" : "not offered");
	if (via_proxy)
		*via_proxy = remote;
	if (remote)
		return lookup_proxy(proxy, name, out, timeout_ms, err);
	if (stp_proxy_remote_dns(proxy))
		return lookup_fail(err, STP_ERR_UNSUPPORTED); /* would leak the name */
	return lookup_local(name, out, err);
}
