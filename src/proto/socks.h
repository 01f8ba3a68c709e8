/*
 * socks.h - the SOCKS wire codec shared by stpd, libstp and stpify.
 *
 * Pure functions only: no allocation, no syscalls, no globals. Every parser
 * takes (out, bytes, len, &used, &err), returns SOCKS_MORE / SOCKS_DONE /
 * SOCKS_BAD and is simply re-run from the start as more bytes arrive (a
 * handshake message is at most a few hundred bytes, so this is cheap).
 * Every writer takes (dst, cap, ...) and returns the bytes written, or 0 when
 * cap is too small. Multi-byte fields are host order in structs.
 */
#ifndef STP_PROTO_SOCKS_H
#define STP_PROTO_SOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum socks_res { SOCKS_MORE = 0, SOCKS_DONE = 1, SOCKS_BAD = -1 };

#define SOCKS4_VER 0x04
#define SOCKS5_VER 0x05
#define SOCKS_USERPASS_VER 0x01 /* RFC 1929 sub-negotiation version */

/* RFC 1928 section 3 methods (plus the extension methods stp speaks). */
enum {
	SOCKS_METHOD_NONE = 0x00,
	SOCKS_METHOD_GSSAPI = 0x01,
	SOCKS_METHOD_USERPASS = 0x02,
	SOCKS_METHOD_SSL_IANA = 0x06, /* IANA code for the same draft as 0x86 */
	SOCKS_METHOD_SSL = 0x86,      /* seed 004 */
	SOCKS_METHOD_FEATURES = 0x87, /* stp: feature discovery (features.h) */
	SOCKS_METHOD_NOACCEPT = 0xFF,
};

/* RFC 1928 section 4 commands, and extension commands. */
enum {
	SOCKS_CMD_CONNECT = 0x01,
	SOCKS_CMD_BIND = 0x02,
	SOCKS_CMD_UDP_ASSOCIATE = 0x03,
	SOCKS_CMD_TRANSPARENT = 0x04, /* seed 003 */
	SOCKS_CMD_JOIN_MCAST = 0x05,  /* seed 000 */
	SOCKS_CMD_LEAVE_MCAST = 0x06, /* stp's choice, seed 000 gives none */
	SOCKS_CMD_JOIN_MCAST_FILTER = 0x85, /* stp: JOIN with RFC 3678 source filter */
	SOCKS_CMD_RESOLVE = 0xF0,     /* Tor (socks-extensions.txt) */
	SOCKS_CMD_RESOLVE_PTR = 0xF1, /* Tor */
	SOCKS_CMD_DNS_QUERY = 0xF2,   /* stp: a whole DNS message (docs/protocol.md 5.4) */
	SOCKS_CMD_AUTOCONFIG = 0xF4,  /* stp: get client configuration (proto/autoconf.h) */
	SOCKS_CMD_FEATURES = 0xF3,    /* stp: feature discovery after authentication */
	SOCKS_CMD_MUX = 0x30,         /* stp: switch to HTTP/2 streams (docs/protocol.md 5.11) */
};

enum {
	SOCKS_ATYP_IPV4 = 0x01,
	SOCKS_ATYP_DOMAIN = 0x03,
	SOCKS_ATYP_IPV6 = 0x04,
};

/* RFC 1928 section 6 reply codes, and extension replies. */
enum {
	SOCKS5_REP_SUCCEEDED = 0x00,
	SOCKS5_REP_GENERAL_FAILURE = 0x01,
	SOCKS5_REP_NOT_ALLOWED = 0x02,
	SOCKS5_REP_NET_UNREACHABLE = 0x03,
	SOCKS5_REP_HOST_UNREACHABLE = 0x04,
	SOCKS5_REP_CONN_REFUSED = 0x05,
	SOCKS5_REP_TTL_EXPIRED = 0x06,
	SOCKS5_REP_CMD_NOT_SUPPORTED = 0x07,
	SOCKS5_REP_ATYP_NOT_SUPPORTED = 0x08,
	SOCKS5_REP_PTCL_NOT_SUPPORTED = 0x09, /* seed 003 */
	SOCKS5_REP_MCAST_NO_SEND = 0xB0,      /* seed 000 */
	SOCKS5_REP_MCAST_NO_RECV = 0xB1,
	SOCKS5_REP_MCAST_NEITHER = 0xB2,
	SOCKS5_REP_MCAST_BANDWIDTH = 0xB3,    /* stp notices, docs/mcast.md */
	SOCKS5_REP_MCAST_TIME = 0xB4,
	SOCKS5_REP_MCAST_IDLE = 0xB5,
	SOCKS5_REP_MCAST_NOT_GROUP = 0xB6,
	SOCKS5_REP_MUX_REFUSED = 0x0E, /* stp: CMD X'30' refused (docs/protocol.md 5.11) */
};

/* SOCKS4 (and 4a) reply codes. */
enum {
	SOCKS4_REP_GRANTED = 90,
	SOCKS4_REP_REJECTED = 91,
	SOCKS4_REP_NO_IDENTD = 92,
	SOCKS4_REP_IDENT_MISMATCH = 93,
};

#define SOCKS_DOMAIN_MAX 255
#define SOCKS_ADDR_MAX (1 + 1 + SOCKS_DOMAIN_MAX + 2) /* ATYP LEN NAME PORT */
#define SOCKS5_REQUEST_MAX (3 + SOCKS_ADDR_MAX)
#define SOCKS5_REPLY_MAX SOCKS5_REQUEST_MAX
#define SOCKS5_GREETING_MAX (2 + 255)
#define SOCKS_USERPASS_MAX (1 + 1 + 255 + 1 + 255)
#define SOCKS_UDP_HDR_MAX (3 + SOCKS_ADDR_MAX)
#define SOCKS4_REQUEST_MAX (8 + 256 + 256) /* fixed part, USERID+NUL, HOST+NUL */
#define SOCKS4_REPLY_LEN 8
#define SOCKS_HANDSHAKE_MAX 1536 /* per-session input buffer: a PROXY v2 header fits */

/* Why a parse failed: the reply code to send and static text for the log. */
struct socks_err {
	uint8_t rep;
	const char *why;
};

/* An address as it appears on the wire. name is NUL-terminated. */
struct socks_addr {
	uint8_t atyp; /* SOCKS_ATYP_* */
	uint8_t namelen;
	uint16_t port; /* host order */
	union {
		uint8_t v4[4];
		uint8_t v6[16];
		char name[SOCKS_DOMAIN_MAX + 1];
	} u;
};

/* ---- addresses: ATYP ADDR PORT (RFC 1928 section 5) ---- */
/* BAD: unknown ATYP (rep X'08'), empty domain or a NUL inside one (X'01'). */
enum socks_res socks_addr_parse(struct socks_addr *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err);
size_t socks_addr_write(uint8_t *dst, size_t cap, const struct socks_addr *a);
size_t socks_addr_wire_len(const struct socks_addr *a);

/* ---- method greeting: VER NMETHODS METHODS ---- */
struct socks5_greeting {
	uint8_t nmethods;
	uint8_t methods[255];
};
enum socks_res socks5_greeting_parse(struct socks5_greeting *out, const uint8_t *p, size_t n,
				     size_t *used, struct socks_err *err);
size_t socks5_greeting_write(uint8_t *dst, size_t cap, const uint8_t *methods, size_t nmethods);
bool socks5_greeting_has(const struct socks5_greeting *g, uint8_t method);

/* ---- method selection: VER METHOD ---- */
enum socks_res socks5_choice_parse(uint8_t *method, const uint8_t *p, size_t n, size_t *used,
				   struct socks_err *err);
size_t socks5_choice_write(uint8_t *dst, size_t cap, uint8_t method);

/* ---- RFC 1929: VER ULEN UNAME PLEN PASSWD / VER STATUS ---- */
struct socks_userpass {
	uint8_t ulen, plen;
	char user[256]; /* NUL-terminated */
	char pass[256];
};
enum socks_res socks_userpass_parse(struct socks_userpass *out, const uint8_t *p, size_t n,
				    size_t *used, struct socks_err *err);
size_t socks_userpass_write(uint8_t *dst, size_t cap, const char *user, const char *pass);
enum socks_res socks_userpass_status_parse(uint8_t *status, const uint8_t *p, size_t n,
					   size_t *used, struct socks_err *err);
size_t socks_userpass_status_write(uint8_t *dst, size_t cap, uint8_t status);

/* ---- requests and replies: VER CMD|REP RSV ATYP ADDR PORT ---- */
struct socks5_request {
	uint8_t cmd; /* any value: dispatch decides what is supported */
	struct socks_addr dst;
};
enum socks_res socks5_request_parse(struct socks5_request *out, const uint8_t *p, size_t n,
				    size_t *used, struct socks_err *err);
size_t socks5_request_write(uint8_t *dst, size_t cap, uint8_t cmd, const struct socks_addr *a);

struct socks5_reply {
	uint8_t rep;
	struct socks_addr bnd;
};
enum socks_res socks5_reply_parse(struct socks5_reply *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err);
/* bnd NULL writes IPv4 0.0.0.0:0. */
size_t socks5_reply_write(uint8_t *dst, size_t cap, uint8_t rep, const struct socks_addr *bnd);

/* ---- UDP request header: RSV(2) FRAG ATYP ADDR PORT DATA ---- */
/* A datagram is complete: the result is DONE or BAD, never MORE. */
struct socks_udp_hdr {
	uint8_t frag;
	struct socks_addr addr;
	size_t hdrlen; /* offset of DATA */
};
enum socks_res socks_udp_parse(struct socks_udp_hdr *out, const uint8_t *p, size_t n,
			       struct socks_err *err);
size_t socks_udp_write(uint8_t *dst, size_t cap, uint8_t frag, const struct socks_addr *a);

/* ---- TRANSPARENT (CMD X'04', seed 003; docs/protocol.md) ----
 * After DST.PORT of a request whose CMD is X'04' come
 *   PTCL(1) S.ATYP(1) S.ADDR(variable) S.PORT(2)
 * and nothing else for any other CMD. Every PTCL value parses (the server
 * answers X'09' for one it does not relay); S.ATYP X'03' parses too (stpd
 * answers X'08'); an unknown S.ATYP is BAD with X'08'. */
#define SOCKS_PTCL_TCP 0x06
#define SOCKS_PTCL_UDP 0x11
#define SOCKS_PTCL_TRAILER_MAX (1 + SOCKS_ADDR_MAX)
#define SOCKS5_TP_REQUEST_MAX (SOCKS5_REQUEST_MAX + SOCKS_PTCL_TRAILER_MAX)
struct socks_ptcl {
	uint8_t ptcl;          /* IANA protocol number: 6 TCP, 17 UDP */
	struct socks_addr src; /* S.ATYP S.ADDR S.PORT */
};
/* The trailer alone (what follows DST.PORT). */
enum socks_res socks_ptcl_parse(struct socks_ptcl *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err);
size_t socks_ptcl_write(uint8_t *dst, size_t cap, uint8_t ptcl, const struct socks_addr *src);
/* A whole request: the RFC 1928 part, and the trailer when CMD is X'04'
 * (has_ptcl says whether it was there). */
struct socks5_tp_request {
	struct socks5_request req;
	bool has_ptcl;
	struct socks_ptcl ext;
};
enum socks_res socks5_tp_request_parse(struct socks5_tp_request *out, const uint8_t *p, size_t n,
				       size_t *used, struct socks_err *err);
/* VER X'04' RSV ATYP DST.ADDR DST.PORT PTCL S.ATYP S.ADDR S.PORT. */
size_t socks5_tp_request_write(uint8_t *dst, size_t cap, const struct socks_addr *target,
			       uint8_t ptcl, const struct socks_addr *src);
/* "tcp", "udp", or NULL for a PTCL stp does not relay. */
const char *socks_ptcl_name(uint8_t ptcl);

/* ---- SOCKS4 / 4a: VN CD DSTPORT DSTIP USERID NUL [HOST NUL] ---- */
struct socks4_request {
	uint8_t cmd;
	struct socks_addr dst; /* ATYP_IPV4, or ATYP_DOMAIN for 4a (IP 0.0.0.x, x != 0) */
	char userid[256];
};
enum socks_res socks4_request_parse(struct socks4_request *out, const uint8_t *p, size_t n,
				    size_t *used, struct socks_err *err);
size_t socks4_request_write(uint8_t *dst, size_t cap, uint8_t cmd, const struct socks_addr *a,
			    const char *userid);
struct socks4_reply {
	uint8_t rep;
	uint16_t port;
	uint8_t ip[4];
};
enum socks_res socks4_reply_parse(struct socks4_reply *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err);
size_t socks4_reply_write(uint8_t *dst, size_t cap, uint8_t rep, uint16_t port,
			  const uint8_t ip[4]);

/* ---- names for logs and docs ---- */
const char *socks5_rep_name(uint8_t rep);
const char *socks5_cmd_name(uint8_t cmd);
const char *socks_method_name(uint8_t method);
const char *socks4_rep_name(uint8_t rep);

#endif
