/*
 * tp_rep.c - errno of a refused relay -> the SOCKS reply the client gets
 * (tp_engine.h). Shared by stpd's module and stp-relayd's OPENED so that a
 * client sees the same code whichever engine refused.
 */
#include <errno.h>

#include "ext/transparent/tp_engine.h"
#include "proto/socks.h"

uint8_t tp_rep_of_errno(int err)
{
	switch (err) {
	case EPROTONOSUPPORT:
		return SOCKS5_REP_PTCL_NOT_SUPPORTED;
	case EAFNOSUPPORT: /* kernel NAT cannot change the family */
		return SOCKS5_REP_ATYP_NOT_SUPPORTED;
	case ENETUNREACH: /* forwarding off, or no route toward S */
	case EHOSTUNREACH:
		return SOCKS5_REP_NET_UNREACHABLE;
	case EACCES:
	case EPERM:
		return SOCKS5_REP_NOT_ALLOWED;
	default: /* EADDRNOTAVAIL (BND not ours), EADDRINUSE, EIO (nftables), ECONNREFUSED */
		return SOCKS5_REP_GENERAL_FAILURE;
	}
}
