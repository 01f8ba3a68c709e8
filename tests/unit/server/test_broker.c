/*
 * test_broker.c - the core's broker (src/server/broker.c), in every build:
 * the serving side of a worker's channel on a socketpair (broker_serve_one)
 * under a configuration without compartments. A worker gets nothing from
 * it: no file (OPEN), no bound port (LISTEN), no reload, no socket in a
 * compartment none configures; garbage is answered BAD; no reply ever
 * carries a descriptor.
 */
#include <pthread.h>
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

struct served {
	int fd;
	struct stp_conf *c;
};

static void *serve(void *arg)
{
	struct served *s = arg;
	broker_serve_one(s->fd, s->c);
	return NULL;
}

/* Sends q; the reply's status, with *got the fd passed (or -1). */
static int ask(int fd, const void *q, size_t n, int *got)
{
	uint8_t buf[16];
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
			      .msg_controllen = sizeof(cm.space) };
	*got = -1;
	assert_int_equal(send(fd, q, n, 0), (ssize_t)n);
	assert_int_equal(recvmsg(fd, &msg, 0), BROKER_REPLY_LEN);
	assert_int_equal(buf[0], BROKER_VERSION);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_type == SCM_RIGHTS)
			memcpy(got, CMSG_DATA(c), sizeof(int));
	return buf[1];
}

static void test_worker_channel_gets_nothing(void **state)
{
	static const char text[] = "listen 127.0.0.1:81\n"
				   "auth { methods userpass; backend file; users-file /etc/passwd }\n"
				   "client pass\nrequest pass\n";
	char err[512] = "";
	struct served s = { -1, conf_parse_string("t.conf", text, strlen(text), err, sizeof(err)) };
	struct broker_request rq = { .op = BROKER_OP_SOCKET, .family = BROKER_FAMILY_INET,
				     .type = BROKER_TYPE_STREAM };
	uint8_t q[BROKER_REQUEST_MAX];
	pthread_t t;
	int sv[2], got;

	(void)state;
	if (!s.c)
		fail_msg("%s", err);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	s.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, serve, &s), 0);

	/* A file and an address the configuration names: still not for a
	 * worker (the main thread's channel only). */
	assert_int_equal(ask(sv[0], "\x01\x03\x00\x0b/etc/passwd", 15, &got), BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	assert_int_equal(ask(sv[0], "\x01\x04\x04\x00\x51\x7f\x00\x00\x01", 9, &got),
			 BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	assert_int_equal(ask(sv[0], "\x01\x02", 2, &got), BROKER_ST_FAILED);
	/* No compartment is configured: no socket anywhere. */
	snprintf(rq.in, sizeof(rq.in), "host");
	snprintf(rq.out, sizeof(rq.out), "elsewhere");
	size_t n = broker_request_write(q, sizeof(q), &rq);
	assert_true(n > 0);
	assert_int_equal(ask(sv[0], q, n, &got), BROKER_ST_REFUSED);
	assert_int_equal(got, -1);
	/* Garbage, a cut request, trailing bytes. */
	assert_int_equal(ask(sv[0], "\x07", 1, &got), BROKER_ST_BAD);
	assert_int_equal(ask(sv[0], "\x01\x03\x00\x0b/etc/pa", 11, &got), BROKER_ST_BAD);
	assert_int_equal(ask(sv[0], "\x01\x02\x00", 3, &got), BROKER_ST_BAD);
	assert_int_equal(got, -1);
	/* The channel's end ends the broker's side. */
	close(sv[0]);
	pthread_join(t, NULL);
	close(sv[1]);
	conf_unref(s.c);
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
