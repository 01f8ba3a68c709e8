/*
 * bindbench.c - binds for application servers, one run (bench/NOTES.md):
 *
 *   tcp-direct   connections/s to a local server (accept, 1 byte each way, close)
 *   tcp-listen   the same server behind ONE generic bind (LISTEN X'10'): each
 *                peer announced, taken with ACCEPT X'11' on a new connection
 *   tcp-bind     the same server with an RFC 1928 BIND per connection
 *   udp-direct   datagram round trips/s to a local echo (a window of WINDOW)
 *   udp-bind     the same echo behind a UDP bind (LISTEN X'10', KIND X'02')
 *
 * usage: bindbench PROXY_URL [SECONDS] [CLIENTS]
 * Loopback only; every mode stops after SECONDS (default 3). The run ends
 * with the comparisons as ratios: the generic bind and the UDP
 * bind against the direct path, and the generic bind against an RFC 1928
 * BIND per connection (RFC 1928 has no UDP bind to compare with).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "stp/stp.h"

#define WINDOW 32

static struct stp_proxy proxy;
static double secs = 3;
static int clients = 8;
static atomic_bool stop;
static atomic_ulong done, failed;

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One byte each way, then close: the "request" of every TCP mode. */
static int serve_one(int fd)
{
	char c;
	int ok = recv(fd, &c, 1, 0) == 1 && send(fd, &c, 1, MSG_NOSIGNAL) == 1;
	close(fd);
	return ok ? 0 : -1;
}

static int client_one(const struct sockaddr_in *to)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	char c = 'x';
	struct timeval tv = { 5, 0 };
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* Closed with a reset: no TIME_WAIT, so a run does not use up the
	 * ephemeral ports the next one needs. */
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	int ok = connect(fd, (const struct sockaddr *)to, sizeof(*to)) == 0 &&
		 send(fd, &c, 1, MSG_NOSIGNAL) == 1 && recv(fd, &c, 1, 0) == 1;
	close(fd);
	return ok ? 0 : -1;
}

/* ---- direct ---- */

static int direct_lfd;
static struct sockaddr_in direct_addr;

static void *direct_server(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		int fd = accept(direct_lfd, NULL, NULL);
		if (fd >= 0)
			serve_one(fd);
	}
	return NULL;
}

static void *tcp_clients(void *arg)
{
	const struct sockaddr_in *to = arg;
	while (!atomic_load(&stop)) {
		if (client_one(to) == 0)
			atomic_fetch_add(&done, 1);
		else
			atomic_fetch_add(&failed, 1);
	}
	return NULL;
}

/* Each mode's rate, for the ratios at the end. */
enum { M_TCP_DIRECT, M_TCP_LISTEN, M_TCP_BIND, M_UDP_DIRECT, M_UDP_BIND, M_N };
static double rate[M_N];

static double run(const char *name, void *(*server)(void *), void *sarg, int nserver,
		  void *(*client)(void *), void *carg, const char *unit)
{
	pthread_t s[64], c[64];
	atomic_store(&stop, false);
	atomic_store(&done, 0);
	atomic_store(&failed, 0);
	for (int i = 0; i < nserver; i++)
		pthread_create(&s[i], NULL, server, sarg);
	double t0 = now();
	for (int i = 0; i < clients; i++)
		pthread_create(&c[i], NULL, client, carg);
	while (now() - t0 < secs)
		usleep(10000);
	/* The count at the deadline: clients still in a request when it
	 * passes are not waited for. */
	unsigned long n = atomic_load(&done);
	double took = now() - t0;
	atomic_store(&stop, true);
	for (int i = 0; i < clients; i++)
		pthread_join(c[i], NULL);
	printf("%-12s %10.0f %s  (%lu in %.2f s, %lu failed)\n", name, (double)n / took, unit, n,
	       took, atomic_load(&failed));
	fflush(stdout);
	/* servers blocked in accept/next are left to the process's exit */
	(void)s;
	return (double)n / took;
}

static void ratio(const char *what, int a, int b)
{
	printf("  %-50s %6.2fx\n", what, rate[b] > 0 ? rate[a] / rate[b] : 0.0);
}

/* ---- one generic bind ---- */

static struct stp_listen *lst;
static struct sockaddr_in lst_addr;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static struct stp_arrival q[1024];
static unsigned q_head, q_tail;

static void *listen_dispatch(void *arg)
{
	(void)arg;
	for (;;) {
		struct stp_arrival a;
		enum stp_err err;
		if (stp_listen_next(lst, &a, 200, &err) < 0) {
			if (err == STP_ERR_TIMEOUT)
				continue;
			return NULL;
		}
		pthread_mutex_lock(&q_lock);
		q[q_tail++ % 1024] = a;
		pthread_cond_signal(&q_cond);
		pthread_mutex_unlock(&q_lock);
	}
}

static void *listen_worker(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&q_lock);
		while (q_head == q_tail)
			pthread_cond_wait(&q_cond, &q_lock);
		struct stp_arrival a = q[q_head++ % 1024];
		pthread_mutex_unlock(&q_lock);
		enum stp_err err;
		int fd = stp_listen_accept(lst, &a, 5000, &err);
		if (fd >= 0)
			serve_one(fd);
	}
	return NULL;
}

/* ---- RFC 1928 BIND per connection ---- */

static pthread_mutex_t b_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t b_cond = PTHREAD_COND_INITIALIZER;
static struct sockaddr_in b_slots[64];
static unsigned b_head, b_tail;

static void *bind_server(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		struct stp_bind b;
		enum stp_err err;
		if (stp_bind(&b, &proxy, NULL, 0, 5000, &err) < 0)
			continue;
		pthread_mutex_lock(&b_lock);
		memcpy(&b_slots[b_tail++ % 64], &b.bound.sa, sizeof(struct sockaddr_in));
		pthread_cond_signal(&b_cond);
		pthread_mutex_unlock(&b_lock);
		if (stp_bind_accept(&b, 5000, &err) == 0) {
			serve_one(b.fd);
			b.fd = -1;
		}
		stp_bind_close(&b);
	}
	return NULL;
}

static void *bind_clients(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		pthread_mutex_lock(&b_lock);
		while (b_head == b_tail && !atomic_load(&stop)) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&b_cond, &b_lock, &ts);
		}
		if (atomic_load(&stop)) {
			pthread_mutex_unlock(&b_lock);
			break;
		}
		struct sockaddr_in to = b_slots[b_head++ % 64];
		pthread_mutex_unlock(&b_lock);
		if (client_one(&to) == 0)
			atomic_fetch_add(&done, 1);
		else
			atomic_fetch_add(&failed, 1);
	}
	return NULL;
}

/* ---- UDP ---- */

static int echo_fd;
static struct sockaddr_in echo_addr;

static void *udp_echo(void *arg)
{
	(void)arg;
	char buf[2048];
	struct sockaddr_in from;
	while (!atomic_load(&stop)) {
		socklen_t len = sizeof(from);
		ssize_t n = recvfrom(echo_fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
		if (n >= 0)
			sendto(echo_fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
	}
	return NULL;
}

static void *udp_bind_echo(void *arg)
{
	(void)arg;
	char buf[2048];
	while (!atomic_load(&stop)) {
		struct stp_addr from;
		enum stp_err err;
		ssize_t n = stp_listen_udp_recvfrom(lst, 1, buf, sizeof(buf), &from, 200, &err);
		if (n >= 0)
			stp_listen_udp_sendto(lst, 1, buf, (size_t)n, (struct sockaddr *)&from.sa,
					      &err);
	}
	return NULL;
}

/* A window of datagrams in flight; a lost one is re-sent after 50 ms. */
static void *udp_clients(void *arg)
{
	const struct sockaddr_in *to = arg;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	char buf[512] = { 0 };
	connect(fd, (const struct sockaddr *)to, sizeof(*to));
	for (int i = 0; i < WINDOW; i++)
		send(fd, buf, sizeof(buf), 0);
	while (!atomic_load(&stop)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 50) == 0) {
			atomic_fetch_add(&failed, 1);
			send(fd, buf, sizeof(buf), 0);
			continue;
		}
		if (recv(fd, buf, sizeof(buf), 0) > 0) {
			atomic_fetch_add(&done, 1);
			send(fd, buf, sizeof(buf), 0);
		}
	}
	close(fd);
	return NULL;
}

static int listen_tcp(struct sockaddr_in *a, int type)
{
	int fd = socket(AF_INET, type, 0), one = 1;
	socklen_t len = sizeof(*a);
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	bind(fd, (struct sockaddr *)a, sizeof(*a));
	if (type == SOCK_STREAM)
		listen(fd, 1024);
	getsockname(fd, (struct sockaddr *)a, &len);
	return fd;
}

int main(int argc, char **argv)
{
	enum stp_err err;
	if (argc < 2 || stp_proxy_parse(&proxy, argv[1], &err) < 0) {
		fprintf(stderr, "usage: bindbench PROXY_URL [SECONDS] [CLIENTS]\n");
		return 1;
	}
	if (argc > 2)
		secs = atof(argv[2]);
	if (argc > 3)
		clients = atoi(argv[3]);
	if (clients < 1 || clients > 64)
		clients = 8;

	direct_lfd = listen_tcp(&direct_addr, SOCK_STREAM);
	rate[M_TCP_DIRECT] = run("tcp-direct", direct_server, NULL, 8, tcp_clients, &direct_addr,
				 "conn/s");

	struct stp_bind_spec specs[2] = { { STP_BIND_TCP, 0, 1024 }, { STP_BIND_UDP, 0, 0 } };
	lst = stp_listen_open(&proxy, specs, 2, 5000, &err);
	if (!lst) {
		fprintf(stderr, "bindbench: LISTEN: %s\n", stp_strerror(err));
		return 1;
	}
	memcpy(&lst_addr, &stp_listen_bound(lst, 0)->sa, sizeof(lst_addr));
	pthread_t d;
	pthread_create(&d, NULL, listen_dispatch, NULL);
	rate[M_TCP_LISTEN] = run("tcp-listen", listen_worker, NULL, 8, tcp_clients, &lst_addr,
				 "conn/s");

	rate[M_TCP_BIND] = run("tcp-bind", bind_server, NULL, clients, bind_clients, NULL,
			       "conn/s");

	echo_fd = listen_tcp(&echo_addr, SOCK_DGRAM);
	rate[M_UDP_DIRECT] = run("udp-direct", udp_echo, NULL, 1, udp_clients, &echo_addr,
				 "dgram/s");
	struct sockaddr_in ub;
	memcpy(&ub, &stp_listen_bound(lst, 1)->sa, sizeof(ub));
	rate[M_UDP_BIND] = run("udp-bind", udp_bind_echo, NULL, 1, udp_clients, &ub, "dgram/s");
	printf("ratios (%d clients)\n", clients);
	ratio("accepted conn/s, one generic bind / direct", M_TCP_LISTEN, M_TCP_DIRECT);
	ratio("accepted conn/s, RFC 1928 BIND each / direct", M_TCP_BIND, M_TCP_DIRECT);
	ratio("accepted conn/s, one generic bind / RFC 1928 BIND", M_TCP_LISTEN, M_TCP_BIND);
	ratio("UDP datagrams/s, UDP bind / direct", M_UDP_BIND, M_UDP_DIRECT);
	printf("  %-50s %s\n", "UDP datagrams/s, UDP bind / RFC 1928",
	       "n/a (RFC 1928 has no UDP bind)");
	return 0;
}
