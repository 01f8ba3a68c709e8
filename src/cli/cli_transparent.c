/*
 * cli_transparent.c - `stp transparent --udp|--tcp --local ADDR:PORT
 * [PROXY-URL] HOST:PORT`: forwards a local port to HOST:PORT through a
 * TRANSPARENT association (CMD X'04', docs/client.md). Programs talk to
 * the local port as if it were the target (dig @127.0.0.1 -p 5300, curl
 * http://127.0.0.1:8080/); their packets cross the proxy plain.
 *
 * UDP: one association; replies go to the local peer that sent last.
 * TCP: one association per accepted local connection, each in a thread.
 * Runs until killed, or (UDP) until the proxy ends the association.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/sockaddr.h"

struct tp_target {
	char host[256];
	uint16_t port;
};

static struct stp_transparent *open_assoc(const struct cli_opts *o, const struct tp_target *t,
					  int *rc)
{
	enum stp_err err;
	struct stp_transparent *a = stp_transparent_open(&o->proxy, o->ptcl, t->host, t->port, NULL,
							 NULL, o->timeout_ms, &err);
	if (!a)
		*rc = cli_fail(o, "transparent", err);
	return a;
}

static void announce(const struct cli_opts *o, const struct stp_transparent *a)
{
	char b[STP_ADDR_STR_MAX];
	fprintf(stderr, "stp: transparent %s %s -> %s via %s\n",
		o->ptcl == STP_PTCL_TCP ? "tcp" : "udp", o->local, o->args[0],
		stp_addr_str(stp_transparent_bound(a), b, sizeof(b)));
}

/* ---- UDP ---- */

static int run_udp(const struct cli_opts *o, const struct tp_target *t, int lfd)
{
	static uint8_t buf[65536];
	struct sockaddr_storage peer;
	socklen_t plen = 0;
	int rc = 0;
	struct stp_transparent *a = open_assoc(o, t, &rc);

	if (!a)
		return rc;
	announce(o, a);
	for (;;) {
		struct pollfd p[3] = {
			{ lfd, POLLIN, 0 },
			{ stp_transparent_fd(a), POLLIN, 0 },
			{ stp_transparent_control_fd(a), POLLIN, 0 },
		};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = CLI_EXIT_LOCAL;
			break;
		}
		if (p[0].revents & POLLIN) {
			socklen_t l = sizeof(peer);
			ssize_t n = recvfrom(lfd, buf, sizeof(buf), 0, (struct sockaddr *)&peer,
					     &l);
			if (n >= 0) {
				plen = l;
				send(stp_transparent_fd(a), buf, (size_t)n, 0);
			}
		}
		if (p[1].revents & (POLLIN | POLLERR)) {
			ssize_t n = recv(stp_transparent_fd(a), buf, sizeof(buf), MSG_DONTWAIT);
			if (n >= 0 && plen > 0)
				sendto(lfd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
		}
		if (p[2].revents) {
			ssize_t n = recv(stp_transparent_control_fd(a), buf, sizeof(buf),
					 MSG_DONTWAIT);
			if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
				fprintf(stderr,
					"stp: transparent: the proxy ended the association\n");
				rc = CLI_EXIT_PROTOCOL;
				break;
			}
		}
	}
	stp_transparent_close(a);
	return rc;
}

/* ---- TCP ---- */

struct tcp_job {
	const struct cli_opts *o;
	const struct tp_target *t;
	int fd; /* the local connection */
};

/* Copies both ways until both have ended; EOF becomes shutdown(SHUT_WR). */
static void pump(int a, int b)
{
	static _Thread_local uint8_t buf[65536];
	bool open_in[2] = { true, true };
	int fds[2] = { a, b };

	while (open_in[0] || open_in[1]) {
		struct pollfd p[2] = { { a, open_in[0] ? POLLIN : 0, 0 },
				       { b, open_in[1] ? POLLIN : 0, 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		for (int i = 0; i < 2; i++) {
			if (!open_in[i] || !p[i].revents)
				continue;
			ssize_t n = recv(fds[i], buf, sizeof(buf), 0);
			if (n <= 0) {
				if (n < 0)
					return; /* reset: end both ways */
				open_in[i] = false;
				shutdown(fds[1 - i], SHUT_WR);
				continue;
			}
			for (ssize_t off = 0; off < n;) {
				ssize_t w = send(fds[1 - i], buf + off, (size_t)(n - off),
						 MSG_NOSIGNAL);
				if (w <= 0)
					return;
				off += w;
			}
		}
	}
}

static void *tcp_conn(void *arg)
{
	struct tcp_job *j = arg;
	int rc = 0;
	struct stp_transparent *a = open_assoc(j->o, j->t, &rc);

	if (a) {
		if (j->o->verbose)
			announce(j->o, a);
		pump(j->fd, stp_transparent_fd(a));
		stp_transparent_close(a);
	}
	close(j->fd);
	free(j);
	return NULL;
}

static int run_tcp(const struct cli_opts *o, const struct tp_target *t, int lfd)
{
	fprintf(stderr, "stp: transparent tcp %s -> %s: listening\n", o->local, o->args[0]);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		struct tcp_job *j;
		pthread_t th;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return CLI_EXIT_LOCAL;
		}
		j = malloc(sizeof(*j));
		if (!j) {
			close(fd);
			continue;
		}
		*j = (struct tcp_job){ o, t, fd };
		if (pthread_create(&th, NULL, tcp_conn, j) != 0) {
			close(fd);
			free(j);
			continue;
		}
		pthread_detach(th);
	}
}

int cli_cmd_transparent(const struct cli_opts *o)
{
	struct tp_target t;
	struct sockaddr_storage local;
	socklen_t len;
	int lfd, one = 1;

	if (o->ptcl == 0 || !o->local) {
		fprintf(stderr, "stp: transparent: needs --udp or --tcp, and --local ADDR:PORT\n");
		return CLI_EXIT_USAGE;
	}
	if (cli_hostport(o->args[0], t.host, sizeof(t.host), &t.port) < 0) {
		fprintf(stderr, "stp: transparent: bad target '%s' (want HOST:PORT)\n", o->args[0]);
		return CLI_EXIT_USAGE;
	}
	if (sa_parse(&local, &len, o->local, -1) < 0) {
		fprintf(stderr, "stp: transparent: bad --local '%s'\n", o->local);
		return CLI_EXIT_USAGE;
	}
	lfd = socket(local.ss_family,
		     (o->ptcl == STP_PTCL_TCP ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&local, len) < 0 ||
	    (o->ptcl == STP_PTCL_TCP && listen(lfd, 64) < 0)) {
		fprintf(stderr, "stp: transparent: %s: %s\n", o->local, strerror(errno));
		return CLI_EXIT_LOCAL;
	}
	return o->ptcl == STP_PTCL_TCP ? run_tcp(o, &t, lfd) : run_udp(o, &t, lfd);
}
