/*
 * mcastmap.h - stpify's multicast: a UDP socket's group memberships
 * (IP_ADD_MEMBERSHIP and friends) become JOINs through the proxy
 * (libstp's stp_mcast_*, docs/mcast.md), and the socket's datagrams are
 * the group's, opened and sealed here. docs/stpify.md, "Multicast".
 *
 * preload.c calls these from its hooks; each is cheap for an fd that has
 * no membership (one byte looked up, no lock).
 */
#ifndef STP_SHIM_MCASTMAP_H
#define STP_SHIM_MCASTMAP_H

#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

/* True when setsockopt(level, name) is a membership option stpify takes. */
bool mcastmap_option(int level, int name);
/* The setsockopt hook (every option: those it does not take go to libc);
 * returns what setsockopt returns. */
int mcastmap_setsockopt(int fd, int level, int name, const void *val, socklen_t len);

/* fd holds a membership made through the proxy: its reads are the group's. */
bool mcastmap_tracked(int fd);
/* fd joined a group before it was bound: bind() makes the JOIN. */
bool mcastmap_pending(int fd);
int mcastmap_bind(int fd, const struct sockaddr *sa, socklen_t len);
/* recvmsg on a tracked fd: the next datagram of the group. */
ssize_t mcastmap_recvmsg(int fd, struct msghdr *msg, int flags);
/* recvfrom/recv/read on a tracked fd (src, slen may be NULL). */
ssize_t mcastmap_recv1(int fd, void *buf, size_t n, int flags, struct sockaddr *src,
		       socklen_t *slen);
/* True when a datagram from tracked fd to dst (the group) goes to the relay. */
bool mcastmap_wants_send(int fd, const struct sockaddr *dst);
ssize_t mcastmap_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t mcastmap_sendto1(int fd, const void *buf, size_t n, int flags);
/* getsockname: the address the application bound, not the intranet one. */
bool mcastmap_sockname(int fd, struct sockaddr *sa, socklen_t *len);
/* close() or dup2() over fd: the membership ends (the proxy leaves). */
void mcastmap_drop(int fd);

#endif
