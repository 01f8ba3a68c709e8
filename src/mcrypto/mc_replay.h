/*
 * mc_replay.h - the anti-replay window for sequence numbers, after
 * RFC 4303 section 3.4.3: the highest sequence number seen and a bitmap of
 * the MC_REPLAY_WINDOW numbers below it. Sequence number 0 is never valid.
 * stpd keeps one per member, libstp one per membership (relay frames).
 */
#ifndef STP_MCRYPTO_MC_REPLAY_H
#define STP_MCRYPTO_MC_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#define MC_REPLAY_WINDOW 64

struct mc_replay {
	uint64_t top;  /* highest accepted sequence number, 0 = none yet */
	uint64_t bits; /* bit i: top - i was accepted */
};

/* True when seq is new and not too old. Check before decrypting ... */
bool mc_replay_check(const struct mc_replay *w, uint64_t seq);
/* ... and record it only once the packet has authenticated. */
void mc_replay_update(struct mc_replay *w, uint64_t seq);

#endif
