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
#include "policy/conf.h"

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
