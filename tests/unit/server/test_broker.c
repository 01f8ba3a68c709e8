/*
 * test_broker.c - the core's broker (src/server/broker.c), in every build:
 * the serving side of a worker's channel on a socketpair (broker_serve_one)
 * under a configuration without compartments. A worker gets nothing from
 * it: no file (OPEN), no bound port (LISTEN), no reload, no socket in a
 * compartment none configures; garbage is answered BAD; no reply ever
 * carries a descriptor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "ext/ext_conf.h"
#include "policy/conf.h"
#include "proto/broker.h"
#include "server/broker.h"
#include "broker_chan.h"

static void test_worker_channel_gets_nothing(void **state)
{
	static const char text[] = "listen 127.0.0.1:81\n"
				   "auth { methods userpass; backend file; users-file /etc/passwd }\n"
				   "client pass\nrequest pass\n";
	char err[512] = "";
	struct stp_conf *c = conf_parse_string("t.conf", text, strlen(text), err, sizeof(err));
	struct broker_chan ch;
	int got;

	(void)state;
	if (!c)
		fail_msg("%s", err);
	broker_chan_open(&ch, c);
	int fd = ch.fd;

	/* A file and an address the configuration names: still not for a
	 * worker (the main thread's channel only). */
	assert_int_equal(broker_chan_ask(fd, "\x01\x03\x00\x0b/etc/passwd", 15, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	assert_int_equal(broker_chan_ask(fd, "\x01\x04\x04\x00\x51\x7f\x00\x00\x01", 9, &got),
			 BROKER_ST_REFUSED);
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
