/*
 * mc_crypt.h - the AEAD framing of multicast datagrams (docs/mcast.md,
 * "Packet framing"): a header from proto/mcast.h as associated data, the
 * payload sealed with AES-256-GCM or ChaCha20-Poly1305 under a 32-byte key,
 * nonce = 4 zero bytes || SEQ. Suite none copies the payload unsealed.
 *
 * A context is one EVP_CIPHER_CTX, used by one thread at a time.
 *
 * One copy for both ends of the wire: stpd's multicast relay
 * (src/ext/mcast) and libstp's memberships (src/client/mcast_frame.c)
 * link this library (src/mcrypto), so they cannot drift apart. out may
 * equal the payload's place in the frame (libstp opens in place).
 */
#ifndef STP_MCRYPTO_MC_CRYPT_H
#define STP_MCRYPTO_MC_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/mcast.h"

struct mc_aead;

struct mc_aead *mc_aead_new(void);
void mc_aead_free(struct mc_aead *a);

/* Cryptographically random bytes. 0 or -1. */
int mc_random(uint8_t *p, size_t n);

/* Bytes a frame with header f and an n-byte payload takes. */
size_t mc_frame_len(uint8_t suite, const struct mcast_frame *f, size_t n);

/* Writes header f, then pt sealed under key, into out. Returns the frame
 * length, or 0 when cap is too small or the cipher fails. */
size_t mc_frame_seal(struct mc_aead *a, uint8_t suite, const uint8_t key[MCAST_KEY_LEN],
		     const struct mcast_frame *f, const uint8_t *pt, size_t n, uint8_t *out,
		     size_t cap);

/* Opens frame[0..n) whose header was parsed into f (mcast_frame_parse):
 * writes the payload to out and returns its length, or -1 when the frame
 * does not authenticate (or is too short, or out too small). */
long mc_frame_open(struct mc_aead *a, uint8_t suite, const uint8_t key[MCAST_KEY_LEN],
		   const struct mcast_frame *f, const uint8_t *frame, size_t n, uint8_t *out,
		   size_t cap);

#endif
