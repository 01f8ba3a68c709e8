/*
 * idle.h - the lazy idle timer of the relays (relay.c, dgram.c): the timer
 * is set once for the whole idle time and activity only stamps `last`, so
 * moving bytes never touches the timer. When it fires, the time since the
 * last activity decides: re-armed for the rest, or really idle.
 */
#ifndef STP_SERVER_IDLE_H
#define STP_SERVER_IDLE_H

#include <ev.h>
#include <stdbool.h>

/* True when there was activity within `secs` of now: w is re-armed for
 * what is left, and the caller does nothing more. False: idle. */
static inline bool idle_rearm(struct ev_loop *loop, ev_timer *w, ev_tstamp last, unsigned secs)
{
	ev_tstamp left = last + secs - ev_now(loop);
	if (left <= 0)
		return false;
	w->repeat = left;
	ev_timer_again(loop, w);
	return true;
}

#endif
