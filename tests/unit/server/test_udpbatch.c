/*
 * test_udpbatch.c - udpbatch.c on real loopback UDP sockets: what goes in
 * one recvmmsg comes out of sendmmsg (with GSO runs) as the same separate
 * datagrams, sizes and order kept, counts and bytes right.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/udpbatch.h"

static int bound_socket(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	int big = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
	return fd;
}

/* Fills datagram i of `size` bytes with a pattern naming i. */
static void pattern(uint8_t *p, size_t size, unsigned i)
{
	for (size_t k = 0; k < size; k++)
		p[k] = (uint8_t)(i * 31 + k);
}

static void expect_datagram(int fd, size_t size, unsigned i)
{
	static uint8_t got[70000], want[70000];
	struct pollfd pfd = { fd, POLLIN, 0 };
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	ssize_t n = recv(fd, got, sizeof(got), MSG_DONTWAIT);
	assert_int_equal(n, (ssize_t)size);
	pattern(want, size, i);
	assert_memory_equal(got, want, size);
}

static void assert_nothing_more(int fd)
{
	uint8_t b[16];
	struct pollfd pfd = { fd, POLLIN, 0 };
	assert_int_equal(poll(&pfd, 1, 100), 0);
	assert_true(recv(fd, b, sizeof(b), MSG_DONTWAIT) < 0 && errno == EAGAIN);
}

/* Sizes chosen to make GSO runs, run breaks (a longer one, another
 * address), short last segments and singles too large for GSO. */
static const size_t sizes[] = { 512, 512, 512, 512, 100, 512, 512, 1,    1400, 1400,
				1399, 1401, 1401, 0,   700, 700, 60000, 700, 300,  300,
				0,    300, 1 };
#define N_SIZES (sizeof(sizes) / sizeof(sizes[0]))

static void test_send_keeps_datagrams(void **state)
{
	(void)state;
	struct sockaddr_in a1, a2, from;
	int r1 = bound_socket(&a1), r2 = bound_socket(&a2), tx = bound_socket(&from);
	struct udp_batch *b = udp_batch_new();
	static uint8_t data[N_SIZES][60000];
	uint64_t sent = 0, bytes = 0, want_bytes = 0;
	assert_non_null(b);

	/* Sends in queue-sized rounds: UDP_BATCH at most per call. */
	for (unsigned i = 0; i < N_SIZES;) {
		unsigned start = i;
		for (; i < N_SIZES && i - start < UDP_BATCH; i++) {
			/* datagram 5 goes elsewhere: it breaks a run */
			const struct sockaddr *to = (struct sockaddr *)(i == 5 ? &a2 : &a1);
			pattern(data[i], sizes[i], i);
			size_t hdr = sizes[i] >= 4 ? 4 : 0;
			udp_batch_queue(b, data[i], sizes[i], hdr, to);
			want_bytes += sizes[i] - hdr;
		}
		assert_int_equal(udp_batch_send(b, tx, &sent, &bytes), 0);
		assert_int_equal(b->n_out, 0);
	}
	assert_int_equal(sent, N_SIZES);
	assert_int_equal(bytes, want_bytes);
	assert_int_equal(b->gso_pause, 0); /* the runs went out as GSO */
	for (unsigned i = 0; i < N_SIZES; i++)
		expect_datagram(i == 5 ? r2 : r1, sizes[i], i);
	assert_nothing_more(r1);
	assert_nothing_more(r2);
	udp_batch_free(b);
	close(r1);
	close(r2);
	close(tx);
}

static void test_connected_socket_and_recv(void **state)
{
	(void)state;
	struct sockaddr_in ra, ta;
	int rx = bound_socket(&ra), tx = bound_socket(&ta);
	struct udp_batch *b = udp_batch_new();
	static uint8_t data[UDP_BATCH + 4][512];
	uint64_t sent = 0, bytes = 0;
	assert_int_equal(connect(tx, (struct sockaddr *)&ra, sizeof(ra)), 0);

	for (unsigned i = 0; i < UDP_BATCH; i++) {
		pattern(data[i], sizeof(data[i]), i);
		udp_batch_queue(b, data[i], sizeof(data[i]), 0, NULL);
	}
	assert_int_equal(udp_batch_send(b, tx, &sent, &bytes), 0);
	assert_int_equal(sent, UDP_BATCH);
	assert_int_equal(bytes, UDP_BATCH * 512);

	/* recvmmsg side: every datagram in its own slot, sources filled. */
	unsigned got = 0;
	while (got < UDP_BATCH) {
		struct pollfd pfd = { rx, POLLIN, 0 };
		assert_int_equal(poll(&pfd, 1, 2000), 1);
		unsigned n = udp_batch_recv(b, rx);
		assert_true(n > 0);
		for (unsigned i = 0; i < n; i++, got++) {
			uint8_t want[512];
			const struct sockaddr_in *src = (const struct sockaddr_in *)&b->from[i];
			pattern(want, sizeof(want), got);
			assert_int_equal(b->in[i].msg_len, 512);
			assert_memory_equal(udp_batch_data(b, i), want, sizeof(want));
			assert_int_equal(src->sin_port, ta.sin_port);
		}
	}
	assert_int_equal(udp_batch_recv(b, rx), 0);
	udp_batch_free(b);
	close(rx);
	close(tx);
}

/* A datagram the kernel refuses is dropped and counted; the rest go. */
static void test_refused_datagram_dropped(void **state)
{
	(void)state;
	struct sockaddr_in ra, ta, bad;
	int rx = bound_socket(&ra), tx = bound_socket(&ta);
	struct udp_batch *b = udp_batch_new();
	static uint8_t data[3][100];
	uint64_t sent = 0, bytes = 0;

	memset(&bad, 0, sizeof(bad));
	bad.sin_family = AF_INET; /* port 0: EINVAL */
	bad.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (unsigned i = 0; i < 3; i++)
		pattern(data[i], sizeof(data[i]), i);
	udp_batch_queue(b, data[0], 100, 0, (struct sockaddr *)&ra);
	udp_batch_queue(b, data[1], 100, 0, (struct sockaddr *)&bad);
	udp_batch_queue(b, data[2], 100, 0, (struct sockaddr *)&ra);
	/* a refused run of two: both dropped, GSO not blamed */
	udp_batch_queue(b, data[1], 100, 0, (struct sockaddr *)&bad);
	udp_batch_queue(b, data[1], 100, 0, (struct sockaddr *)&bad);
	assert_int_equal(udp_batch_send(b, tx, &sent, &bytes), 3);
	assert_int_equal(sent, 2);
	assert_int_equal(bytes, 200);
	assert_int_equal(b->gso_pause, 0);
	expect_datagram(rx, 100, 0);
	expect_datagram(rx, 100, 2);
	assert_nothing_more(rx);
	udp_batch_free(b);
	close(rx);
	close(tx);
}

/* A socket that cannot do GSO (SO_NO_CHECK: the kernel refuses GSO
 * without UDP checksums): the run goes out one by one, nothing is lost,
 * and GSO rests for a while before it is tried again. */
static void test_gso_refused_falls_back(void **state)
{
	(void)state;
	struct sockaddr_in ra, ta;
	int rx = bound_socket(&ra), tx = bound_socket(&ta), one = 1;
	struct udp_batch *b = udp_batch_new();
	static uint8_t data[4][300];
	uint64_t sent = 0, bytes = 0;

	assert_int_equal(setsockopt(tx, SOL_SOCKET, SO_NO_CHECK, &one, sizeof(one)), 0);
	for (unsigned round = 0; round < 2; round++) {
		for (unsigned i = 0; i < 4; i++) {
			pattern(data[i], sizeof(data[i]), i);
			udp_batch_queue(b, data[i], sizeof(data[i]), 0, (struct sockaddr *)&ra);
		}
		assert_int_equal(udp_batch_send(b, tx, &sent, &bytes), 0);
		assert_true(b->gso_pause > 0); /* resting, then counting down */
		for (unsigned i = 0; i < 4; i++)
			expect_datagram(rx, sizeof(data[i]), i);
		assert_nothing_more(rx);
	}
	assert_int_equal(sent, 8);
	assert_int_equal(bytes, 8 * 300);
	udp_batch_free(b);
	close(rx);
	close(tx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_send_keeps_datagrams),
		cmocka_unit_test(test_connected_socket_and_recv),
		cmocka_unit_test(test_refused_datagram_dropped),
		cmocka_unit_test(test_gso_refused_falls_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
