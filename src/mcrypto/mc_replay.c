/*
 * mc_replay.c - sliding anti-replay window (RFC 4303 section 3.4.3).
 */
#include "mcrypto/mc_replay.h"

bool mc_replay_check(const struct mc_replay *w, uint64_t seq)
{
	if (seq == 0)
		return false;
	if (seq > w->top)
		return true;
	uint64_t age = w->top - seq;
	if (age >= MC_REPLAY_WINDOW)
		return false; /* too old to tell: refuse */
	return !(w->bits & (1ull << age));
}

void mc_replay_update(struct mc_replay *w, uint64_t seq)
{
	if (seq > w->top) {
		uint64_t shift = seq - w->top;
		w->bits = shift >= MC_REPLAY_WINDOW ? 0 : w->bits << shift;
		w->bits |= 1;
		w->top = seq;
		return;
	}
	w->bits |= 1ull << (w->top - seq);
}
