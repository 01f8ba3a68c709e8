/*
 * client.h - libstp's private helpers, shared by its files and its unit
 * tests. The public API is include/stp/stp.h.
 */
#ifndef STP_CLIENT_CLIENT_H
#define STP_CLIENT_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/socks.h"
#include "stp/stp.h"

/* ---- targets (target.c) ---- */

/* host (a name or a literal) + port, or sa, into the wire address the
 * proxy kind wants. Names are resolved locally (blocking getaddrinfo) for
 * socks5:// and socks4://. 0, or -1 with *err. */
int client_target_encode(struct socks_addr *out, const struct stp_proxy *p, const char *host,
		      uint16_t port, const struct sockaddr *sa, enum stp_err *err);
/* An address literal (IPv4, IPv6, or [IPv6]) into *out. false if host is
 * not one. */
bool client_literal_parse(struct sockaddr_storage *out, socklen_t *len, const char *host,
		       uint16_t port);
/* Wire address -> public address. */
void client_addr_from_socks(struct stp_addr *out, const struct socks_addr *a);
/* 0.0.0.0 or :: */
bool client_addr_unspecified(const struct stp_addr *a);

/* ---- deadlines and sockets (net.c) ---- */

/* Absolute deadline in ms on CLOCK_MONOTONIC; -1 means none. */
int64_t client_deadline(int timeout_ms);
/* ms left before deadline (>= 0), or -1 for no deadline. */
int client_remaining(int64_t deadline);
/* poll(fd, events) until ready or the deadline. 1 ready, 0 timeout, -1 error. */
int client_wait(int fd, short events, int64_t deadline);
/* Runs the engine until it returns something other than WANT_*. */
enum stp_step client_handshake_run(struct stp_handshake *h, int64_t deadline);
int client_proxy_connect_until(const struct stp_proxy *proxy, int64_t deadline, enum stp_err *err);
int client_set_blocking(int fd, bool blocking);

/* ---- logging (errors.c) ---- */
bool client_debug_on(void);

#endif
