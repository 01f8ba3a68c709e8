/*
 * test_broker.c - the core's broker (src/server/broker.c), in every build:
 * the serving side of a worker's channel on a socketpair (broker_serve_one)
 * under a configuration without compartments. A worker gets nothing from
 * it but a socket bound to a listen address of the file (LISTEN): no file
 * (OPEN), no other address, no reload, no socket in a compartment none
 * configures; garbage is answered BAD; no refusal carries a descriptor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "ext/ext_conf.h"
#include "policy/conf.h"
#include "proto/broker.h"
#include "server/broker.h"
#include "broker_chan.h"

/* A loopback port nothing listens on now (the kernel's pick). */
static unsigned free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	close(s);
	return ntohs(a.sin_port);
}

/* LISTEN for 127.0.0.1:port in place ("" = stpd's own namespace). */
static int ask_listen(int fd, unsigned port, const char *place, int *got)
{
	struct broker_request rq = { .op = BROKER_OP_LISTEN, .family = BROKER_FAMILY_INET,
				     .port = (uint16_t)port, .addr = { 127, 0, 0, 1 } };
	uint8_t q[BROKER_REQUEST_MAX];
	snprintf(rq.out, sizeof(rq.out), "%s", place);
	size_t n = broker_request_write(q, sizeof(q), &rq);
	assert_true(n > 0);
	return broker_chan_ask(fd, q, n, got);
}

static void test_worker_channel_gets_nothing(void **state)
{
	unsigned port = free_port();
	char text[256], err[512] = "";
	snprintf(text, sizeof(text),
		 "listen 127.0.0.1:%u\n"
		 "auth { methods userpass; backend file; users-file /etc/passwd }\n"
		 "client pass\nrequest pass\n", port);
	struct stp_conf *c = conf_parse_string("t.conf", text, strlen(text), err, sizeof(err));
	struct broker_chan ch;
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int got, listening = 1;

	(void)state;
	if (!c)
		fail_msg("%s", err);
	broker_chan_open(&ch, c);
	int fd = ch.fd;

	/* A file the configuration names: still not for a worker (the main
	 * thread's channel only). */
	assert_int_equal(broker_chan_ask(fd, "\x01\x03\x00\x0b/etc/passwd", 15, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	/* A listen address: for any worker (each opens its own socket), bound
	 * there and not listening; only where the file listens. */
	assert_int_equal(ask_listen(fd, port, "", &got), BROKER_ST_OK);
	assert_true(got >= 0);
	assert_int_equal(getsockname(got, (struct sockaddr *)&a, &len), 0);
	assert_int_equal(ntohs(a.sin_port), port);
	assert_int_equal(a.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	len = sizeof(listening);
	assert_int_equal(getsockopt(got, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len), 0);
	assert_int_equal(listening, 0);
	close(got);
	assert_int_equal(ask_listen(fd, port == 65535 ? 1 : port + 1, "", &got), BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	/* The same address in a compartment the file has not. */
	assert_int_equal(ask_listen(fd, port, "c1", &got), BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	/* Without PLACE.LEN (cut short). */
	assert_int_equal(broker_chan_ask(fd, "\x01\x04\x04\x00\x51\x7f\x00\x00\x01", 9, &got),
			 BROKER_ST_BAD);
	assert_int_equal(got, -1);
	assert_int_equal(broker_chan_ask(fd, "\x01\x02", 2, &got), BROKER_ST_FAILED);
	/* No compartment is configured: no socket anywhere. */
	assert_int_equal(broker_chan_ask_socket(fd, "host", "elsewhere", BROKER_TYPE_STREAM, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	/* Garbage, a cut request, trailing bytes. */
	assert_int_equal(broker_chan_ask(fd, "\x07", 1, &got), BROKER_ST_BAD);
	assert_int_equal(broker_chan_ask(fd, "\x01\x03\x00\x0b/etc/pa", 11, &got), BROKER_ST_BAD);
	assert_int_equal(broker_chan_ask(fd, "\x01\x02\x00", 3, &got), BROKER_ST_BAD);
	assert_int_equal(got, -1);
	/* The channel's end ends the broker's side. */
	broker_chan_close(&ch);
	conf_unref(c);
}

static int setup(void **state)
{
	char err[256];
	(void)state;
	return ext_conf_register(err, sizeof(err));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker_channel_gets_nothing),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
