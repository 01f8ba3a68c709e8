/*
 * test_proto_names.c - code -> name strings (src/proto/names.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto/socks.h"

static void test_rep_names(void **state)
{
	static const struct {
		uint8_t rep;
		const char *name;
	} t[] = {
		{0x00, "succeeded"},
		{0x01, "general SOCKS server failure"},
		{0x02, "connection not allowed by ruleset"},
		{0x03, "network unreachable"},
		{0x04, "host unreachable"},
		{0x05, "connection refused"},
		{0x06, "TTL expired"},
		{0x07, "command not supported"},
		{0x08, "address type not supported"},
		{0x09, "PTCL type not supported"},
		{0xB0, "multicast: not allowed to send"},
		{0xB1, "multicast: not allowed to receive"},
		{0xB2, "multicast: neither send nor receive"},
		{0x0A, "bind: no such arrival"},
		{0x0B, "bind: limit reached"},
		{0x0C, "tunnel: the two servers did not authenticate"},
		{0x0D, "tunnel: the remote server refused"},
		{0x0E, "multiplexing refused"},
		{0x0F, "unassigned"},
		{0x7F, "unassigned"},
		{0xAF, "unassigned"},
		{0xB3, "multicast: group bandwidth exceeded"},
		{0xB6, "multicast: not a multicast group"},
		{0xB7, "unassigned"},
		{0xFF, "unassigned"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_string_equal(socks5_rep_name(t[i].rep), t[i].name);
}

static void test_cmd_names(void **state)
{
	assert_string_equal(socks5_cmd_name(SOCKS_CMD_CONNECT), "connect");
	assert_string_equal(socks5_cmd_name(SOCKS_CMD_BIND), "bind");
	assert_string_equal(socks5_cmd_name(SOCKS_CMD_UDP_ASSOCIATE), "udpassociate");
	assert_string_equal(socks5_cmd_name(SOCKS_CMD_TRANSPARENT), "transparent");
	assert_string_equal(socks5_cmd_name(0x10), "listen");
	assert_string_equal(socks5_cmd_name(0x11), "accept");
	assert_string_equal(socks5_cmd_name(0x20), "tunnel");
	assert_string_equal(socks5_cmd_name(0x21), "tunnel-relay");
	assert_string_equal(socks5_cmd_name(SOCKS_CMD_JOIN_MCAST), "mcast-join");
	assert_string_equal(socks5_cmd_name(SOCKS_CMD_LEAVE_MCAST), "mcast-leave");
	assert_string_equal(socks5_cmd_name(0x00), "unknown");
	assert_string_equal(socks5_cmd_name(0x07), "unknown");
	assert_string_equal(socks5_cmd_name(0xFF), "unknown");
}

static void test_method_names(void **state)
{
	assert_string_equal(socks_method_name(0x00), "none");
	assert_string_equal(socks_method_name(0x01), "gssapi");
	assert_string_equal(socks_method_name(0x02), "userpass");
	assert_string_equal(socks_method_name(0x06), "ssl");
	assert_string_equal(socks_method_name(0x86), "ssl");
	assert_string_equal(socks_method_name(0x87), "features");
	assert_string_equal(socks5_cmd_name(0xF3), "features");
	assert_string_equal(socks_method_name(0xFF), "no-acceptable");
	assert_string_equal(socks_method_name(0x03), "unassigned");
	assert_string_equal(socks_method_name(0x80), "unassigned");
	assert_string_equal(socks_method_name(0xFE), "unassigned");
}

static void test_socks4_names(void **state)
{
	assert_string_equal(socks4_rep_name(90), "request granted");
	assert_string_equal(socks4_rep_name(91), "request rejected or failed");
	assert_string_equal(socks4_rep_name(92), "rejected: cannot reach identd");
	assert_string_equal(socks4_rep_name(93), "rejected: user-id mismatch with identd");
	assert_string_equal(socks4_rep_name(0), "unassigned");
	assert_string_equal(socks4_rep_name(94), "unassigned");
}

/* Every byte has a printable name, so log lines never hold NULL. */
static void test_total(void **state)
{
	for (unsigned v = 0; v <= 0xFF; v++) {
		const char *names[] = {socks5_rep_name((uint8_t)v), socks5_cmd_name((uint8_t)v),
				       socks_method_name((uint8_t)v), socks4_rep_name((uint8_t)v)};

		for (size_t i = 0; i < 4; i++) {
			assert_non_null(names[i]);
			assert_true(names[i][0] != '\0');
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rep_names),
		cmocka_unit_test(test_cmd_names),
		cmocka_unit_test(test_method_names),
		cmocka_unit_test(test_socks4_names),
		cmocka_unit_test(test_total),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
