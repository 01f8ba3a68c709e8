/*
 * tp_bench.c - the load behind bench/transparent: UDP datagrams/s and TCP
 * bulk through TRANSPARENT X'04', UDP ASSOCIATE, CONNECT, or straight to
 * the target (a routed path), using libstp for the SOCKS side so every
 * mode runs the same client loop.
 *
 *   tp_bench target ADDR PORT                UDP echo + TCP sink on ADDR:PORT
 *   tp_bench udp MODE PROXY-URL ADDR PORT    MODE: direct, associate, transparent
 *   tp_bench tcp MODE PROXY-URL ADDR PORT    MODE: direct, connect, transparent
 *   options (after the operands): --secs N (3), --size B (512), --window W (32)
 *
 * udp: one flow, at most W datagrams of B bytes in flight to the UDP echo;
 * a flow that hears nothing for 100 ms writes its window off as lost.
 * Prints "udp MODE: N echoes/s, loss L%". tcp: one stream of 256 KiB
 * writes for N seconds, then shutdown; the rate counts until the sink has
 * read everything (it closes after EOF). Prints "tcp MODE: X MB/s".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "stp/stp.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_sa(struct sockaddr_storage *ss, const char *addr, const char *port)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)atoi(port));
		return sizeof(*a4);
	}
	if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)atoi(port));
		return sizeof(*a6);
	}
	return -1;
}

/* ---- target ---- */

static void *tcp_sink(void *arg)
{
	static _Thread_local char buf[1 << 18];
	int c = (int)(intptr_t)arg;
	while (recv(c, buf, sizeof(buf), 0) > 0)
		;
	close(c);
	return NULL;
}

static void *udp_echo(void *arg)
{
	static char buf[65536];
	int u = (int)(intptr_t)arg;
	for (;;) {
		struct sockaddr_storage from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(u, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		if (n >= 0)
			sendto(u, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
	}
	return NULL;
}

static int run_target(const char *addr, const char *port)
{
	struct sockaddr_storage ss;
	int len = parse_sa(&ss, addr, port), one = 1;
	int t = socket(ss.ss_family, SOCK_STREAM, 0), u = socket(ss.ss_family, SOCK_DGRAM, 0);
	int big = 4 << 20;
	pthread_t th;
	setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(u, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (len < 0 || bind(t, (struct sockaddr *)&ss, (socklen_t)len) < 0 || listen(t, 64) < 0 ||
	    bind(u, (struct sockaddr *)&ss, (socklen_t)len) < 0) {
		perror("target");
		return 1;
	}
	pthread_create(&th, NULL, udp_echo, (void *)(intptr_t)u);
	fprintf(stderr, "target ready\n");
	for (;;) {
		int c = accept(t, NULL, NULL);
		if (c >= 0 && pthread_create(&th, NULL, tcp_sink, (void *)(intptr_t)c) == 0)
			pthread_detach(th);
	}
}

/* ---- UDP load ---- */

struct udp_flow {
	int fd;
	struct stp_udp *assoc;        /* associate mode */
	uint8_t hdr[STP_UDP_HDR_MAX]; /* associate: the SOCKS header of every datagram */
	size_t hlen;
};

static int run_udp(const char *mode, const struct stp_proxy *px, const char *addr, const char *port,
		   double secs, size_t size, int window)
{
	struct sockaddr_storage dst;
	int dl = parse_sa(&dst, addr, port);
	struct udp_flow f = { .fd = -1 };
	struct stp_transparent *tp = NULL;
	enum stp_err err = STP_OK;
	static uint8_t buf[65536], in[65536 + 512];
	uint64_t sent = 0, got = 0;
	int inflight = 0;

	if (dl < 0)
		return 2;
	if (strcmp(mode, "direct") == 0) {
		f.fd = socket(dst.ss_family, SOCK_DGRAM, 0);
		if (connect(f.fd, (struct sockaddr *)&dst, (socklen_t)dl) < 0)
			f.fd = -1;
	} else if (strcmp(mode, "associate") == 0) {
		f.assoc = stp_udp_open(px, 5000, &err);
		if (f.assoc) {
			f.fd = stp_udp_fd(f.assoc);
			f.hlen = stp_udp_header(f.hdr, sizeof(f.hdr), NULL, 0,
						(struct sockaddr *)&dst);
		}
	} else {
		tp = stp_transparent_open(px, STP_PTCL_UDP, NULL, 0, (struct sockaddr *)&dst, NULL,
					  5000, &err);
		if (tp)
			f.fd = stp_transparent_fd(tp);
	}
	if (f.fd < 0) {
		fprintf(stderr, "udp %s: %s\n", mode, stp_strerror(err));
		return 1;
	}
	memset(buf, 'x', size);
	double t0 = now(), end = t0 + secs, last_rx = t0;
	while (now() < end) {
		while (inflight < window) {
			if (f.hlen) {
				/* header + payload in one datagram */
				memcpy(in, f.hdr, f.hlen);
				memcpy(in + f.hlen, buf, size);
				if (send(f.fd, in, f.hlen + size, 0) < 0)
					break;
			} else if (send(f.fd, buf, size, 0) < 0) {
				break;
			}
			sent++;
			inflight++;
		}
		struct pollfd p = { f.fd, POLLIN, 0 };
		if (poll(&p, 1, 100) <= 0) {
			if (now() - last_rx > 0.1)
				inflight = 0; /* written off as lost */
			continue;
		}
		for (;;) {
			ssize_t n = recv(f.fd, in, sizeof(in), MSG_DONTWAIT);
			if (n < 0)
				break;
			got++;
			inflight = inflight > 0 ? inflight - 1 : 0;
			last_rx = now();
		}
	}
	double el = now() - t0;
	printf("{\"kind\":\"udp\",\"mode\":\"%s\",\"per_s\":%.0f,\"loss\":%.4f}\n", mode,
	       (double)got / el, sent ? 1.0 - (double)got / (double)sent : 0.0);
	if (f.assoc)
		stp_udp_close(f.assoc);
	else if (tp)
		stp_transparent_close(tp);
	else
		close(f.fd);
	return 0;
}

/* ---- TCP load ---- */

static int run_tcp(const char *mode, const struct stp_proxy *px, const char *addr, const char *port,
		   double secs)
{
	static uint8_t buf[1 << 18];
	struct sockaddr_storage dst;
	int dl = parse_sa(&dst, addr, port), fd = -1;
	struct stp_transparent *tp = NULL;
	enum stp_err err = STP_OK;
	uint64_t bytes = 0;

	if (dl < 0)
		return 2;
	if (strcmp(mode, "direct") == 0) {
		fd = socket(dst.ss_family, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&dst, (socklen_t)dl) < 0)
			fd = -1;
	} else if (strcmp(mode, "connect") == 0) {
		fd = stp_connect_sa(px, (struct sockaddr *)&dst, 5000, &err);
	} else {
		tp = stp_transparent_open(px, STP_PTCL_TCP, NULL, 0, (struct sockaddr *)&dst, NULL,
					  5000, &err);
		if (tp)
			fd = stp_transparent_fd(tp);
	}
	if (fd < 0) {
		fprintf(stderr, "tcp %s: %s\n", mode, stp_strerror(err));
		return 1;
	}
	double t0 = now(), end = t0 + secs;
	while (now() < end) {
		ssize_t n = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (n <= 0) {
			perror("send");
			return 1;
		}
		bytes += (uint64_t)n;
	}
	shutdown(fd, SHUT_WR);
	while (recv(fd, buf, sizeof(buf), 0) > 0) /* the sink's close: all read */
		;
	double el = now() - t0;
	printf("{\"kind\":\"tcp\",\"mode\":\"%s\",\"mb_s\":%.1f}\n", mode,
	       (double)bytes / el / 1e6);
	if (tp)
		stp_transparent_close(tp);
	else
		close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	struct stp_proxy px;
	enum stp_err err;
	double secs = 3;
	size_t size = 512;
	int window = 32;

	if (argc >= 4 && strcmp(argv[1], "target") == 0)
		return run_target(argv[2], argv[3]);
	if (argc < 6) {
		fprintf(stderr, "usage: tp_bench target ADDR PORT | (udp|tcp) MODE PROXY-URL ADDR "
				"PORT [--secs N] [--size B] [--window W]\n");
		return 2;
	}
	for (int i = 6; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--secs") == 0)
			secs = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--size") == 0)
			size = (size_t)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--window") == 0)
			window = atoi(argv[i + 1]);
	}
	if (size == 0 || size > 65000)
		size = 512;
	if (stp_proxy_parse(&px, argv[3], &err) < 0) {
		fprintf(stderr, "proxy: %s\n", stp_strerror(err));
		return 2;
	}
	if (strcmp(argv[1], "udp") == 0)
		return run_udp(argv[2], &px, argv[4], argv[5], secs, size, window);
	return run_tcp(argv[2], &px, argv[4], argv[5], secs);
}
