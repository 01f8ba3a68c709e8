/*
 * mc_crypt.c - AEAD seal/open of multicast frames with OpenSSL's EVP API.
 */
#include "mcrypto/mc_crypt.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

struct mc_aead {
	EVP_CIPHER_CTX *ctx;
};

struct mc_aead *mc_aead_new(void)
{
	struct mc_aead *a = calloc(1, sizeof(*a));
	if (a && !(a->ctx = EVP_CIPHER_CTX_new())) {
		free(a);
		return NULL;
	}
	return a;
}

void mc_aead_free(struct mc_aead *a)
{
	if (!a)
		return;
	EVP_CIPHER_CTX_free(a->ctx);
	free(a);
}

int mc_random(uint8_t *p, size_t n)
{
	return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
}

static const EVP_CIPHER *suite_cipher(uint8_t suite)
{
	switch (suite) {
	case MCAST_SUITE_AES256GCM: return EVP_aes_256_gcm();
	case MCAST_SUITE_CHACHA20: return EVP_chacha20_poly1305();
	default: return NULL;
	}
}

static size_t tag_len(uint8_t suite)
{
	return suite == MCAST_SUITE_NONE ? 0 : MCAST_TAG_LEN;
}

size_t mc_frame_len(uint8_t suite, const struct mcast_frame *f, size_t n)
{
	uint8_t hdr[MCAST_RHDR_MAX];
	size_t h = mcast_frame_hdr_write(hdr, sizeof(hdr), f);
	return h == 0 ? 0 : h + n + tag_len(suite);
}

/* One AEAD operation: enc 1 seals in -> out and appends the tag; enc 0
 * checks the tag at in + n and opens. Both ciphers take a 12-byte nonce
 * and a 16-byte tag. */
static int aead(struct mc_aead *a, uint8_t suite, int enc, const uint8_t *key, uint64_t seq,
		const uint8_t *aad, size_t aadlen, const uint8_t *in, size_t n, uint8_t *out)
{
	const EVP_CIPHER *c = suite_cipher(suite);
	uint8_t nonce[MCAST_NONCE_LEN];
	int len = 0;

	if (!c || n > (size_t)0x7fffffff)
		return -1;
	mcast_nonce(nonce, seq);
	if (EVP_CipherInit_ex(a->ctx, c, NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_IVLEN, MCAST_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(a->ctx, NULL, NULL, key, nonce, enc) != 1)
		return -1;
	if (!enc && EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, MCAST_TAG_LEN,
					(void *)(in + n)) != 1)
		return -1;
	if (EVP_CipherUpdate(a->ctx, NULL, &len, aad, (int)aadlen) != 1 ||
	    EVP_CipherUpdate(a->ctx, out, &len, in, (int)n) != 1 ||
	    EVP_CipherFinal_ex(a->ctx, out + len, &len) != 1)
		return -1;
	if (enc && EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, MCAST_TAG_LEN, out + n) != 1)
		return -1;
	return 0;
}

size_t mc_frame_seal(struct mc_aead *a, uint8_t suite, const uint8_t key[MCAST_KEY_LEN],
		     const struct mcast_frame *f, const uint8_t *pt, size_t n, uint8_t *out,
		     size_t cap)
{
	size_t h = mcast_frame_hdr_write(out, cap, f);

	if (h == 0 || cap - h < n + tag_len(suite))
		return 0;
	if (suite == MCAST_SUITE_NONE) {
		memmove(out + h, pt, n);
		return h + n;
	}
	if (aead(a, suite, 1, key, f->seq, out, h, pt, n, out + h) < 0)
		return 0;
	return h + n + MCAST_TAG_LEN;
}

long mc_frame_open(struct mc_aead *a, uint8_t suite, const uint8_t key[MCAST_KEY_LEN],
		   const struct mcast_frame *f, const uint8_t *frame, size_t n, uint8_t *out,
		   size_t cap)
{
	size_t t = tag_len(suite);

	if (n < f->hdrlen + t || cap < n - f->hdrlen - t)
		return -1;
	size_t ctlen = n - f->hdrlen - t;
	if (suite == MCAST_SUITE_NONE) {
		memmove(out, frame + f->hdrlen, ctlen);
		return (long)ctlen;
	}
	if (aead(a, suite, 0, key, f->seq, frame, f->hdrlen, frame + f->hdrlen, ctlen, out) < 0)
		return -1;
	return (long)ctlen;
}
