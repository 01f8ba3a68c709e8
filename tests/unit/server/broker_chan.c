/*
 * broker_chan.c - see broker_chan.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "proto/broker.h"
#include "server/broker.h"
#include "broker_chan.h"

static void *serve(void *arg)
{
	struct broker_chan *ch = arg;
	broker_serve_one(ch->peer, ch->c);
	return NULL;
}

void broker_chan_open(struct broker_chan *ch, const struct stp_conf *c)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	ch->fd = sv[0];
	ch->peer = sv[1];
	ch->c = c;
	assert_int_equal(pthread_create(&ch->t, NULL, serve, ch), 0);
}

void broker_chan_close(struct broker_chan *ch)
{
	close(ch->fd);
	pthread_join(ch->t, NULL);
	close(ch->peer);
}

int broker_chan_ask(int fd, const void *q, size_t n, int *got)
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

int broker_chan_ask_socket(int fd, const char *in, const char *out, uint8_t type, int *got)
{
	struct broker_request rq = { .op = BROKER_OP_SOCKET, .family = BROKER_FAMILY_INET,
				     .type = type };
	uint8_t q[BROKER_REQUEST_MAX];
	snprintf(rq.in, sizeof(rq.in), "%s", in);
	snprintf(rq.out, sizeof(rq.out), "%s", out);
	size_t n = broker_request_write(q, sizeof(q), &rq);
	assert_true(n > 0);
	return broker_chan_ask(fd, q, n, got);
}
