/*
 * log.h - stp's logging, after OpenBSD's log.c: log_warn appends
 * strerror(errno), log_warnx does not; fatal/fatalx exit. Lines go to stderr
 * (with a timestamp) or syslog, as text or as JSON lines. Thread-safe: one
 * write(2) per line.
 */
#ifndef STP_COMMON_LOG_H
#define STP_COMMON_LOG_H

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
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Writes one preformatted record. In JSON mode `json_fields` (a sequence of
 * "key":value pairs without braces) is emitted as the object; otherwise
 * `text` is. Used by the per-session log line. */
void log_record(int level, const char *text, const char *json_fields);

/* Appends s to out as a JSON string body (no quotes), escaping as needed.
 * Returns the length written (out is always NUL-terminated). */
size_t log_json_escape(char *out, size_t cap, const char *s);

#endif
