/*
 * mt_prom.c - see mt.h: the Prometheus text exposition format 0.0.4. Names
 * and labels are stpd's own words (command, reply and method names of
 * proto/names.c), never client input, so no label needs escaping.
 */
#include <inttypes.h>

#include "ext/metrics/mt.h"
#include "proto/socks.h"

#define U(x) ((unsigned long long)(x))

static void head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static const char *cmd_label(unsigned cmd)
{
	return cmd == 0 ? "none" : socks5_cmd_name((uint8_t)cmd);
}

static void sessions(FILE *f, const struct mt_view *v)
{
	const struct stats *s = &v->sum;

	head(f, "stp_sessions_accepted_total", "counter", "client connections accepted");
	fprintf(f, "stp_sessions_accepted_total %llu\n", U(s->accepted));
	head(f, "stp_sessions_closed_total", "counter",
	     "sessions ended, by the command they asked (none: ended before a request)");
	for (unsigned c = 0; c < 256; c++)
		if (s->closed[c])
			fprintf(f, "stp_sessions_closed_total{cmd=\"%s\",code=\"0x%02X\"} %llu\n",
				cmd_label(c), c, U(s->closed[c]));
	head(f, "stp_sessions_open", "gauge", "sessions open now, by command and state");
	for (unsigned st = 0; v->open_ok && st < v->open.n_states; st++)
		for (unsigned c = 0; c < 256; c++)
			if (v->open.by_state_cmd[st][c])
				fprintf(f,
					"stp_sessions_open{cmd=\"%s\",code=\"0x%02X\",state=\"%s\"} "
					"%llu\n",
					cmd_label(c), c, v->open.state_names[st],
					U(v->open.by_state_cmd[st][c]));
	head(f, "stp_flows_closed_total", "counter", "requests of control sessions ended");
	fprintf(f, "stp_flows_closed_total %llu\n", U(s->flows));
	head(f, "stp_bytes_total", "counter",
	     "bytes relayed by ended sessions and flows (up: client to target)");
	fprintf(f, "stp_bytes_total{direction=\"up\"} %llu\n", U(s->bytes_up));
	fprintf(f, "stp_bytes_total{direction=\"down\"} %llu\n", U(s->bytes_down));
	head(f, "stp_replies_total", "counter", "SOCKS5 replies sent, by code");
	for (unsigned r = 0; r < 256; r++)
		if (s->replies[r])
			fprintf(f, "stp_replies_total{code=\"0x%02X\",reply=\"%s\"} %llu\n", r,
				socks5_rep_name((uint8_t)r), U(s->replies[r]));
}

static void auth(FILE *f, const struct stats *s)
{
	head(f, "stp_auth_total", "counter",
	     "authentications by method, the backend that said yes, and result");
	for (unsigned m = 0; m < 256; m++)
		for (unsigned b = 0; b < STATS_BE_N; b++)
			for (unsigned ok = 0; ok < 2; ok++)
				if (s->auth[m][b][ok])
					fprintf(f,
						"stp_auth_total{method=\"%s\",backend=\"%s\","
						"result=\"%s\"} %llu\n",
						socks_method_name((uint8_t)m),
						stats_backend_name((enum stats_backend)b),
						ok ? "ok" : "fail", U(s->auth[m][b][ok]));
}

static void dns(FILE *f, const struct stats *s)
{
	uint64_t cum = 0;

	head(f, "stp_dns_lookup_seconds", "histogram", "DNS look-ups of the workers' resolvers");
	for (unsigned b = 0; b < STATS_DNS_BUCKETS; b++) {
		cum += s->dns[b];
		fprintf(f, "stp_dns_lookup_seconds_bucket{le=\"%g\"} %llu\n",
			stats_dns_bounds_us[b] / 1e6, U(cum));
	}
	cum += s->dns[STATS_DNS_BUCKETS];
	fprintf(f, "stp_dns_lookup_seconds_bucket{le=\"+Inf\"} %llu\n", U(cum));
	fprintf(f, "stp_dns_lookup_seconds_sum %.6f\n", (double)s->dns_sum_us / 1e6);
	fprintf(f, "stp_dns_lookup_seconds_count %llu\n", U(cum));
	head(f, "stp_dns_lookups_failed_total", "counter", "DNS look-ups without an answer");
	fprintf(f, "stp_dns_lookups_failed_total %llu\n", U(s->dns_failed));
}

static const char *const limit_names[STATS_LIM_N] = {
	[STATS_LIM_RULE_SESSIONS] = "rule-sessions", [STATS_LIM_SESSIONS] = "sessions",
	[STATS_LIM_PER_CLIENT] = "sessions-per-client", [STATS_LIM_ACCEPT] = "accept-fds",
	[STATS_LIM_DNS_PENDING] = "dns-pending",
};

static void limits(FILE *f, const struct mt_view *v)
{
	head(f, "stp_limits_hit_total", "counter", "refusals because a limit was reached");
	for (unsigned i = 0; i < STATS_LIM_N; i++)
		fprintf(f, "stp_limits_hit_total{limit=\"%s\"} %llu\n", limit_names[i],
			U(v->sum.limits[i]));
	head(f, "stp_worker_sessions", "gauge", "sessions open on each worker");
	for (unsigned i = 0; i < v->n_workers; i++)
		fprintf(f, "stp_worker_sessions{worker=\"%u\"} %llu\n", i, U(v->w_sessions[i]));
	head(f, "stp_worker_loop_iterations_total", "counter",
	     "event-loop iterations of each worker");
	for (unsigned i = 0; i < v->n_workers; i++)
		fprintf(f, "stp_worker_loop_iterations_total{worker=\"%u\"} %llu\n", i,
			U(v->w_loops[i]));
}

void mt_prom_write(FILE *f, const struct mt_view *v)
{
	sessions(f, v);
	auth(f, &v->sum);
	dns(f, &v->sum);
	limits(f, v);
	for (size_t i = 0; i < v->n_gauges; i++) {
		head(f, v->gauges[i].name, "gauge", v->gauges[i].help);
		fprintf(f, "%s %llu\n", v->gauges[i].name, U(v->gauges[i].value));
	}
	head(f, "stp_uptime_seconds", "gauge", "seconds since stpd started serving");
	fprintf(f, "stp_uptime_seconds %.0f\n", v->uptime);
}
