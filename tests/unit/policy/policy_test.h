/*
 * policy_test.h - helpers shared by the policy unit tests.
 */
#ifndef STP_TEST_POLICY_H
#define STP_TEST_POLICY_H

#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/sockaddr.h"
#include "ext/ext_conf.h"
#include "ext/mcast/mc_conf.h" /* RULE_CMD_MCAST_*: command names registered by mcast */
#include "policy/conf.h"

/* Group setup: registers the extensions' sections and keys, as stpd does
 * before parsing (ext_conf.h). */
static inline int pt_setup(void **state)
{
	char err[256];
	(void)state;
	if (ext_conf_register_all(err, sizeof(err)) < 0) {
		print_error("%s\n", err);
		return -1;
	}
	return 0;
}

/* Parses text as "t.conf"; fails the test (printing the errors) if it does
 * not parse. */
static inline struct stp_conf *pt_parse(const char *text)
{
	char err[4096];
	struct stp_conf *c = conf_parse_string("t.conf", text, strlen(text), err, sizeof(err));
	if (!c)
		print_error("unexpected parse errors:\n%s", err);
	assert_non_null(c);
	assert_string_equal(err, "");
	return c;
}

/* Parses text expecting failure; err receives the messages. */
static inline void pt_parse_fail(const char *text, char *err, size_t errlen)
{
	struct stp_conf *c = conf_parse_string("t.conf", text, strlen(text), err, errlen);
	if (c) {
		print_error("parsed but should not have:\n%s\n", text);
		conf_unref(c);
	}
	assert_null(c);
}

/* Counts the lines of an error text. */
static inline size_t pt_lines(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static inline struct sockaddr_storage pt_addr(const char *text)
{
	struct sockaddr_storage ss;
	socklen_t len;
	assert_int_equal(sa_parse(&ss, &len, text, 0), 0);
	return ss;
}

#endif
