/*
 * cli_dnsproxy.c - `stp dns [--listen ADDR:PORT] [PROXY-URL]`: a local DNS
 * stub resolver on UDP and TCP (RFC 1035 4.2) that sends every query
 * through the proxy with DNS QUERY X'F2' (libstp's stp_dns_query), so that
 * dig, a browser or a whole namespace sees the proxy's DNS and nothing goes
 * to a local nameserver. A proxy without X'F2' (REP X'07') still answers
 * A, AAAA and PTR through Tor's RESOLVE X'F0' / RESOLVE_PTR X'F1'; other
 * failures become SERVFAIL, a name the proxy's rules refuse REFUSED.
 *
 * One thread per UDP query and per TCP connection, at most
 * DNSP_THREADS_MAX at once (a query beyond that gets SERVFAIL at once):
 * each query is a blocking round trip to the proxy, and a slow one must
 * not hold up the others.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/sockaddr.h"

#define DNSP_THREADS_MAX  64
#define DNSP_UDP_MAX      512   /* RFC 1035 4.2.1, without EDNS */
#define DNSP_UDP_EDNS_MAX 1232  /* the most we send over UDP with EDNS */
#define DNSP_TCP_IDLE_MS  10000 /* RFC 7766 6.2.3: close idle connections */
#define DNSP_TTL_FALLBACK 60    /* RESOLVE gives no TTL */
#define DNSP_ANSWER_MAX   65535

struct dnsp {
	const struct cli_opts *o;
	int udp, tcp;
	atomic_int threads;
};

struct dnsp_job {
	struct dnsp *d;
	int fd;                       /* a TCP connection, or -1 for UDP */
	struct sockaddr_storage peer; /* UDP */
	socklen_t peerlen;
	uint8_t query[DNSP_ANSWER_MAX];
	size_t len;
};

/* ---- one query ---- */

static size_t dnsp_fail(uint8_t *out, size_t cap, const uint8_t *query,
			const struct dns_question *q, unsigned rcode)
{
	struct dns_synth a = { .rcode = rcode };
	return dns_answer_synth(out, cap, query, q, &a);
}

/* "d.c.b.a.in-addr.arpa" or the ip6.arpa nibbles (RFC 3596 2.5) -> sa. */
static int dnsp_ptr_addr(const char *name, struct sockaddr_storage *ss)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	unsigned b[4];
	char tail[32];

	memset(ss, 0, sizeof(*ss));
	if (sscanf(name, "%3u.%3u.%3u.%3u.%31s", &b[3], &b[2], &b[1], &b[0], tail) == 5 &&
	    strcasecmp(tail, "in-addr.arpa") == 0 && b[0] < 256 && b[1] < 256 && b[2] < 256 &&
	    b[3] < 256) {
		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]);
		return 0;
	}
	if (strlen(name) != 32 * 2 + strlen("ip6.arpa") || strcasecmp(name + 64, "ip6.arpa") != 0)
		return -1;
	s6->sin6_family = AF_INET6;
	for (int i = 0; i < 32; i++) {
		char c = name[i * 2];
		int v = c >= '0' && c <= '9' ? c - '0' :
			c >= 'a' && c <= 'f' ? c - 'a' + 10 :
			c >= 'A' && c <= 'F' ? c - 'A' + 10 :
					       -1;
		if (v < 0 || name[i * 2 + 1] != '.')
			return -1;
		s6->sin6_addr.s6_addr[15 - i / 2] |= (uint8_t)(i % 2 ? v << 4 : v);
	}
	return 0;
}

/* Tor's RESOLVE / RESOLVE_PTR for a proxy without X'F2'. */
static size_t dnsp_fallback(struct dnsp *d, uint8_t *out, size_t cap, const uint8_t *query,
			    const struct dns_question *q)
{
	struct dns_synth a = { .ttl = DNSP_TTL_FALLBACK };
	uint8_t rdata[256];
	enum stp_err err;
	int rc;

	if (q->type == DNS_TYPE_PTR) {
		struct sockaddr_storage ss;
		char name[256];
		if (dnsp_ptr_addr(q->name, &ss) < 0)
			return dnsp_fail(out, cap, query, q, DNS_RCODE_SERVFAIL);
		rc = stp_resolve_ptr(&d->o->proxy, (struct sockaddr *)&ss, name, sizeof(name),
				     d->o->timeout_ms, &err);
		if (rc == 0 && (a.rdlen = dns_name_encode(rdata, sizeof(rdata), name)) == 0)
			err = STP_ERR_PROTOCOL, rc = -1;
	} else {
		struct stp_addr addr;
		rc = stp_resolve(&d->o->proxy, q->name, &addr, d->o->timeout_ms, &err);
		/* RESOLVE gives one address of either family: the other is NODATA. */
		if (rc == 0 && addr.sa.ss_family == AF_INET && q->type == DNS_TYPE_A) {
			memcpy(rdata, &((struct sockaddr_in *)&addr.sa)->sin_addr, 4);
			a.rdlen = 4;
		} else if (rc == 0 && addr.sa.ss_family == AF_INET6 && q->type == DNS_TYPE_AAAA) {
			memcpy(rdata, &((struct sockaddr_in6 *)&addr.sa)->sin6_addr, 16);
			a.rdlen = 16;
		}
	}
	if (rc < 0)
		a.rcode = err == STP_ERR_REP_HOST_UNREACHABLE ? DNS_RCODE_NXDOMAIN :
			  err == STP_ERR_REP_NOT_ALLOWED      ? DNS_RCODE_REFUSED :
								DNS_RCODE_SERVFAIL;
	a.rdata = rdata;
	return dns_answer_synth(out, cap, query, q, &a);
}

/* The answer to query[0..len) into out (DNSP_ANSWER_MAX); 0: none (not a
 * query we can answer even with an error: no question to echo). */
static size_t dnsp_answer(struct dnsp *d, const uint8_t *query, size_t len, uint8_t *out)
{
	struct dns_question q;
	enum stp_err err;
	ssize_t n;

	if (dns_question_parse(&q, query, len) < 0 || (q.flags & 0x8000))
		return 0;
	if (len > DNSP_UDP_EDNS_MAX) /* X'F2' carries queries up to 1232 bytes */
		return dnsp_fail(out, DNSP_ANSWER_MAX, query, &q, DNS_RCODE_FORMERR);
	if ((q.flags >> 11 & 0x0F) != 0)
		return dnsp_fail(out, DNSP_ANSWER_MAX, query, &q, DNS_RCODE_NOTIMP);
	n = stp_dns_query(&d->o->proxy, q.name, q.type, query, len, out, DNSP_ANSWER_MAX,
			  d->o->timeout_ms, &err);
	if (n > 0)
		return (size_t)n;
	if (d->o->verbose)
		fprintf(stderr, "stp: dns: %s type %u: %s\n", q.name[0] ? q.name : ".", q.type,
			stp_strerror(err));
	if (err == STP_ERR_REP_CMD_NOT_SUPPORTED && q.class == 1 &&
	    (q.type == DNS_TYPE_A || q.type == DNS_TYPE_AAAA || q.type == DNS_TYPE_PTR))
		return dnsp_fallback(d, out, DNSP_ANSWER_MAX, query, &q);
	return dnsp_fail(out, DNSP_ANSWER_MAX, query, &q,
			 err == STP_ERR_REP_NOT_ALLOWED ? DNS_RCODE_REFUSED : DNS_RCODE_SERVFAIL);
}

/* ---- UDP and TCP ---- */

static void dnsp_udp_reply(struct dnsp_job *j, const uint8_t *a, size_t n)
{
	struct dns_question q;
	uint8_t tc[DNSP_UDP_MAX];
	size_t max = DNSP_UDP_MAX;

	if (dns_question_parse(&q, j->query, j->len) == 0 && q.udp_size > DNSP_UDP_MAX)
		max = q.udp_size < DNSP_UDP_EDNS_MAX ? q.udp_size : DNSP_UDP_EDNS_MAX;
	if (n > max) {
		/* Too big for this client over UDP: TC set, it asks over TCP
		 * (RFC 1035 4.2.1, RFC 7766). */
		struct dns_synth t = { .tc = true };
		n = dns_answer_synth(tc, sizeof(tc), j->query, &q, &t);
		a = tc;
	}
	if (n > 0)
		sendto(j->d->udp, a, n, 0, (struct sockaddr *)&j->peer, j->peerlen);
}

static int dnsp_read_full(int fd, uint8_t *p, size_t n)
{
	for (size_t got = 0; got < n;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, DNSP_TCP_IDLE_MS) <= 0)
			return -1;
		ssize_t r = read(fd, p + got, n - got);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

static int dnsp_write_full(int fd, const uint8_t *p, size_t n)
{
	for (size_t off = 0; off < n;) {
		ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

/* RFC 1035 4.2.2: LEN MSG, as many as the client sends, in order. */
static void dnsp_tcp(struct dnsp_job *j, uint8_t *out)
{
	uint8_t hdr[2];

	while (dnsp_read_full(j->fd, hdr, 2) == 0) {
		j->len = (size_t)hdr[0] << 8 | hdr[1];
		if (j->len == 0 || dnsp_read_full(j->fd, j->query, j->len) < 0)
			break;
		size_t n = dnsp_answer(j->d, j->query, j->len, out + 2);
		if (n == 0)
			break;
		out[0] = (uint8_t)(n >> 8);
		out[1] = (uint8_t)n;
		if (dnsp_write_full(j->fd, out, n + 2) < 0)
			break;
	}
	close(j->fd);
}

static void *dnsp_thread(void *arg)
{
	struct dnsp_job *j = arg;
	uint8_t *out = malloc(DNSP_ANSWER_MAX + 2);

	if (out && j->fd >= 0) {
		dnsp_tcp(j, out);
	} else if (out) {
		size_t n = dnsp_answer(j->d, j->query, j->len, out);
		dnsp_udp_reply(j, out, n);
	} else if (j->fd >= 0) {
		close(j->fd);
	}
	atomic_fetch_sub(&j->d->threads, 1);
	free(out);
	free(j);
	return NULL;
}

/* Runs j on a thread of its own; false when too many are running. */
static bool dnsp_spawn(struct dnsp_job *j)
{
	pthread_attr_t attr;
	pthread_t t;
	bool ok;

	if (atomic_fetch_add(&j->d->threads, 1) >= DNSP_THREADS_MAX) {
		atomic_fetch_sub(&j->d->threads, 1);
		return false;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ok = pthread_create(&t, &attr, dnsp_thread, j) == 0;
	pthread_attr_destroy(&attr);
	if (!ok)
		atomic_fetch_sub(&j->d->threads, 1);
	return ok;
}

static void dnsp_on_udp(struct dnsp *d)
{
	struct dnsp_job *j = calloc(1, sizeof(*j));
	ssize_t n;

	if (!j)
		return;
	j->d = d;
	j->fd = -1;
	j->peerlen = sizeof(j->peer);
	n = recvfrom(d->udp, j->query, sizeof(j->query), 0, (struct sockaddr *)&j->peer,
		     &j->peerlen);
	if (n <= 0) {
		free(j);
		return;
	}
	j->len = (size_t)n;
	if (!dnsp_spawn(j)) {
		struct dns_question q;
		uint8_t out[DNSP_UDP_MAX];
		size_t len = 0;
		if (dns_question_parse(&q, j->query, j->len) == 0)
			len = dnsp_fail(out, sizeof(out), j->query, &q, DNS_RCODE_SERVFAIL);
		if (len)
			sendto(d->udp, out, len, 0, (struct sockaddr *)&j->peer, j->peerlen);
		free(j);
	}
}

static void dnsp_on_tcp(struct dnsp *d)
{
	struct dnsp_job *j;
	int fd = accept4(d->tcp, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (!(j = calloc(1, sizeof(*j)))) {
		close(fd);
		return;
	}
	j->d = d;
	j->fd = fd;
	if (!dnsp_spawn(j)) {
		close(fd);
		free(j);
	}
}

/* UDP and TCP on ss; with port 0 the UDP socket picks it, and TCP takes
 * the same one (another pick when TCP's is taken). 0, or errno. */
static int dnsp_bind(struct dnsp *d, struct sockaddr_storage *ss, socklen_t len)
{
	bool any = sa_port((struct sockaddr *)ss) == 0;
	int one = 1;

	for (int tries = 0; tries < 32; tries++) {
		if (d->udp >= 0)
			close(d->udp);
		if (d->tcp >= 0)
			close(d->tcp);
		if (any)
			sa_set_port((struct sockaddr *)ss, 0);
		d->udp = socket(ss->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		d->tcp = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (d->udp < 0 || d->tcp < 0 || bind(d->udp, (struct sockaddr *)ss, len) < 0 ||
		    getsockname(d->udp, (struct sockaddr *)ss, &len) < 0 ||
		    setsockopt(d->tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
			return errno;
		if (bind(d->tcp, (struct sockaddr *)ss, len) == 0)
			return listen(d->tcp, 64) == 0 ? 0 : errno;
		if (!any || errno != EADDRINUSE)
			return errno;
	}
	return EADDRINUSE;
}

static int dnsp_listen(struct dnsp *d, const char *text)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char shown[SA_STR_MAX];
	int e;

	if (sa_parse(&ss, &len, text, 53) < 0) {
		fprintf(stderr, "stp: dns: bad --listen address '%s'\n", text);
		return CLI_EXIT_USAGE;
	}
	if ((e = dnsp_bind(d, &ss, len)) != 0) {
		fprintf(stderr, "stp: dns: cannot listen on %s: %s\n", text, strerror(e));
		return CLI_EXIT_LOCAL;
	}
	fprintf(stderr, "stp: dns: listening on %s (udp, tcp)\n",
		sa_str((struct sockaddr *)&ss, shown, sizeof(shown)));
	fflush(stderr);
	return 0;
}

int cli_cmd_dns(const struct cli_opts *o)
{
	struct dnsp d = { .o = o, .udp = -1, .tcp = -1 };
	int rc = dnsp_listen(&d, o->listen ? o->listen : "127.0.0.1:53");

	if (rc != 0)
		return rc;
	for (;;) {
		struct pollfd p[2] = { { .fd = d.udp, .events = POLLIN },
				       { .fd = d.tcp, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return CLI_EXIT_LOCAL;
		}
		if (p[0].revents)
			dnsp_on_udp(&d);
		if (p[1].revents)
			dnsp_on_tcp(&d);
	}
}
