/*
 * errors.c - one table: each stp_err with its message and the errno a
 * socket call would report for it (docs/client.md prints the same table).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "client/client.h"
#include "common/log.h"

struct err_row {
	const char *text;
	int errnum;
	uint8_t rep; /* SOCKS5 reply code, 0 if none */
};

/* Designated initialisers keep the rows tied to the enum; the assert below
 * catches a value added to the enum but not here. */
static const struct err_row err_table[STP_ERR_COUNT] = {
	[STP_OK] = { "success", 0, 0 },
	[STP_ERR_URL_SCHEME] = { "bad proxy URL: scheme must be socks5, socks5h, socks4 or socks4a "
				 "(TLS: +tls, or socks5s, socks5hs; GSS-API: socks5+gssapi, "
				 "socks5h+gssapi)",
				 EINVAL, 0 },
	[STP_ERR_URL_USERINFO] = { "bad proxy URL: bad user:password", EINVAL, 0 },
	[STP_ERR_URL_HOST] = { "bad proxy URL: bad host", EINVAL, 0 },
	[STP_ERR_URL_PORT] = { "bad proxy URL: port must be 1..65535", EINVAL, 0 },
	[STP_ERR_URL_SYNTAX] = { "bad proxy URL: unexpected text after host:port", EINVAL, 0 },
	[STP_ERR_NO_PROXY] = { "no proxy configured (set STP_PROXY or ALL_PROXY)", EINVAL, 0 },
	[STP_ERR_PROXY_RESOLVE] = { "cannot resolve the proxy's host name", EHOSTUNREACH, 0 },
	[STP_ERR_PROXY_UNREACHABLE] = { "proxy unreachable", ECONNREFUSED, 0 },
	[STP_ERR_PROXY_CLOSED] = { "proxy closed the connection during the handshake",
				   ECONNRESET, 0 },
	[STP_ERR_IO] = { "I/O error on the proxy connection", EIO, 0 },
	[STP_ERR_TIMEOUT] = { "timed out", ETIMEDOUT, 0 },
	[STP_ERR_PROTOCOL] = { "protocol error: the proxy's reply is not valid SOCKS", EPROTO, 0 },
	[STP_ERR_NO_METHOD] = { "proxy accepts none of our authentication methods (X'FF')",
				EACCES, 0 },
	[STP_ERR_AUTH_FAILED] = { "proxy authentication failed (user/password rejected)",
				  EACCES, 0 },
	[STP_ERR_TARGET_NAME] = { "bad target name (empty, over 255 bytes, or holds a NUL)",
				  EINVAL, 0 },
	[STP_ERR_TARGET_FAMILY] = { "target address family not supported by the proxy protocol",
				    EAFNOSUPPORT, 0 },
	[STP_ERR_TARGET_RESOLVE] = { "cannot resolve the target name locally", EHOSTUNREACH, 0 },
	[STP_ERR_UNSUPPORTED] = { "command not available in this proxy protocol", EOPNOTSUPP, 0 },
	[STP_ERR_REP_GENERAL_FAILURE] = { "proxy refused: general SOCKS server failure (X'01')",
					  ECONNABORTED, 0x01 },
	[STP_ERR_REP_NOT_ALLOWED] = { "proxy refused: connection not allowed by ruleset (X'02')",
				      EACCES, 0x02 },
	[STP_ERR_REP_NET_UNREACHABLE] = { "proxy refused: network unreachable (X'03')",
					  ENETUNREACH, 0x03 },
	[STP_ERR_REP_HOST_UNREACHABLE] = { "proxy refused: host unreachable (X'04')",
					   EHOSTUNREACH, 0x04 },
	[STP_ERR_REP_CONN_REFUSED] = { "proxy refused: connection refused (X'05')",
				       ECONNREFUSED, 0x05 },
	[STP_ERR_REP_TTL_EXPIRED] = { "proxy refused: TTL expired (X'06')", ETIMEDOUT, 0x06 },
	[STP_ERR_REP_CMD_NOT_SUPPORTED] = { "proxy refused: command not supported (X'07')",
					    EOPNOTSUPP, 0x07 },
	[STP_ERR_REP_ATYP_NOT_SUPPORTED] = { "proxy refused: address type not supported (X'08')",
					     EAFNOSUPPORT, 0x08 },
	[STP_ERR_REP_PTCL_NOT_SUPPORTED] = { "proxy refused: protocol not supported (X'09')",
					     EPROTONOSUPPORT, 0x09 },
	[STP_ERR_REP_OTHER] = { "proxy refused: unassigned reply code", ECONNABORTED, 0 },
	[STP_ERR_SOCKS4_REJECTED] = { "proxy refused: request rejected or failed (SOCKS4 91)",
				      ECONNREFUSED, 0 },
	[STP_ERR_SOCKS4_NO_IDENTD] = { "proxy refused: cannot reach identd (SOCKS4 92)",
				       EACCES, 0 },
	[STP_ERR_SOCKS4_IDENT_MISMATCH] = { "proxy refused: identd disagrees with USERID (SOCKS4 93)",
					    EACCES, 0 },
	[STP_ERR_INVALID] = { "invalid argument", EINVAL, 0 },
	[STP_ERR_NOMEM] = { "out of memory", ENOMEM, 0 },
	[STP_ERR_SYSTEM] = { "system call failed", EIO, 0 },
	[STP_ERR_URL_OPTION] = { "bad proxy URL: unknown or bad ?option (TLS options need a "
				 "socks5+tls:// or socks5s:// URL)", EINVAL, 0 },
	[STP_ERR_TLS_CONFIG] = { "TLS: cannot load the ca=, cert= or key= file", EINVAL, 0 },
	[STP_ERR_TLS_HANDSHAKE] = { "TLS handshake failed", ECONNABORTED, 0 },
	[STP_ERR_TLS_UNTRUSTED] = { "proxy certificate not trusted", ECONNABORTED, 0 },
	[STP_ERR_TLS_NAME] = { "proxy certificate name mismatch", ECONNABORTED, 0 },
	[STP_ERR_TLS_NEEDS_CONN] = { "TLS and GSS-API proxies need stp_conn_open or stp_connect (the "
				     "handshake engine works on plain sockets only)",
				     EPROTONOSUPPORT, 0 },
	[STP_ERR_TLS_UDP_NAKED] = { "UDP through a TLS proxy needs udp-naked=1 in the proxy URL "
				    "(datagrams travel outside TLS)", EOPNOTSUPP, 0 },
	[STP_ERR_MCAST_NO_SEND] = { "multicast: granted receive only, not allowed to send (X'B0')",
				    EACCES, 0 },
	[STP_ERR_MCAST_NO_RECV] = { "multicast: granted send only, not allowed to receive (X'B1')",
				    EACCES, 0 },
	[STP_ERR_MCAST_REFUSED] = { "multicast: neither sending nor receiving allowed (X'B2')",
				    EACCES, 0 },
	[STP_ERR_MCAST_NOT_GROUP] = { "multicast: not a multicast group address (X'B6')",
				      EINVAL, 0 },
	[STP_ERR_MCAST_BANDWIDTH] = { "multicast: the proxy ended the group: bandwidth limit "
				      "(X'B3')", ENETDOWN, 0 },
	[STP_ERR_MCAST_TIME] = { "multicast: the proxy ended the membership: time limit (X'B4')",
				 ETIMEDOUT, 0 },
	[STP_ERR_AUTOCONF] = { "the proxy's configuration document is malformed or of another "
			       "version", EPROTO, 0 },
	[STP_ERR_MCAST_IDLE] = { "multicast: the proxy ended the group: idle (X'B5')", ENETDOWN,
				 0 },
	[STP_ERR_GSS_CREDENTIALS] = { "GSS-API: no usable credentials for the proxy's service "
				      "(kinit?)", EACCES, 0 },
	[STP_ERR_GSS_REFUSED] = { "GSS-API: the proxy refused the security context (X'01' X'FF')",
				  EACCES, 0 },
	[STP_ERR_GSS_PROTECTION] = { "GSS-API: the proxy chose less protection than asked",
				     ECONNABORTED, 0 },
	[STP_ERR_BIND_NO_ARRIVAL] = { "proxy refused: no such arrival (X'0A')", ECONNABORTED,
				      0 },
	[STP_ERR_BIND_LIMIT] = { "proxy refused: bind limit reached (X'0B')", EAGAIN, 0 },
};

_Static_assert(STP_ERR_REP_PTCL_NOT_SUPPORTED - STP_ERR_REP_GENERAL_FAILURE == 8,
	       "SOCKS5 reply errors must stay consecutive, X'01'..X'09'");

static const struct err_row *err_row(enum stp_err err)
{
	if ((unsigned)err >= STP_ERR_COUNT || err_table[err].text == NULL)
		return NULL;
	return &err_table[err];
}

const char *stp_strerror(enum stp_err err)
{
	const struct err_row *r = err_row(err);
	return r ? r->text : "unknown libstp error";
}

int stp_err_errno(enum stp_err err)
{
	const struct err_row *r = err_row(err);
	return r ? r->errnum : EIO;
}

int stp_err_rep(enum stp_err err)
{
	const struct err_row *r = err_row(err);
	return r ? r->rep : 0;
}

/* One line of detail per thread, set by the TLS layer on failure. */
static _Thread_local char err_detail[256];

const char *stp_err_detail(void)
{
	return err_detail;
}

void client_err_detail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err_detail, sizeof(err_detail), fmt, ap);
	va_end(ap);
}

static bool debug_on;

void stp_set_debug(bool on)
{
	debug_on = on;
	if (on)
		log_setlevel(LOG_DEBUG);
}

/* STP_DEBUG=1 turns debug lines on for programs that never call
 * stp_set_debug (stpify's hosts, for one). Read once. */
bool client_debug_on(void)
{
	static int from_env = -1;

	if (from_env < 0) {
		const char *v = getenv("STP_DEBUG");
		from_env = v != NULL && *v != '\0' && *v != '0';
		if (from_env)
			stp_set_debug(true);
	}
	return debug_on;
}
