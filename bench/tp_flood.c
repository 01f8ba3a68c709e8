/*
 * tp_flood.c - plain UDP and TCP load for bench/tp_bench (TRANSPARENT's
 * kernel engine against a direct routed path): no SOCKS at all, because
 * through a pinhole the client sends plain packets to BND.
 *   tp_flood udp-send SRC DST SECONDS SIZE   sendmmsg bursts for SECONDS
 *   tp_flood udp-recv BIND IDLE_MS           until IDLE_MS without a datagram
 *   tp_flood tcp-send SRC DST SECONDS        write as fast as it goes
 *   tp_flood tcp-recv BIND                   accept one, read to EOF
 * Receivers print "datagrams N bytes B seconds S" / "bytes B seconds S",
 * timed from the first to the last byte received. Addresses: IP:PORT or
 * [IPv6]:PORT.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static socklen_t parse(const char *s, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	int port = colon ? atoi(colon + 1) : 0;

	memset(ss, 0, sizeof(*ss));
	if (!colon)
		goto bad;
	if (s[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		snprintf(host, sizeof(host), "%.*s", (int)(colon - s - 2), s + 1);
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) == 1)
			return sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		snprintf(host, sizeof(host), "%.*s", (int)(colon - s), s);
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) == 1)
			return sizeof(*a);
	}
bad:
	fprintf(stderr, "bad address %s\n", s);
	exit(2);
}

static int sock(int type, const char *bindto)
{
	struct sockaddr_storage ss;
	socklen_t len = parse(bindto, &ss);
	int one = 1, fd = socket(ss.ss_family, type, 0);

	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) != 0) {
		perror(bindto);
		exit(1);
	}
	return fd;
}

static int udp_send(const char *src, const char *dst, double secs, size_t size)
{
	static char buf[65536];
	struct sockaddr_storage to;
	socklen_t tolen = parse(dst, &to);
	int fd = sock(SOCK_DGRAM, src);
	struct mmsghdr msgs[BATCH];
	struct iovec iov = { buf, size };
	double end = now() + secs;
	unsigned long long sent = 0;

	if (connect(fd, (struct sockaddr *)&to, tolen) != 0) {
		perror("connect");
		return 1;
	}
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (now() < end) {
		int n = sendmmsg(fd, msgs, BATCH, 0);

		if (n > 0)
			sent += (unsigned long long)n;
	}
	printf("sent %llu\n", sent);
	return 0;
}

static int udp_recv(const char *bindto, int idle_ms)
{
	static char bufs[BATCH][2048];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	int fd = sock(SOCK_DGRAM, bindto);
	int rcvbuf = 8 << 20;
	unsigned long long n = 0, bytes = 0;
	double first = 0, last = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };

		if (poll(&p, 1, n ? idle_ms : 30000) <= 0)
			break;
		memset(msgs, 0, sizeof(msgs));
		for (int i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ bufs[i], sizeof(bufs[i]) };
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		int got = recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);

		if (got <= 0)
			continue;
		if (n == 0)
			first = now();
		last = now();
		n += (unsigned long long)got;
		for (int i = 0; i < got; i++)
			bytes += msgs[i].msg_len;
	}
	printf("datagrams %llu bytes %llu seconds %.4f\n", n, bytes, last - first);
	return 0;
}

static int tcp_send(const char *src, const char *dst, double secs)
{
	static char buf[1 << 16];
	struct sockaddr_storage to;
	socklen_t tolen = parse(dst, &to);
	int fd = sock(SOCK_STREAM, src);
	double end = now() + secs;

	if (connect(fd, (struct sockaddr *)&to, tolen) != 0) {
		perror("connect");
		return 1;
	}
	while (now() < end)
		if (write(fd, buf, sizeof(buf)) < 0)
			return 1;
	close(fd);
	return 0;
}

static int tcp_recv(const char *bindto)
{
	static char buf[1 << 16];
	int lfd = sock(SOCK_STREAM, bindto), fd;
	unsigned long long bytes = 0;
	double first = 0;
	ssize_t r;

	listen(lfd, 1);
	printf("ready\n");
	fflush(stdout);
	fd = accept(lfd, NULL, NULL);
	if (fd < 0)
		return 1;
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		if (bytes == 0)
			first = now();
		bytes += (unsigned long long)r;
	}
	printf("bytes %llu seconds %.4f\n", bytes, now() - first);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "udp-send") == 0)
		return udp_send(argv[2], argv[3], atof(argv[4]), (size_t)atoi(argv[5]));
	if (argc == 4 && strcmp(argv[1], "udp-recv") == 0)
		return udp_recv(argv[2], atoi(argv[3]));
	if (argc == 5 && strcmp(argv[1], "tcp-send") == 0)
		return tcp_send(argv[2], argv[3], atof(argv[4]));
	if (argc == 3 && strcmp(argv[1], "tcp-recv") == 0)
		return tcp_recv(argv[2]);
	fprintf(stderr, "usage: see the comment at the top of tp_flood.c\n");
	return 2;
}
