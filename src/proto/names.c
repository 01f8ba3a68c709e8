/*
 * names.c - code -> name strings for log lines and docs. Every unknown
 * value gets a fixed fallback, so callers can print any byte they read.
 */
#include "proto/mbind.h"
#include "proto/socks.h"
#include "proto/tunnel.h"

const char *socks5_rep_name(uint8_t rep)
{
	static const char *const names[] = {
		[SOCKS5_REP_SUCCEEDED] = "succeeded",
		[SOCKS5_REP_GENERAL_FAILURE] = "general SOCKS server failure",
		[SOCKS5_REP_NOT_ALLOWED] = "connection not allowed by ruleset",
		[SOCKS5_REP_NET_UNREACHABLE] = "network unreachable",
		[SOCKS5_REP_HOST_UNREACHABLE] = "host unreachable",
		[SOCKS5_REP_CONN_REFUSED] = "connection refused",
		[SOCKS5_REP_TTL_EXPIRED] = "TTL expired",
		[SOCKS5_REP_CMD_NOT_SUPPORTED] = "command not supported",
		[SOCKS5_REP_ATYP_NOT_SUPPORTED] = "address type not supported",
		[SOCKS5_REP_PTCL_NOT_SUPPORTED] = "PTCL type not supported",
	};

	switch (rep) {
	case SOCKS5_REP_MCAST_NO_SEND:
		return "multicast: not allowed to send";
	case SOCKS5_REP_MCAST_NO_RECV:
		return "multicast: not allowed to receive";
	case SOCKS5_REP_MCAST_NEITHER:
		return "multicast: neither send nor receive";
	case SOCKS5_REP_MCAST_BANDWIDTH:
		return "multicast: group bandwidth exceeded";
	case SOCKS5_REP_MCAST_TIME:
		return "multicast: membership time limit reached";
	case SOCKS5_REP_MCAST_IDLE:
		return "multicast: relay idle timeout";
	case SOCKS5_REP_MCAST_NOT_GROUP:
		return "multicast: not a multicast group";
	case MBIND_REP_NO_ARRIVAL:
		return "bind: no such arrival";
	case MBIND_REP_LIMIT:
		return "bind: limit reached";
	case SOCKS5_REP_TUNNEL_AUTH:
		return "tunnel: the two servers did not authenticate";
	case SOCKS5_REP_TUNNEL_REFUSED:
		return "tunnel: the remote server refused";
	case SOCKS5_REP_MUX_REFUSED:
		return "multiplexing refused";
	default:
		break;
	}
	if (rep < sizeof(names) / sizeof(names[0]))
		return names[rep];
	return "unassigned";
}

const char *socks5_cmd_name(uint8_t cmd)
{
	switch (cmd) {
	case SOCKS_CMD_CONNECT:
		return "connect";
	case SOCKS_CMD_BIND:
		return "bind";
	case SOCKS_CMD_UDP_ASSOCIATE:
		return "udpassociate";
	case SOCKS_CMD_TRANSPARENT:
		return "transparent";
	case SOCKS_CMD_JOIN_MCAST:
		return "mcast-join";
	case SOCKS_CMD_LEAVE_MCAST:
		return "mcast-leave";
	case SOCKS_CMD_JOIN_MCAST_FILTER:
		return "mcast-join-filter";
	case SOCKS_CMD_RESOLVE:
		return "resolve";
	case SOCKS_CMD_RESOLVE_PTR:
		return "resolve-ptr";
	case SOCKS_CMD_DNS_QUERY:
		return "dns";
	case SOCKS_CMD_AUTOCONFIG:
		return "autoconfig";
	case SOCKS_CMD_FEATURES:
		return "features";
	case MBIND_CMD_LISTEN:
		return "listen";
	case MBIND_CMD_ACCEPT:
		return "accept";
	case TUNNEL_CMD_SETUP:
		return "tunnel";
	case TUNNEL_CMD_RELAY:
		return "tunnel-relay";
	case SOCKS_CMD_MUX:
		return "mux";
	default:
		return "unknown";
	}
}

const char *socks_method_name(uint8_t method)
{
	switch (method) {
	case SOCKS_METHOD_NONE:
		return "none";
	case SOCKS_METHOD_GSSAPI:
		return "gssapi";
	case SOCKS_METHOD_USERPASS:
		return "userpass";
	case SOCKS_METHOD_SSL_IANA:
	case SOCKS_METHOD_SSL:
		return "ssl";
	case SOCKS_METHOD_FEATURES:
		return "features";
	case SOCKS_METHOD_NOACCEPT:
		return "no-acceptable";
	default:
		return "unassigned";
	}
}

const char *socks4_rep_name(uint8_t rep)
{
	switch (rep) {
	case SOCKS4_REP_GRANTED:
		return "request granted";
	case SOCKS4_REP_REJECTED:
		return "request rejected or failed";
	case SOCKS4_REP_NO_IDENTD:
		return "rejected: cannot reach identd";
	case SOCKS4_REP_IDENT_MISMATCH:
		return "rejected: user-id mismatch with identd";
	default:
		return "unassigned";
	}
}
