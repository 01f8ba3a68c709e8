/*
 * lograte.c - per-call-site rate limiting of log lines (see log.h).
 *
 * Each site's state sits behind its own mutex: these lines come from error
 * paths, where a lock is cheap next to formatting and writing a line. A site
 * that has suppressed something is put on a list (once, never removed) so
 * log_rate_flush can report counts when the events stop.
 */
#include <errno.h>
#include <time.h>

#include "common/log.h"

static struct log_rate *listed;
static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;

static double now_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Writes and clears the pending count. Called with rl->lock held. */
static void report(struct log_rate *rl, double now)
{
	if (rl->suppressed == 0)
		return;
	double secs = now - rl->start;
	log_at(rl->level, "suppressed %llu more \"%s\" lines in the last %.0f s", rl->suppressed,
	       rl->what, secs < 1 ? 1 : secs);
	rl->suppressed = 0;
}

/* Lock order: rl->lock, then list_lock (log_rate_flush takes no rl->lock
 * while holding list_lock). */
static void put_on_list(struct log_rate *rl)
{
	if (rl->listed)
		return;
	pthread_mutex_lock(&list_lock);
	rl->next = listed;
	listed = rl;
	pthread_mutex_unlock(&list_lock);
	rl->listed = true;
}

bool log_rate_pass(struct log_rate *rl, int level)
{
	bool pass;
	int saved = errno; /* log_warn_rl appends strerror(errno) afterwards */

	if (level > log_getlevel())
		return false;
	pthread_mutex_lock(&rl->lock);
	double now = now_secs();
	if (rl->shown == 0 || now - rl->start >= LOG_RATE_INTERVAL) {
		report(rl, now);
		rl->start = now;
		rl->shown = 0;
	}
	pass = rl->shown < LOG_RATE_BURST;
	if (pass) {
		rl->shown++;
	} else {
		rl->suppressed++;
		rl->level = level;
		put_on_list(rl);
	}
	pthread_mutex_unlock(&rl->lock);
	errno = saved;
	return pass;
}

void log_rate_at(struct log_rate *rl, int level, bool with_errno, const char *fmt, ...)
{
	va_list ap;
	if (!log_rate_pass(rl, level))
		return;
	va_start(ap, fmt);
	log_vat(level, with_errno, fmt, ap);
	va_end(ap);
}

void log_rate_flush(bool everything)
{
	/* Sites are only ever pushed at the head, so the chain read from a
	 * head taken under the lock stays valid without it. */
	pthread_mutex_lock(&list_lock);
	struct log_rate *rl = listed;
	pthread_mutex_unlock(&list_lock);
	double now = now_secs();
	for (; rl; rl = rl->next) {
		pthread_mutex_lock(&rl->lock);
		if (everything || now - rl->start >= LOG_RATE_INTERVAL)
			report(rl, now);
		pthread_mutex_unlock(&rl->lock);
	}
}
