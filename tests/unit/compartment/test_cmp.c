/*
 * test_cmp.c - compartments: the config (names, netns paths, errors at
 * their lines, what a rule matches and where it sends a request), and the
 * broker's side of a channel driven over a socketpair: a request the
 * configuration allows gets a socket (SCM_RIGHTS), every other request
 * gets REFUSED or BAD and no descriptor, and RELOAD is refused on a
 * worker's channel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "ext/compartment/cmp.h"
#include "ext/compartment/cmp_conf.h"
#include "ext/ext_conf.h"
#include "server/broker.h"
#include "../server/broker_chan.h"
#include "policy/conf.h"
#include "policy/rules.h"
#include "proto/broker.h"

static int setup(void **state)
{
	char err[256];
	return ext_conf_register(err, sizeof(err));
}

static struct stp_conf *parse(const char *text, char *err, size_t errlen)
{
	err[0] = '\0';
	return conf_parse_string("t.conf", text, strlen(text), err, errlen);
}

/* Two compartments that are both this process's own namespace, so the
 * broker can enter them without privileges. */
static const char good[] =
	"compartments {\n"
	"  compartment app1 netns /proc/self/ns/net\n"
	"  compartment inside netns /proc/self/ns/net resolver 127.0.0.1:5353\n"
	"  compartment app2 netns app2\n"
	"}\n"
	"listen 127.0.0.1:1080 { compartment app1 }\n"
	"listen 127.0.0.1:1081 { name two; compartment app2 }\n"
	"client pass { from-compartment app1 app2 }\n"
	"request pass { from-compartment app1; to-compartment inside; port 80 }\n"
	"request block { to-compartment host; from-compartment app2 }\n"
	"request block\n";

static void test_conf(void **state)
{
	char err[2048];
	struct stp_conf *c = parse(good, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_string_equal(cmp_conf_find(c, "app2")->netns, "/run/netns/app2");
	assert_string_equal(cmp_conf_find(c, "inside")->resolver, "127.0.0.1:5353");
	assert_null(cmp_conf_find(c, "host"));
	assert_string_equal(cmp_listener_name(&c->listeners[0]), "app1");
	assert_string_equal(cmp_listener_name(&c->listeners[1]), "app2");
	/* Rules match the arriving compartment and name the outgoing one. */
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(80) };
	struct rule_ctx ctx = { .listener_conf = &c->listeners[0], .command = RULE_CMD_CONNECT,
				.dst_addr = (struct sockaddr *)&to, .dst_port = 80 };
	const struct rule *r = rules_match(c->request_rules, c->n_request_rules, &ctx);
	assert_non_null(r);
	assert_int_equal(r->action, RULE_PASS);
	assert_string_equal(cmp_rule_out(r, "app1"), "inside");
	ctx.listener_conf = &c->listeners[1];
	r = rules_match(c->request_rules, c->n_request_rules, &ctx);
	assert_int_equal(r->action, RULE_BLOCK);
	assert_string_equal(cmp_rule_out(NULL, "app2"), "app2"); /* no crossing by default */
	ctx.listener_conf = NULL; /* no listener: a from-compartment rule cannot match */
	r = rules_match(c->client_rules, c->n_client_rules, &ctx);
	assert_null(r);
	/* The broker's policy. */
	assert_true(cmp_conf_allows(c, "app1", "inside"));
	assert_true(cmp_conf_allows(c, "app1", "app1"));
	assert_false(cmp_conf_allows(c, "app2", "inside"));
	assert_false(cmp_conf_allows(c, "inside", "inside")); /* no listener there */
	assert_false(cmp_conf_allows(c, "app2", "host"));     /* a block rule grants nothing */
	assert_false(cmp_conf_allows(c, "app1", "nosuch"));
	conf_unref(c);
}

static void expect_error(const char *text, const char *msg)
{
	char err[2048];
	struct stp_conf *c = parse(text, err, sizeof(err));
	if (c)
		fail_msg("parsed: %s", text);
	if (!strstr(err, msg))
		fail_msg("want '%s' in:\n%s", msg, err);
}

static void test_conf_errors(void **state)
{
	expect_error("compartments { compartment a }\n", "t.conf:1:");
	expect_error("compartments { compartment a resolver 1.2.3.4 }\n",
		     "t.conf:1: compartment 'a' needs 'netns NAME|PATH'");
	expect_error("compartments { compartment host netns x }\n",
		     "t.conf:1: 'host' is stpd's own namespace");
	expect_error("compartments {\ncompartment a netns x\ncompartment a netns y\n}\n",
		     "t.conf:3: duplicate compartment 'a' (first at line 2)");
	expect_error("compartments { compartment a/b netns x }\n",
		     "t.conf:1: bad compartment name 'a/b'");
	expect_error("compartments { compartment a netns x/y }\n", "t.conf:1: bad netns 'x/y'");
	expect_error("compartments { compartment a netns x color red }\n",
		     "'color' is not a compartment setting");
	expect_error("request pass {\nto-compartment nosuch\n}\n",
		     "t.conf:2: unknown compartment 'nosuch'");
	expect_error("client pass {\nfrom-compartment x\n}\n",
		     "t.conf:2: unknown compartment 'x'");
	expect_error("client pass { to-compartment host }\n", "t.conf:1:");
	expect_error("listen 127.0.0.1:1080 { compartment nosuch }\n",
		     "unknown compartment 'nosuch'");
}

/* A namespace that is not there refuses the file where it is used (start,
 * reload, the broker's RELOAD), naming the line; the parser alone does not
 * look (a file can be checked elsewhere). */
static void test_netns_present(void **state)
{
	char err[512];
	struct stp_conf *c = parse(good, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	/* app2 is /run/netns/app2, which this test never makes. */
	assert_int_equal(cmp_conf_check_netns(c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "t.conf:4: compartment 'app2': netns /run/netns/app2: "));
	conf_unref(c);
	static const char here[] = "compartments {\n"
				   "  compartment a netns /proc/self/ns/net\n"
				   "}\n";
	c = parse(here, err, sizeof(err));
	if (!c)
		fail_msg("%s", err);
	assert_int_equal(cmp_conf_check_netns(c, err, sizeof(err)), 0);
	conf_unref(c);
}

static void test_broker(void **state)
{
	char err[2048];
	struct broker_chan ch;
	int got, type;
	socklen_t len = sizeof(type);
	struct stp_conf *c = parse(good, err, sizeof(err));

	(void)state;
	assert_non_null(c);
	broker_chan_open(&ch, c);
	int fd = ch.fd;

	/* Allowed: a socket of the kind asked for. */
	assert_int_equal(broker_chan_ask_socket(fd, "app1", "inside", BROKER_TYPE_DGRAM, &got),
			 BROKER_ST_OK);
	assert_true(got >= 0);
	assert_int_equal(getsockopt(got, SOL_SOCKET, SO_TYPE, &type, &len), 0);
	assert_int_equal(type, SOCK_DGRAM);
	close(got);
	assert_int_equal(broker_chan_ask_socket(fd, "app1", "app1", BROKER_TYPE_STREAM, &got),
			 BROKER_ST_OK);
	close(got);
	/* Whatever a worker asks, nothing the config does not allow. */
	assert_int_equal(broker_chan_ask_socket(fd, "app2", "inside", BROKER_TYPE_STREAM, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	assert_int_equal(broker_chan_ask_socket(fd, "app1", "host", BROKER_TYPE_STREAM, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	assert_int_equal(broker_chan_ask_socket(fd, "x", "nosuch", BROKER_TYPE_STREAM, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	/* Garbage, a cut message, trailing bytes: BAD, nothing passed. */
	assert_int_equal(broker_chan_ask(fd, "\x01\x01\x04", 3, &got), BROKER_ST_BAD);
	assert_int_equal(broker_chan_ask(fd, "\x07", 1, &got), BROKER_ST_BAD);
	assert_int_equal(broker_chan_ask(fd, "\x01\x02\x00", 3, &got), BROKER_ST_BAD);
	assert_int_equal(got, -1);
	/* A worker's channel may not make the broker reload, nor open a file
	 * (reloads' OPEN: the main thread's). */
	assert_int_equal(broker_chan_ask(fd, "\x01\x02", 2, &got), BROKER_ST_FAILED);
	assert_int_equal(broker_chan_ask(fd, "\x01\x03\x00\x0b/etc/shadow", 15, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	/* LISTEN binds only where the file listens: 127.0.0.1:1080 is app1's,
	 * not stpd's own namespace's nor app2's; 127.0.0.1:1082 is nobody's;
	 * the pre-compartment form (no PLACE.LEN) is cut short. */
	assert_int_equal(broker_chan_ask(fd, "\x01\x04\x04\x04\x38\x7f\x00\x00\x01", 9,
					 &got),
			 BROKER_ST_BAD);
	assert_int_equal(broker_chan_ask(fd, "\x01\x04\x04\x04\x38\x7f\x00\x00\x01\x00", 10,
					 &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(broker_chan_ask(fd, "\x01\x04\x04\x04\x38\x7f\x00\x00\x01\x04" "app2",
					 14, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(broker_chan_ask(fd, "\x01\x04\x04\x04\x3a\x7f\x00\x00\x01\x04" "app1",
					 14, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	/* 127.0.0.1:1081 is app2's: allowed, and made in app2's namespace,
	 * which does not exist here (never bound in this one). */
	assert_int_equal(broker_chan_ask(fd, "\x01\x04\x04\x04\x39\x7f\x00\x00\x01\x04" "app2",
					 14, &got),
			 BROKER_ST_FAILED);
	assert_int_equal(got, -1);
	/* The channel's end ends the broker's side. */
	broker_chan_close(&ch);
	conf_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf),
		cmocka_unit_test(test_conf_errors),
		cmocka_unit_test(test_netns_present),
		cmocka_unit_test(test_broker),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
