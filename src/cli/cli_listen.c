/*
 * cli_listen.c - `stp listen SPEC...`: exposes local TCP and UDP services
 * through the proxy's binds, like `ssh -R` (docs/client.md). One control
 * connection holds every bind (LISTEN X'10'); it prints
 *   bound tcp ADDR:PORT -> HOST:PORT
 * per bind, then serves until the proxy closes the control connection or
 * the process is killed.
 *
 * TCP: each announced peer is taken on a new connection to the proxy and
 * joined to a new connection to the local service, one thread per peer
 * (each thread moves bytes both ways with half-closes, then exits).
 * UDP: each peer gets its own local socket connected to the service, so
 * the service's answers find their way back to that peer; LISTEN_UDP_PEERS
 * peers at most, the least recently used one is dropped.
 *
 * The service sees each peer as the local socket that carries it (as with
 * ssh -R): a local process cannot take the remote peer's address without
 * transparent-proxy routing. So every new peer is printed with the local
 * address the service sees it as:
 *   peer tcp|udp PEERADDR:PORT seen as LOCALADDR:PORT
 * which maps the service's logs back to real peers (a program that must
 * see the real address runs under stpify with `serve`, docs/stpify.md).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"

#define LISTEN_UDP_PEERS 64

struct spec {
	enum stp_bind_kind kind;
	uint16_t remote;
	struct sockaddr_storage local;
	socklen_t local_len;
	char text[300];
};

struct udp_peer {
	int fd; /* connected to the local service, -1: free */
	unsigned bind;
	struct sockaddr_storage peer; /* where its answers go */
	time_t used;
};

static struct stp_listen *g_listen;
static struct spec g_specs[STP_LISTEN_MAX];
static struct udp_peer g_udp[LISTEN_UDP_PEERS];

/* One "peer ... seen as ..." line (threads print too: one write each). */
static void print_peer(const char *kind, const struct stp_addr *peer, int local)
{
	struct stp_addr l = { .salen = sizeof(l.sa) };
	char pt[STP_ADDR_STR_MAX], lt[STP_ADDR_STR_MAX];
	if (getsockname(local, (struct sockaddr *)&l.sa, &l.salen) < 0)
		return;
	/* sin_port and sin6_port sit at the same offset */
	l.port = (uint16_t)ntohs(((const struct sockaddr_in *)&l.sa)->sin_port);
	printf("peer %s %s seen as %s\n", kind, stp_addr_str(peer, pt, sizeof(pt)),
	       stp_addr_str(&l, lt, sizeof(lt)));
	fflush(stdout);
}

/* tcp:[REMOTEPORT:]HOST:PORT or udp:[REMOTEPORT:]HOST:PORT ([V6] allowed). */
static int spec_parse(struct spec *s, const char *arg)
{
	char buf[300], *host, *port, *rest;
	snprintf(s->text, sizeof(s->text), "%s", arg);
	if (strncmp(arg, "tcp:", 4) == 0)
		s->kind = STP_BIND_TCP;
	else if (strncmp(arg, "udp:", 4) == 0)
		s->kind = STP_BIND_UDP;
	else
		return -1;
	snprintf(buf, sizeof(buf), "%s", arg + 4);
	rest = buf;
	port = strrchr(rest, ':');
	if (!port)
		return -1;
	*port++ = '\0';
	host = rest;
	s->remote = 0;
	char *colon = strchr(rest, ':');
	if (colon && rest[0] != '[' && (colon[1] == '[' || strchr(colon + 1, ':') == NULL)) {
		*colon = '\0';
		s->remote = cli_port(rest, true);
		host = colon + 1;
	} else if (rest[0] != '[' && colon == NULL) {
		host = rest;
	} else if (rest[0] != '[') {
		return -1;
	}
	if (host[0] == '[') {
		host++;
		char *end = strchr(host, ']');
		if (!end)
			return -1;
		*end = '\0';
	}
	struct addrinfo hints = { .ai_socktype = s->kind == STP_BIND_TCP ? SOCK_STREAM : SOCK_DGRAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
		return -1;
	memcpy(&s->local, ai->ai_addr, ai->ai_addrlen);
	s->local_len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* ---- TCP: one thread per peer ---- */

struct tcp_job {
	struct stp_arrival a;
	int timeout_ms;
};

/* Moves bytes both ways between a and b until both directions ended. */
static void pump(int a, int b)
{
	int fds[2] = { a, b };
	bool eof[2] = { false, false };
	char buf[65536];
	while (!eof[0] || !eof[1]) {
		struct pollfd p[2] = { { .fd = eof[0] ? -1 : a, .events = POLLIN },
				       { .fd = eof[1] ? -1 : b, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < 2; i++) {
			if (!p[i].revents)
				continue;
			ssize_t n = recv(fds[i], buf, sizeof(buf), 0);
			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				eof[i] = true;
				shutdown(fds[1 - i], SHUT_WR);
				if (n < 0)
					return;
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(fds[1 - i], buf + off, (size_t)(n - off),
						 MSG_NOSIGNAL);
				if (w < 0 && errno == EINTR)
					continue;
				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

static void *tcp_peer(void *arg)
{
	struct tcp_job *j = arg;
	const struct spec *s = &g_specs[j->a.bind];
	enum stp_err err;
	int local = socket(s->local.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (local < 0 || connect(local, (const struct sockaddr *)&s->local, s->local_len) < 0) {
		/* The service is down: the peer is refused, not left waiting. */
		stp_listen_refuse(g_listen, &j->a, &err);
		if (local >= 0)
			close(local);
		free(j);
		return NULL;
	}
	int fd = stp_listen_accept(g_listen, &j->a, j->timeout_ms, &err);
	if (fd >= 0) {
		print_peer("tcp", &j->a.peer, local);
		pump(fd, local);
		close(fd);
	} else {
		fprintf(stderr, "stp: listen: accept: %s\n", stp_strerror(err));
	}
	close(local);
	free(j);
	return NULL;
}

static void tcp_arrival(const struct stp_arrival *a, int timeout_ms)
{
	struct tcp_job *j = malloc(sizeof(*j));
	pthread_t t;
	pthread_attr_t attr;
	if (!j)
		return;
	j->a = *a;
	j->timeout_ms = timeout_ms;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	if (pthread_create(&t, &attr, tcp_peer, j) != 0) {
		enum stp_err err;
		stp_listen_refuse(g_listen, a, &err);
		free(j);
	}
	pthread_attr_destroy(&attr);
}

/* ---- UDP ---- */

static struct udp_peer *udp_peer_for(unsigned bind, const struct stp_addr *src)
{
	struct udp_peer *free_slot = NULL, *oldest = &g_udp[0];
	for (size_t i = 0; i < LISTEN_UDP_PEERS; i++) {
		struct udp_peer *p = &g_udp[i];
		if (p->fd >= 0 && p->bind == bind && memcmp(&p->peer, &src->sa, src->salen) == 0)
			return p;
		if (p->fd < 0 && !free_slot)
			free_slot = p;
		if (p->used < oldest->used)
			oldest = p;
	}
	struct udp_peer *p = free_slot ? free_slot : oldest;
	if (p->fd >= 0)
		close(p->fd);
	const struct spec *s = &g_specs[bind];
	p->fd = socket(s->local.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return NULL;
	if (connect(p->fd, (const struct sockaddr *)&s->local, s->local_len) < 0) {
		close(p->fd);
		p->fd = -1;
		return NULL;
	}
	p->bind = bind;
	memset(&p->peer, 0, sizeof(p->peer));
	memcpy(&p->peer, &src->sa, src->salen);
	print_peer("udp", src, p->fd);
	return p;
}

static void udp_from_proxy(unsigned bind)
{
	static char buf[65536];
	struct stp_addr src;
	enum stp_err err;
	ssize_t n = stp_listen_udp_recvfrom(g_listen, bind, buf, sizeof(buf), &src, 0, &err);
	if (n < 0 || src.salen == 0)
		return;
	struct udp_peer *p = udp_peer_for(bind, &src);
	if (!p)
		return;
	p->used = time(NULL);
	send(p->fd, buf, (size_t)n, 0);
}

static void udp_from_service(struct udp_peer *p)
{
	static char buf[65536];
	enum stp_err err;
	ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0)
		return;
	p->used = time(NULL);
	stp_listen_udp_sendto(g_listen, p->bind, buf, (size_t)n, (struct sockaddr *)&p->peer, &err);
}

/* ---- the loop ---- */

static int serve(const struct cli_opts *o, unsigned n)
{
	enum stp_err err;
	for (;;) {
		struct pollfd p[1 + STP_LISTEN_MAX + LISTEN_UDP_PEERS];
		unsigned np = 0;
		p[np++] = (struct pollfd){ .fd = stp_listen_fd(g_listen), .events = POLLIN };
		for (unsigned i = 0; i < n; i++)
			p[np++] = (struct pollfd){ .fd = stp_listen_udp_fd(g_listen, i),
						   .events = POLLIN };
		for (unsigned i = 0; i < LISTEN_UDP_PEERS; i++)
			p[np++] = (struct pollfd){ .fd = g_udp[i].fd, .events = POLLIN };
		if (poll(p, np, -1) < 0) {
			if (errno == EINTR)
				continue;
			return CLI_EXIT_LOCAL;
		}
		if (p[0].revents) {
			struct stp_arrival a;
			while (stp_listen_next(g_listen, &a, 0, &err) == 0)
				tcp_arrival(&a, o->timeout_ms);
			if (err != STP_ERR_TIMEOUT)
				return cli_fail(o, "listen", err);
		}
		for (unsigned i = 0; i < n; i++)
			if (p[1 + i].revents)
				udp_from_proxy(i);
		for (unsigned i = 0; i < LISTEN_UDP_PEERS; i++)
			if (g_udp[i].fd >= 0 && p[1 + n + i].revents)
				udp_from_service(&g_udp[i]);
	}
}

int cli_cmd_listen(const struct cli_opts *o)
{
	struct stp_bind_spec binds[STP_LISTEN_MAX];
	enum stp_err err;
	char text[STP_ADDR_STR_MAX];
	unsigned n = (unsigned)o->nargs;

	for (unsigned i = 0; i < n; i++) {
		if (spec_parse(&g_specs[i], o->args[i]) < 0) {
			fprintf(stderr,
				"stp: listen: bad '%s' (want tcp:[RPORT:]HOST:PORT or "
				"udp:[RPORT:]HOST:PORT)\n",
				o->args[i]);
			return CLI_EXIT_USAGE;
		}
		binds[i] = (struct stp_bind_spec){ .kind = g_specs[i].kind,
						   .port = g_specs[i].remote };
	}
	for (unsigned i = 0; i < LISTEN_UDP_PEERS; i++)
		g_udp[i].fd = -1;
	g_listen = stp_listen_open(&o->proxy, binds, n, o->timeout_ms, &err);
	if (!g_listen)
		return cli_fail(o, "listen", err);
	for (unsigned i = 0; i < n; i++)
		printf("bound %s %s -> %s\n", g_specs[i].kind == STP_BIND_TCP ? "tcp" : "udp",
		       stp_addr_str(stp_listen_bound(g_listen, i), text, sizeof(text)),
		       strchr(g_specs[i].text, ':') + 1);
	fflush(stdout);
	return serve(o, n);
}
