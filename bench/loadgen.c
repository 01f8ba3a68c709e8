/*
 * loadgen.c - command line and result output of the benchmark load
 * generator. See bench/README.md for the metrics; loadgen.h for the
 * timeline every mode follows.
 *
 * One result is printed as one JSON object on stdout (for bench/compare)
 * and one human line on stderr. Exit status: 0 when the run completed with
 * no failure, 1 when anything failed (the JSON still says what was
 * measured), 2 on a usage error.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loadgen.h"

static const char *const mode_names[] = { "throughput", "connrate", "idle", "udp" };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: loadgen MODE [--proxy 127.0.0.1:PORT | --direct] [options]\n"
		"modes:\n"
		"  throughput  N streams one way (--streams, --direction up|down): MB/s\n"
		"  connrate    C clients looping connect+handshake+echo+close (--clients):\n"
		"              cycles/s and latency p50/p90/p99\n"
		"  idle        K idle relayed sessions (--sessions, --pid PROXY_PID):\n"
		"              proxy KB and fds per session\n"
		"  udp         F UDP ASSOCIATE flows (--streams, --window, --size):\n"
		"              datagrams/s and loss\n"
		"options:\n"
		"  --proxy ADDR:PORT     SOCKS5 proxy (127.0.0.0/8 only)\n"
		"  --direct              no proxy: talk to the targets themselves\n"
		"  --threads N           client threads (default 2)\n"
		"  --target-threads N    threads serving the targets (default 1)\n"
		"  --targets N           target addresses 127.0.0.2.. (default 8)\n"
		"  --duration SECS       measured time (default 5)\n"
		"  --warmup SECS         unmeasured time before it (default 1)\n"
		"  --streams N           throughput streams or UDP flows (default 1)\n"
		"  --direction up|down   throughput: client->target or target->client\n"
		"  --clients N           connrate concurrency (default 32)\n"
		"  --sessions N          idle sessions (default 1000)\n"
		"  --pid PID             idle: the proxy process (its children count too)\n"
		"  --window N            udp: datagrams in flight per flow (default 32)\n"
		"  --size BYTES          udp datagram payload (512) / connrate echo (64)\n"
		"  --userpass USER:PASS  authenticate with RFC 1929 username/password\n"
		"  --pipeline            greeting, RFC 1929 and request in one write (stpd's\n"
		"                        pipelining, docs/protocol.md 5.11; not for microsocks)\n"
		"  --tls                 throughput/connrate: SOCKS over TLS (TLS from the first\n"
		"                        byte; the certificate is NOT verified); blocking, one\n"
		"                        thread per stream or client\n"
		"  --blocking            the same blocking threads without TLS (the TLS base)\n"
		"  --mux                 connrate: each cycle an HTTP/2 CONNECT stream of stpd's\n"
		"                        multiplexing (CMD X'30'); with --tls over TLS\n"
		"  --mux-conns N         multiplexed connections (default: --threads)\n");
}

static long num_arg(const char *name, const char *s, long lo, long hi)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
		fprintf(stderr, "loadgen: --%s: expected %ld..%ld, got '%s'\n", name, lo, hi, s);
		exit(2);
	}
	return v;
}

static double secs_arg(const char *name, const char *s)
{
	char *end;
	double v = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || v < 0 || v > 3600) {
		fprintf(stderr, "loadgen: --%s: expected 0..3600 seconds, got '%s'\n", name, s);
		exit(2);
	}
	return v;
}

static void parse_mode(struct lg_opts *o, const char *s)
{
	for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++)
		if (strcmp(s, mode_names[i]) == 0) {
			o->mode = (enum lg_mode)i;
			return;
		}
	fprintf(stderr, "loadgen: unknown mode '%s'\n", s);
	usage(stderr);
	exit(2);
}

/* USER:PASS, each 1-255 bytes (RFC 1929); the password may hold ':'. */
static void parse_userpass(struct lg_opts *o, char *s)
{
	char *colon = strchr(s, ':');
	if (!colon || colon == s || colon - s > 255 || colon[1] == '\0' ||
	    strlen(colon + 1) > 255) {
		fprintf(stderr, "loadgen: --userpass: expected USER:PASS (1-255 bytes each)\n");
		exit(2);
	}
	*colon = '\0';
	o->user = s;
	o->pass = colon + 1;
}

static void parse_args(struct lg_opts *o, int argc, char **argv)
{
	enum { O_PROXY = 256, O_DIRECT, O_THREADS, O_TTHREADS, O_TARGETS, O_DURATION,
	       O_WARMUP, O_STREAMS, O_DIRECTION, O_CLIENTS, O_SESSIONS, O_PID, O_WINDOW,
	       O_SIZE, O_USERPASS, O_TLS, O_BLOCKING, O_PIPELINE, O_MUX, O_MUXCONNS };
	static const struct option longopts[] = {
		{ "proxy", required_argument, NULL, O_PROXY },
		{ "direct", no_argument, NULL, O_DIRECT },
		{ "threads", required_argument, NULL, O_THREADS },
		{ "target-threads", required_argument, NULL, O_TTHREADS },
		{ "targets", required_argument, NULL, O_TARGETS },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "warmup", required_argument, NULL, O_WARMUP },
		{ "streams", required_argument, NULL, O_STREAMS },
		{ "direction", required_argument, NULL, O_DIRECTION },
		{ "clients", required_argument, NULL, O_CLIENTS },
		{ "sessions", required_argument, NULL, O_SESSIONS },
		{ "pid", required_argument, NULL, O_PID },
		{ "window", required_argument, NULL, O_WINDOW },
		{ "size", required_argument, NULL, O_SIZE },
		{ "userpass", required_argument, NULL, O_USERPASS },
		{ "tls", no_argument, NULL, O_TLS },
		{ "pipeline", no_argument, NULL, O_PIPELINE },
		{ "blocking", no_argument, NULL, O_BLOCKING },
		{ "mux", no_argument, NULL, O_MUX },
		{ "mux-conns", required_argument, NULL, O_MUXCONNS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_proxy = false;
	long size = -1;
	int ch;

	*o = (struct lg_opts){ .threads = 2, .target_threads = 1, .ntargets = 8,
			       .duration = 5, .warmup = 1, .streams = 1, .dir = LG_UP,
			       .clients = 32, .sessions = 1000, .window = 32 };
	if (argc < 2 || argv[1][0] == '-') {
		usage(argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
		exit(argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2);
	}
	parse_mode(o, argv[1]);
	optind = 2;
	while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (ch) {
		case O_PROXY:
			if (lg_parse_addr(&o->proxy, optarg) < 0 || !lg_is_loopback(&o->proxy)) {
				fprintf(stderr, "loadgen: --proxy: need 127.x.y.z:PORT\n");
				exit(2);
			}
			have_proxy = true;
			break;
		case O_DIRECT: o->direct = true; break;
		case O_THREADS: o->threads = (int)num_arg("threads", optarg, 1, LG_MAX_THREADS); break;
		case O_TTHREADS:
			o->target_threads = (int)num_arg("target-threads", optarg, 1, LG_MAX_THREADS);
			break;
		case O_TARGETS: o->ntargets = (int)num_arg("targets", optarg, 1, LG_MAX_TARGETS); break;
		case O_DURATION: o->duration = secs_arg("duration", optarg); break;
		case O_WARMUP: o->warmup = secs_arg("warmup", optarg); break;
		case O_STREAMS: o->streams = (int)num_arg("streams", optarg, 1, 4096); break;
		case O_DIRECTION:
			if (strcmp(optarg, "up") != 0 && strcmp(optarg, "down") != 0) {
				fprintf(stderr, "loadgen: --direction: up or down\n");
				exit(2);
			}
			o->dir = optarg[0] == 'u' ? LG_UP : LG_DOWN;
			break;
		case O_CLIENTS: o->clients = (int)num_arg("clients", optarg, 1, 8192); break;
		case O_SESSIONS: o->sessions = (int)num_arg("sessions", optarg, 1, 9000); break;
		case O_PID: o->pid = (pid_t)num_arg("pid", optarg, 1, 1 << 22); break;
		case O_WINDOW: o->window = (int)num_arg("window", optarg, 1, 4096); break;
		case O_SIZE: size = num_arg("size", optarg, 1, 8192); break;
		case O_USERPASS: parse_userpass(o, optarg); break;
		case O_TLS: o->tls = o->blocking = true; break;
		case O_PIPELINE: lg_conn_pipeline(true); break;
		case O_BLOCKING: o->blocking = true; break;
		case O_MUX: o->mux = true; break;
		case O_MUXCONNS: o->mux_conns = (int)num_arg("mux-conns", optarg, 1, 1024); break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc || have_proxy == o->direct) {
		fprintf(stderr, "loadgen: give exactly one of --proxy and --direct\n");
		exit(2);
	}
	if (o->blocking && o->mode != LG_THROUGHPUT && o->mode != LG_CONNRATE) {
		fprintf(stderr, "loadgen: --tls and --blocking: throughput and connrate only\n");
		exit(2);
	}
	if (o->mux) {
		if (o->mode != LG_CONNRATE || o->direct || o->user) {
			fprintf(stderr, "loadgen: --mux: connrate through a proxy, method none\n");
			exit(2);
		}
		o->blocking = false; /* --tls with --mux: TLS inside lg_mux.c's loop */
	}
	if ((o->tls || o->user) && o->direct) {
		fprintf(stderr, "loadgen: --tls and --userpass need --proxy\n");
		exit(2);
	}
	o->size = size > 0 ? (size_t)size : (o->mode == LG_UDP ? 512 : 64);
}

static enum lg_tkind target_kind(const struct lg_opts *o)
{
	switch (o->mode) {
	case LG_THROUGHPUT: return o->dir == LG_UP ? LG_T_SINK : LG_T_SOURCE;
	case LG_UDP: return LG_T_UDP_ECHO;
	default: return LG_T_ECHO;
	}
}

static void print_json(const struct lg_opts *o, const struct lg_run *run,
		       const struct lg_result *r, int rc)
{
	printf("{\"mode\":\"%s\",\"mux\":%s,\"direct\":%s,\"tls\":%s,\"blocking\":%s,\"userpass\":%s,"
	       "\"ok\":%s,\"errors\":%lu,\"failed\":%lu,\"seconds\":%.3f",
	       mode_names[o->mode], o->mux ? "true" : "false", o->direct ? "true" : "false", o->tls ? "true" : "false",
	       o->blocking ? "true" : "false", o->user ? "true" : "false",
	       rc == 0 ? "true" : "false",
	       (unsigned long)atomic_load(&run->errors), (unsigned long)atomic_load(&run->failed),
	       r->seconds);
	switch (o->mode) {
	case LG_THROUGHPUT:
		printf(",\"streams\":%d,\"direction\":\"%s\",\"mb_s\":%.1f", o->streams,
		       o->dir == LG_UP ? "up" : "down", r->mb_s);
		break;
	case LG_CONNRATE:
		printf(",\"clients\":%d,\"size\":%zu,\"conn_s\":%.1f,\"cycles\":%lu,"
		       "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f",
		       o->clients, o->size, r->per_s, (unsigned long)r->received, r->p50_ms,
		       r->p90_ms, r->p99_ms);
		break;
	case LG_IDLE:
		printf(",\"sessions\":%lu", (unsigned long)r->sessions);
		if (r->has_mem)
			printf(",\"base_pss_kb\":%ld,\"pss_kb\":%ld,\"base_rss_kb\":%ld,"
			       "\"rss_kb\":%ld,\"base_fds\":%ld,\"fds\":%ld,\"procs\":%d,"
			       "\"kb_per_session\":%.3f,\"rss_kb_per_session\":%.3f,"
			       "\"fds_per_session\":%.3f",
			       r->base.pss_kb, r->held.pss_kb, r->base.rss_kb, r->held.rss_kb,
			       r->base.fds, r->held.fds, r->held.nprocs, r->kb_per_session,
			       r->rss_kb_per_session, r->fds_per_session);
		break;
	case LG_UDP:
		printf(",\"flows\":%d,\"window\":%d,\"size\":%zu,\"dgram_s\":%.1f,\"sent\":%lu,"
		       "\"received\":%lu,\"loss_pct\":%.3f",
		       o->streams, o->window, o->size, r->per_s, (unsigned long)r->sent,
		       (unsigned long)r->received, r->loss_pct);
		break;
	}
	printf(",\"first_error\":\"");
	for (const char *p = run->first_error; *p; p++)
		printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
	printf("\"}\n");
	fflush(stdout);
}

static void print_human(const struct lg_opts *o, const struct lg_result *r)
{
	const char *via = o->direct ? "direct"
			  : o->mux  ? (o->tls ? "proxy+mux+tls" : "proxy+mux")
			  : o->tls  ? "proxy+tls"
				    : "proxy";
	switch (o->mode) {
	case LG_THROUGHPUT:
		fprintf(stderr, "throughput %s %d stream(s) %s: %.1f MB/s\n", via, o->streams,
			o->dir == LG_UP ? "up" : "down", r->mb_s);
		break;
	case LG_CONNRATE:
		fprintf(stderr, "connrate %s %d clients: %.0f conn/s p50 %.2f p90 %.2f p99 %.2f ms\n",
			via, o->clients, r->per_s, r->p50_ms, r->p90_ms, r->p99_ms);
		break;
	case LG_IDLE:
		fprintf(stderr, "idle %s %lu sessions", via, (unsigned long)r->sessions);
		if (r->has_mem)
			fprintf(stderr, ": %.2f KB (PSS) and %.2f fds per session (%d process(es))",
				r->kb_per_session, r->fds_per_session, r->held.nprocs);
		fputc('\n', stderr);
		break;
	case LG_UDP:
		fprintf(stderr, "udp %s %d flow(s): %.0f datagrams/s, loss %.2f%%\n", via,
			o->streams, r->per_s, r->loss_pct);
		break;
	}
}

int main(int argc, char **argv)
{
	static int (*const modes[])(struct lg_run *, struct lg_result *) = {
		lg_mode_throughput, lg_mode_connrate, lg_mode_idle, lg_mode_udp,
	};
	struct lg_opts o;
	struct lg_targets tg;
	struct lg_run run;
	struct lg_result res;
	char err[256];

	parse_args(&o, argc, argv);
	signal(SIGPIPE, SIG_IGN);
	lg_raise_nofile();
	memset(&run, 0, sizeof(run));
	memset(&res, 0, sizeof(res));
	pthread_mutex_init(&run.lock, NULL);
	run.o = &o;
	run.tg = &tg;
	if (lg_targets_start(&tg, target_kind(&o), o.ntargets, o.target_threads, err,
			     sizeof(err)) < 0) {
		fprintf(stderr, "loadgen: %s\n", err);
		return 1;
	}
	lg_conn_userpass(o.user, o.pass);
	int rc = o.mux	    ? lg_mode_mux(&run, &res)
		 : o.blocking ? lg_mode_blocking(&run, &res)
			      : modes[o.mode](&run, &res);
	lg_targets_stop(&tg);
	if (atomic_load(&run.errors) || atomic_load(&run.failed))
		rc = -1;
	print_json(&o, &run, &res, rc);
	print_human(&o, &res);
	if (run.first_error[0])
		fprintf(stderr, "loadgen: first failure: %s\n", run.first_error);
	return rc == 0 ? 0 : 1;
}
