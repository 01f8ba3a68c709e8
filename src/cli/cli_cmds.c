/*
 * cli_cmds.c - the four commands: connect, bind, udp and resolve.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/client.h"
#include "common/sockaddr.h"

/* Through a TLS proxy: the connection object, relayed in this thread. */
static int cli_connect_tls(const struct cli_opts *o, uint16_t port)
{
	enum stp_err err;
	struct stp_conn *c = stp_conn_open(&o->proxy, o->args[0], port, o->timeout_ms, &err);
	int rc;

	if (c == NULL)
		return cli_fail(o, "connect", err);
	rc = stp_conn_relay(c, STDIN_FILENO, STDOUT_FILENO, &err) < 0
		     ? cli_fail(o, "relay", err)
		     : CLI_EXIT_OK;
	stp_conn_close(c);
	return rc;
}

/* A target the served configuration sends direct: a plain TCP connection
 * (names resolved here), relayed like a proxied one. */
static int cli_connect_direct(const struct cli_opts *o, uint16_t port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char ports[8];
	int fd = -1;

	snprintf(ports, sizeof(ports), "%u", port);
	if (getaddrinfo(o->args[0], ports, &hints, &res) != 0)
		return cli_fail(o, "connect (direct)", STP_ERR_TARGET_RESOLVE);
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return cli_fail(o, "connect (direct)", STP_ERR_SYSTEM);
	if (o->verbose)
		fprintf(stderr, "stp: %s:%u: direct (autoconfig)\n", o->args[0], port);
	return cli_relay(fd);
}

bool cli_route(const struct cli_opts *o, const char *what, const char *host, uint16_t port,
	       struct stp_proxy *via)
{
	*via = o->proxy;
	if (o->ac == NULL || host == NULL)
		return false;
	if (stp_autoconf_direct(o->ac, host, port)) {
		if (o->verbose)
			fprintf(stderr, "stp: %s: %s:%u: direct (autoconfig)\n", what, host, port);
		return true;
	}
	if (stp_autoconf_route(o->ac, host, port, via) && o->verbose)
		fprintf(stderr, "stp: %s: %s:%u: through %s:%u (autoconfig route)\n", what, host,
			port, via->host, via->port);
	return false;
}

/* A socket of type connected (UDP) or bound (TCP, for a direct BIND) to
 * host:port resolved here; -1 with errno. */
static int direct_socket(const char *host, uint16_t port, int type, bool listening)
{
	struct addrinfo hints = { .ai_socktype = type, .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char ports[8];
	int fd = -1;

	snprintf(ports, sizeof(ports), "%u", port);
	if (getaddrinfo(host, ports, &hints, &res) != 0) {
		errno = EHOSTUNREACH;
		return -1;
	}
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (listening) {
			/* The peer's family, any local address, a port of the kernel's. */
			struct sockaddr_storage any = { .ss_family = (sa_family_t)ai->ai_family };
			socklen_t len = ai->ai_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								   : sizeof(struct sockaddr_in);
			if (bind(fd, (struct sockaddr *)&any, len) == 0 && listen(fd, 1) == 0)
				continue;
		} else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
			continue;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

int cli_cmd_autoconfig(const struct cli_opts *o)
{
	size_t len;

	if (o->ac == NULL)
		return cli_fail(o, "autoconfig", o->autoconfig_err);
	const char *text = stp_autoconf_text(o->ac, &len);
	fwrite(text, 1, len, stdout);
	return CLI_EXIT_OK;
}

/* --mux: one stream of a multiplexed connection (docs/protocol.md 5.11). */
static int cli_connect_mux(const struct cli_opts *o, uint16_t port)
{
	enum stp_err err;
	struct stp_mux *m = stp_mux_open(&o->proxy, o->timeout_ms, &err);
	if (!m)
		return cli_fail(o, "connect (mux)", err);
	int fd = stp_mux_connect(m, o->args[0], port, o->timeout_ms, &err);
	if (fd < 0) {
		stp_mux_close(m);
		return cli_fail(o, "connect (mux)", err);
	}
	int rc = cli_relay(fd); /* closes fd */
	stp_mux_close(m);
	return rc;
}

int cli_cmd_connect(const struct cli_opts *o)
{
	enum stp_err err;
	uint16_t port = cli_port(o->args[1], false);
	if (o->ac && stp_autoconf_direct(o->ac, o->args[0], port))
		return cli_connect_direct(o, port);
	/* A served route: this destination through another proxy. */
	struct stp_proxy routed = o->proxy;
	if (o->ac && stp_autoconf_route(o->ac, o->args[0], port, &routed)) {
		struct cli_opts ro = *o;
		ro.proxy = routed;
		ro.ac = NULL;
		if (o->verbose)
			fprintf(stderr, "stp: %s:%u: through %s:%u (autoconfig route)\n", o->args[0],
				port, routed.host, routed.port);
		return cli_cmd_connect(&ro);
	}
	if (o->mux)
		return cli_connect_mux(o, port);
	if (o->proxy.tls.mode != STP_TLS_NONE || o->proxy.gss.on)
		return cli_connect_tls(o, port);
	int fd = stp_connect(&o->proxy, o->args[0], port, o->timeout_ms, &err);

	if (fd < 0)
		return cli_fail(o, "connect", err);
	return cli_relay(fd);
}

/* BIND through a TLS proxy: the second reply and the data through the
 * connection in this thread, rather than stp_bind_accept's relay thread,
 * so that nothing is still running when we exit. */
static int cli_bind_tls(const struct cli_opts *o, struct stp_bind *b)
{
	char text[STP_ADDR_STR_MAX];
	enum stp_err err;

	if (client_conn_hs_run(b->conn, &b->hs, client_deadline(o->timeout_set ? o->timeout_ms
									       : -1)) != STP_DONE) {
		err = b->hs.err;
		stp_bind_close(b);
		return cli_fail(o, "bind", err);
	}
	printf("peer %s\n", stp_addr_str(&b->hs.peer, text, sizeof(text)));
	fflush(stdout);
	int rc = stp_conn_relay(b->conn, STDIN_FILENO, STDOUT_FILENO, &err) < 0
			 ? cli_fail(o, "relay", err)
			 : CLI_EXIT_OK;
	stp_bind_close(b);
	return rc;
}

/* A BIND whose expected peer the served configuration sends direct: a
 * listening socket here, printed as the proxy's BND would be, then one
 * peer accepted and relayed. */
static int cli_bind_direct(const struct cli_opts *o, const char *host, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char text[STP_ADDR_STR_MAX];
	int lfd = direct_socket(host, port, SOCK_STREAM, true), fd;

	if (lfd < 0 || getsockname(lfd, (struct sockaddr *)&ss, &len) < 0)
		return cli_fail(o, "bind (direct)", STP_ERR_SYSTEM);
	printf("bound %s\n", sa_str((struct sockaddr *)&ss, text, sizeof(text)));
	fflush(stdout);
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	if (poll(&p, 1, o->timeout_set ? o->timeout_ms : -1) <= 0) {
		close(lfd);
		return cli_fail(o, "bind (direct)", STP_ERR_TIMEOUT);
	}
	len = sizeof(ss);
	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	close(lfd);
	if (fd < 0)
		return cli_fail(o, "bind (direct)", STP_ERR_SYSTEM);
	printf("peer %s\n", sa_str((struct sockaddr *)&ss, text, sizeof(text)));
	fflush(stdout);
	return cli_relay(fd);
}

int cli_cmd_bind(const struct cli_opts *o)
{
	static struct stp_bind b;
	enum stp_err err;
	char text[STP_ADDR_STR_MAX];
	const char *host = NULL;
	uint16_t port = 0;

	if (o->nargs == 1) {
		fprintf(stderr, "stp: bind takes HOST PORT (the expected peer) or nothing\n");
		return CLI_EXIT_USAGE;
	}
	if (o->nargs == 2) {
		host = o->args[0];
		port = cli_port(o->args[1], true);
	}
	struct stp_proxy via;
	if (cli_route(o, "bind", host, port, &via))
		return cli_bind_direct(o, host, port);
	if (stp_bind(&b, &via, host, port, o->timeout_ms, &err) < 0)
		return cli_fail(o, "bind", err);
	printf("bound %s\n", stp_addr_str(&b.bound, text, sizeof(text)));
	fflush(stdout);
	if (b.conn != NULL)
		return cli_bind_tls(o, &b);
	if (stp_bind_accept(&b, o->timeout_set ? o->timeout_ms : -1, &err) < 0) {
		stp_bind_close(&b);
		return cli_fail(o, "bind", err);
	}
	printf("peer %s\n", stp_addr_str(&b.peer, text, sizeof(text)));
	fflush(stdout);
	return cli_relay(b.fd);
}

/* ---- udp ---- */

struct udp_lines {
	char buf[65536];
	size_t len;
	unsigned sent, received;
};

/* The datagrams' path: the association u, or (u NULL: the served
 * configuration sends the target direct) a UDP socket connected to it. */
static int udp_direct_fd = -1;

static int udp_send_line(const struct cli_opts *o, struct stp_udp *u, const char *line,
			 size_t n, uint16_t port)
{
	enum stp_err err;

	if (u == NULL)
		return send(udp_direct_fd, line, n, 0) < 0 && errno != ECONNREFUSED
			       ? cli_fail(o, "udp: send (direct)", STP_ERR_SYSTEM)
			       : 0;
	if (stp_udp_sendto(u, line, n, o->args[0], port, &err) < 0)
		return cli_fail(o, "udp: send", err);
	return 0;
}

/* Sends every complete line in l->buf (all of it at EOF). */
static int udp_flush_lines(const struct cli_opts *o, struct stp_udp *u, struct udp_lines *l,
			   uint16_t port, bool eof)
{
	size_t start = 0;
	int rc;

	for (size_t i = 0; i < l->len; i++) {
		if (l->buf[i] != '\n')
			continue;
		if ((rc = udp_send_line(o, u, l->buf + start, i - start, port)) != 0)
			return rc;
		l->sent++;
		start = i + 1;
	}
	if (eof && start < l->len) {
		if ((rc = udp_send_line(o, u, l->buf + start, l->len - start, port)) != 0)
			return rc;
		l->sent++;
		start = l->len;
	}
	if (start == 0 && l->len == sizeof(l->buf)) {
		fprintf(stderr, "stp: udp: line longer than %zu bytes\n", sizeof(l->buf));
		return CLI_EXIT_USAGE;
	}
	memmove(l->buf, l->buf + start, l->len - start);
	l->len -= start;
	return 0;
}

static int udp_print_reply(const struct cli_opts *o, struct stp_udp *u, struct udp_lines *l)
{
	static char data[65536];
	enum stp_err err;
	struct stp_addr src;
	ssize_t n;

	if (u == NULL) {
		n = recv(udp_direct_fd, data, sizeof(data), MSG_DONTWAIT);
		if (n < 0)
			return 0; /* ICMP unreachable, or nothing after all: UDP loses */
	} else {
		n = stp_udp_recvfrom(u, data, sizeof(data), &src, 0, &err);
	}
	if (n < 0 && err == STP_ERR_TIMEOUT)
		return 0; /* a dropped datagram woke us */
	if (n < 0)
		return cli_fail(o, "udp", err);
	l->received++;
	fwrite(data, 1, (size_t)n, stdout);
	if (n == 0 || data[n - 1] != '\n')
		fputc('\n', stdout);
	fflush(stdout);
	return 0;
}

static int64_t cli_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int udp_loop(const struct cli_opts *o, struct stp_udp *u, uint16_t port)
{
	static struct udp_lines l;
	bool eof = false;
	int64_t linger_end = 0;
	int rc;

	for (;;) {
		/* The control connection is watched too: its end is the
		 * association's end, reported by stp_udp_recvfrom. */
		struct pollfd p[3] = { { .fd = eof ? -1 : STDIN_FILENO, .events = POLLIN },
				       { .fd = u ? stp_udp_fd(u) : udp_direct_fd, .events = POLLIN },
				       { .fd = u ? stp_udp_control_fd(u) : -1, .events = POLLIN } };
		int wait = -1;
		if (eof) {
			if (l.received >= l.sent)
				return 0;
			wait = (int)(linger_end - cli_now_ms());
			if (wait <= 0)
				return 0; /* UDP may lose datagrams: not an error */
		}
		if (poll(p, 3, wait) < 0 && errno != EINTR)
			return CLI_EXIT_LOCAL;
		if (p[0].revents) {
			ssize_t n = read(STDIN_FILENO, l.buf + l.len, sizeof(l.buf) - l.len);
			if (n > 0)
				l.len += (size_t)n;
			else if (n == 0 || errno != EINTR)
				eof = true;
			if ((rc = udp_flush_lines(o, u, &l, port, eof)) != 0)
				return rc;
			if (eof)
				linger_end = cli_now_ms() + (o->timeout_set ? o->timeout_ms : 2000);
		}
		if ((p[1].revents || p[2].revents) && (rc = udp_print_reply(o, u, &l)) != 0)
			return rc;
	}
}

int cli_cmd_udp(const struct cli_opts *o)
{
	enum stp_err err;
	uint16_t port = cli_port(o->args[1], false);
	struct stp_proxy via;
	int rc;

	if (cli_route(o, "udp", o->args[0], port, &via)) {
		if ((udp_direct_fd = direct_socket(o->args[0], port, SOCK_DGRAM, false)) < 0)
			return cli_fail(o, "udp (direct)", STP_ERR_TARGET_RESOLVE);
		rc = udp_loop(o, NULL, port);
		close(udp_direct_fd);
		return rc;
	}
	struct stp_udp *u = stp_udp_open(&via, o->timeout_ms, &err);
	if (u == NULL)
		return cli_fail(o, "udp", err);
	rc = udp_loop(o, u, port);
	stp_udp_close(u);
	return rc;
}
