/*
 * log.h - stp's logging, after OpenBSD's log.c: log_warn appends
 * strerror(errno), log_warnx does not; fatal/fatalx exit. Lines go to stderr
 * (with a timestamp) or syslog, as text or as JSON lines. Thread-safe: one
 * write(2) per line.
 */
#ifndef STP_COMMON_LOG_H
#define STP_COMMON_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

void log_init(const char *ident, bool to_syslog, bool json, int level);
void log_setlevel(int level);
int log_getlevel(void);
bool log_json(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_at(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vat(int level, bool with_errno, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes one preformatted record. In JSON mode `json_fields` (a sequence of
 * "key":value pairs without braces) is emitted as the object; otherwise
 * `text` is. Used by the per-session log line. */
void log_record(int level, const char *text, const char *json_fields);

/* Appends s to out as a JSON string body (no quotes), escaping as needed.
 * Returns the length written (out is always NUL-terminated). */
size_t log_json_escape(char *out, size_t cap, const char *s);

/*
 * Rate limiting (lograte.c), for lines a client can cause at will (refused
 * connections, bad requests, failed logins, accept errors under a flood):
 * one `static struct log_rate` per call site, shared by every thread. Each
 * interval of LOG_RATE_INTERVAL seconds writes the first LOG_RATE_BURST
 * lines and counts the rest; the count is written as one line,
 *   `suppressed N more "<what>" lines in the last 5 s`,
 * when the next line passes or when log_rate_flush() finds the interval
 * over, whichever comes first. So a site writes at most BURST + 1 lines per
 * interval whatever the rate of events.
 */
#define LOG_RATE_INTERVAL 5.0
#define LOG_RATE_BURST 5

struct log_rate {
	const char *what;              /* names the lines in the summary */
	pthread_mutex_t lock;
	double start;                  /* current interval (CLOCK_MONOTONIC s) */
	unsigned shown;                /* lines written in it */
	unsigned long long suppressed; /* lines counted, not yet reported */
	int level;                     /* of the suppressed lines */
	bool listed;                   /* on the list log_rate_flush walks */
	struct log_rate *next;
};
#define LOG_RATE_INIT(what_) { .what = (what_), .lock = PTHREAD_MUTEX_INITIALIZER }

/* True when a line at `level` from this site may be written now (writing
 * the pending summary first); false when it is counted instead or the level
 * is filtered out. For callers that format their own record. */
bool log_rate_pass(struct log_rate *rl, int level);
void log_rate_at(struct log_rate *rl, int level, bool with_errno, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define log_warn_rl(rl, ...) log_rate_at((rl), LOG_WARNING, true, __VA_ARGS__)
#define log_warnx_rl(rl, ...) log_rate_at((rl), LOG_WARNING, false, __VA_ARGS__)
#define log_info_rl(rl, ...) log_rate_at((rl), LOG_INFO, false, __VA_ARGS__)
/* Writes the summaries of intervals that are over (all of them with
 * `everything`, at exit). stpd's main thread calls it every second, so a
 * count is not held back until the next event. */
void log_rate_flush(bool everything);

#endif
