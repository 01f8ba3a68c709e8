/*
 * mcast.h - libstp's multicast internals (docs/mcast.md): the membership
 * object, shared by mcast.c (control connection and sockets) and
 * mcast_frame.c (sealing and opening frames, on src/mcrypto), and
 * reachable from unit tests. The public API is the stp_mcast_* section of include/stp/stp.h.
 */
#ifndef STP_CLIENT_MCAST_H
#define STP_CLIENT_MCAST_H

#include <stdbool.h>
#include <stdint.h>

#include "client/client.h"
#include "mcrypto/mc_crypt.h"
#include "mcrypto/mc_replay.h"
#include "proto/mcast.h"

#define MCAST_DGRAM_MAX 65535

struct stp_mcast {
	int ctl;                  /* TCP control connection */
	int rx;                   /* bound to the intranet group I:P, -1 if none */
	int tx;                   /* to the relay (server address, port P) */
	uint8_t rep;              /* the JOIN's reply code */
	bool over;                /* LEAVE done, or a notice / EOF ended it */
	enum stp_err end_err;     /* why it is over (STP_OK after LEAVE) */
	struct socks_addr group;  /* M.ADDR, M.PORT */
	struct stp_addr intranet; /* I:P */
	struct stp_addr relay;    /* server address, P */
	bool encrypted;           /* LEN > 0 */
	struct mcast_keyblock key;
	uint64_t seq;             /* last member frame sequence number sent */
	struct mc_replay win;     /* relay frames seen (the relay keeps one per member) */
	struct mc_aead *aead;     /* made at join */
	uint8_t in[MCAST_REPLY_MAX]; /* control connection input (notices, LEAVE reply) */
	size_t in_len;
	uint8_t pkt[MCAST_DGRAM_MAX]; /* one datagram, sent or received */
};

/* ---- frames (mcast_frame.c) ---- */

/* A cipher context for m->aead. 0, or -1 when out of memory. */
int mcast_crypto_init(struct stp_mcast *m);
void mcast_crypto_free(struct stp_mcast *m);

/* Reply or notice code -> libstp error. */
enum stp_err mcast_rep_err(uint8_t rep);

#endif
