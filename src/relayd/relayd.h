/*
 * relayd.h - stp-relayd, a PTCL relay proxy serving N2 (docs/relayd.md,
 * docs/protocol.md "N2"): relayd.c holds the daemon (options, listeners,
 * TLS), rd_conn.c one control connection and the relays it opened.
 */
#pragma once

#include <stdbool.h>

#include <openssl/ssl.h>

#include "ext/transparent/tp_engine.h"

struct ev_loop;

struct relayd {
	struct ev_loop *loop;
	const struct tp_engine_ops *ops;
	struct tp_engine *engine;
	SSL_CTX *tls; /* NULL: Unix socket listeners only */
	struct tp_conf *conf;
	struct rd_conn *conns;
	unsigned long next_conn;
};

/* A new control connection on fd (accepted, non-blocking); ssl NULL for a
 * Unix socket. Takes both. */
void rd_conn_new(struct relayd *d, int fd, SSL *ssl, const char *peer);
/* Closes every relay of the connection, then the connection. */
void rd_conn_close(struct rd_conn *c, const char *why);
