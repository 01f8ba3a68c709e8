/*
 * listendiag.h - who else listens on an address, from the kernel's socket
 * table (NETLINK_SOCK_DIAG, as ss(8) reads it). stpd checks this after its
 * workers listen, to catch a second instance that started at the same moment
 * and slipped past listener_check_free (see listener.c).
 */
#ifndef STP_SERVER_LISTENDIAG_H
#define STP_SERVER_LISTENDIAG_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

/* 1 when a listening TCP socket whose inode is not in ours[] takes
 * connections for addr (same port; same address, a wildcard on either side,
 * or a dual-stack IPv6 socket for an IPv4 addr), with its address in who;
 * 0 when there is none; -1 when the table cannot be read (err says why). */
int listendiag_foreign(const struct sockaddr *addr, const ino_t *ours, size_t n_ours, char *who,
		       size_t whocap, char *err, size_t errlen);

#endif
