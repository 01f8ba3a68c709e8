/*
 * test_conf_api.c - the embedded default, the command-line overrides,
 * reference counting (also across threads) and the summaries.
 */
#include "policy_test.h"

#include <pthread.h>
#include <syslog.h>

static const struct rule *match_client(const struct stp_conf *c, const char *addr)
{
	struct sockaddr_storage ss = pt_addr(addr);
	struct rule_ctx ctx = { .client = (struct sockaddr *)&ss, .listener = "default",
				.now = 1704067200 };
	return rules_match(c->client_rules, c->n_client_rules, &ctx);
}

static void test_default(void **state)
{
	char buf[SA_STR_MAX];
	struct stp_conf *c = conf_default();
	assert_non_null(c);
	assert_int_equal(atomic_load(&c->refs), 1);
	assert_string_equal(c->path, "");
	assert_int_equal(c->n_listeners, 1);
	assert_string_equal(c->listeners[0].name, "default");
	assert_string_equal(sa_str((struct sockaddr *)&c->listeners[0].addr, buf, sizeof(buf)),
			    "127.0.0.1:1080");
	assert_int_equal(c->listeners[0].addrlen, sizeof(struct sockaddr_in));
	assert_false(c->listeners[0].proxy_protocol);
	assert_int_equal(c->workers, 0);
	assert_false(c->has_resolver);
	assert_int_equal(c->auth_methods, AUTH_BIT_NONE);
	assert_string_equal(c->pam_service, "stpd");
	assert_string_equal(c->run_as_user, "");
	assert_false(c->no_seccomp); /* the filters are on unless `seccomp off` */
	assert_int_equal(c->timeouts.handshake, 10);
	assert_int_equal(c->timeouts.connect, 30);
	assert_int_equal(c->timeouts.connect_attempt_delay, 250);
	assert_int_equal(c->timeouts.idle, 3600);
	assert_int_equal(c->timeouts.bind_accept, 120);
	assert_int_equal(c->timeouts.udp_idle, 300);
	assert_int_equal(c->timeouts.dns, 10);
	assert_int_equal(c->limits.max_sessions, 10000);
	assert_int_equal(c->limits.max_sessions_per_client, 1000);
	assert_int_equal(c->limits.max_dns_pending, 1024);
	assert_int_equal(c->limits.relay_buffer, 65536);
	assert_int_equal(c->log_target, LOG_TO_STDERR);
	assert_int_equal(c->log_format, LOG_FMT_TEXT);
	assert_int_equal(c->log_level, LOG_INFO);

	assert_int_equal(c->n_client_rules, 1);
	assert_int_equal(c->client_rules[0].action, RULE_PASS);
	assert_non_null(match_client(c, "127.0.0.1"));
	assert_non_null(match_client(c, "127.255.0.9"));
	assert_non_null(match_client(c, "::1"));
	assert_non_null(match_client(c, "::ffff:127.0.0.1"));
	assert_null(match_client(c, "10.0.0.1"));
	assert_null(match_client(c, "128.0.0.1"));
	assert_null(match_client(c, "::2"));

	assert_int_equal(c->n_request_rules, 1);
	const struct rule *r = &c->request_rules[0];
	assert_int_equal(r->action, RULE_PASS);
	struct sockaddr_storage dst = pt_addr("192.0.2.1:443");
	struct rule_ctx ctx = { .command = RULE_CMD_BIND, .dst_addr = (struct sockaddr *)&dst,
				.dst_port = 443, .user = "x" };
	assert_ptr_equal(rules_match(c->request_rules, 1, &ctx), r);
	conf_unref(c);
}

static void test_set_listeners(void **state)
{
	char err[256];
	struct stp_conf *c = conf_default();
	const char *good[] = { "127.0.0.1:2000", "[::1]:2001" };
	assert_int_equal(conf_set_listeners(c, good, 2, err, sizeof(err)), 0);
	assert_int_equal(c->n_listeners, 2);
	assert_string_equal(c->listeners[0].name, "127.0.0.1:2000");
	assert_string_equal(c->listeners[1].name, "[::1]:2001");
	assert_int_equal(c->listeners[1].addr.ss_family, AF_INET6);

	const char *bad[] = { "127.0.0.1:3000", "127.0.0.1" };
	assert_int_equal(conf_set_listeners(c, bad, 2, err, sizeof(err)), -1);
	assert_string_equal(err, "bad listen address '127.0.0.1' (want ADDR:PORT or [V6]:PORT)");
	assert_int_equal(c->n_listeners, 2); /* unchanged */
	assert_string_equal(c->listeners[0].name, "127.0.0.1:2000");

	const char *zero[] = { "127.0.0.1:0" };
	assert_int_equal(conf_set_listeners(c, zero, 1, err, sizeof(err)), -1);
	const char *name[] = { "localhost:1080" };
	assert_int_equal(conf_set_listeners(c, name, 1, err, sizeof(err)), -1);
	const char *dup[] = { "127.0.0.1:5", "127.0.0.1:5" };
	assert_int_equal(conf_set_listeners(c, dup, 2, err, sizeof(err)), -1);
	assert_string_equal(err, "listen address '127.0.0.1:5' given twice");
	assert_int_equal(conf_set_listeners(c, good, 0, err, sizeof(err)), -1);
	assert_string_equal(err, "no listen address given");
	assert_int_equal(c->n_listeners, 2);
	conf_unref(c);
}

static void test_set_users_file(void **state)
{
	char err[256];
	struct stp_conf *c = pt_parse("auth { methods none; backend pam }\n");
	assert_int_equal(conf_set_users_file(c, "/etc/stpd/users", err, sizeof(err)), 0);
	assert_int_equal(c->auth_methods, AUTH_BIT_USERPASS);
	assert_int_equal(c->userpass_backend, USERPASS_FILE);
	assert_string_equal(c->users_file, "/etc/stpd/users");
	assert_int_equal(conf_set_users_file(c, "", err, sizeof(err)), -1);
	assert_string_equal(err, "bad users file path (1-511 characters)");
	char longpath[600];
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(conf_set_users_file(c, longpath, err, sizeof(err)), -1);
	assert_string_equal(c->users_file, "/etc/stpd/users");
	conf_unref(c);
}

static void test_set_allow(void **state)
{
	char err[256];
	struct stp_conf *c = conf_default();
	const char *nets[] = { "10.0.0.0/8", "fd00::/8", "192.0.2.7" };
	assert_int_equal(conf_set_allow(c, nets, 3, err, sizeof(err)), 0);
	assert_int_equal(c->n_client_rules, 1);
	assert_int_equal(c->client_rules[0].action, RULE_PASS);
	assert_int_equal(c->client_rules[0].n_from, 3);
	assert_non_null(match_client(c, "10.9.9.9"));
	assert_non_null(match_client(c, "fd12::1"));
	assert_non_null(match_client(c, "192.0.2.7"));
	assert_null(match_client(c, "192.0.2.8"));
	assert_null(match_client(c, "127.0.0.1")); /* replaced, not added */
	char desc[64];
	rules_describe(&c->client_rules[0], desc, sizeof(desc));
	assert_string_equal(desc, "rule from --allow");

	const char *bad[] = { "10.0.0.0/8", "10.0.0.0/40" };
	assert_int_equal(conf_set_allow(c, bad, 2, err, sizeof(err)), -1);
	assert_string_equal(err, "bad address range '10.0.0.0/40' (want ADDR or ADDR/PREFIX)");
	assert_int_equal(c->client_rules[0].n_from, 3); /* unchanged */
	assert_int_equal(conf_set_allow(c, bad, 0, err, sizeof(err)), -1);

	/* More ranges than one rule holds spill into further rules. */
	char texts[40][32];
	const char *many[40];
	for (int i = 0; i < 40; i++) {
		snprintf(texts[i], sizeof(texts[i]), "10.%d.0.0/16", i);
		many[i] = texts[i];
	}
	assert_int_equal(conf_set_allow(c, many, 40, err, sizeof(err)), 0);
	assert_int_equal(c->n_client_rules, 3);
	assert_int_equal(c->client_rules[2].n_from, 40 - 2 * RULE_LIST_MAX);
	assert_non_null(match_client(c, "10.39.1.1"));
	assert_null(match_client(c, "10.40.1.1"));
	conf_unref(c);
}

static void test_refcount(void **state)
{
	struct stp_conf *c = pt_parse("request pass { to .example.com }\n");
	assert_ptr_equal(conf_ref(c), c);
	assert_int_equal(atomic_load(&c->refs), 2);
	conf_unref(c);
	assert_int_equal(atomic_load(&c->refs), 1);
	conf_unref(c); /* frees: ASan reports a leak or double free otherwise */
	conf_unref(NULL);
}

static void *ref_worker(void *arg)
{
	struct stp_conf *c = arg;
	for (int i = 0; i < 100000; i++)
		conf_unref(conf_ref(c));
	conf_unref(c); /* the reference the main thread took for us */
	return NULL;
}

static void test_refcount_threads(void **state)
{
	pthread_t t[4];
	struct stp_conf *c = conf_default();
	for (int i = 0; i < 4; i++) {
		conf_ref(c);
		assert_int_equal(pthread_create(&t[i], NULL, ref_worker, c), 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(atomic_load(&c->refs), 1);
	conf_unref(c);
}

static void test_describe(void **state)
{
	char out[1024];
	struct stp_conf *c = conf_default();
	conf_describe(c, out, sizeof(out));
	assert_string_equal(out, "config: embedded default\n"
				 "listen 127.0.0.1:1080 (default)\n"
				 "auth: none\n"
				 "workers: one per core, resolver: /etc/resolv.conf\n"
				 "log: stderr text info\n"
				 "rules: 1 client, 1 request\n");
	conf_unref(c);
	c = pt_parse("workers 2\nresolver ::1\nuser nobody\nlog { target syslog; format json; level debug }\n"
		     "auth { methods userpass; backend pam; pam-service sp }\n"
		     "listen [::1]:1 { name six; proxy-protocol on; external 192.0.2.1 }\n"
		     "client pass\nclient block\nrequest pass\n");
	conf_describe(c, out, sizeof(out));
	assert_string_equal(out, "config: t.conf\n"
				 "listen [::1]:1 (six) proxy-protocol external 192.0.2.1:0\n"
				 "auth: userpass (pam service sp)\n"
				 "workers: 2, resolver: ::1, user: nobody\n"
				 "log: syslog json debug\n"
				 "rules: 2 client, 1 request\n");
	/* Truncation keeps a terminated prefix. */
	char small[16];
	conf_describe(c, small, sizeof(small));
	assert_string_equal(small, "config: t.conf\n");
	conf_describe(c, small, 0); /* writes nothing */
	conf_unref(c);
}

static void test_rules_describe(void **state)
{
	char out[64];
	struct stp_conf *c = pt_parse("\n\nrequest block { port 25 }\n");
	rules_describe(NULL, out, sizeof(out));
	assert_string_equal(out, "default rule");
	rules_describe(&c->request_rules[0], out, sizeof(out));
	assert_string_equal(out, "rule at t.conf:3");
	rules_describe(&c->client_rules[0], out, sizeof(out)); /* from the default */
	assert_string_equal(out, "rule from embedded default");
	conf_unref(c);

	/* A long path keeps its tail in rule.file. */
	char name[300];
	memset(name, 'd', sizeof(name));
	memcpy(name + sizeof(name) - 12, "/stpd.conf", 11);
	char err[256];
	c = conf_parse_string(name, "request pass\n", 13, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(strlen(c->request_rules[0].file), sizeof(c->request_rules[0].file) - 1);
	assert_int_equal(strncmp(c->request_rules[0].file, "...", 3), 0);
	assert_non_null(strstr(c->request_rules[0].file, "d/stpd.conf"));
	conf_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_set_listeners),
		cmocka_unit_test(test_set_users_file),
		cmocka_unit_test(test_set_allow),
		cmocka_unit_test(test_refcount),
		cmocka_unit_test(test_refcount_threads),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_rules_describe),
	};
	return cmocka_run_group_tests(tests, pt_setup, NULL);
}
