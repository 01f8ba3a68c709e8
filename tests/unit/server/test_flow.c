/*
 * test_flow.c - flows of a control session (src/server/flow.c): rule slots
 * held per flow, the flow's own stream relay on socketpairs, and the flow's
 * log line with its counters. The request rule matcher is tested on its own
 * (tests/unit/policy/test_rules.c); here session_match_rule is replaced by
 * one that returns the rule the test sets.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"
#include "server/dgram.h"
#include "server/ext.h"
#include "server/flow.h"
#include "server/server.h"
#include "server/session_int.h"

static const struct rule *g_rule; /* what the "rules" decide */

const struct rule *session_match_rule(const struct session *s, uint32_t rule_cmd,
				      const struct sockaddr *dst_addr, const char *dst_name,
				      uint16_t dst_port)
{
	return g_rule;
}

/* sessionlog.c asks the registry for modules' fields: none here. */
size_t ext_log_fields(const struct session *s, const struct rule *r, bool deny,
		      struct ext_log_field *f, size_t max)
{
	return 0;
}

/* flow.c names the session in its protection-failure line. */
const char *session_tag(const struct session *s, char *buf, size_t cap)
{
	snprintf(buf, cap, "session test");
	return buf;
}

struct fixture {
	struct worker w;
	struct conf_listener l;
	struct session s;
	FILE *log; /* stderr, where log lines go */
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	fx->w.loop = ev_loop_new(EVFLAG_AUTO);
	fx->w.pipes = pipepool_new(4);
	snprintf(fx->l.name, sizeof(fx->l.name), "ctl");
	fx->s.id = 42;
	fx->s.w = &fx->w;
	fx->s.listener = &fx->l;
	fx->s.conf = conf_default();
	fx->s.client.ss_family = AF_INET;
	/* TEST_FLOW_LOG=path keeps the log lines (and cmocka's messages). */
	fx->log = getenv("TEST_FLOW_LOG") ? fopen(getenv("TEST_FLOW_LOG"), "w+") : tmpfile();
	fflush(stderr);
	dup2(fileno(fx->log), 2);
	log_init("test_flow", false, false, LOG_INFO);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	flow_close_all(&fx->s, "test over");
	pipepool_free(fx->w.pipes);
	conf_unref(fx->s.conf);
	ev_loop_destroy(fx->w.loop);
	fclose(fx->log);
	free(fx);
	return 0;
}

/* Everything logged so far (read by offset: fd 2 shares the file). */
static const char *logged(struct fixture *fx)
{
	static char text[16384];
	struct stat st;
	fflush(stderr);
	assert_int_equal(fstat(fileno(fx->log), &st), 0);
	size_t n = (size_t)st.st_size < sizeof(text) - 1 ? (size_t)st.st_size : sizeof(text) - 1;
	ssize_t got = pread(fileno(fx->log), text, n, 0);
	text[got > 0 ? got : 0] = '\0';
	return text;
}

static struct socks_addr target(uint16_t port)
{
	struct socks_addr a = { .atyp = SOCKS_ATYP_IPV4, .port = port };
	a.u.v4[0] = 239;
	a.u.v4[3] = 7;
	return a;
}

static void test_slots_are_held_per_flow(void **state)
{
	struct fixture *fx = *state;
	struct rule r = { .action = RULE_PASS, .log_level = -1, .max_sessions = 2 };
	struct socks_addr t = target(5000);
	const char *why;
	g_rule = &r;

	struct flow *a = flow_open(&fx->s, RULE_CMD_CONNECT, 0x01, &t, &why);
	struct flow *b = flow_open(&fx->s, RULE_CMD_CONNECT, 0x01, &t, &why);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(atomic_load(&r.active), 2);
	assert_null(flow_open(&fx->s, RULE_CMD_CONNECT, 0x01, &t, &why));
	assert_string_equal(why, "session limit of rule reached");
	assert_non_null(strstr(logged(fx), "why=\"session limit of rule reached\""));

	flow_reply(a, 0x00);
	flow_count(a, 150, 0);
	flow_close(a, "left");
	assert_int_equal(atomic_load(&r.active), 1);
	assert_non_null(strstr(logged(fx), "flow id=42.1 client=") );
	assert_non_null(strstr(logged(fx),
			       "cmd=connect target=239.0.0.7:5000 up=150 down=0 "));
	assert_non_null(strstr(logged(fx), "rep=\"succeeded\" result=\"left\""));

	struct flow *c = flow_open(&fx->s, RULE_CMD_CONNECT, 0x01, &t, &why);
	assert_non_null(c);
	char tag[32];
	assert_string_equal(flow_tag(c, tag, sizeof(tag)), "42.3");
	/* The session closing ends the rest with its reason. */
	flow_close_all(&fx->s, "client closed");
	assert_int_equal(atomic_load(&r.active), 0);
	assert_non_null(strstr(logged(fx), "flow id=42.2 "));
	assert_non_null(strstr(logged(fx), "result=\"client closed\""));
	assert_null(fx->s.flows);

	struct rule block = { .action = RULE_BLOCK, .log_level = -1 };
	g_rule = &block;
	assert_null(flow_open(&fx->s, RULE_CMD_CONNECT, 0x01, &t, &why));
	assert_string_equal(why, "blocked");
	g_rule = NULL;
	assert_null(flow_open(&fx->s, RULE_CMD_CONNECT, 0x01, &t, &why));
}

static int done_calls;
static char done_reason[64];

static void on_done(struct flow *f, const char *reason)
{
	done_calls++;
	snprintf(done_reason, sizeof(done_reason), "%s", reason);
	flow_close(f, reason);
}

static void nonblocking_pair(int sp[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	fcntl(sp[1], F_SETFL, O_NONBLOCK);
}

/* Runs the loop until cond() or 2 s. */
static void run_until(struct fixture *fx, int (*cond)(void))
{
	for (int i = 0; i < 200 && !cond(); i++) {
		ev_run(fx->w.loop, EVRUN_NOWAIT);
		usleep(10000);
	}
}

static int relay_done(void)
{
	return done_calls > 0;
}

static void test_stream_relay_of_a_flow(void **state)
{
	struct fixture *fx = *state;
	struct rule r = { .action = RULE_PASS, .log_level = -1 };
	struct socks_addr t = target(9000);
	const char *why;
	int cl[2], tg[2];
	char buf[64];
	g_rule = &r;
	nonblocking_pair(cl);
	nonblocking_pair(tg);

	struct flow *f = flow_open(&fx->s, RULE_CMD_BIND, 0x02, &t, &why);
	assert_non_null(f);
	struct conn c;
	conn_init(&c, cl[0]);
	assert_int_equal(flow_relay_stream(f, &c, tg[0], on_done), 0);

	assert_int_equal(write(cl[1], "hello", 5), 5);
	assert_int_equal(write(tg[1], "worlds!", 7), 7);
	for (int i = 0; i < 20; i++)
		ev_run(fx->w.loop, EVRUN_NOWAIT);
	assert_int_equal(read(tg[1], buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(read(cl[1], buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "worlds!", 7);

	/* Both ends close: the relay ends, the owner's done runs once and
	 * closes the flow with the relay's counters. */
	shutdown(cl[1], SHUT_WR);
	shutdown(tg[1], SHUT_WR);
	done_calls = 0;
	run_until(fx, relay_done);
	assert_int_equal(done_calls, 1);
	assert_string_equal(done_reason, "closed");
	assert_non_null(strstr(logged(fx), "cmd=bind target=239.0.0.7:9000 up=5 down=7 "));
	assert_null(fx->s.flows);
	/* The flow closed both of its sockets. */
	assert_int_equal(fcntl(cl[0], F_GETFD), -1);
	assert_int_equal(fcntl(tg[0], F_GETFD), -1);
	close(cl[1]);
	close(tg[1]);
}

static void test_closing_a_relaying_flow(void **state)
{
	struct fixture *fx = *state;
	struct rule r = { .action = RULE_PASS, .log_level = -1 };
	struct socks_addr t = target(9001);
	const char *why;
	int cl[2], tg[2];
	g_rule = &r;
	nonblocking_pair(cl);
	nonblocking_pair(tg);
	struct flow *f = flow_open(&fx->s, RULE_CMD_BIND, 0x02, &t, &why);
	struct conn c;
	conn_init(&c, cl[0]);
	assert_int_equal(flow_relay_stream(f, &c, tg[0], NULL), 0);
	assert_int_equal(write(cl[1], "abc", 3), 3);
	for (int i = 0; i < 20; i++)
		ev_run(fx->w.loop, EVRUN_NOWAIT);
	/* The session ends while the flow relays: its sockets close, its
	 * line counts what moved. */
	flow_close_all(&fx->s, "session over");
	assert_non_null(strstr(logged(fx), "target=239.0.0.7:9001 up=3 down=0 "));
	char buf[8];
	assert_int_equal(read(cl[1], buf, sizeof(buf)), 0);
	assert_int_equal(read(tg[1], buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "abc", 3);
	assert_int_equal(read(tg[1], buf, sizeof(buf)), 0);
	close(cl[1]);
	close(tg[1]);
}

/* ---- a datagram relay owned by a flow ---- */

static struct sockaddr_in dg_target;

static int dg_decap(void *ctx, const uint8_t *p, size_t len, struct dgram_dst *dst,
		    size_t *hdrlen)
{
	*hdrlen = 0;
	memcpy(&dst->addr, &dg_target, sizeof(dg_target));
	return 0;
}

static size_t dg_encap(void *ctx, const struct sockaddr *from, uint8_t *payload, size_t len)
{
	return 0;
}

static const struct dgram_ops dg_ops = { .decap = dg_decap, .encap = dg_encap };

static int udp_on_loopback(struct sockaddr_in *a)
{
	socklen_t len = sizeof(*a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)a, sizeof(*a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)a, &len), 0);
	return fd;
}

static void test_flow_owns_a_datagram_relay(void **state)
{
	struct fixture *fx = *state;
	struct rule r = { .action = RULE_PASS, .log_level = -1 };
	struct socks_addr t = target(9002);
	const char *why;
	struct sockaddr_in client_sa, bound;
	char buf[64];
	g_rule = &r;
	int tfd = udp_on_loopback(&dg_target);
	int cfd = udp_on_loopback(&client_sa);
	struct udp_batch *batch = udp_batch_new();
	struct dgram_params p = { .loop = fx->w.loop, .batch = batch, .ops = &dg_ops };
	struct sockaddr_in *local = (struct sockaddr_in *)&p.local;
	local->sin_family = AF_INET;
	local->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memcpy(&p.pin, &client_sa, sizeof(client_sa));
	p.pin_port = true;
	struct dgram_relay *dr = dgram_relay_new(&p, (struct sockaddr_storage *)&bound);
	assert_non_null(dr);

	struct flow *f = flow_open(&fx->s, RULE_CMD_CONNECT, 0x01, &t, &why);
	assert_non_null(f);
	flow_own_dgram(f, dr);
	dgram_relay_start(dr);
	assert_int_equal(sendto(cfd, "ping!", 5, 0, (struct sockaddr *)&bound, sizeof(bound)), 5);
	ssize_t n = -1;
	for (int i = 0; i < 200 && n < 0; i++) {
		ev_run(fx->w.loop, EVRUN_NOWAIT);
		n = recv(tfd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			usleep(5000);
	}
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "ping!", 5);
	/* Closing the flow frees the relay (its socket with it) and counts
	 * its payload bytes. */
	flow_close(f, "done");
	assert_non_null(strstr(logged(fx), "target=239.0.0.7:9002 up=5 down=0 "));
	assert_true(sendto(cfd, "x", 1, 0, (struct sockaddr *)&bound, sizeof(bound)) < 0 ||
		    recv(tfd, buf, sizeof(buf), MSG_DONTWAIT) < 0);
	udp_batch_free(batch);
	close(tfd);
	close(cfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_slots_are_held_per_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stream_relay_of_a_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closing_a_relaying_flow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flow_owns_a_datagram_relay, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
