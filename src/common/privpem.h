/*
 * privpem.h - PEM certificates and keys for an OpenSSL context, read
 * through privfile_open (privfile.h): after stpd drops to `user`, a
 * root-only file the configuration names is opened by the broker
 * (docs/operations.md §8). For modules that load their TLS material as
 * workers start or per session (tls, tunnel, transparent's remote engine).
 * Each returns 1 on success and 0 on failure (OpenSSL's error queue, or
 * errno when the file could not be opened), like the *_file calls they
 * replace.
 */
#ifndef STP_COMMON_PRIVPEM_H
#define STP_COMMON_PRIVPEM_H

#include <openssl/ssl.h>
#include <stdbool.h>

/* SSL_CTX_use_certificate_chain_file: the leaf, then its chain. */
int privpem_use_chain(SSL_CTX *ctx, const char *path);
/* SSL_CTX_use_PrivateKey_file (PEM). */
int privpem_use_key(SSL_CTX *ctx, const char *path);
/* SSL_CTX_load_verify_locations(ctx, path, NULL): every certificate in
 * the file becomes a trust anchor; with names, also a name of the client
 * CA list a server sends (SSL_load_client_CA_file). */
int privpem_load_ca(SSL_CTX *ctx, const char *path, bool names);

#endif
