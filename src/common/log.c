/*
 * log.c - see log.h.
 */
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
	bool syslog;
	bool json;
	int level;
	const char *ident;
} lg = { false, false, LOG_INFO, "stp" };

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT: return "crit";
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

void log_init(const char *ident, bool to_syslog, bool json, int level)
{
	lg.ident = ident;
	lg.syslog = to_syslog;
	lg.json = json;
	lg.level = level;
	if (to_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_setlevel(int level) { lg.level = level; }
int log_getlevel(void) { return lg.level; }
bool log_json(void) { return lg.json; }

size_t log_json_escape(char *out, size_t cap, const char *s)
{
	size_t o = 0;
	if (cap == 0)
		return 0;
	for (; *s && o + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return o;
}

static void timestamp(char *out, size_t cap)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, cap - n, ".%03ld", ts.tv_nsec / 1000000);
}

static void emit(const char *line, size_t len)
{
	/* One write per line keeps lines from different threads whole. */
	while (len > 0) {
		ssize_t w = write(STDERR_FILENO, line, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		line += w;
		len -= (size_t)w;
	}
}

void log_record(int level, const char *text, const char *json_fields)
{
	char line[4096], ts[40];
	int n;

	if (level > lg.level)
		return;
	if (lg.syslog) {
		syslog(level, "%s", lg.json && json_fields ? json_fields : text);
		return;
	}
	timestamp(ts, sizeof(ts));
	if (lg.json) {
		if (json_fields)
			n = snprintf(line, sizeof(line),
				     "{\"time\":\"%s\",\"level\":\"%s\",%s}\n", ts,
				     level_name(level), json_fields);
		else {
			char esc[3000];
			log_json_escape(esc, sizeof(esc), text);
			n = snprintf(line, sizeof(line),
				     "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
				     level_name(level), esc);
		}
	} else {
		n = snprintf(line, sizeof(line), "%s %s[%d] %s: %s\n", ts, lg.ident, (int)getpid(),
			     level_name(level), text);
	}
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	emit(line, (size_t)n);
}

void log_vat(int level, bool with_errno, const char *fmt, va_list ap)
{
	char msg[3000];
	int saved = errno;
	if (level > lg.level)
		return;
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno && n >= 0 && (size_t)n < sizeof(msg))
		snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(saved));
	log_record(level, msg, NULL);
	errno = saved;
}

#define LOG_FN(name, level, with_errno)         \
	void name(const char *fmt, ...)         \
	{                                       \
		va_list ap;                     \
		va_start(ap, fmt);              \
		log_vat(level, with_errno, fmt, ap); \
		va_end(ap);                     \
	}

LOG_FN(log_warn, LOG_WARNING, true)
LOG_FN(log_warnx, LOG_WARNING, false)
LOG_FN(log_info, LOG_INFO, false)
LOG_FN(log_debug, LOG_DEBUG, false)

void log_at(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vat(level, false, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vat(LOG_CRIT, true, fmt, ap);
	va_end(ap);
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vat(LOG_CRIT, false, fmt, ap);
	va_end(ap);
	exit(1);
}
