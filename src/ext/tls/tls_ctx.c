/*
 * tls_ctx.c - SSL_CTX per set of TLS settings, shared by every worker.
 *
 * A context is built on first use and kept in a small cache keyed by the
 * settings and by each file's identity (device, inode, size, mtime): a
 * reload with the same files reuses it, and a certificate replaced on disk
 * is picked up by the next session without a reload. Sessions hold their
 * own reference through their SSL, so evicting an entry is always safe.
 *
 * Policy (docs/tls.md): TLS 1.2 and 1.3 only, OpenSSL's default cipher
 * lists, no session tickets and no session cache (stpd keeps no state
 * between connections, and TLS 1.3 tickets would otherwise follow the
 * handshake in X'01' frames), no renegotiation.
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/privpem.h"
#include "ext/tls/tls_int.h"

#define TLS_CTX_CACHE 8

struct stamp {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};

struct entry {
	char cert[CONF_PATH_MAX], key[CONF_PATH_MAX], ca[CONF_PATH_MAX];
	enum tls_client_cert client_cert;
	unsigned min_version;
	struct stamp st[3];
	SSL_CTX *ctx;
	unsigned long used;
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry cache[TLS_CTX_CACHE];
static unsigned long cache_clock;

static void stamp_of(const char *path, struct stamp *st)
{
	struct stat sb;
	memset(st, 0, sizeof(*st));
	if (path[0] && stat(path, &sb) == 0) {
		st->dev = sb.st_dev;
		st->ino = sb.st_ino;
		st->size = sb.st_size;
		st->mtime = sb.st_mtim;
	}
}

static bool stamp_eq(const struct stamp *a, const struct stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

static const char *ssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;
	return r ? r : "unknown error";
}

static SSL_CTX *build(const struct tls_params *p, char *err, size_t errlen)
{
	static const unsigned char sid_ctx[] = "stpd";
	ERR_clear_error();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx) {
		snprintf(err, errlen, "TLS: cannot create a context: %s", ssl_reason());
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, p->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
					 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);

	if (!p->cert[0] || !p->key[0]) {
		snprintf(err, errlen, "TLS: no server certificate and key configured");
		goto fail;
	}
	if (privpem_use_chain(ctx, p->cert) != 1) {
		snprintf(err, errlen, "TLS: certificate %s: %s", p->cert, ssl_reason());
		goto fail;
	}
	if (privpem_use_key(ctx, p->key) != 1) {
		snprintf(err, errlen, "TLS: key %s: %s", p->key, ssl_reason());
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "TLS: key %s does not match certificate %s", p->key, p->cert);
		goto fail;
	}
	if (p->client_cert != TLS_CERT_NONE) {
		if (!p->client_ca[0] || privpem_load_ca(ctx, p->client_ca, true) != 1) {
			snprintf(err, errlen, "TLS: client CA file '%s': %s", p->client_ca,
				 p->client_ca[0] ? ssl_reason() : "not set");
			goto fail;
		}
		SSL_CTX_set_verify(ctx,
				   SSL_VERIFY_PEER | (p->client_cert == TLS_CERT_REQUIRE ?
							      SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
				   NULL);
	}
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

static bool entry_matches(const struct entry *e, const struct tls_params *p,
			  const struct stamp st[3])
{
	return e->ctx && strcmp(e->cert, p->cert) == 0 && strcmp(e->key, p->key) == 0 &&
	       strcmp(e->ca, p->client_ca) == 0 && e->client_cert == p->client_cert &&
	       e->min_version == p->min_version && stamp_eq(&e->st[0], &st[0]) &&
	       stamp_eq(&e->st[1], &st[1]) && stamp_eq(&e->st[2], &st[2]);
}

SSL_CTX *tls_ctx_get(const struct tls_params *p, char *err, size_t errlen)
{
	struct stamp st[3];
	stamp_of(p->cert, &st[0]);
	stamp_of(p->key, &st[1]);
	stamp_of(p->client_ca, &st[2]);

	pthread_mutex_lock(&cache_lock);
	struct entry *victim = &cache[0];
	for (size_t i = 0; i < TLS_CTX_CACHE; i++) {
		struct entry *e = &cache[i];
		if (entry_matches(e, p, st)) {
			e->used = ++cache_clock;
			SSL_CTX_up_ref(e->ctx);
			pthread_mutex_unlock(&cache_lock);
			return e->ctx;
		}
		if (e->used < victim->used)
			victim = e;
	}
	SSL_CTX *ctx = build(p, err, errlen);
	if (ctx) {
		SSL_CTX_free(victim->ctx); /* sessions keep theirs alive */
		memset(victim, 0, sizeof(*victim));
		snprintf(victim->cert, sizeof(victim->cert), "%s", p->cert);
		snprintf(victim->key, sizeof(victim->key), "%s", p->key);
		snprintf(victim->ca, sizeof(victim->ca), "%s", p->client_ca);
		victim->client_cert = p->client_cert;
		victim->min_version = p->min_version;
		memcpy(victim->st, st, sizeof(st));
		victim->ctx = ctx;
		victim->used = ++cache_clock;
		SSL_CTX_up_ref(ctx);
	}
	pthread_mutex_unlock(&cache_lock);
	return ctx;
}

void tls_ctx_cache_clear(void)
{
	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; i < TLS_CTX_CACHE; i++) {
		SSL_CTX_free(cache[i].ctx);
		memset(&cache[i], 0, sizeof(cache[i]));
	}
	pthread_mutex_unlock(&cache_lock);
}
