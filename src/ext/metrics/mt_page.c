/*
 * mt_page.c - see mt.h: the status page. One HTML document, its style
 * inline and no script or external asset (it refreshes itself with a meta
 * tag), and the same facts as plain text for `stp status`. Session fields
 * that come from clients (user, target) are escaped: HTML entities in the
 * page, anything not printable as '?' in the text.
 */
#include <stdint.h>

#include "ext/metrics/mt.h"
#include "proto/socks.h"

#define U(x) ((unsigned long long)(x))
#define MT_REFRESH 2 /* seconds between the page's reloads */

struct fact {
	const char *name;
	unsigned long long value;
};

/* The summary both renderings show, in order. */
static size_t facts(const struct mt_view *v, struct fact *out)
{
	const struct stats *s = &v->sum;
	uint64_t closed = 0, ok = 0, fail = 0, dns = 0, lim = 0, replies_ok = s->replies[0];
	uint64_t replies = 0;
	size_t n = 0;

	for (unsigned c = 0; c < 256; c++) {
		closed += s->closed[c];
		replies += s->replies[c];
	}
	for (unsigned m = 0; m < 256; m++)
		for (unsigned b = 0; b < STATS_BE_N; b++) {
			fail += s->auth[m][b][0];
			ok += s->auth[m][b][1];
		}
	for (unsigned b = 0; b <= STATS_DNS_BUCKETS; b++)
		dns += s->dns[b];
	for (unsigned i = 0; i < STATS_LIM_N; i++)
		lim += s->limits[i];
	out[n++] = (struct fact){ "sessions open", v->open_ok ? v->open.total : 0 };
	out[n++] = (struct fact){ "sessions accepted", s->accepted };
	out[n++] = (struct fact){ "sessions ended", closed };
	out[n++] = (struct fact){ "bytes up (ended)", s->bytes_up };
	out[n++] = (struct fact){ "bytes down (ended)", s->bytes_down };
	out[n++] = (struct fact){ "replies sent", replies };
	out[n++] = (struct fact){ "replies succeeded", replies_ok };
	out[n++] = (struct fact){ "auth ok", ok };
	out[n++] = (struct fact){ "auth failed", fail };
	out[n++] = (struct fact){ "dns look-ups", dns };
	out[n++] = (struct fact){ "dns failed", s->dns_failed };
	out[n++] = (struct fact){ "limits hit", lim };
	for (size_t i = 0; i < v->n_gauges && n < 32; i++)
		out[n++] = (struct fact){ v->gauges[i].name, v->gauges[i].value };
	return n;
}

static void html_esc(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default:
			fputc((unsigned char)*s < 0x20 ? '?' : *s, f);
		}
	}
}

static void text_safe(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc((unsigned char)*s > 0x20 && (unsigned char)*s < 0x7f ? *s : '?', f);
}

static const char *cmd_of(const struct stats_session *e)
{
	return e->has_cmd ? socks5_cmd_name(e->cmd) : "-";
}

void mt_page_html(FILE *f, const struct mt_view *v)
{
	struct fact fs[32];
	size_t n = facts(v, fs);

	fprintf(f,
		"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		"<meta http-equiv=\"refresh\" content=\"%d\"><title>stpd status</title>"
		"<style>body{font:14px sans-serif;margin:1.5em;background:#f6f7f9;color:#222}"
		"h1{font-size:20px}table{border-collapse:collapse;margin:0 0 1.5em;background:#fff}"
		"td,th{border:1px solid #ccd;padding:4px 10px;text-align:left}"
		"th{background:#2b4c7e;color:#fff}td.n{text-align:right;font-family:monospace}"
		".box{display:inline-block;vertical-align:top;margin-right:2em}</style></head>"
		"<body><h1>stpd status</h1><p>up %.0f s, %u workers; refreshes every %d s. "
		"<a href=\"/metrics\">metrics</a></p>\n",
		MT_REFRESH, v->uptime, v->n_workers, MT_REFRESH);
	fputs("<div class=\"box\"><table id=\"summary\"><tr><th>what</th><th>count</th></tr>\n", f);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "<tr><td>%s</td><td class=\"n\">%llu</td></tr>\n", fs[i].name,
			fs[i].value);
	fputs("</table></div><div class=\"box\"><table id=\"workers\"><tr><th>worker</th>"
	      "<th>sessions</th><th>loop iterations</th></tr>\n",
	      f);
	for (unsigned i = 0; i < v->n_workers; i++)
		fprintf(f, "<tr><td>%u</td><td class=\"n\">%llu</td><td class=\"n\">%llu</td></tr>\n",
			i, U(v->w_sessions[i]), U(v->w_loops[i]));
	fprintf(f, "</table></div>\n<h2>Active sessions (%zu of %zu)</h2>\n"
		   "<table id=\"sessions\"><tr><th>id</th><th>worker</th><th>client</th>"
		   "<th>listener</th><th>user</th><th>command</th><th>target</th><th>state</th>"
		   "<th>up</th><th>down</th><th>age s</th></tr>\n",
		v->open.n, v->open.total);
	for (size_t i = 0; i < v->open.n; i++) {
		const struct stats_session *e = &v->open.list[i];
		fprintf(f, "<tr class=\"session\"><td>%llu</td><td>%u</td><td>", U(e->id), e->worker);
		html_esc(f, e->client);
		fputs("</td><td>", f);
		html_esc(f, e->listener);
		fputs("</td><td>", f);
		html_esc(f, e->user);
		fprintf(f, "</td><td>%s</td><td>", cmd_of(e));
		html_esc(f, e->target);
		fprintf(f, "</td><td>%s</td><td class=\"n\">%llu</td><td class=\"n\">%llu</td>"
			   "<td class=\"n\">%.1f</td></tr>\n",
			e->state, U(e->up), U(e->down), e->age);
	}
	fputs("</table></body></html>\n", f);
}

void mt_page_text(FILE *f, const struct mt_view *v)
{
	struct fact fs[32];
	size_t n = facts(v, fs);

	fprintf(f, "stpd: up %.0f s, %u workers\n", v->uptime, v->n_workers);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%-24s %llu\n", fs[i].name, fs[i].value);
	for (unsigned i = 0; i < v->n_workers; i++)
		fprintf(f, "worker %-17u sessions %llu loops %llu\n", i, U(v->w_sessions[i]),
			U(v->w_loops[i]));
	fprintf(f, "\nactive sessions: %zu of %zu listed\n", v->open.n, v->open.total);
	fprintf(f, "%-8s %-2s %-22s %-10s %-12s %-12s %-28s %-9s %10s %10s %7s\n", "ID", "W",
		"CLIENT", "LISTENER", "USER", "COMMAND", "TARGET", "STATE", "UP", "DOWN", "AGE");
	for (size_t i = 0; i < v->open.n; i++) {
		const struct stats_session *e = &v->open.list[i];
		fprintf(f, "%-8llu %-2u %-22s %-10s ", U(e->id), e->worker, e->client, e->listener);
		text_safe(f, e->user);
		fprintf(f, " %-12s ", cmd_of(e));
		text_safe(f, e->target);
		fprintf(f, " %-9s %10llu %10llu %7.1f\n", e->state, U(e->up), U(e->down), e->age);
	}
}
