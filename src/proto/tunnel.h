/*
 * tunnel.h - SETUP_UDP_TUNNEL (seed 000 section 5.4; docs/protocol.md
 * section 5.10): the client's request to its stpd (CMD X'20'), the request
 * one stpd sends the other (CMD X'21' TUNNEL RELAY), the latter's reply
 * (an RFC 1928 reply, with a 16-byte token after it for DTLS), and the
 * 2-byte length framing of datagrams on the TLS transport. Parsers follow
 * socks.h: re-run from the start on more bytes, no allocation.
 */
#ifndef STP_PROTO_TUNNEL_H
#define STP_PROTO_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

#define TUNNEL_CMD_SETUP 0x20 /* client -> local stpd */
#define TUNNEL_CMD_RELAY 0x21 /* local stpd -> remote stpd */
#define TUNNEL_VER       0x01

/* TRANS: how the two stpd carry datagrams. */
#define TUNNEL_TRANS_DTLS    0x01 /* DTLS 1.2 over UDP, one record per datagram */
#define TUNNEL_TRANS_TLS     0x02 /* the TLS control connection, LEN(2) DATA frames */
/* CRED: what the local stpd presents to the remote one. */
#define TUNNEL_CRED_NONE     0x00 /* method X'00' */
#define TUNNEL_CRED_USERPASS 0x01 /* RFC 1929 with the UNAME/PASSWD given */
#define TUNNEL_CRED_CERT     0x02 /* the local stpd's configured client certificate */

/* Reply codes for far-side failures (docs/protocol.md 5.10). */
#define SOCKS5_REP_TUNNEL_AUTH    0x0C /* the two stpd did not authenticate each other */
#define SOCKS5_REP_TUNNEL_REFUSED 0x0D /* the remote stpd refused or failed the relay */

#define TUNNEL_TOKEN_LEN       16
#define TUNNEL_SETUP_MAX       (SOCKS5_REQUEST_MAX + 3 + 1 + 255 + 1 + 255 + SOCKS_ADDR_MAX)
#define TUNNEL_RELAY_MAX       (SOCKS5_REQUEST_MAX + 2)
#define TUNNEL_RELAY_REPLY_MAX (SOCKS5_REPLY_MAX + TUNNEL_TOKEN_LEN)
#define TUNNEL_FRAME_HDR       2

/* X'20': VER CMD RSV ATYP DST.ADDR DST.PORT (the remote stpd), then
 * TVER TRANS CRED [ULEN UNAME PLEN PASSWD] F.ATYP F.ADDR F.PORT. */
struct tunnel_setup {
	struct socks_addr remote;
	uint8_t trans, cred;
	uint8_t ulen, plen;
	char user[256], pass[256]; /* NUL-terminated; empty unless CRED X'01' */
	struct socks_addr far;
};
/* BAD: not VER 5 / CMD X'20' (X'07'), TVER, TRANS or CRED unknown or an
 * empty UNAME/PASSWD (X'01'), an address's ATYP unknown (X'08'). */
enum socks_res tunnel_setup_parse(struct tunnel_setup *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err);
size_t tunnel_setup_write(uint8_t *dst, size_t cap, const struct tunnel_setup *t);

/* X'21': VER CMD RSV ATYP DST.ADDR DST.PORT (the far endpoint), TVER TRANS. */
struct tunnel_relay {
	struct socks_addr far;
	uint8_t trans;
};
enum socks_res tunnel_relay_parse(struct tunnel_relay *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err);
size_t tunnel_relay_write(uint8_t *dst, size_t cap, const struct tunnel_relay *t);

/* X'21''s reply: an RFC 1928 reply; with REP X'00' and TRANS DTLS, BND is
 * the remote's DTLS port and TOKEN(16) follows. */
struct tunnel_relay_reply {
	uint8_t rep;
	struct socks_addr bnd;
	bool has_token;
	uint8_t token[TUNNEL_TOKEN_LEN];
};
enum socks_res tunnel_relay_reply_parse(struct tunnel_relay_reply *out, uint8_t trans,
					const uint8_t *p, size_t n, size_t *used,
					struct socks_err *err);
size_t tunnel_relay_reply_write(uint8_t *dst, size_t cap, const struct tunnel_relay_reply *r);

/* A TLS-transport frame: LEN(2, network order) then LEN bytes of one
 * datagram (LEN 0: an empty datagram). DONE sets *data and *len. Never
 * BAD: every length is valid; the reader caps what it accepts. */
enum socks_res tunnel_frame_parse(const uint8_t *p, size_t n, size_t *used, const uint8_t **data,
				  size_t *len);
/* Writes LEN for a len-byte datagram into dst[0..2); 0 when len > 65535. */
size_t tunnel_frame_head(uint8_t *dst, size_t len);

const char *tunnel_trans_name(uint8_t trans);

#endif
