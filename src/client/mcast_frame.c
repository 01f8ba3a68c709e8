/*
 * mcast_frame.c - the sealed datagrams of a multicast membership
 * (docs/mcast.md section 4): member frames to the relay, relay frames
 * from the intranet group.
 *
 * The headers come from the codec (proto/mcast.h), the AEAD and the
 * replay window from src/mcrypto, the very code stpd's relay runs; what
 * is here is the membership's side: which key, which sequence number,
 * which frames to drop before they are opened.
 */
#include <openssl/crypto.h>
#include <string.h>

#include "client/mcast.h"
#include "common/log.h"

int mcast_crypto_init(struct stp_mcast *m)
{
	m->aead = mc_aead_new();
	return m->aead ? 0 : -1;
}

void mcast_crypto_free(struct stp_mcast *m)
{
	mc_aead_free(m->aead);
	m->aead = NULL;
	OPENSSL_cleanse(&m->key, sizeof(m->key));
}

/* The suite the frames use: LEN 0 in the JOIN reply means none. */
static uint8_t frame_suite(const struct stp_mcast *m)
{
	return m->encrypted ? m->key.suite : MCAST_SUITE_NONE;
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

	if (!stp_mcast_can_send(m))
		return 0;
	f.id = m->encrypted ? m->key.member_id : 0;
	f.seq = m->seq + 1;
	size_t len = mc_frame_seal(m->aead, frame_suite(m), m->key.send_key, &f, pt, n, out, cap);
	if (len == 0)
		return 0;
	m->seq = f.seq; /* never reused under this key, even if the send fails */
	return len;
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

	if (!stp_mcast_can_recv(m) || mcast_frame_parse(&f, frame, n, NULL) != SOCKS_DONE ||
	    f.kind != MCAST_KIND_RELAY)
		return -1;
	if (m->encrypted && f.id == m->key.member_id)
		return -1; /* our own packet, copied back to the inside */
	if (!mc_replay_check(&m->win, f.seq))
		return -1;
	/* Opened in place: the payload overwrites its ciphertext. */
	long ptlen = mc_frame_open(m->aead, frame_suite(m), m->key.recv_key, &f, frame, n,
				   frame + f.hdrlen, n - f.hdrlen);
	if (ptlen < 0) {
		log_debug("multicast: dropped a frame that does not authenticate (seq %llu)",
			  (unsigned long long)f.seq);
		return -1;
	}
	if (!(flags & STP_MCAST_PEEK))
		mc_replay_update(&m->win, f.seq);
	*len = (size_t)ptlen;
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
