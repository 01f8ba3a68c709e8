/*
 * mcast.h - the multicast extension's wire formats (docs/mcast.md):
 * JOIN_MCAST_GROUP X'05', its source-filtered form X'85',
 * LEAVE_MCAST_GROUP X'06', the reply with LEN|KEY, the KEY block, the
 * notices the server sends before it closes a control connection, and the
 * headers of the datagrams exchanged with a group's relay.
 *
 * Same contract as socks.h: pure, allocation-free, MORE/DONE/BAD, writers
 * return the bytes written or 0 when cap is too small.
 */
#ifndef STP_PROTO_MCAST_H
#define STP_PROTO_MCAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

/* JOIN with a source filter block after the request (stp's choice: bit 7
 * set on JOIN, so a server without filters answers X'07'). */
#define MCAST_CMD_JOIN_FILTER SOCKS_CMD_JOIN_MCAST_FILTER

/* Reply and notice codes of the extension beyond seed 000's B0-B2. */
enum {
	MCAST_REP_NOT_GROUP = SOCKS5_REP_MCAST_NOT_GROUP,     /* M.ADDR is not a multicast group */
	MCAST_NOTE_BANDWIDTH = SOCKS5_REP_MCAST_BANDWIDTH,    /* notice: the group exceeded its bandwidth */
	MCAST_NOTE_TIME = SOCKS5_REP_MCAST_TIME,         /* notice: membership time limit reached */
	MCAST_NOTE_IDLE = SOCKS5_REP_MCAST_IDLE,         /* notice: the relay timed out for inactivity */
};

/* ---- source filter (RFC 3678 semantics) ---- */
enum { MCAST_FMODE_INCLUDE = 0x01, MCAST_FMODE_EXCLUDE = 0x02 };
#define MCAST_SOURCES_MAX 32

struct mcast_filter {
	uint8_t mode;  /* 0 = none (any source), else MCAST_FMODE_* */
	uint8_t nsrc;
	uint8_t atyp;  /* of every source: SOCKS_ATYP_IPV4 or _IPV6 */
	uint8_t src[MCAST_SOURCES_MAX][16]; /* IPv4 in the first 4 bytes */
};

/* FMODE NSRC { ATYP ADDR }: BAD for an unknown mode, NSRC over the maximum,
 * INCLUDE with no source, a domain or unknown ATYP, or mixed families. */
enum socks_res mcast_filter_parse(struct mcast_filter *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err);
size_t mcast_filter_write(uint8_t *dst, size_t cap, const struct mcast_filter *f);

/* ---- requests: VER CMD RSV ATYP M.ADDR M.PORT [filter if CMD X'85'] ---- */
struct mcast_request {
	uint8_t cmd;            /* X'05', X'06', X'85' or anything else (caller decides) */
	struct socks_addr group;
	struct mcast_filter filter; /* mode 0 unless CMD X'85' */
};
enum socks_res mcast_request_parse(struct mcast_request *out, const uint8_t *p, size_t n,
				   size_t *used, struct socks_err *err);
size_t mcast_request_write(uint8_t *dst, size_t cap, const struct mcast_request *r);

/* True when atyp/addr name a multicast group (224.0.0.0/4, ff00::/8). */
bool mcast_addr_is_group(uint8_t atyp, const uint8_t *addr);

/* ---- the KEY block ---- */
enum { MCAST_SUITE_NONE = 0x00, MCAST_SUITE_AES256GCM = 0x01, MCAST_SUITE_CHACHA20 = 0x02 };
enum { MCAST_KEYF_SEND = 0x01, MCAST_KEYF_RECV = 0x02 };
#define MCAST_KEY_LEN 32
#define MCAST_TAG_LEN 16
#define MCAST_KEYBLOCK_MAX (1 + 1 + 4 + 2 * MCAST_KEY_LEN)

struct mcast_keyblock {
	uint8_t suite;          /* MCAST_SUITE_AES256GCM or _CHACHA20 */
	uint8_t flags;          /* MCAST_KEYF_* : which keys follow */
	uint32_t member_id;     /* host order, never 0 */
	uint8_t send_key[MCAST_KEY_LEN];
	uint8_t recv_key[MCAST_KEY_LEN];
};
/* A KEY block is given whole (its length is LEN): DONE or BAD. */
enum socks_res mcast_keyblock_parse(struct mcast_keyblock *out, const uint8_t *p, size_t n,
				    struct socks_err *err);
size_t mcast_keyblock_write(uint8_t *dst, size_t cap, const struct mcast_keyblock *k);

/* ---- replies: VER REP RSV ATYP ADDR PORT [LEN KEY] ---- */
/* LEN|KEY follow exactly when a JOIN is answered with X'00', X'B0', X'B1'
 * or X'B2'; every other reply (and every LEAVE reply, and notices) is the
 * plain RFC 1928 form. */
bool mcast_reply_has_key(uint8_t req_cmd, uint8_t rep);

#define MCAST_REPLY_MAX (SOCKS5_REPLY_MAX + 1 + MCAST_KEYBLOCK_MAX)

struct mcast_reply {
	uint8_t rep;
	struct socks_addr addr; /* intranet group and port (JOIN), else M.ADDR/M.PORT */
	bool has_key;           /* LEN|KEY present (maybe LEN 0) */
	bool encrypted;         /* LEN > 0 */
	struct mcast_keyblock key;
};
/* Client side: req_cmd is the command this reply answers. */
enum socks_res mcast_reply_parse(struct mcast_reply *out, uint8_t req_cmd, const uint8_t *p,
				 size_t n, size_t *used, struct socks_err *err);
/* key NULL writes LEN 0 where a LEN belongs. */
size_t mcast_reply_write(uint8_t *dst, size_t cap, uint8_t req_cmd, uint8_t rep,
			 const struct socks_addr *addr, const struct mcast_keyblock *key);

/* ---- datagrams between members and the relay ---- */
#define MCAST_FRAME_VER 0x01
enum { MCAST_KIND_MEMBER = 0x01, MCAST_KIND_RELAY = 0x02 };
#define MCAST_MHDR_LEN 14                 /* VER KIND MEMBER_ID SEQ */
#define MCAST_RHDR_MAX (14 + 1 + 16 + 2)  /* VER KIND ORIGIN SEQ ATYP ADDR PORT */
#define MCAST_NONCE_LEN 12

struct mcast_frame {
	uint8_t kind;
	uint32_t id;      /* MEMBER: sender's member id; RELAY: ORIGIN (0 = outside) */
	uint64_t seq;
	struct socks_addr src; /* RELAY only: where the packet came from */
	size_t hdrlen;    /* offset of the payload (the AAD is p[0..hdrlen)) */
};
/* A datagram is whole: DONE or BAD, never MORE. */
enum socks_res mcast_frame_parse(struct mcast_frame *out, const uint8_t *p, size_t n,
				 struct socks_err *err);
/* Writes the header of f (kind, id, seq, src for RELAY); returns hdrlen. */
size_t mcast_frame_hdr_write(uint8_t *dst, size_t cap, const struct mcast_frame *f);
/* The AEAD nonce: 4 zero bytes then SEQ, big-endian. */
void mcast_nonce(uint8_t nonce[MCAST_NONCE_LEN], uint64_t seq);

#endif
