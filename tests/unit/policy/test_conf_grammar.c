/*
 * test_conf_grammar.c - every keyword of stpd.conf parsed into the snapshot,
 * the lexical rules (comments, separators, quotes, CRLF), the embedded
 * default filling in what a file leaves out, and contrib/stpd.conf.
 */
#include "policy_test.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

#include "policy/conf_internal.h"
#include "policy/conf_lex.h"

static void test_keyword_table_sorted(void **state)
{
	assert_true(conf_kw_table_ok());
	assert_int_equal(conf_kw_lookup("auth"), KW_AUTH);
	assert_int_equal(conf_kw_lookup("workers"), KW_WORKERS);
	assert_int_equal(conf_kw_lookup("sessions-per-client"), KW_SESSIONS_PER_CLIENT);
	assert_int_equal(conf_kw_lookup("Workers"), KW_NONE); /* keywords are lower case */
	assert_int_equal(conf_kw_lookup("zzz"), KW_NONE);
	assert_int_equal(conf_kw_lookup(""), KW_NONE);
	for (int kw = KW_NONE + 1; kw < KW_COUNT_; kw++)
		assert_int_equal(conf_kw_lookup(conf_kw_name((enum conf_kw)kw)), kw);
}

static void test_lexer_tokens(void **state)
{
	static const char text[] = "a{b;\"c d\\\" \\\\\"}# x\n\"\" workers";
	struct conf_lex lx;
	struct conf_tok t;
	static const struct {
		enum conf_tok_type type;
		const char *text;
		int line;
	} want[] = {
		{ TOK_WORD, "a", 1 },       { TOK_LBRACE, "", 1 }, { TOK_WORD, "b", 1 },
		{ TOK_SEMI, "", 1 },        { TOK_STRING, "c d\" \\", 1 },
		{ TOK_RBRACE, "", 1 },      { TOK_NL, "", 1 },     { TOK_STRING, "", 2 },
		{ TOK_WORD, "workers", 2 }, { TOK_EOF, "", 2 },
	};
	conf_lex_init(&lx, text, strlen(text));
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		conf_lex_next(&lx, &t);
		assert_int_equal(t.type, want[i].type);
		assert_string_equal(t.text, want[i].text);
		assert_int_equal(t.line, want[i].line);
	}
	assert_int_equal(t.type, TOK_EOF);
	/* A quoted keyword is a value, never a keyword. */
	conf_lex_init(&lx, "\"workers\" workers", 17);
	conf_lex_next(&lx, &t);
	assert_int_equal(t.type, TOK_STRING);
	assert_int_equal(t.kw, KW_NONE);
	conf_lex_next(&lx, &t);
	assert_int_equal(t.kw, KW_WORKERS);
}

static const char full_conf[] =
	"# global settings\n"
	"workers 2\n"
	"resolver 127.0.0.1:5353\n"
	"user nobody                      # drop privileges after binding\n"
	"log { target syslog; format json; level debug }\n"
	"timeouts { handshake 11; connect 31; connect-attempt-delay 300; idle 3601; bind-accept 121; udp-idle 301; dns 0 }\n"
	"limits { sessions 10001; sessions-per-client 1001; dns-pending 1025; relay-buffer 65537 }\n"
	"auth { methods none userpass; backend file; users-file /etc/stpd/users; pam-service stpd2 }\n"
	"listen 127.0.0.1:1080\n"
	"listen [::1]:1080 { name lo6; proxy-protocol on; udp-advertise 203.0.113.5; external 192.0.2.1 }\n"
	"client pass { from 127.0.0.0/8 ::1; listener lo6 127.0.0.1:1080; time 08:00-18:00; days mon-fri; log notice; sessions 50 }\n"
	"client block { from 0.0.0.0/0 ::/0; log warning }\n"
	"request block { to 169.254.0.0/16; log warning }\n"
	"request pass { user alice bob -; group staff; command connect bind udpassociate udpreply bindreply; to 10.0.0.0/8 .example.com host.test; port 80 443 8000-8999; time 22:00-06:00; days sat sun; sessions 100; idle-timeout 600; from 10.1.0.0/16; listener lo6 }\n"
	"request pass { command transparent mcast-join mcast-leave }\n"
	"request pass { }\n"
	"request block\n";

static void test_full_config(void **state)
{
	struct stp_conf *c = pt_parse(full_conf);
	char buf[SA_STR_MAX];

	assert_string_equal(c->path, "t.conf");
	assert_int_equal(c->workers, 2);
	assert_true(c->has_resolver);
	assert_string_equal(c->resolver, "127.0.0.1:5353");
	assert_string_equal(c->run_as_user, "nobody");
	assert_int_equal(c->log_target, LOG_TO_SYSLOG);
	assert_int_equal(c->log_format, LOG_FMT_JSON);
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_int_equal(c->timeouts.handshake, 11);
	assert_int_equal(c->timeouts.connect, 31);
	assert_int_equal(c->timeouts.connect_attempt_delay, 300);
	assert_int_equal(c->timeouts.idle, 3601);
	assert_int_equal(c->timeouts.bind_accept, 121);
	assert_int_equal(c->timeouts.udp_idle, 301);
	assert_int_equal(c->timeouts.dns, 0);
	assert_int_equal(c->limits.max_sessions, 10001);
	assert_int_equal(c->limits.max_sessions_per_client, 1001);
	assert_int_equal(c->limits.max_dns_pending, 1025);
	assert_int_equal(c->limits.relay_buffer, 65537);
	assert_int_equal(c->auth_methods, AUTH_BIT_NONE | AUTH_BIT_USERPASS);
	assert_int_equal(c->userpass_backend, USERPASS_FILE);
	assert_string_equal(c->users_file, "/etc/stpd/users");
	assert_string_equal(c->pam_service, "stpd2");

	assert_int_equal(c->n_listeners, 2);
	assert_string_equal(c->listeners[0].name, "127.0.0.1:1080");
	assert_string_equal(sa_str((struct sockaddr *)&c->listeners[0].addr, buf, sizeof(buf)),
			    "127.0.0.1:1080");
	assert_int_equal(c->listeners[0].addrlen, sizeof(struct sockaddr_in));
	assert_false(c->listeners[0].proxy_protocol);
	assert_false(c->listeners[0].has_udp_advertise);
	assert_false(c->listeners[0].has_external);
	const struct conf_listener *l6 = &c->listeners[1];
	assert_string_equal(l6->name, "lo6");
	assert_string_equal(sa_str((struct sockaddr *)&l6->addr, buf, sizeof(buf)), "[::1]:1080");
	assert_int_equal(l6->addrlen, sizeof(struct sockaddr_in6));
	assert_true(l6->proxy_protocol);
	assert_true(l6->has_udp_advertise);
	assert_string_equal(sa_str((struct sockaddr *)&l6->udp_advertise, buf, sizeof(buf)),
			    "203.0.113.5:0");
	assert_true(l6->has_external);
	assert_string_equal(sa_str((struct sockaddr *)&l6->external, buf, sizeof(buf)),
			    "192.0.2.1:0");

	assert_int_equal(c->n_client_rules, 2);
	const struct rule *r = &c->client_rules[0];
	assert_string_equal(r->file, "t.conf");
	assert_int_equal(r->line, 11);
	assert_int_equal(r->action, RULE_PASS);
	assert_int_equal(r->n_from, 2);
	assert_int_equal(r->from[0].family, AF_INET);
	assert_int_equal(r->from[0].prefix, 8);
	assert_int_equal(r->from[0].addr[0], 127);
	assert_int_equal(r->from[1].family, AF_INET6);
	assert_int_equal(r->from[1].prefix, 128);
	assert_int_equal(r->n_listeners, 2);
	assert_string_equal(r->listeners[0], "lo6");
	assert_string_equal(r->listeners[1], "127.0.0.1:1080");
	assert_true(r->has_time);
	assert_int_equal(r->minute_from, 8 * 60);
	assert_int_equal(r->minute_to, 18 * 60);
	assert_int_equal(r->weekdays, 0x3e); /* mon..fri = bits 1..5 */
	assert_int_equal(r->log_level, LOG_NOTICE);
	assert_int_equal(r->max_sessions, 50);
	r = &c->client_rules[1];
	assert_int_equal(r->line, 12);
	assert_int_equal(r->action, RULE_BLOCK);
	assert_int_equal(r->n_from, 2);
	assert_int_equal(r->from[0].prefix, 0);
	assert_int_equal(r->from[1].prefix, 0);
	assert_int_equal(r->log_level, LOG_WARNING);
	assert_false(r->has_time);

	assert_int_equal(c->n_request_rules, 5);
	r = &c->request_rules[0];
	assert_int_equal(r->line, 13);
	assert_int_equal(r->action, RULE_BLOCK);
	assert_int_equal(r->n_to, 1);
	assert_int_equal(r->to[0].prefix, 16);
	assert_int_equal(r->commands, 0);
	r = &c->request_rules[1];
	assert_int_equal(r->line, 14);
	assert_int_equal(r->action, RULE_PASS);
	assert_int_equal(r->n_users, 3);
	assert_string_equal(r->users[0], "alice");
	assert_string_equal(r->users[1], "bob");
	assert_string_equal(r->users[2], "-");
	assert_int_equal(r->n_groups, 1);
	assert_string_equal(r->groups[0], "staff");
	assert_int_equal(r->commands, RULE_CMD_CONNECT | RULE_CMD_BIND | RULE_CMD_UDPASSOCIATE |
					      RULE_CMD_UDPREPLY | RULE_CMD_BINDREPLY);
	assert_int_equal(r->n_to, 1);
	assert_int_equal(r->n_to_names, 2);
	assert_string_equal(r->to_names[0], ".example.com");
	assert_string_equal(r->to_names[1], "host.test");
	assert_int_equal(r->n_ports, 3);
	assert_int_equal(r->ports[0].lo, 80);
	assert_int_equal(r->ports[0].hi, 80);
	assert_int_equal(r->ports[2].lo, 8000);
	assert_int_equal(r->ports[2].hi, 8999);
	assert_int_equal(r->minute_from, 22 * 60);
	assert_int_equal(r->minute_to, 6 * 60);
	assert_int_equal(r->weekdays, 0x41); /* sat, sun */
	assert_int_equal(r->max_sessions, 100);
	assert_int_equal(r->idle_timeout, 600);
	assert_int_equal(r->n_from, 1);
	assert_int_equal(r->n_listeners, 1);
	assert_int_equal(r->log_level, -1);
	assert_int_equal(c->request_rules[2].commands,
			 RULE_CMD_TRANSPARENT | RULE_CMD_MCAST_JOIN | RULE_CMD_MCAST_LEAVE);
	r = &c->request_rules[3];
	assert_int_equal(r->action, RULE_PASS);
	assert_int_equal(r->n_from + r->n_to + r->n_to_names + r->n_ports + r->n_users, 0);
	assert_int_equal(c->request_rules[4].action, RULE_BLOCK);
	assert_int_equal(c->request_rules[4].line, 17);
	conf_unref(c);
}

/* An empty file is the embedded default, piece by piece. */
static void test_empty_is_default(void **state)
{
	struct stp_conf *c = pt_parse("");
	struct stp_conf *d = conf_default();
	assert_int_equal(c->n_listeners, 1);
	assert_string_equal(c->listeners[0].name, "default");
	assert_memory_equal(&c->listeners[0], &d->listeners[0], sizeof(d->listeners[0]));
	assert_memory_equal(&c->timeouts, &d->timeouts, sizeof(d->timeouts));
	assert_memory_equal(&c->limits, &d->limits, sizeof(d->limits));
	assert_int_equal(c->auth_methods, AUTH_BIT_NONE);
	assert_int_equal(c->n_client_rules, d->n_client_rules);
	assert_memory_equal(c->client_rules[0].from, d->client_rules[0].from,
			    sizeof(d->client_rules[0].from));
	assert_int_equal(c->n_request_rules, 1);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_string_equal(c->pam_service, "stpd");
	conf_unref(c);
	conf_unref(d);
	/* Comments and blank lines only: the same. */
	c = pt_parse("# nothing\n\n   \t# at all\n;;\n");
	assert_int_equal(c->n_listeners, 1);
	conf_unref(c);
}

/* seccomp: on unless the file says off (docs/config.md). */
static void test_seccomp_key(void **state)
{
	struct stp_conf *c = pt_parse("user nobody\n");
	assert_false(c->no_seccomp);
	conf_unref(c);
	c = pt_parse("seccomp off\n");
	assert_true(c->no_seccomp);
	conf_unref(c);
	c = pt_parse("seccomp on\n");
	assert_false(c->no_seccomp);
	conf_unref(c);
}

/* What a file sets is kept; only what it leaves out is defaulted. */
static void test_partial_defaults(void **state)
{
	struct stp_conf *c = pt_parse("request block { port 25 }\n");
	assert_int_equal(c->n_request_rules, 1); /* no pass-all appended */
	assert_int_equal(c->request_rules[0].action, RULE_BLOCK);
	assert_int_equal(c->n_client_rules, 1);  /* the loopback default */
	assert_int_equal(c->client_rules[0].n_from, 2);
	conf_unref(c);
	c = pt_parse("listen 127.0.0.1:2000\nclient pass\n");
	assert_int_equal(c->n_listeners, 1);
	assert_string_equal(c->listeners[0].name, "127.0.0.1:2000");
	assert_int_equal(c->n_client_rules, 1);
	assert_int_equal(c->client_rules[0].n_from, 0);
	conf_unref(c);
	/* A rule may name the default listener when the file has none. */
	c = pt_parse("client pass { listener default }\n");
	conf_unref(c);
}

static void test_separators_and_layout(void **state)
{
	static const char text[] =
		"workers 3 ; user daemon # trailing comment\r\n"
		"log {\r\n"
		"  # a comment inside\n"
		"  level warning\n"
		"\n"
		"  format text ;\n"
		"}\n"
		"timeouts {\n connect 5 } ; limits { sessions 7 }\n"
		"auth{methods userpass;users-file \"/etc/stp d/users#1\"}\n"
		"request pass {\n"
		"  to .Example.COM. Host.Test.\n"
		"  from 10.0.0.0/8\n"
		"  from ::ffff:10.1.2.3/120 fd00::/8\n"
		"}\n";
	struct stp_conf *c = pt_parse(text);
	assert_int_equal(c->workers, 3);
	assert_string_equal(c->run_as_user, "daemon");
	assert_int_equal(c->log_level, LOG_WARNING);
	assert_int_equal(c->log_format, LOG_FMT_TEXT);
	assert_int_equal(c->timeouts.connect, 5);
	assert_int_equal(c->limits.max_sessions, 7);
	assert_int_equal(c->auth_methods, AUTH_BIT_USERPASS);
	assert_string_equal(c->users_file, "/etc/stp d/users#1");
	const struct rule *r = &c->request_rules[0];
	assert_int_equal(r->line, 11);
	assert_string_equal(r->to_names[0], ".example.com");
	assert_string_equal(r->to_names[1], "host.test");
	assert_int_equal(r->n_from, 3); /* repeated list keys add up */
	/* ::ffff:10.1.2.3/120 is kept as the IPv4 range 10.1.2.0/24 */
	assert_int_equal(r->from[1].family, AF_INET);
	assert_int_equal(r->from[1].prefix, 24);
	assert_int_equal(r->from[1].addr[2], 2);
	assert_int_equal(r->from[1].addr[3], 0);
	assert_int_equal(r->from[2].family, AF_INET6);
	conf_unref(c);
}

static void test_values_that_look_like_keywords(void **state)
{
	struct stp_conf *c = pt_parse("user log\nrequest pass { user connect to; group auth }\n"
				      "auth { pam-service user; methods userpass; backend pam }\n");
	assert_string_equal(c->run_as_user, "log");
	assert_string_equal(c->request_rules[0].users[0], "connect");
	assert_string_equal(c->request_rules[0].users[1], "to");
	assert_string_equal(c->request_rules[0].groups[0], "auth");
	assert_string_equal(c->pam_service, "user");
	assert_int_equal(c->userpass_backend, USERPASS_PAM);
	assert_string_equal(c->users_file, ""); /* not needed with pam */
	conf_unref(c);
}

static void test_auth_backends(void **state)
{
	struct stp_conf *c = pt_parse(
		"auth { methods userpass; backend ldap radius file; users-file /u; cache-ttl 30;"
		" cache-size 9; down-time 0 }\n"
		"ldap { uri \"ldap://a ldap://b\"; starttls on; ca-file /ca; base \"dc=x\";"
		" bind-dn \"cn=s,dc=x\"; bind-password-file /pw; filter \"(cn=%u)\";"
		" group-attribute memberOf; group-filter \"(member=%d)\"; timeout 7 }\n"
		"radius { server 127.0.0.1 [::1]:1645; server 10.1.2.3:1812; secret-file /s;"
		" timeout 2; retries 0; method chap; nas-identifier n1 }\n");
	assert_int_equal(c->n_backends, 3);
	assert_int_equal(c->backends[0], USERPASS_LDAP);
	assert_int_equal(c->backends[1], USERPASS_RADIUS);
	assert_int_equal(c->backends[2], USERPASS_FILE);
	assert_int_equal(c->userpass_backend, USERPASS_LDAP);
	assert_int_equal(c->auth_cache.ttl, 30);
	assert_int_equal(c->auth_cache.size, 9);
	assert_int_equal(c->auth_down_time, 0);
	assert_string_equal(c->ldap.uri, "ldap://a ldap://b");
	assert_true(c->ldap.starttls);
	assert_string_equal(c->ldap.filter, "(cn=%u)");
	assert_string_equal(c->ldap.group_name_attribute, "cn"); /* default */
	assert_int_equal(c->ldap.timeout, 7);
	assert_int_equal(c->radius.n_servers, 3);
	assert_string_equal(c->radius.servers[0], "127.0.0.1:1812");
	assert_string_equal(c->radius.servers[1], "[::1]:1645");
	assert_string_equal(c->radius.servers[2], "10.1.2.3:1812");
	assert_true(c->radius.chap);
	assert_int_equal(c->radius.retries, 0);
	assert_string_equal(c->radius.nas_identifier, "n1");
	conf_unref(c);
}

static void test_days_and_times(void **state)
{
	struct stp_conf *c = pt_parse("request pass { days fri-mon }\n"
				      "request pass { days Sun wed-wed }\n"
				      "request pass { time 00:00-23:59 }\n"
				      "request pass { time 12:30-12:30 }\n"
				      "request pass { days sun-sat }\n");
	assert_int_equal(c->request_rules[0].weekdays, 0x63); /* fri sat sun mon */
	assert_int_equal(c->request_rules[1].weekdays, 0x09);
	assert_int_equal(c->request_rules[2].minute_from, 0);
	assert_int_equal(c->request_rules[2].minute_to, 23 * 60 + 59);
	assert_int_equal(c->request_rules[3].minute_from, 750);
	assert_int_equal(c->request_rules[3].minute_to, 750);
	assert_false(c->request_rules[0].has_time);
	assert_int_equal(c->request_rules[4].weekdays, 0x7f);
	conf_unref(c);
}

static void test_listen_forms(void **state)
{
	char buf[SA_STR_MAX];
	struct stp_conf *c = pt_parse("listen 0.0.0.0:1\nlisten [::]:65535 { proxy-protocol off }\n"
				      "listen [::1]:1080 { udp-advertise [2001:db8::1]:9; name a-b.c_d }\n"
				      "listen 127.0.0.2:1080 { external ::1 }\n");
	assert_int_equal(c->n_listeners, 4);
	assert_string_equal(c->listeners[0].name, "0.0.0.0:1");
	assert_string_equal(c->listeners[1].name, "[::]:65535");
	assert_false(c->listeners[1].proxy_protocol);
	assert_string_equal(c->listeners[2].name, "a-b.c_d");
	assert_string_equal(sa_str((struct sockaddr *)&c->listeners[2].udp_advertise, buf,
				   sizeof(buf)), "[2001:db8::1]:0");
	assert_true(c->listeners[3].has_external);
	assert_int_equal(c->listeners[3].external.ss_family, AF_INET6);
	conf_unref(c);
}

static void test_conf_load_file(void **state)
{
	char path[] = "/tmp/stp_conf_test_XXXXXX";
	char err[1024];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static const char text[] = "workers 4\nlisten 127.0.0.1:1999\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	struct stp_conf *c = conf_load(path, err, sizeof(err));
	assert_non_null(c);
	assert_string_equal(c->path, path);
	assert_int_equal(c->workers, 4);
	conf_unref(c);

	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "workers x\n", 10), 10);
	close(fd);
	assert_null(conf_load(path, err, sizeof(err)));
	char want[128];
	snprintf(want, sizeof(want), "%s:1: 'workers' wants a number", path);
	assert_non_null(strstr(err, want));
	unlink(path);

	assert_null(conf_load("/nonexistent/stpd.conf", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/stpd.conf: cannot open: No such file or directory\n");
	assert_null(conf_load("/nonexistent/stpd.conf", NULL, 0));
}

static void test_contrib_example(void **state)
{
	char err[4096];
	struct stp_conf *c = conf_load(STP_SOURCE_ROOT "/contrib/stpd.conf", err, sizeof(err));
	if (!c)
		print_error("%s", err);
	assert_non_null(c);
	assert_true(c->n_listeners >= 1);
	assert_true(c->n_client_rules >= 2);
	assert_true(c->n_request_rules >= 2);
	/* The example ends its rule lists with explicit blocks, not the defaults. */
	assert_int_equal(c->client_rules[c->n_client_rules - 1].action, RULE_BLOCK);
	assert_int_equal(c->request_rules[c->n_request_rules - 1].action, RULE_BLOCK);
	conf_unref(c);
}

/* Every ```conf block of docs/config.md parses. */
static void test_docs_examples(void **state)
{
	static char doc[65536];
	char err[4096];
	FILE *f = fopen(STP_SOURCE_ROOT "/docs/config.md", "r");
	assert_non_null(f);
	size_t n = fread(doc, 1, sizeof(doc) - 1, f);
	fclose(f);
	doc[n] = '\0';
	int blocks = 0;
	for (char *at = strstr(doc, "```conf\n"); at; at = strstr(at, "```conf\n")) {
		at += 8;
		char *end = strstr(at, "```");
		assert_non_null(end);
		struct stp_conf *c = conf_parse_string("config.md", at, (size_t)(end - at), err,
						       sizeof(err));
		if (!c)
			fail_msg("example %d does not parse:\n%s", blocks + 1, err);
		conf_unref(c);
		blocks++;
		at = end + 3;
	}
	assert_int_equal(blocks, 12); /* + ldap/radius, autoconfig, transparent (2), binds, compartments, tunnel, metrics, mux */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyword_table_sorted),
		cmocka_unit_test(test_lexer_tokens),
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_empty_is_default),
		cmocka_unit_test(test_seccomp_key),
		cmocka_unit_test(test_partial_defaults),
		cmocka_unit_test(test_separators_and_layout),
		cmocka_unit_test(test_values_that_look_like_keywords),
		cmocka_unit_test(test_days_and_times),
		cmocka_unit_test(test_listen_forms),
		cmocka_unit_test(test_conf_load_file),
		cmocka_unit_test(test_contrib_example),
		cmocka_unit_test(test_docs_examples),
		cmocka_unit_test(test_auth_backends),
	};
	return cmocka_run_group_tests(tests, pt_setup, NULL);
}
