/*
 * conf_value.c - parsers for the values of stpd.conf: numbers, port ranges,
 * time windows, weekdays, log levels, command names, domain names. Pure
 * functions; the caller words the error message.
 */
#include "policy/conf_internal.h"
#include "policy/conf_ext.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

/* Decimal digits only: no sign, no spaces, no hex, at most 10 digits. */
static int cv_digits(const char *s, size_t n, unsigned long *out)
{
	unsigned long v = 0;
	if (n == 0 || n > 10)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int cv_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	unsigned long v;
	if (cv_digits(s, strlen(s), &v) < 0 || v < min || v > max)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int cv_port(const char *s, size_t n, uint16_t *out)
{
	unsigned long v;
	if (cv_digits(s, n, &v) < 0 || v < 1 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

int cv_port_range(const char *s, struct rule_ports *out)
{
	const char *dash = strchr(s, '-');
	if (!dash) {
		if (cv_port(s, strlen(s), &out->lo) < 0)
			return -1;
		out->hi = out->lo;
		return 0;
	}
	if (cv_port(s, (size_t)(dash - s), &out->lo) < 0 ||
	    cv_port(dash + 1, strlen(dash + 1), &out->hi) < 0)
		return -1;
	return out->lo <= out->hi ? 0 : -1;
}

/* "HH:MM" exactly, 00:00-23:59. */
static int cv_clock(const char *s, size_t n, uint16_t *minutes)
{
	unsigned long h, m;
	if (n != 5 || s[2] != ':' || cv_digits(s, 2, &h) < 0 || cv_digits(s + 3, 2, &m) < 0 ||
	    h > 23 || m > 59)
		return -1;
	*minutes = (uint16_t)(h * 60 + m);
	return 0;
}

int cv_time_range(const char *s, uint16_t *from, uint16_t *to)
{
	const char *dash = strchr(s, '-');
	if (!dash)
		return -1;
	if (cv_clock(s, (size_t)(dash - s), from) < 0 || cv_clock(dash + 1, strlen(dash + 1), to) < 0)
		return -1;
	return 0;
}

static const char *const cv_day_names[7] = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" };

static int cv_day(const char *s, size_t n)
{
	for (int i = 0; i < 7; i++)
		if (n == 3 && strncasecmp(s, cv_day_names[i], 3) == 0)
			return i;
	return -1;
}

int cv_days(const char *s, uint8_t *mask)
{
	const char *dash = strchr(s, '-');
	int a, b;
	if (!dash) {
		a = cv_day(s, strlen(s));
		b = a;
	} else {
		a = cv_day(s, (size_t)(dash - s));
		b = cv_day(dash + 1, strlen(dash + 1));
	}
	if (a < 0 || b < 0)
		return -1;
	/* fri-mon wraps through the weekend. */
	for (int d = a;; d = (d + 1) % 7) {
		*mask |= (uint8_t)(1u << d);
		if (d == b)
			break;
	}
	return 0;
}

static const struct {
	const char *name;
	int level;
} cv_levels[] = {
	{ "error", LOG_ERR },   { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
	{ "info", LOG_INFO },   { "debug", LOG_DEBUG },
};

int cv_log_level(const char *s, int *out)
{
	for (size_t i = 0; i < sizeof(cv_levels) / sizeof(cv_levels[0]); i++) {
		if (strcmp(s, cv_levels[i].name) == 0) {
			*out = cv_levels[i].level;
			return 0;
		}
	}
	return -1;
}

const char *cv_log_level_name(int level)
{
	for (size_t i = 0; i < sizeof(cv_levels) / sizeof(cv_levels[0]); i++)
		if (cv_levels[i].level == level)
			return cv_levels[i].name;
	return "?";
}

int cv_bool(const char *s, bool *out)
{
	if (strcmp(s, "on") == 0)
		*out = true;
	else if (strcmp(s, "off") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static const struct {
	const char *name;
	uint32_t bit;
} cv_commands[] = {
	{ "connect", RULE_CMD_CONNECT },
	{ "bind", RULE_CMD_BIND },
	{ "bindreply", RULE_CMD_BINDREPLY },
	{ "udpassociate", RULE_CMD_UDPASSOCIATE },
	{ "udpreply", RULE_CMD_UDPREPLY },
	{ "transparent", RULE_CMD_TRANSPARENT },
};
#define CV_N_COMMANDS (sizeof(cv_commands) / sizeof(cv_commands[0]))

/* The core's names first, then the extensions' (conf_ext.c). */
int cv_command(const char *s, uint32_t *bit)
{
	for (size_t i = 0; i < CV_N_COMMANDS; i++) {
		if (strcmp(s, cv_commands[i].name) == 0) {
			*bit = cv_commands[i].bit;
			return 0;
		}
	}
	return conf_ext_command_bit(s, bit);
}

void cv_command_list(char *out, size_t cap)
{
	size_t pos = 0;
	if (cap == 0)
		return;
	out[0] = '\0';
	for (size_t i = 0;; i++) {
		const char *name = i < CV_N_COMMANDS ? cv_commands[i].name :
						       conf_ext_command_at(i - CV_N_COMMANDS);
		if (!name)
			return;
		int w = snprintf(out + pos, cap - pos, "%s%s", i ? ", " : "", name);
		if (w < 0 || (size_t)w >= cap - pos)
			return;
		pos += (size_t)w;
	}
}

const char *conf_command_name(uint32_t bit)
{
	if (bit == 0)
		return "-";
	for (size_t i = 0; i < CV_N_COMMANDS; i++)
		if (cv_commands[i].bit == bit)
			return cv_commands[i].name;
	const char *name = conf_ext_command_name(bit);
	return name ? name : "unknown";
}

bool cv_looks_like_addr(const char *s)
{
	bool digit = false;
	if (strchr(s, ':') || strchr(s, '/'))
		return true;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s) && *s != '.')
			return false;
		digit = digit || isdigit((unsigned char)*s);
	}
	return digit;
}

/* Labels of 1-63 letters, digits, '-' or '_', joined by single dots. */
static int cv_labels(const char *s, size_t n)
{
	size_t label = 0;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if (isalnum(c) || c == '-' || c == '_') {
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
	}
	return label == 0 ? -1 : 0;
}

int cv_domain(const char *s, char *out, size_t cap)
{
	size_t n = strlen(s);
	size_t start = s[0] == '.' ? 1 : 0;
	if (n > start && s[n - 1] == '.')
		n--; /* "example.com." is the same name */
	if (n <= start || n - start > 253 || n >= cap || cv_labels(s + start, n - start) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[n] = '\0';
	return 0;
}

int cv_ident(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= 64)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '.' && c != '_' && c != '-')
			return -1;
	}
	return 0;
}
