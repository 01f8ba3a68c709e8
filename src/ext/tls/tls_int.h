/*
 * tls_int.h - internals of the TLS module (src/ext/tls): the OpenSSL engine
 * shared by both filters, the two filters, the SSL_CTX cache and the hooks
 * the method and the listener use. Nothing outside src/ext/tls includes it.
 *
 * OpenSSL never touches a socket here: each SSL has a memory BIO pair. The
 * filters feed it ciphertext (unframed for a "tls on" listener, unwrapped
 * from VER/STATE/LEN frames for method X'86') and collect what it writes.
 */
#ifndef STP_EXT_TLS_TLS_INT_H
#define STP_EXT_TLS_TLS_INT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/bytebuf.h"
#include "policy/conf.h"
#include "server/filter.h"

struct session;

/* ---- output buffer (tls_conn.c) ---- */

#define TLS_OBUF_MAX (4u << 20) /* a peer that never reads cannot make us grow past this */


/* ---- one SSL over memory BIOs (tls_conn.c) ---- */

struct tls_conn {
	SSL *ssl;
	BIO *rbio, *wbio;     /* owned by ssl */
	struct bytebuf out;   /* what the filter hands to the socket */
	bool handshake_done;
	bool broken;          /* fatal error seen: only queued bytes (an alert) go out */
	bool shut_sent;       /* our close_notify is queued */
	bool peer_closed;     /* the peer's close_notify was read */
	/* Called once when the handshake completes (log line, user from the
	 * client certificate). */
	void (*ready)(void *arg, struct tls_conn *c);
	void *ready_arg;
};

/* Server side over ctx (the SSL takes its own reference). 0 or -1 + why. */
int tls_conn_init(struct tls_conn *c, SSL_CTX *ctx, char *why, size_t whycap);
void tls_conn_fini(struct tls_conn *c);
/* Ciphertext from the peer. 0 or -1. */
int tls_conn_feed(struct tls_conn *c, const uint8_t *p, size_t n);
/* Advances the handshake: 1 complete, 0 wants more input, -1 failed (why). */
int tls_conn_handshake(struct tls_conn *c, char *why, size_t whycap);
/* Plaintext: count, FILTER_NONE, FILTER_ERROR (why) or FILTER_EOF. */
ssize_t tls_conn_read(struct tls_conn *c, uint8_t *out, size_t cap, char *why, size_t whycap);
int tls_conn_write(struct tls_conn *c, const uint8_t *p, size_t n, char *why, size_t whycap);
/* Queues close_notify unless broken or already sent. */
void tls_conn_shutdown(struct tls_conn *c);
/* Ciphertext OpenSSL has written and nobody has collected yet. */
size_t tls_conn_pending(struct tls_conn *c, const uint8_t **p);
void tls_conn_collected(struct tls_conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384 client-cert=CN|none|unverified" */
void tls_conn_describe(const struct tls_conn *c, char *out, size_t cap);
/* The verified client certificate's subject CN, if it is usable as a user
 * name ([A-Za-z0-9._@-], 1-255 characters). */
bool tls_conn_peer_user(const struct tls_conn *c, char *out, size_t cap);

/* ---- filters ---- */

/* Both filters start with this, so the method and the listener hook can
 * reach the SSL whichever filter a session holds. */
struct tls_filter {
	struct stream_filter base;
	struct tls_conn c;
	/* method X'86' progress, kept here because the filter lives exactly
	 * as long as the method needs it (tls_method.c) */
	int step;
	bool udp_naked;
};

static inline struct tls_conn *tls_filter_conn(struct stream_filter *f)
{
	return &((struct tls_filter *)f)->c;
}

/* TLS from the first byte (SOCKS over TLS). */
struct stream_filter *tls_bare_new(SSL_CTX *ctx, void (*ready)(void *, struct tls_conn *),
				   void *arg, char *why, size_t whycap);

/* Method X'86': TLS inside VER/STATE/LEN frames. Frames are checked when
 * they are processed, against the phase the session is in then: a frame of
 * a later STATE waits (the peer may pipeline), one of an earlier STATE is an
 * error, and a later one is an error too if the current phase still needs
 * bytes (the peer skipped a step). Their bytes are checked again when
 * OpenSSL uses them: handshake messages must come from X'01', plaintext
 * from the phase's STATE, close_notify from X'04' (docs/tls.md 2.5). */
enum x86_phase {
	X86_HANDSHAKE, /* accepts X'01'; X'02'/X'03' wait */
	X86_OPTIONS,   /* accepts X'02'; X'03' waits */
	X86_DATA,      /* accepts X'03' */
};

struct stream_filter *tls_x86_new(SSL_CTX *ctx, void (*ready)(void *, struct tls_conn *),
				  void *arg, char *why, size_t whycap);
/* Moves the phase on (the frames we send follow it: X'02', X'03'); frames
 * that were waiting for it are processed. 0, or -1 with f->why set. */
int tls_x86_set_phase(struct stream_filter *f, enum x86_phase ph);

/* ---- SSL_CTX cache (tls_ctx.c) ---- */

enum tls_client_cert { TLS_CERT_NONE = 0, TLS_CERT_OPTIONAL = 1, TLS_CERT_REQUIRE = 2 };

struct tls_params {
	const char *cert, *key, *client_ca;
	enum tls_client_cert client_cert;
	unsigned min_version; /* 12 or 13 */
};
/* A context for these settings, loaded on first use and reloaded when a
 * file changes (checked by stat on every call). A new reference for the
 * caller (SSL_CTX_free it), or NULL with err. */
SSL_CTX *tls_ctx_get(const struct tls_params *p, char *err, size_t errlen);
void tls_ctx_cache_clear(void);

/* ---- settings (tls_settings.c): the one place that reads the config ---- */

struct tls_settings {
	struct tls_params params;
	bool method_ssl;    /* auth method ssl: X'86' and X'06' offered */
	bool cert_user;     /* a verified client certificate's CN is the user */
	unsigned subauth;   /* conf_auth_bits allowed inside X'86'; 0 = none */
	bool udp_naked;     /* agree to UDP-Naked */
	bool listener_tls;  /* this listener: TLS from the first byte */
	bool require_tls;   /* this listener or the client rule: TLS methods only */
};

/* Settings for a session on listener l admitted by client rule r (l and r
 * may be NULL: global settings only). */
void tls_settings_get(const struct stp_conf *c, const struct conf_listener *l,
		      const struct rule *r, struct tls_settings *out);

#endif
