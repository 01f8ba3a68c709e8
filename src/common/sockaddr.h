/*
 * sockaddr.h - conversions between the codec's socks_addr and the socket
 * API's sockaddr, and printing for log lines.
 */
#ifndef STP_COMMON_SOCKADDR_H
#define STP_COMMON_SOCKADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "proto/socks.h"

#define SA_STR_MAX 320 /* "[v6]:port" or a domain name:port */

/* IPv4/IPv6 socks_addr -> sockaddr. -1 for a domain (resolve it first). */
int sa_from_socks(struct sockaddr_storage *out, socklen_t *len, const struct socks_addr *a);
/* sockaddr -> socks_addr (IPv4-mapped IPv6 becomes IPv4). -1 if not INET. */
int sa_to_socks(struct socks_addr *out, const struct sockaddr *sa);
/* "1.2.3.4:80", "[::1]:80" */
const char *sa_str(const struct sockaddr *sa, char *out, size_t cap);
/* "1.2.3.4:80", "[::1]:80", "example.com:80" */
const char *socks_addr_str(const struct socks_addr *a, char *out, size_t cap);
/* Parses "ADDR:PORT", "[V6]:PORT", or "ADDR" with default_port. 0 or -1. */
int sa_parse(struct sockaddr_storage *out, socklen_t *len, const char *text, int default_port);
socklen_t sa_len(const struct sockaddr *sa);
unsigned sa_port(const struct sockaddr *sa);
void sa_set_port(struct sockaddr *sa, unsigned port);
/* Same family, address and port. An IPv4-mapped IPv6 equals its IPv4. */
bool sa_equal(const struct sockaddr *a, const struct sockaddr *b);
bool sa_equal_addr(const struct sockaddr *a, const struct sockaddr *b);
/* Unmaps ::ffff:a.b.c.d in place to AF_INET. */
void sa_unmap(struct sockaddr_storage *ss);

#endif
