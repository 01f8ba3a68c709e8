/*
 * addrorder.h - the order in which a name's addresses are tried (Happy
 * Eyeballs v2, RFC 8305 section 4), and the error kept when all of them
 * fail. Shared by stpd's CONNECT and libstp's connection to the proxy.
 */
#ifndef STP_COMMON_ADDRORDER_H
#define STP_COMMON_ADDRORDER_H

#include <stddef.h>
#include <sys/socket.h>

/* RFC 8305 section 5: the recommended Connection Attempt Delay, and the
 * bounds a configured one must keep (at least 10 ms; at most 2 s). */
#define HE_ATTEMPT_DELAY_MS 250
#define HE_ATTEMPT_DELAY_MIN 10
#define HE_ATTEMPT_DELAY_MAX 2000

#define ADDR_ORDER_MAX 16 /* addresses reordered; any beyond stay where they are */

/* Reorders a[0..n) in place: IPv6 and IPv4 alternate, starting with
 * `first` (AF_INET6 or AF_INET) when there is an address of it (RFC 8305
 * section 4 with a First Address Family Count of 1), each family keeping
 * its own order. Other families go last. A list already sorted by RFC 6724
 * (getaddrinfo) passes its first address's family; an unsorted one
 * (stpd's c-ares answers, in arrival order) passes AF_INET6, the
 * preference of RFC 8305 section 4 without history. */
void addr_interleave(struct sockaddr_storage *a, size_t n, int first);

/* Which of two connect() errors says more about the target, for the reply
 * when every address failed: an answer from the target's side (refused,
 * unreachable) beats "this host has no route for that family". Returns
 * the one to keep. */
int addr_better_err(int kept, int next);

#endif
