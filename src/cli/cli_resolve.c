/*
 * cli_resolve.c - `stp resolve NAME`: A and AAAA queries (c-ares builds
 * and reads them, cli_dns.c) answered by the proxy's own resolver with DNS
 * QUERY X'F2', or by Tor's RESOLVE X'F0' when the proxy lacks X'F2'; with
 * --dns ADDR, sent as plain DNS through a UDP ASSOCIATE to that server.
 * Either way the name never leaves through the local network, unless the
 * served configuration (auto-configuration) sends the name direct: then
 * getaddrinfo here.
 */
#include <arpa/inet.h>
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

#define RESOLVE_RETRY_MS 1000

struct lookup {
	uint16_t qtype, id;
	bool answered;
	struct dns_answer ans;
};

static int resolve_server(const struct cli_opts *o, struct sockaddr_storage *ss)
{
	char text[260];
	const char *addr = o->dns;
	socklen_t len;

	/* A bare IPv6 address has no port: bracket it for sa_parse. */
	if (addr[0] != '[' && strchr(addr, ':') != strrchr(addr, ':'))
		snprintf(text, sizeof(text), "[%.255s]", addr);
	else
		snprintf(text, sizeof(text), "%.255s", addr);
	if (sa_parse(ss, &len, text, 53) < 0) {
		fprintf(stderr, "stp: resolve: bad DNS server address '%s'\n", addr);
		return -1;
	}
	return 0;
}

static int resolve_send(const struct cli_opts *o, struct stp_udp *u, const struct lookup *q,
			const struct sockaddr *server)
{
	uint8_t msg[DNS_MSG_MAX];
	size_t n = dns_query_write(msg, sizeof(msg), q->id, o->args[0], q->qtype);
	enum stp_err err;

	if (n == 0) {
		fprintf(stderr, "stp: resolve: '%s' is not a valid DNS name\n", o->args[0]);
		return CLI_EXIT_USAGE;
	}
	if (stp_udp_sendto_sa(u, msg, n, server, &err) < 0)
		return cli_fail(o, "resolve", err);
	return 0;
}

/* Takes one datagram; marks the lookup it answers. */
static int resolve_take(const struct cli_opts *o, struct stp_udp *u, struct lookup *q, size_t nq)
{
	uint8_t msg[4096];
	enum stp_err err;
	ssize_t n = stp_udp_recvfrom(u, msg, sizeof(msg), NULL, 0, &err);

	if (n < 0)
		return err == STP_ERR_TIMEOUT ? 0 : cli_fail(o, "resolve", err);
	for (size_t i = 0; i < nq; i++)
		if (!q[i].answered && dns_response_parse(&q[i].ans, msg, (size_t)n, q[i].id) == 0)
			q[i].answered = true;
	return 0;
}

static int resolve_print(const struct cli_opts *o, const struct lookup *q, size_t nq)
{
	size_t printed = 0;
	int rcode = 0;

	for (size_t i = 0; i < nq; i++) {
		for (size_t k = 0; k < q[i].ans.naddr; k++) {
			char text[INET6_ADDRSTRLEN];
			inet_ntop(q[i].ans.addr[k].family, q[i].ans.addr[k].addr, text,
				  sizeof(text));
			printf("%s\n", text);
			printed++;
		}
		if (q[i].ans.rcode != 0)
			rcode = q[i].ans.rcode;
	}
	if (printed > 0)
		return CLI_EXIT_OK;
	if (rcode == DNS_RCODE_NXDOMAIN)
		fprintf(stderr, "stp: resolve: %s: name not found (NXDOMAIN)\n", o->args[0]);
	else if (rcode != 0)
		fprintf(stderr, "stp: resolve: %s: DNS server answered RCODE %d\n", o->args[0], rcode);
	else
		fprintf(stderr, "stp: resolve: %s: no address records\n", o->args[0]);
	return CLI_EXIT_NXDOMAIN;
}

static int64_t resolve_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int resolve_loop(const struct cli_opts *o, struct stp_udp *u, struct lookup *q, size_t nq,
			const struct sockaddr *server)
{
	int64_t end = resolve_now() + (o->timeout_set ? o->timeout_ms : 5000);
	int64_t next_send = 0;
	int rc;

	for (;;) {
		int64_t now = resolve_now();
		size_t open = 0;
		for (size_t i = 0; i < nq; i++)
			open += !q[i].answered;
		if (open == 0)
			return resolve_print(o, q, nq);
		if (now >= end) {
			fprintf(stderr, "stp: resolve: %s: no answer from the DNS server\n",
				o->args[0]);
			return CLI_EXIT_TIMEOUT;
		}
		if (now >= next_send) {
			/* UDP loses datagrams: ask again for what is unanswered. */
			for (size_t i = 0; i < nq; i++)
				if (!q[i].answered && (rc = resolve_send(o, u, &q[i], server)) != 0)
					return rc;
			next_send = now + RESOLVE_RETRY_MS;
		}
		struct pollfd p[2] = { { .fd = stp_udp_fd(u), .events = POLLIN },
				       { .fd = stp_udp_control_fd(u), .events = POLLIN } };
		int64_t wait = (next_send < end ? next_send : end) - now;
		if (poll(p, 2, (int)(wait > 0 ? wait : 0)) < 0 && errno != EINTR)
			return CLI_EXIT_LOCAL;
		if ((p[0].revents || p[1].revents) && (rc = resolve_take(o, u, q, nq)) != 0)
			return rc;
	}
}

/* One query through X'F2' into q->ans; 0, 1 when the proxy lacks X'F2',
 * or an exit code. */
static int resolve_f2(const struct cli_opts *o, struct lookup *q)
{
	uint8_t msg[DNS_MSG_MAX], ans[65535];
	size_t n = dns_query_write(msg, sizeof(msg), q->id, o->args[0], q->qtype);
	enum stp_err err;
	ssize_t got;

	if (n == 0) {
		fprintf(stderr, "stp: resolve: '%s' is not a valid DNS name\n", o->args[0]);
		return CLI_EXIT_USAGE;
	}
	got = stp_dns_query(&o->proxy, o->args[0], q->qtype, msg, n, ans, sizeof(ans),
			    o->timeout_ms, &err);
	if (got < 0)
		return err == STP_ERR_REP_CMD_NOT_SUPPORTED ? 1 : cli_fail(o, "resolve", err);
	if (dns_response_parse(&q->ans, ans, (size_t)got, q->id) < 0) {
		fprintf(stderr, "stp: resolve: %s: the proxy's answer is not DNS\n", o->args[0]);
		return CLI_EXIT_PROTOCOL;
	}
	q->answered = true;
	return 0;
}

/* Tor's RESOLVE: one address. */
static int resolve_f0(const struct cli_opts *o)
{
	struct stp_addr a;
	char text[STP_ADDR_STR_MAX];
	enum stp_err err;

	if (stp_resolve(&o->proxy, o->args[0], &a, o->timeout_ms, &err) < 0) {
		if (err == STP_ERR_REP_HOST_UNREACHABLE) {
			fprintf(stderr, "stp: resolve: %s: name not found\n", o->args[0]);
			return CLI_EXIT_NXDOMAIN;
		}
		return cli_fail(o, "resolve", err);
	}
	a.sa.ss_family == AF_INET
		? inet_ntop(AF_INET, &((struct sockaddr_in *)&a.sa)->sin_addr, text, sizeof(text))
		: inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&a.sa)->sin6_addr, text,
			    sizeof(text));
	printf("%s\n", text);
	return CLI_EXIT_OK;
}

static int resolve_via_proxy(const struct cli_opts *o, struct lookup *q, size_t nq)
{
	for (size_t i = 0; i < nq; i++) {
		int rc = resolve_f2(o, &q[i]);
		if (rc == 1)
			return resolve_f0(o);
		if (rc != 0)
			return rc;
	}
	return resolve_print(o, q, nq);
}

/* The served configuration sends the name direct: the system's resolver,
 * the same output. */
static int resolve_local(const struct cli_opts *o)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char text[INET6_ADDRSTRLEN];
	int rc = getaddrinfo(o->args[0], NULL, &hints, &res);

	if (rc != 0) {
		fprintf(stderr, "stp: resolve: %s: %s (local)\n", o->args[0], gai_strerror(rc));
		return CLI_EXIT_NXDOMAIN;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		const void *a = ai->ai_family == AF_INET
					? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
					: (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
		printf("%s\n", inet_ntop(ai->ai_family, a, text, sizeof(text)));
	}
	freeaddrinfo(res);
	return CLI_EXIT_OK;
}

int cli_cmd_resolve(const struct cli_opts *o)
{
	struct sockaddr_storage server;
	struct lookup q[2] = { { .qtype = DNS_TYPE_A }, { .qtype = DNS_TYPE_AAAA } };
	struct stp_udp *u;
	enum stp_err err;
	uint16_t base;
	int rc;

	/* The ids only have to tell our two questions apart from strays. */
	base = (uint16_t)(getpid() ^ (resolve_now() & 0xFFFF));
	q[0].id = base;
	q[1].id = (uint16_t)(base + 1);
	struct cli_opts ro = *o; /* the proxy the served configuration picks */
	if (o->dns == NULL) {
		if (cli_route(o, "resolve", o->args[0], 0, &ro.proxy))
			return resolve_local(o);
		return resolve_via_proxy(&ro, q, 2);
	}
	if (resolve_server(o, &server) < 0)
		return CLI_EXIT_USAGE;
	/* --dns SERVER: the server's `route` picks the proxy; the query always
	 * goes through one (the point of --dns). */
	char host[INET6_ADDRSTRLEN] = "";
	inet_ntop(server.ss_family,
		  server.ss_family == AF_INET ? (void *)&((struct sockaddr_in *)&server)->sin_addr
					      : (void *)&((struct sockaddr_in6 *)&server)->sin6_addr,
		  host, sizeof(host));
	if (o->ac && !stp_autoconf_direct(o->ac, host, sa_port((struct sockaddr *)&server)))
		stp_autoconf_route(o->ac, host, sa_port((struct sockaddr *)&server), &ro.proxy);
	u = stp_udp_open(&ro.proxy, o->timeout_ms, &err);
	if (u == NULL)
		return cli_fail(o, "resolve", err);
	rc = resolve_loop(o, u, q, 2, (struct sockaddr *)&server);
	stp_udp_close(u);
	return rc;
}
