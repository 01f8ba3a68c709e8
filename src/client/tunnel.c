/*
 * tunnel.c - the SETUP_UDP_TUNNEL X'20' request (docs/protocol.md 5.10):
 * a UDP association whose request names another stpd, the transport, the
 * credentials for it and the far endpoint (stp_tunnel_open, udp.c). Names
 * are sent as names: the far endpoint is in another network, and only the
 * servers can tell where the remote stpd is.
 */
#include <string.h>

#include "client/client.h"
#include "common/sockaddr.h"
#include "proto/tunnel.h"

static int encode(struct socks_addr *out, const char *host, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	size_t n;

	if (host == NULL || port == 0)
		return -1;
	if (client_literal_parse(&ss, &len, host, port))
		return sa_to_socks(out, (struct sockaddr *)&ss);
	n = strlen(host);
	if (n == 0 || n > SOCKS_DOMAIN_MAX)
		return -1;
	memset(out, 0, sizeof(*out));
	out->atyp = SOCKS_ATYP_DOMAIN;
	out->namelen = (uint8_t)n;
	memcpy(out->u.name, host, n + 1);
	out->port = port;
	return 0;
}

int client_handshake_tunnel(struct stp_handshake *h, const struct stp_tunnel_opts *o)
{
	struct tunnel_setup t;
	uint8_t req[STP_HS_BUF];
	size_t n;
	int r;

	memset(&t, 0, sizeof(t));
	if (o->transport != STP_TUNNEL_DTLS && o->transport != STP_TUNNEL_TLS)
		return -1;
	if (encode(&t.remote, o->remote_host, o->remote_port) < 0 ||
	    encode(&t.far, o->far_host, o->far_port) < 0)
		return -1;
	t.trans = (uint8_t)o->transport;
	if (o->client_cert) {
		t.cred = TUNNEL_CRED_CERT;
	} else if (o->user || o->password) {
		size_t ul = o->user ? strlen(o->user) : 0,
		       pl = o->password ? strlen(o->password) : 0;
		if (ul == 0 || ul > 255 || pl == 0 || pl > 255)
			return -1;
		t.cred = TUNNEL_CRED_USERPASS;
		t.ulen = (uint8_t)ul;
		t.plen = (uint8_t)pl;
		memcpy(t.user, o->user, ul);
		memcpy(t.pass, o->password, pl);
	}
	n = tunnel_setup_write(req, sizeof(req), &t);
	r = n ? client_handshake_set_raw_request(h, req, n) : -1;
	memset(&t, 0, sizeof(t)); /* the password */
	memset(req, 0, sizeof(req));
	return r;
}

int stp_handshake_tunnel(struct stp_handshake *h, const struct stp_tunnel_opts *o,
			 enum stp_err *err)
{
	if (h == NULL || o == NULL || client_handshake_tunnel(h, o) < 0) {
		if (err)
			*err = STP_ERR_INVALID;
		return -1;
	}
	return 0;
}
