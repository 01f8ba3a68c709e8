/*
 * mcast_frame.c - the sealed datagrams of a multicast membership
 * (docs/mcast.md section 4): member frames to the relay, relay frames
 * from the intranet group, the AEAD (OpenSSL EVP), and the replay window.
 *
 * The headers come from the codec (proto/mcast.h); only the crypto lives
 * here. stpd's own copy is src/ext/mcast/mc_crypt.c: libstp cannot link
 * the daemon's extension, and the unit tests check that each side opens
 * what the other seals (tests/unit/client/test_client_mcast.c).
 */
#include <openssl/evp.h>
#include <string.h>

#include "client/mcast.h"
#include "common/log.h"

/* ---- replay window (RFC 4303 section 3.4.3) ---- */

#define WINDOW 64

bool mcast_window_check(const struct mcast_window *w, uint64_t seq)
{
	if (seq == 0)
		return false;
	if (seq > w->top)
		return true;
	if (w->top - seq >= WINDOW)
		return false; /* too old to tell: refuse */
	return !(w->bits & (1ull << (w->top - seq)));
}

void mcast_window_update(struct mcast_window *w, uint64_t seq)
{
	if (seq > w->top) {
		uint64_t shift = seq - w->top;
		w->bits = shift >= WINDOW ? 0 : w->bits << shift;
		w->bits |= 1;
		w->top = seq;
		return;
	}
	w->bits |= 1ull << (w->top - seq);
}

/* ---- AEAD ---- */

int mcast_crypto_init(struct stp_mcast *m)
{
	m->aead = EVP_CIPHER_CTX_new();
	return m->aead ? 0 : -1;
}

void mcast_crypto_free(struct stp_mcast *m)
{
	EVP_CIPHER_CTX_free(m->aead);
	m->aead = NULL;
	OPENSSL_cleanse(&m->key, sizeof(m->key));
}

static const EVP_CIPHER *frame_cipher(uint8_t suite)
{
	switch (suite) {
	case MCAST_SUITE_AES256GCM: return EVP_aes_256_gcm();
	case MCAST_SUITE_CHACHA20: return EVP_chacha20_poly1305();
	default: return NULL;
	}
}

/* Seals (enc 1: in -> out, tag appended at out + n) or opens (enc 0: the
 * tag is at in + n) n bytes with nonce 00000000 || SEQ and the header as
 * AAD. Both suites: 32-byte key, 12-byte nonce, 16-byte tag. in may equal
 * out. 0 or -1. */
static int frame_aead(EVP_CIPHER_CTX *c, uint8_t suite, int enc, const uint8_t *key,
		      uint64_t seq, const uint8_t *aad, size_t aadlen, const uint8_t *in,
		      size_t n, uint8_t *out)
{
	const EVP_CIPHER *cipher = frame_cipher(suite);
	uint8_t nonce[MCAST_NONCE_LEN];
	int len = 0;

	if (cipher == NULL || n > MCAST_DGRAM_MAX)
		return -1;
	mcast_nonce(nonce, seq);
	if (EVP_CipherInit_ex(c, cipher, NULL, NULL, NULL, enc) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, MCAST_NONCE_LEN, NULL) != 1 ||
	    EVP_CipherInit_ex(c, NULL, NULL, key, nonce, enc) != 1)
		return -1;
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, MCAST_TAG_LEN,
					(void *)(in + n)) != 1)
		return -1;
	if (EVP_CipherUpdate(c, NULL, &len, aad, (int)aadlen) != 1 ||
	    EVP_CipherUpdate(c, out, &len, in, (int)n) != 1 ||
	    EVP_CipherFinal_ex(c, out + len, &len) != 1)
		return -1;
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, MCAST_TAG_LEN, out + n) != 1)
		return -1;
	return 0;
}

/*
 * Member -> relay (docs/mcast.md 4.1):
 * +-----+-------+-----------+-----+------------+-----+
 * | VER | KIND  | MEMBER_ID | SEQ | CIPHERTEXT | TAG |
 * +-----+-------+-----------+-----+------------+-----+
 * |X'01'| X'01' |     4     |  8  |  Variable  | 16  |
 * +-----+-------+-----------+-----+------------+-----+
 */
size_t stp_mcast_seal(struct stp_mcast *m, const void *pt, size_t n, uint8_t *out, size_t cap)
{
	struct mcast_frame f = { .kind = MCAST_KIND_MEMBER };
	size_t tag = m->encrypted ? MCAST_TAG_LEN : 0;

	if (!stp_mcast_can_send(m) || cap < MCAST_MHDR_LEN + tag || n > cap - MCAST_MHDR_LEN - tag)
		return 0;
	f.id = m->encrypted ? m->key.member_id : 0;
	f.seq = m->seq + 1;
	size_t h = mcast_frame_hdr_write(out, cap, &f);
	if (h == 0)
		return 0;
	if (!m->encrypted)
		memmove(out + h, pt, n);
	else if (frame_aead(m->aead, m->key.suite, 1, m->key.send_key, f.seq, out, h, pt, n,
			    out + h) < 0)
		return 0;
	m->seq = f.seq; /* never reused under this key, even if the send fails */
	return h + n + tag;
}

/*
 * Relay -> intranet group (docs/mcast.md 4.2):
 * +-----+-------+--------+-----+------+----------+----------+------------+-----+
 * | VER | KIND  | ORIGIN | SEQ | ATYP | SRC.ADDR | SRC.PORT | CIPHERTEXT | TAG |
 * +-----+-------+--------+-----+------+----------+----------+------------+-----+
 * |X'01'| X'02' |   4    |  8  |  1   |  4 / 16  |    2     |  Variable  | 16  |
 * +-----+-------+--------+-----+------+----------+----------+------------+-----+
 *
 * The window is checked before opening and updated only after the frame
 * authenticated (4.3); a member skips its own frames (ORIGIN = its id).
 */
ssize_t stp_mcast_open(struct stp_mcast *m, uint8_t *frame, size_t n, size_t *len,
		       struct stp_addr *from, unsigned flags)
{
	struct mcast_frame f;
	size_t tag = m->encrypted ? MCAST_TAG_LEN : 0;

	if (!stp_mcast_can_recv(m) || mcast_frame_parse(&f, frame, n, NULL) != SOCKS_DONE ||
	    f.kind != MCAST_KIND_RELAY || n < f.hdrlen + tag)
		return -1;
	if (m->encrypted && f.id == m->key.member_id)
		return -1; /* our own packet, copied back to the inside */
	if (!mcast_window_check(&m->win, f.seq))
		return -1;
	size_t ctlen = n - f.hdrlen - tag;
	if (m->encrypted && frame_aead(m->aead, m->key.suite, 0, m->key.recv_key, f.seq, frame,
				       f.hdrlen, frame + f.hdrlen, ctlen, frame + f.hdrlen) < 0) {
		log_debug("multicast: dropped a frame that does not authenticate (seq %llu)",
			  (unsigned long long)f.seq);
		return -1;
	}
	if (!(flags & STP_MCAST_PEEK))
		mcast_window_update(&m->win, f.seq);
	*len = ctlen;
	if (from)
		client_addr_from_socks(from, &f.src);
	return (ssize_t)f.hdrlen;
}

enum stp_err mcast_rep_err(uint8_t rep)
{
	switch (rep) {
	case SOCKS5_REP_SUCCEEDED: return STP_OK;
	case SOCKS5_REP_MCAST_NO_SEND: return STP_ERR_MCAST_NO_SEND;
	case SOCKS5_REP_MCAST_NO_RECV: return STP_ERR_MCAST_NO_RECV;
	case SOCKS5_REP_MCAST_NEITHER: return STP_ERR_MCAST_REFUSED;
	case SOCKS5_REP_MCAST_NOT_GROUP: return STP_ERR_MCAST_NOT_GROUP;
	case SOCKS5_REP_MCAST_BANDWIDTH: return STP_ERR_MCAST_BANDWIDTH;
	case SOCKS5_REP_MCAST_TIME: return STP_ERR_MCAST_TIME;
	case SOCKS5_REP_MCAST_IDLE: return STP_ERR_MCAST_IDLE;
	default:
		if (rep >= SOCKS5_REP_GENERAL_FAILURE && rep <= SOCKS5_REP_PTCL_NOT_SUPPORTED)
			return (enum stp_err)(STP_ERR_REP_GENERAL_FAILURE + rep - 1);
		return STP_ERR_REP_OTHER;
	}
}
