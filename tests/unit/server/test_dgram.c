/*
 * test_dgram.c - the datagram relay core (src/server/dgram.c) on real
 * loopback UDP sockets and a libev loop, driven as TRANSPARENT will drive
 * it: payloads without any header, every client datagram to one fixed
 * target. Checked: payloads both ways byte for byte, the pin (a fixed
 * one, a learned one, other source ports and addresses dropped), rules in
 * both directions, the counters, the idle callback, and a one-byte framing
 * to show that decap's offset and encap's headroom are honoured.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/dgram.h"

#define WAIT_MS 5000 /* generous: the machine is shared */

/* What the ops see, and what they are told to do. */
struct fixture {
	struct ev_loop *loop;
	struct udp_batch *batch;
	struct sockaddr_in target;     /* where every client datagram goes */
	bool framed;                   /* 1-byte header each way instead of none */
	bool by_name;                  /* decap names the target instead */
	struct sockaddr_in refuse_from; /* allow(DOWN) refuses this sender */
	unsigned allow_calls[2], log_flags;
	unsigned idle_calls;
};

static int naked_decap(void *ctx, const uint8_t *p, size_t len, struct dgram_dst *dst,
		       size_t *hdrlen)
{
	struct fixture *f = ctx;
	if (f->framed && (len < 1 || p[0] != 'C'))
		return -1;
	*hdrlen = f->framed ? 1 : 0;
	if (f->by_name) {
		dst->name = "target.invalid";
		dst->port = ntohs(f->target.sin_port);
		return 0;
	}
	memcpy(&dst->addr, &f->target, sizeof(f->target));
	return 0;
}

static size_t naked_encap(void *ctx, const struct sockaddr *from, uint8_t *payload, size_t len)
{
	struct fixture *f = ctx;
	(void)from;
	(void)len;
	if (!f->framed)
		return 0;
	payload[-1] = 'S';
	return 1;
}

static bool naked_allow(void *ctx, enum dgram_dir dir, const struct sockaddr *addr,
			const char *name, bool log)
{
	struct fixture *f = ctx;
	const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
	(void)name;
	f->allow_calls[dir]++;
	if (dir == DGRAM_UP)
		return a->sin_port == f->target.sin_port;
	if (a->sin_port != f->refuse_from.sin_port)
		return true;
	f->log_flags += log;
	return false;
}

static void naked_idle(void *ctx)
{
	struct fixture *f = ctx;
	f->idle_calls++;
	ev_break(f->loop, EVBREAK_ALL);
}

static const struct dgram_ops naked_ops = {
	.decap = naked_decap,
	.encap = naked_encap,
	.allow = naked_allow,
	.idle = naked_idle,
};

static int bound_socket(const char *ip, struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, ip, &addr->sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof(f));
	f.loop = ev_loop_new(EVFLAG_AUTO);
	f.batch = udp_batch_new();
	assert_non_null(f.loop);
	assert_non_null(f.batch);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	udp_batch_free(f->batch);
	ev_loop_destroy(f->loop);
	return 0;
}

/* A relay on 127.0.0.1 for a client pinned to `pin` (its port fixed or
 * not); *bound is the client-facing address. */
static struct dgram_relay *relay_for(struct fixture *f, const struct sockaddr_in *pin,
				     bool pin_port, struct sockaddr_in *bound)
{
	struct dgram_params p = {
		.loop = f->loop,
		.batch = f->batch,
		.ops = &naked_ops,
		.ctx = f,
		.pin_port = pin_port,
	};
	struct sockaddr_storage b;
	struct sockaddr_in *local = (struct sockaddr_in *)&p.local;
	local->sin_family = AF_INET;
	local->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memcpy(&p.pin, pin, sizeof(*pin));
	struct dgram_relay *r = dgram_relay_new(&p, &b);
	assert_non_null(r);
	assert_int_equal(b.ss_family, AF_INET);
	memcpy(bound, &b, sizeof(*bound));
	assert_true(bound->sin_port != 0);
	dgram_relay_start(r);
	return r;
}

static void send_to(int fd, const void *p, size_t n, const struct sockaddr_in *to)
{
	assert_int_equal(sendto(fd, p, n, 0, (const struct sockaddr *)to, sizeof(*to)),
			 (ssize_t)n);
}

/* Runs the loop until fd has a datagram (true) or wait_ms pass (false). */
static bool pump_until_readable(struct fixture *f, int fd, int wait_ms)
{
	for (int waited = 0; waited < wait_ms; waited += 5) {
		ev_run(f->loop, EVRUN_NOWAIT);
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (poll(&pfd, 1, 5) == 1)
			return true;
	}
	return false;
}

/* The next datagram on fd (the loop runs meanwhile): its bytes and sender. */
static size_t expect_recv(struct fixture *f, int fd, uint8_t *buf, size_t cap,
			  struct sockaddr_in *from)
{
	socklen_t fl = sizeof(*from);
	assert_true(pump_until_readable(f, fd, WAIT_MS));
	ssize_t n = recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)from, &fl);
	assert_true(n >= 0);
	return (size_t)n;
}

/* Nothing arrives on fd while the loop runs for a while. */
static void expect_nothing(struct fixture *f, int fd)
{
	assert_false(pump_until_readable(f, fd, 300));
}

static void expect_payload(struct fixture *f, int fd, const char *want,
			   struct sockaddr_in *from)
{
	uint8_t buf[2048];
	size_t n = expect_recv(f, fd, buf, sizeof(buf), from);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
}

/* Naked payloads both ways through a fixed pin; other source ports (the
 * kernel drops them once the socket is connected) and another address
 * never reach the target; a sender the rules refuse never reaches the
 * client; counters add up. */
static void test_naked_fixed_pin(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in ca, oa, xa, sa, bound, from, relay_out;
	int c = bound_socket("127.0.0.1", &ca), other = bound_socket("127.0.0.1", &oa);
	int stranger = bound_socket("127.0.0.1", &xa), t = bound_socket("127.0.0.1", &f->target);
	int elsewhere = bound_socket("127.0.0.2", &sa);
	f->refuse_from = xa;
	struct dgram_relay *r = relay_for(f, &ca, true, &bound);

	send_to(other, "from another port", 17, &bound);
	send_to(elsewhere, "from another address", 20, &bound);
	send_to(c, "ping", 4, &bound);
	expect_payload(f, t, "ping", &relay_out);
	expect_nothing(f, t);

	send_to(t, "pong!", 5, &relay_out);
	expect_payload(f, c, "pong!", &from);
	assert_int_equal(from.sin_port, bound.sin_port); /* replies come from the bound port */

	send_to(stranger, "not the target", 14, &relay_out);
	send_to(stranger, "again", 5, &relay_out);
	expect_nothing(f, c);

	const struct dgram_counts *n = dgram_relay_counts(r);
	assert_int_equal(n->up, 1);
	assert_int_equal(n->up_bytes, 4);
	assert_int_equal(n->down, 1);
	assert_int_equal(n->down_bytes, 5);
	assert_int_equal(n->denied, 2);
	assert_int_equal(f->log_flags, 1); /* only the first denial asks to be logged */
	assert_int_equal(n->send_err + n->unresolved + n->early, 0);
	assert_int_equal(f->allow_calls[DGRAM_UP], 1);
	assert_int_equal(f->allow_calls[DGRAM_DOWN], 3);
	dgram_relay_free(r);
	close(c);
	close(other);
	close(stranger);
	close(t);
	close(elsewhere);
}

/* A learned pin: the first datagram from the pinned address fixes the
 * port. A datagram from another address before it, and one from another
 * port right after it (same batch, before the kernel filter applies),
 * are counted foreign and not relayed. Many datagrams go in batches, in
 * order and intact. */
static void test_learned_pin_and_batches(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in ca, oa, sa, bound, from, relay_out;
	struct sockaddr_in pin;
	int c = bound_socket("127.0.0.1", &ca), other = bound_socket("127.0.0.1", &oa);
	int elsewhere = bound_socket("127.0.0.2", &sa), t = bound_socket("127.0.0.1", &f->target);
	pin = ca;
	pin.sin_port = 0; /* the address only */
	struct dgram_relay *r = relay_for(f, &pin, false, &bound);

	send_to(elsewhere, "x", 1, &bound);
	send_to(c, "first", 5, &bound);
	send_to(other, "y", 1, &bound);
	expect_payload(f, t, "first", &relay_out);
	expect_nothing(f, t);
	assert_int_equal(dgram_relay_counts(r)->foreign, 2);

	/* 3 batches' worth each way, equal sizes (GSO runs) and not. */
	enum { N = 3 * UDP_BATCH };
	char msg[64];
	for (unsigned i = 0; i < N; i++) {
		int len = snprintf(msg, sizeof(msg), i % 5 ? "up %04u" : "up %u long", i);
		send_to(c, msg, (size_t)len, &bound);
	}
	for (unsigned i = 0; i < N; i++) {
		snprintf(msg, sizeof(msg), i % 5 ? "up %04u" : "up %u long", i);
		expect_payload(f, t, msg, &from);
		assert_int_equal(from.sin_port, relay_out.sin_port);
	}
	for (unsigned i = 0; i < N; i++) {
		int len = snprintf(msg, sizeof(msg), "down %04u", i);
		send_to(t, msg, (size_t)len, &relay_out);
	}
	for (unsigned i = 0; i < N; i++) {
		snprintf(msg, sizeof(msg), "down %04u", i);
		expect_payload(f, c, msg, &from);
	}
	const struct dgram_counts *n = dgram_relay_counts(r);
	assert_int_equal(n->up, N + 1);
	assert_int_equal(n->down, N);
	assert_int_equal(n->down_bytes, N * 9);
	assert_int_equal(n->foreign, 2);
	assert_int_equal(n->denied + n->send_err, 0);
	dgram_relay_free(r);
	close(c);
	close(other);
	close(elsewhere);
	close(t);
}

/* A framing: decap skips its header (and drops what is not framed),
 * encap writes one in the headroom; only payload bytes are counted. */
static void test_framed(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in ca, bound, from, relay_out;
	int c = bound_socket("127.0.0.1", &ca), t = bound_socket("127.0.0.1", &f->target);
	f->framed = true;
	struct dgram_relay *r = relay_for(f, &ca, true, &bound);

	send_to(c, "junk", 4, &bound);
	send_to(c, "Chello", 6, &bound);
	expect_payload(f, t, "hello", &relay_out);
	send_to(t, "world", 5, &relay_out);
	expect_payload(f, c, "Sworld", &from);
	const struct dgram_counts *n = dgram_relay_counts(r);
	assert_int_equal(n->up, 1);
	assert_int_equal(n->up_bytes, 5);
	assert_int_equal(n->down, 1);
	assert_int_equal(n->down_bytes, 5);
	dgram_relay_free(r);
	close(c);
	close(t);
}

/* A destination by name with no resolver: dropped and counted. */
static void test_name_without_resolver(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in ca, bound;
	int c = bound_socket("127.0.0.1", &ca), t = bound_socket("127.0.0.1", &f->target);
	f->by_name = true;
	struct dgram_relay *r = relay_for(f, &ca, true, &bound);

	send_to(c, "to a name", 9, &bound);
	expect_nothing(f, t);
	assert_int_equal(dgram_relay_counts(r)->unresolved, 1);
	assert_int_equal(dgram_relay_counts(r)->up, 0);
	dgram_relay_free(r);
	close(c);
	close(t);
}

/* With no datagram, the idle callback comes after idle_secs. */
static void test_idle(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in ca, bound;
	int c = bound_socket("127.0.0.1", &ca);
	struct dgram_params p = {
		.loop = f->loop, .batch = f->batch, .ops = &naked_ops, .ctx = f, .idle_secs = 1,
	};
	struct sockaddr_storage b;
	struct sockaddr_in *local = (struct sockaddr_in *)&p.local;
	local->sin_family = AF_INET;
	local->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memcpy(&p.pin, &ca, sizeof(ca));
	struct dgram_relay *r = dgram_relay_new(&p, &b);
	assert_non_null(r);
	(void)bound;
	dgram_relay_start(r);
	ev_tstamp t0 = ev_time();
	ev_run(f->loop, 0); /* until naked_idle breaks it */
	assert_int_equal(f->idle_calls, 1);
	assert_true(ev_time() - t0 >= 0.9);
	dgram_relay_free(r);
	close(c);
}

/* A user-made target socket (a UDP bind's public port): the relay reads it
 * from the start, so a peer that was never sent to reaches the client, and
 * datagrams to the target leave from that socket's port; freeing the relay
 * closes it. */
static void test_user_target_socket(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in ca, pub, bound, from;
	int c = bound_socket("127.0.0.1", &ca), t = bound_socket("127.0.0.1", &f->target);
	int mine = bound_socket("127.0.0.1", &pub);
	struct dgram_params p = {
		.loop = f->loop, .batch = f->batch, .ops = &naked_ops, .ctx = f,
		.pin_port = true, .has_target_fd = true, .target_fd = mine,
	};
	struct sockaddr_storage b;
	struct sockaddr_in *local = (struct sockaddr_in *)&p.local;
	local->sin_family = AF_INET;
	local->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memcpy(&p.pin, &ca, sizeof(ca));
	struct dgram_relay *r = dgram_relay_new(&p, &b);
	assert_non_null(r);
	memcpy(&bound, &b, sizeof(bound));
	dgram_relay_start(r);

	send_to(t, "unasked", 7, &pub); /* the peer speaks first */
	expect_payload(f, c, "unasked", &from);
	assert_int_equal(from.sin_port, bound.sin_port);
	send_to(c, "answer", 6, &bound);
	expect_payload(f, t, "answer", &from);
	assert_int_equal(from.sin_port, pub.sin_port); /* from the user's socket */
	dgram_relay_free(r);
	assert_int_equal(fcntl(mine, F_GETFD), -1); /* closed with the relay */
	close(c);
	close(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_naked_fixed_pin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_learned_pin_and_batches, setup, teardown),
		cmocka_unit_test_setup_teardown(test_framed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_without_resolver, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_target_socket, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
