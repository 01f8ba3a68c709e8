/*
 * mux_drive - drives libstp's multiplexing (stp_mux_*) for
 * tests/integration/test_mux.py:
 *   mux_drive URL HOST ECHO_PORT FLOOD_PORT N
 * opens one multiplexed connection, one stream to FLOOD_PORT whose socket
 * is never read (stalled), then N echo streams at once, each writing
 * "hello I", half-closing and reading the echo to its end. Prints
 * "ok I" per echo stream, "stalled open" if the stalled stream is still
 * usable at the end, and exits 0 when all N echoed. With FLOOD_PORT 0 no
 * stalled stream. "limit K": also opens K more streams with a short
 * timeout and prints the errors (for max-streams).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stp/stp.h"

static struct stp_mux *mux;
static const char *host;
static uint16_t echo_port;
static int ok_count;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void *echo_one(void *arg)
{
	long i = (long)arg;
	enum stp_err err;
	int fd = stp_mux_connect(mux, host, echo_port, 20000, &err);
	if (fd < 0) {
		printf("fail %ld %s\n", i, stp_strerror(err));
		return NULL;
	}
	char msg[32], got[64];
	int n = snprintf(msg, sizeof(msg), "hello %ld", i);
	if (write(fd, msg, (size_t)n) != n)
		printf("fail %ld write\n", i);
	shutdown(fd, SHUT_WR);
	size_t len = 0;
	ssize_t r;
	while (len < sizeof(got) && (r = read(fd, got + len, sizeof(got) - len)) > 0)
		len += (size_t)r;
	close(fd);
	pthread_mutex_lock(&mu);
	if (len == (size_t)n && memcmp(got, msg, len) == 0) {
		printf("ok %ld\n", i);
		ok_count++;
	} else {
		printf("fail %ld got %zu bytes\n", i, len);
	}
	fflush(stdout);
	pthread_mutex_unlock(&mu);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 6)
		return 2;
	struct stp_proxy p;
	enum stp_err err;
	if (stp_proxy_parse(&p, argv[1], &err) < 0)
		return 2;
	host = argv[2];
	echo_port = (uint16_t)atoi(argv[3]);
	int flood = atoi(argv[4]);
	long n = atol(argv[5]);
	mux = stp_mux_open(&p, 10000, &err);
	if (!mux) {
		printf("open failed: %s\n", stp_strerror(err));
		return 1;
	}
	int stalled = -1;
	if (flood) {
		stalled = stp_mux_connect(mux, host, (uint16_t)flood, 10000, &err);
		if (stalled < 0) {
			printf("stalled connect failed: %s\n", stp_strerror(err));
			return 1;
		}
	}
	if (argc > 7 && strcmp(argv[6], "limit") == 0) {
		/* N streams held open, then K more that cannot start */
		for (long i = 0; i < n; i++) {
			int fd = stp_mux_connect(mux, host, echo_port, 10000, &err);
			printf(fd >= 0 ? "open %ld\n" : "fail %ld\n", i);
		}
		for (long i = 0; i < atol(argv[7]); i++) {
			int fd = stp_mux_connect(mux, host, echo_port, 1500, &err);
			printf(fd >= 0 ? "extra open %ld\n" : "extra fail %ld %s\n", i,
			       fd >= 0 ? "" : stp_strerror(err));
		}
		fflush(stdout);
		stp_mux_close(mux);
		return 0;
	}
	pthread_t th[1024];
	for (long i = 0; i < n && i < 1024; i++)
		pthread_create(&th[i], NULL, echo_one, (void *)i);
	for (long i = 0; i < n && i < 1024; i++)
		pthread_join(th[i], NULL);
	if (stalled >= 0) {
		/* still alive: the stream delivers what was held back */
		char buf[4096];
		ssize_t r = read(stalled, buf, sizeof(buf));
		printf(r > 0 ? "stalled open\n" : "stalled dead\n");
		close(stalled);
	}
	fflush(stdout);
	stp_mux_close(mux);
	return ok_count == n ? 0 : 1;
}
