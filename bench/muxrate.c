/*
 * muxrate - streams per second at N clients (bench/NOTES.md
 * "Multiplexing"): each client thread loops open, send one byte, read the
 * echo, close, for SECONDS, against a built-in echo target on loopback:
 *   muxrate direct|socks|mux|muxN|auto PROXY-URL CLIENTS SECONDS
 * direct: a TCP connection to the target; socks: stp_connect with
 * STP_MUX=0 (an RFC 1928 connection per stream, pipelined after the first
 * two as libstp does); mux: one stp_mux for all clients, one stream per
 * cycle; muxN (mux2, mux4...): N stp_mux, client i uses number i % N;
 * auto: stp_connect as applications get it (automatic multiplexing,
 * src/client/muxauto.c). Prints "MODE CLIENTS cycles/s".
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "stp/stp.h"

static int lfd;
static uint16_t tport;
static const char *mode;
static struct stp_proxy proxy;
static struct stp_mux *mux[16];
static int nmux;
static atomic_long cycles;
static atomic_bool stop;

static void *echo_srv(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		if (c < 0)
			continue;
		char b;
		if (read(c, &b, 1) == 1)
			(void)!write(c, &b, 1);
		close(c);
	}
	return NULL;
}

static int open_direct(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(tport) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *client(void *arg)
{
	struct stp_mux *m = nmux ? mux[(size_t)arg % (size_t)nmux] : NULL;
	enum stp_err err;
	while (!atomic_load(&stop)) {
		int fd = strcmp(mode, "direct") == 0 ? open_direct()
			 : m == NULL ? stp_connect(&proxy, "127.0.0.1", tport, 10000, &err)
				     : stp_mux_connect(m, "127.0.0.1", tport, 10000, &err);
		if (fd < 0)
			continue;
		char b = 'x';
		if (write(fd, &b, 1) == 1 && read(fd, &b, 1) == 1)
			atomic_fetch_add(&cycles, 1);
		close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	mode = argv[1];
	enum stp_err err;
	if (stp_proxy_parse(&proxy, argv[2], &err) < 0)
		return 2;
	int n = atoi(argv[3]), secs = atoi(argv[4]);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof(a);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4096) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) < 0)
		return 1;
	tport = ntohs(a.sin_port);
	pthread_t srv[8], th[1024];
	for (int i = 0; i < 8; i++)
		pthread_create(&srv[i], NULL, echo_srv, NULL);
	if (strcmp(mode, "socks") == 0)
		setenv("STP_MUX", "0", 1);
	if (strncmp(mode, "mux", 3) == 0) {
		nmux = mode[3] ? atoi(mode + 3) : 1;
		if (nmux < 1 || nmux > 16)
			return 2;
		for (int i = 0; i < nmux; i++)
			if (!(mux[i] = stp_mux_open(&proxy, 10000, &err))) {
				fprintf(stderr, "mux: %s\n", stp_strerror(err));
				return 1;
			}
	}
	for (int i = 0; i < n && i < 1024; i++)
		pthread_create(&th[i], NULL, client, (void *)(size_t)i);
	sleep((unsigned)secs);
	atomic_store(&stop, true);
	long c = atomic_load(&cycles);
	printf("%s %d %.0f\n", mode, n, (double)c / secs);
	fflush(stdout);
	_exit(0); /* clients may be mid-cycle: no joins */
}
