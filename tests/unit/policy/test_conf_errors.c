/*
 * test_conf_errors.c - every error the parser reports, with its exact
 * "file:line: message", and recovery: one pass reports every error.
 */
#include "policy_test.h"

struct err_case {
	const char *text;
	const char *want; /* must appear in the error text */
};

static const struct err_case cases[] = {
	/* keywords */
	{ "frobnicate 1\n", "t.conf:1: unknown keyword 'frobnicate' in the top level\n" },
	{ "\n\nlog { colour red }\n", "t.conf:3: unknown keyword 'colour' in a log block\n" },
	{ "log { workers 2 }\n", "t.conf:1: 'workers' is not valid in a log block\n" },
	{ "from 10.0.0.0/8\n", "t.conf:1: 'from' is not valid in the top level\n" },
	{ "client pass {\n to 10.0.0.0/8\n}\n", "t.conf:2: 'to' is not valid in a client rule\n" },
	{ "client pass { user alice }\n", "t.conf:1: 'user' is not valid in a client rule\n" },
	{ "client pass { port 80 }\n", "t.conf:1: 'port' is not valid in a client rule\n" },
	{ "request pass { name x }\n", "t.conf:1: 'name' is not valid in a request rule\n" },
	{ "listen 127.0.0.1:1 { level info }\n", "t.conf:1: 'level' is not valid in a listen block\n" },
	{ "Workers 2\n", "t.conf:1: unknown keyword 'Workers' in the top level\n" },
	{ "\"workers\" 2\n", "t.conf:1: expected a keyword in the top level, got 'workers'\n" },
	{ "{ workers 2 }\n", "t.conf:1: expected a keyword in the top level, got '{'\n" },
	/* value counts and blocks */
	{ "workers\n", "t.conf:1: 'workers' takes 1 value, not 0\n" },
	{ "workers 1 2\n", "t.conf:1: 'workers' takes 1 value, not 2\n" },
	{ "log level info\n", "t.conf:1: 'log' takes 0 values, not 2\n" },
	{ "log\n", "t.conf:1: 'log' needs a block: log { ... }\n" },
	{ "timeouts\n", "t.conf:1: 'timeouts' needs a block: timeouts { ... }\n" },
	{ "listen\n", "t.conf:1: 'listen' takes 1 value, not 0\n" },
	{ "request pass { from }\n", "t.conf:1: 'from' needs at least 1 value\n" },
	{ "request pass { from 1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 1.0.0.5 1.0.0.6 1.0.0.7 1.0.0.8 "
	  "1.0.0.9 1.0.0.10 1.0.0.11 1.0.0.12 1.0.0.13 1.0.0.14 1.0.0.15 1.0.0.16 1.0.0.17 }\n",
	  "t.conf:1: 'from' takes at most 16 values, not 17\n" },
	{ "request pass {\n from 1.0.0.1 1.0.0.2 1.0.0.3 1.0.0.4 1.0.0.5 1.0.0.6 1.0.0.7 1.0.0.8\n"
	  " from 1.0.0.9 1.0.0.10 1.0.0.11 1.0.0.12 1.0.0.13 1.0.0.14 1.0.0.15 1.0.0.16 1.0.0.17\n}\n",
	  "t.conf:3: too many 'from' values in one rule (at most 16)\n" },
	{ "workers 2 { }\n", "t.conf:1: 'workers' takes no block\n" },
	{ "log {\n level info\n", "t.conf:3: missing '}' for the block opened at line 1\n" },
	{ "workers 1\n}\n", "t.conf:2: '}' without a block to close\n" },
	{ "listen 127.0.0.1:1 { } extra\n",
	  "t.conf:1: expected the end of the 'listen' statement, got 'extra'\n" },
	{ "log { level info } { }\n", "t.conf:1: expected the end of the 'log' statement, got '{'\n" },
	/* lexical */
	{ "user \"nobody\n", "t.conf:1: unterminated quoted string\n" },
	{ "user \"no\tbody\" \"a\x01\"\n", "t.conf:1: control character in quoted string\n" },
	{ "workers 1\nuser \x01\n", "t.conf:2: unexpected character 0x01\n" },
	{ "user caf\xc3\xa9\n", "t.conf:1: unexpected character 0xc3\n" },
	/* duplicates of singular settings */
	{ "workers 1\nworkers 2\n", "t.conf:2: duplicate 'workers' in the top level (first at line 1)\n" },
	{ "user a\n\nuser b\n", "t.conf:3: duplicate 'user' in the top level (first at line 1)\n" },
	{ "resolver 127.0.0.1\nresolver ::1\n", "t.conf:2: duplicate 'resolver'" },
	{ "log { level info }\nlog { level debug }\n",
	  "t.conf:2: duplicate 'level' in a log block (first at line 1)\n" },
	{ "log { target stderr; target syslog }\n", "t.conf:1: duplicate 'target' in a log block" },
	{ "log { format text; format json }\n", "t.conf:1: duplicate 'format' in a log block" },
	{ "timeouts { idle 1 }\ntimeouts { idle 2 }\n", "t.conf:2: duplicate 'idle' in a timeouts block" },
	{ "limits { sessions 1; sessions 2 }\n", "t.conf:1: duplicate 'sessions' in a limits block" },
	{ "auth { backend pam }\nauth { backend file }\n", "t.conf:2: duplicate 'backend' in an auth block" },
	{ "auth { methods none; methods none }\n", "t.conf:1: duplicate 'methods' in an auth block" },
	{ "listen 127.0.0.1:1 { name a; name b }\n", "t.conf:1: duplicate 'name' in a listen block" },
	{ "request pass {\n time 01:00-02:00\n time 03:00-04:00\n}\n",
	  "t.conf:3: duplicate 'time' in a request rule (first at line 2)\n" },
	{ "request pass { days mon; days tue }\n", "t.conf:1: duplicate 'days' in a request rule" },
	{ "client pass { log info; log debug }\n", "t.conf:1: duplicate 'log' in a client rule" },
	{ "request pass { sessions 1; sessions 2 }\n", "t.conf:1: duplicate 'sessions' in a request rule" },
	{ "request pass { idle-timeout 1; idle-timeout 2 }\n", "t.conf:1: duplicate 'idle-timeout'" },
	/* global values */
	{ "workers x\n", "t.conf:1: 'workers' wants a number from 0 to 1024, not 'x'\n" },
	{ "workers 1025\n", "t.conf:1: 'workers' wants a number from 0 to 1024, not '1025'\n" },
	{ "workers -1\n", "t.conf:1: 'workers' wants a number from 0 to 1024, not '-1'\n" },
	{ "workers 99999999999\n", "t.conf:1: 'workers' wants a number from 0 to 1024" },
	{ "resolver dns.google\n", "t.conf:1: bad resolver 'dns.google' (want an IP address, ADDR:PORT or [V6]:PORT)\n" },
	{ "resolver 127.0.0.1:0\n", "t.conf:1: bad resolver '127.0.0.1:0'" },
	{ "user \"a b\"\n", "t.conf:1: bad user name 'a b'" },
	{ "log { target file }\n", "t.conf:1: 'target' is stderr or syslog, not 'file'\n" },
	{ "log { format xml }\n", "t.conf:1: 'format' is text or json, not 'xml'\n" },
	{ "log { level loud }\n", "t.conf:1: 'level' is error, warning, notice, info or debug, not 'loud'\n" },
	{ "timeouts { handshake x }\n", "t.conf:1: 'handshake' wants a number from 0 to 604800, not 'x'\n" },
	{ "timeouts { connect 604801 }\n", "t.conf:1: 'connect' wants a number from 0 to 604800" },
	{ "timeouts { connect-attempt-delay 9 }\n", "t.conf:1: 'connect-attempt-delay' wants a number from 10 to 2000, not '9'\n" },
	{ "timeouts { connect-attempt-delay 2001 }\n", "t.conf:1: 'connect-attempt-delay' wants a number from 10 to 2000" },
	{ "timeouts { idle 1.5 }\n", "t.conf:1: 'idle' wants a number" },
	{ "timeouts { bind-accept +1 }\n", "t.conf:1: 'bind-accept' wants a number" },
	{ "timeouts { udp-idle 0x10 }\n", "t.conf:1: 'udp-idle' wants a number" },
	{ "timeouts { dns  }\n", "t.conf:1: 'dns' takes 1 value, not 0\n" },
	{ "limits { sessions 0 }\n", "t.conf:1: 'sessions' wants a number from 1 to 1000000, not '0'\n" },
	{ "limits { sessions-per-client 0 }\n", "t.conf:1: 'sessions-per-client' wants a number from 1 to 1000000" },
	{ "limits { dns-pending 65537 }\n", "t.conf:1: 'dns-pending' wants a number from 1 to 65536" },
	{ "limits { relay-buffer 100 }\n", "t.conf:1: 'relay-buffer' wants a number from 1024 to 16777216" },
	{ "auth { methods kerberos }\n",
	  "t.conf:1: unknown auth method 'kerberos' (none, userpass, ssl or gssapi)\n" },
	{ "auth { backend sql }\n",
	  "t.conf:1: unknown backend 'sql' (file, pam, ldap or radius)\n" },
	{ "auth { backend file file }\n", "t.conf:1: backend 'file' is listed twice\n" },
	{ "auth { methods userpass; backend ldap }\n",
	  "t.conf:1: backend ldap needs an ldap { } block\n" },
	{ "auth { methods userpass; backend radius }\n",
	  "t.conf:1: backend radius needs a radius { } block\n" },
	{ "auth { methods userpass; backend ldap }\nldap { uri ldap://127.0.0.1 }\n",
	  "t.conf:2: the ldap block needs 'user-dn' (bind as the user) or 'base' (search, then "
	  "bind)\n" },
	{ "ldap { uri http://x }\n", "t.conf:1: 'uri' wants ldap://HOST[:PORT] or ldaps://...\n" },
	{ "ldap { user-dn \"cn=x\" }\n", "t.conf:1: 'user-dn' must hold %u (the user name)\n" },
	{ "ldap { filter \"(uid=%x)\" }\n",
	  "t.conf:1: 'filter': unknown escape '%x' (%u or %%)\n" },
	{ "auth { methods userpass; backend radius }\nradius { server 127.0.0.1 }\n",
	  "t.conf:2: the radius block needs 'secret-file'\n" },
	{ "radius { server localhost }\n",
	  "t.conf:1: bad RADIUS server 'localhost' (want ADDR, ADDR:PORT or [V6]:PORT)\n" },
	{ "radius { method mschap }\n", "t.conf:1: 'method' is pap or chap, not 'mschap'\n" },
	{ "radius { group-attribute class reply-message }\n",
	  "t.conf:1: 'group-attribute' is Class or Filter-Id, not 'reply-message'\n" },
	{ "auth { cache-ttl 100000 }\n",
	  "t.conf:1: 'cache-ttl' wants a number from 0 to 86400, not '100000'\n" },
	{ "auth { pam-service \"a/b\" }\n", "t.conf:1: bad PAM service name 'a/b'\n" },
	{ "\nauth {\n methods none userpass\n}\n",
	  "t.conf:3: auth method userpass with backend file needs 'users-file'\n" },
	{ "auth { backend file }\nauth { methods userpass }\n",
	  "t.conf:2: auth method userpass with backend file needs 'users-file'\n" },
	{ "auth { users-file \"\" }\n", "t.conf:1: 'users-file' wants 1 to 511 characters\n" },
	/* listeners */
	{ "listen 127.0.0.1\n", "t.conf:1: bad listen address '127.0.0.1' (want ADDR:PORT or [V6]:PORT)\n" },
	{ "listen localhost:1080\n", "t.conf:1: bad listen address 'localhost:1080'" },
	{ "listen 127.0.0.1:0\n", "t.conf:1: bad listen address '127.0.0.1:0'" },
	{ "listen 127.0.0.1:65536\n", "t.conf:1: bad listen address '127.0.0.1:65536'" },
	{ "listen [::1:1080\n", "t.conf:1: bad listen address '[::1:1080'" },
	{ "listen 127.0.0.1:1080\nlisten 127.0.0.1:1080\n",
	  "t.conf:2: listen address 127.0.0.1:1080 is already used\n" },
	{ "listen 127.0.0.1:1 { name a }\nlisten 127.0.0.1:2 { name a }\n",
	  "t.conf:2: listener name 'a' is already used\n" },
	{ "listen 127.0.0.1:1 { name \"a:b\" }\n", "t.conf:1: bad listener name 'a:b'" },
	{ "listen 127.0.0.1:1 { proxy-protocol yes }\n", "t.conf:1: 'proxy-protocol' is on or off, not 'yes'\n" },
	{ "listen 127.0.0.1:1 { udp-advertise nat.example }\n",
	  "t.conf:1: bad address 'nat.example' for 'udp-advertise' (want an IP address)\n" },
	{ "listen 127.0.0.1:1 { external 1.2.3.4.5 }\n", "t.conf:1: bad address '1.2.3.4.5' for 'external'" },
	/* rules */
	{ "client allow\n", "t.conf:1: 'client' is followed by pass or block, not 'allow'\n" },
	{ "request deny { }\n", "t.conf:1: 'request' is followed by pass or block, not 'deny'\n" },
	{ "client pass { from 10.0.0.0/33 }\n", "t.conf:1: bad address range '10.0.0.0/33' (want ADDR or ADDR/PREFIX)\n" },
	{ "client pass { from ::/129 }\n", "t.conf:1: bad address range '::/129'" },
	{ "client pass { from 10.0.0/8 }\n", "t.conf:1: bad address range '10.0.0/8'" },
	{ "client pass { from 10.0.0.0/ }\n", "t.conf:1: bad address range '10.0.0.0/'" },
	{ "client pass { from 10.0.0.0/-1 }\n", "t.conf:1: bad address range '10.0.0.0/-1'" },
	{ "client pass { from example.com }\n", "t.conf:1: bad address range 'example.com'" },
	{ "request pass { to 300.1.1.1 }\n", "t.conf:1: bad address range '300.1.1.1'" },
	{ "request pass { to bad..name }\n", "t.conf:1: bad host name 'bad..name' (want host.example or .example)\n" },
	{ "request pass { to . }\n", "t.conf:1: bad host name '.'" },
	{ "request pass { to *.example.com }\n", "t.conf:1: bad host name '*.example.com'" },
	{ "request pass { port 0 }\n", "t.conf:1: bad port '0' (want 1-65535, or LOW-HIGH with LOW <= HIGH)\n" },
	{ "request pass { port 65536 }\n", "t.conf:1: bad port '65536'" },
	{ "request pass { port 90-80 }\n", "t.conf:1: bad port '90-80'" },
	{ "request pass { port 80- }\n", "t.conf:1: bad port '80-'" },
	{ "request pass { port http }\n", "t.conf:1: bad port 'http'" },
	{ "request pass { time 24:00-01:00 }\n", "t.conf:1: bad time window '24:00-01:00' (want HH:MM-HH:MM, 00:00 to 23:59)\n" },
	{ "request pass { time 08:60-09:00 }\n", "t.conf:1: bad time window '08:60-09:00'" },
	{ "request pass { time 8:00-9:00 }\n", "t.conf:1: bad time window '8:00-9:00'" },
	{ "request pass { time 08:00 }\n", "t.conf:1: bad time window '08:00'" },
	{ "request pass { time 08:00-18:00 20:00-21:00 }\n", "t.conf:1: 'time' takes 1 value, not 2\n" },
	{ "request pass { days monday }\n", "t.conf:1: bad day 'monday'" },
	{ "request pass { days mon-xyz }\n", "t.conf:1: bad day 'mon-xyz'" },
	{ "request pass { command udp }\n", "t.conf:1: unknown command 'udp' (connect, bind, bindreply, udpassociate, udpreply, transparent, mcast-join, mcast-leave, resolve, resolve-ptr, dns, autoconfig, discover, listen, listenreply, udpbind, udpbindreply, tunnel, tunnel-relay, mux)\n" },
	{ "request pass { log loud }\n", "t.conf:1: 'log' is error, warning, notice, info or debug, not 'loud'\n" },
	{ "request pass { sessions 0 }\n", "t.conf:1: 'sessions' wants a number from 1 to 1000000, not '0'\n" },
	{ "request pass { idle-timeout x }\n", "t.conf:1: 'idle-timeout' wants a number from 1 to 604800, not 'x'\n" },
	{ "request pass { user \"\" }\n", "t.conf:1: bad user '' (1 to 255 characters)\n" },
	{ "listen 127.0.0.1:1\n\nclient pass { listener nope }\n", "t.conf:3: no listener named 'nope'\n" },
	{ "request pass { listener default }\nlisten 127.0.0.1:1\n", "t.conf:1: no listener named 'default'\n" },
	{ "seccomp maybe\n", "t.conf:1: 'seccomp' is on or off, not 'maybe'\n" },
	{ "seccomp off\nseccomp on\n", "t.conf:2: duplicate 'seccomp' in the top level (first at line 1)\n" },
};

static void test_each_error(void **state)
{
	char err[4096];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pt_parse_fail(cases[i].text, err, sizeof(err));
		if (!strstr(err, cases[i].want))
			fail_msg("case %zu: %s\nwant: %s\ngot:  %s", i, cases[i].text, cases[i].want,
				 err);
		/* Every line of the error text has the file:line: prefix. */
		for (const char *l = err; *l; l = strchr(l, '\n') + 1)
			if (strncmp(l, "t.conf:", 7) != 0)
				fail_msg("case %zu: line without file:line: %s", i, l);
	}
}

/* One pass finds every error, and parsing after an error still works. */
static void test_many_errors_one_pass(void **state)
{
	static const char text[] =
		"workers x\n"                 /* 1 */
		"listen 127.0.0.1:1080\n"
		"bogus 1 2 { nested { } }\n"  /* 3: skipped whole, braces balanced */
		"log {\n"
		"  level loud\n"              /* 5 */
		"  format text\n"
		"  target nowhere\n"          /* 7 */
		"}\n"
		"request pass { port 0; to 10.0.0.0/8; days noday }\n" /* 9 twice */
		"client pass { listener nope }\n" /* 10, reported at the end */
		"user \"x\n"                  /* 11 */
		"workers 2\n"                 /* 12: a duplicate even though line 1 was bad */
		"auth { methods userpass }\n"; /* 13 */
	char err[4096];
	pt_parse_fail(text, err, sizeof(err));
	static const char *const want[] = {
		"t.conf:1: 'workers' wants a number",
		"t.conf:3: unknown keyword 'bogus' in the top level",
		"t.conf:5: 'level' is error",
		"t.conf:7: 'target' is stderr or syslog",
		"t.conf:9: bad port '0'",
		"t.conf:9: bad day 'noday'",
		"t.conf:11: unterminated quoted string",
		"t.conf:12: duplicate 'workers' in the top level (first at line 1)",
		"t.conf:10: no listener named 'nope'",
		"t.conf:13: auth method userpass with backend file needs 'users-file'",
	};
	const char *at = err;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		const char *hit = strstr(at, want[i]);
		if (!hit)
			fail_msg("missing (in order) '%s' in:\n%s", want[i], err);
		at = hit;
	}
	assert_int_equal(pt_lines(err), sizeof(want) / sizeof(want[0]));
}

static void test_too_many_errors(void **state)
{
	char text[4000] = "";
	for (int i = 0; i < 150; i++)
		strcat(text, "bad 1\n");
	char err[16384];
	pt_parse_fail(text, err, sizeof(err));
	assert_non_null(strstr(err, "t.conf:100: too many errors, giving up\n"));
	assert_null(strstr(err, "t.conf:101:"));
	assert_int_equal(pt_lines(err), 101);
}

static void test_error_buffer_edges(void **state)
{
	static const char text[] = "workers x\nworkers y\n";
	char err[24];
	memset(err, 'Z', sizeof(err));
	pt_parse_fail(text, err, sizeof(err));
	assert_true(memchr(err, '\0', sizeof(err)) != NULL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_int_equal(strncmp(err, "t.conf:1: 'workers' want", 23), 0);
	/* No buffer at all: still fails cleanly. */
	assert_null(conf_parse_string("t.conf", text, strlen(text), NULL, 0));
	/* A buffer of one byte holds the empty string. */
	err[0] = 'Z';
	assert_null(conf_parse_string("t.conf", text, strlen(text), err, 1));
	assert_int_equal(err[0], '\0');
}

/* The length is what counts: a NUL is a bad character, not the end. */
static void test_embedded_nul_and_long_words(void **state)
{
	static const char text[] = "workers 1\n\0workers 2\n";
	char err[1024];
	assert_null(conf_parse_string("t.conf", text, sizeof(text) - 1, err, sizeof(err)));
	assert_non_null(strstr(err, "t.conf:2: unexpected character 0x00\n"));
	/* Parsing only up to the NUL is fine. */
	struct stp_conf *c = conf_parse_string("t.conf", text, 10, err, sizeof(err));
	assert_non_null(c);
	conf_unref(c);

	static char big[2000];
	memcpy(big, "user ", 5);
	memset(big + 5, 'a', 1000);
	strcpy(big + 1005, "\nworkers z\n");
	assert_null(conf_parse_string("t.conf", big, strlen(big), err, sizeof(err)));
	assert_non_null(strstr(err, "t.conf:1: word too long (at most 511 characters)\n"));
	assert_non_null(strstr(err, "t.conf:2: 'workers' wants a number"));
	big[5] = '"';
	strcpy(big + 1005, "\"\n");
	assert_null(conf_parse_string("t.conf", big, strlen(big), err, sizeof(err)));
	assert_non_null(strstr(err, "t.conf:1: quoted string too long (at most 511 characters)\n"));
	/* 100 characters fit a word but not a user name. */
	big[5] = 'a';
	strcpy(big + 105, "\n");
	assert_null(conf_parse_string("t.conf", big, strlen(big), err, sizeof(err)));
	assert_non_null(strstr(err, "t.conf:1: bad user name 'aaaa"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_error),
		cmocka_unit_test(test_many_errors_one_pass),
		cmocka_unit_test(test_too_many_errors),
		cmocka_unit_test(test_error_buffer_edges),
		cmocka_unit_test(test_embedded_nul_and_long_words),
	};
	return cmocka_run_group_tests(tests, pt_setup, NULL);
}
