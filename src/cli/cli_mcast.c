/*
 * cli_mcast.c - `stp mcast join GROUP:PORT`: joins a multicast group
 * through stpd (libstp's stp_mcast_*), prints every datagram of the group
 * as one line on stdout and, with --send, sends every stdin line to the
 * group. stdin's end (with --send) sends LEAVE and exits 0; a notice from
 * the proxy ends the command with the notice's exit code.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_mcast.h"
#include "common/sockaddr.h"

#define MC_LINE_MAX 65000 /* a datagram's payload, framing included, fits in 64 KiB */

struct mc_opts {
	struct cli_opts o;
	struct sockaddr_storage group;
	socklen_t group_len;
	bool send;   /* --send: stdin lines go to the group */
	bool hex;    /* --hex: payloads as hex */
	bool from;   /* --from: "ADDR:PORT " before each line */
	long count;  /* --count N: exit after N datagrams (0: never) */
	struct stp_mcast_filter filter;
};

static void mc_usage(FILE *f)
{
	fputs("usage: stp [options] mcast join GROUP:PORT [--send] [--source ADDR]... \n"
	      "                                         [--exclude ADDR]... [--hex] [--from]\n"
	      "                                         [--count N]\n"
	      "  join GROUP (an IPv4 or [IPv6] multicast address) through the proxy's multicast\n"
	      "  extension; print each datagram of the group as one line on stdout\n"
	      "  --send          also send each stdin line as one datagram; at stdin's end,\n"
	      "                  keep printing for --timeout seconds (default 0.5), then leave\n"
	      "  --source ADDR   receive only from ADDR (repeatable: INCLUDE filter)\n"
	      "  --exclude ADDR  receive from every source but ADDR (repeatable: EXCLUDE filter)\n"
	      "  --hex           print payloads in hex; --from: prefix lines with the source\n"
	      "  --count N       exit after N datagrams\n"
	      "  --proxy URL, --timeout SECONDS, -v: as for the other commands\n"
	      "exit codes: as for the other commands; 20 when the proxy refused the JOIN\n"
	      "  (X'B0' X'B1' X'B2' X'B6') or ended the membership (notices X'B3'-X'B5')\n",
	      f);
}

/* The other commands' codes; the extension's reply codes are "another
 * reply code". */
static int mc_exit_code(enum stp_err err)
{
	switch (err) {
	case STP_ERR_MCAST_NO_SEND:
	case STP_ERR_MCAST_NO_RECV:
	case STP_ERR_MCAST_REFUSED:
	case STP_ERR_MCAST_NOT_GROUP:
	case STP_ERR_MCAST_BANDWIDTH:
	case STP_ERR_MCAST_TIME:
	case STP_ERR_MCAST_IDLE: return CLI_EXIT_REP_OTHER;
	default: return cli_exit_code(err);
	}
}

static int mc_fail(const struct mc_opts *m, const char *what, enum stp_err err)
{
	cli_fail(&m->o, what, err); /* prints the message */
	return mc_exit_code(err);
}

bool cli_mcast_wanted(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0)
			return i + 1 < argc && strcmp(argv[i + 1], "mcast") == 0;
		if (a[0] != '-')
			return strcmp(a, "mcast") == 0;
		/* global options that take a separate value */
		if (strcmp(a, "--proxy") == 0 || strcmp(a, "--timeout") == 0 ||
		    strcmp(a, "--dns") == 0)
			i++;
	}
	return false;
}

static int mc_add_source(struct mc_opts *m, enum stp_mcast_fmode mode, const char *text)
{
	socklen_t len;

	if (m->filter.mode != STP_MCAST_ANY && m->filter.mode != mode) {
		fprintf(stderr, "stp: mcast: --source and --exclude do not mix\n");
		return -1;
	}
	if (m->filter.nsrc == STP_MCAST_SOURCES_MAX ||
	    sa_parse(&m->filter.src[m->filter.nsrc], &len, text, 0) < 0) {
		fprintf(stderr, "stp: mcast: bad or too many sources ('%s', at most %d)\n", text,
			STP_MCAST_SOURCES_MAX);
		return -1;
	}
	m->filter.mode = mode;
	m->filter.nsrc++;
	return 0;
}

static int mc_timeout(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= 0) || v > 86400)
		return -1;
	return (int)(v * 1000);
}

/* The options of every command plus mcast's own, anywhere on the line. */
static int mc_parse_opts(struct mc_opts *m, int argc, char **argv)
{
	enum { O_PROXY = 256, O_TIMEOUT, O_SEND, O_SOURCE, O_EXCLUDE, O_HEX, O_FROM, O_COUNT };
	static const struct option longopts[] = {
		{ "proxy", required_argument, NULL, O_PROXY },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "send", no_argument, NULL, O_SEND },
		{ "source", required_argument, NULL, O_SOURCE },
		{ "exclude", required_argument, NULL, O_EXCLUDE },
		{ "hex", no_argument, NULL, O_HEX },
		{ "from", no_argument, NULL, O_FROM },
		{ "count", required_argument, NULL, O_COUNT },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char *end;

	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case O_PROXY: m->o.proxy_url = optarg; break;
		case O_TIMEOUT:
			if ((m->o.timeout_ms = mc_timeout(optarg)) < 0) {
				fprintf(stderr, "stp: --timeout wants seconds (0 to 86400)\n");
				return -1;
			}
			m->o.timeout_set = true;
			break;
		case O_SEND: m->send = true; break;
		case O_SOURCE:
		case O_EXCLUDE:
			if (mc_add_source(m, ch == O_SOURCE ? STP_MCAST_INCLUDE : STP_MCAST_EXCLUDE,
					  optarg) < 0)
				return -1;
			break;
		case O_HEX: m->hex = true; break;
		case O_FROM: m->from = true; break;
		case O_COUNT:
			m->count = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || m->count < 1) {
				fprintf(stderr, "stp: --count wants a positive number\n");
				return -1;
			}
			break;
		case 'v': m->o.verbose = true; break;
		case 'h': mc_usage(stdout); exit(CLI_EXIT_OK);
		default: return -1;
		}
	}
	return 0;
}

static int mc_parse(struct mc_opts *m, int argc, char **argv)
{
	memset(m, 0, sizeof(*m));
	m->o.timeout_ms = 30000;
	if (mc_parse_opts(m, argc, argv) < 0)
		return -1;
	/* operands: mcast join GROUP:PORT */
	if (argc - optind != 3 || strcmp(argv[optind + 1], "join") != 0) {
		fprintf(stderr, "stp: mcast: expected 'mcast join GROUP:PORT'\n");
		return -1;
	}
	if (sa_parse(&m->group, &m->group_len, argv[optind + 2], 0) < 0 ||
	    sa_port((struct sockaddr *)&m->group) == 0) {
		fprintf(stderr, "stp: mcast: bad group '%s' (want ADDR:PORT or [V6]:PORT)\n",
			argv[optind + 2]);
		return -1;
	}
	m->o.cmd = "mcast";
	if (m->o.verbose)
		stp_set_debug(true);
	return 0;
}

/* ---- the loop ---- */

static void mc_print(const struct mc_opts *m, const uint8_t *p, size_t n,
		     const struct stp_addr *from)
{
	char text[STP_ADDR_STR_MAX];

	if (m->from)
		printf("%s ", stp_addr_str(from, text, sizeof(text)));
	if (m->hex) {
		for (size_t i = 0; i < n; i++)
			printf("%02x", p[i]);
		fputc('\n', stdout);
	} else {
		fwrite(p, 1, n, stdout);
		if (n == 0 || p[n - 1] != '\n')
			fputc('\n', stdout);
	}
	fflush(stdout);
}

struct mc_lines {
	char buf[MC_LINE_MAX];
	size_t len;
};

/* Sends each complete line of l (the rest too at EOF). 0 or an exit code. */
static int mc_send_lines(const struct mc_opts *m, struct stp_mcast *g, struct mc_lines *l,
			 bool eof)
{
	size_t start = 0;
	enum stp_err err;

	for (size_t i = 0; i < l->len; i++) {
		if (l->buf[i] != '\n')
			continue;
		if (stp_mcast_send(g, l->buf + start, i - start, &err) < 0)
			return mc_fail(m, "mcast: send", err);
		start = i + 1;
	}
	if (eof && start < l->len) {
		if (stp_mcast_send(g, l->buf + start, l->len - start, &err) < 0)
			return mc_fail(m, "mcast: send", err);
		start = l->len;
	}
	if (start == 0 && l->len == sizeof(l->buf)) {
		fprintf(stderr, "stp: mcast: line longer than %zu bytes\n", sizeof(l->buf));
		return CLI_EXIT_USAGE;
	}
	memmove(l->buf, l->buf + start, l->len - start);
	l->len -= start;
	return 0;
}

/* One datagram (or a dropped frame, or the membership's end). */
static int mc_on_group(const struct mc_opts *m, struct stp_mcast *g, long *seen)
{
	static uint8_t data[65536];
	struct stp_addr from;
	enum stp_err err;
	ssize_t n = stp_mcast_recv(g, data, sizeof(data), &from, 0, &err);

	if (n < 0)
		return err == STP_ERR_TIMEOUT ? 0 : mc_fail(m, "mcast", err);
	mc_print(m, data, (size_t)n, &from);
	(*seen)++;
	return 0;
}

/* stdin: lines to send. 0, an exit code, or -1 at its end. */
static int mc_on_stdin(const struct mc_opts *m, struct stp_mcast *g, struct mc_lines *l)
{
	ssize_t n = read(STDIN_FILENO, l->buf + l->len, sizeof(l->buf) - l->len);
	bool eof = n == 0 || (n < 0 && errno != EINTR);
	int rc;

	if (n > 0)
		l->len += (size_t)n;
	if ((rc = mc_send_lines(m, g, l, eof)) != 0)
		return rc;
	return eof ? -1 : 0;
}

static int64_t mc_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After stdin's end: the last frames are still on their way to the relay
 * (a LEAVE that overtook them would have them dropped), so linger, then
 * LEAVE. */
static int mc_finish(const struct mc_opts *m, struct stp_mcast *g)
{
	enum stp_err err;

	if (stp_mcast_leave(g, m->o.timeout_ms, &err) < 0)
		return mc_fail(m, "mcast: leave", err);
	return CLI_EXIT_OK;
}

static int mc_loop(const struct mc_opts *m, struct stp_mcast *g)
{
	static struct mc_lines lines;
	long seen = 0;
	int rc = 0, wait = -1;
	int64_t linger_end = -1;
	enum stp_err err;

	while (m->count == 0 || seen < m->count) {
		bool in = m->send && linger_end < 0;
		struct pollfd p[3] = { { .fd = in ? STDIN_FILENO : -1, .events = POLLIN },
				       { .fd = stp_mcast_fd(g), .events = POLLIN },
				       { .fd = stp_mcast_control_fd(g), .events = POLLIN } };
		if (linger_end >= 0 && (wait = (int)(linger_end - mc_now_ms())) <= 0)
			return mc_finish(m, g);
		if (poll(p, 3, wait) < 0) {
			if (errno == EINTR)
				continue;
			return CLI_EXIT_LOCAL;
		}
		if (p[1].revents && (rc = mc_on_group(m, g, &seen)) != 0)
			return rc;
		if (p[2].revents && stp_mcast_check(g, &err) < 0)
			return mc_fail(m, "mcast", err);
		if (p[0].revents && (rc = mc_on_stdin(m, g, &lines)) > 0)
			return rc;
		if (rc < 0 && linger_end < 0)
			linger_end = mc_now_ms() + (m->o.timeout_set ? m->o.timeout_ms : 500);
	}
	return CLI_EXIT_OK;
}

int cli_mcast_main(int argc, char **argv)
{
	struct mc_opts m;
	enum stp_err err;
	char a[STP_ADDR_STR_MAX], b[SA_STR_MAX];

	if (mc_parse(&m, argc, argv) < 0) {
		mc_usage(stderr);
		return CLI_EXIT_USAGE;
	}
	cli_load_proxy(&m.o);
	struct stp_mcast *g = stp_mcast_join(&m.o.proxy, NULL, 0, (struct sockaddr *)&m.group,
					     m.send ? STP_MCAST_SEND : STP_MCAST_RECV,
					     m.filter.mode ? &m.filter : NULL, m.o.timeout_ms, &err);
	if (g == NULL)
		return mc_fail(&m, "mcast: join", err);
	/* On stderr, so that stdout holds only the group's data. */
	fprintf(stderr, "stp: joined %s via %s (%s)\n",
		sa_str((struct sockaddr *)&m.group, b, sizeof(b)),
		stp_addr_str(stp_mcast_intranet(g), a, sizeof(a)),
		stp_mcast_can_send(g) && stp_mcast_can_recv(g) ? "send and receive"
		: stp_mcast_can_send(g)				? "send only"
								: "receive only");
	int rc = mc_loop(&m, g);
	stp_mcast_close(g);
	return rc;
}
