/*
 * mt_http.c - the metrics listener: `metrics { http ADDR:PORT }`, served
 * by libmicrohttpd on its own thread (one daemon per address), never on the
 * session loops. Each connection is checked against `allow` of the current
 * snapshot (ext_conf_current) before a byte is read, so a reload changes
 * who may look; refused connections are closed and counted in one
 * rate-limited line.
 *
 *   GET /metrics      Prometheus text format 0.0.4
 *   GET /             the status page (HTML)
 *   GET /status.txt   the same as text (`stp status`)
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/metrics/mt.h"
#include "ext/metrics/mt_conf.h"

#define MT_CONNS   16 /* at once, per address: scrapers and a few browsers */
#define MT_TIMEOUT 10 /* seconds a connection may idle */
#define MT_LISTED  1000 /* sessions the page and the text list */

static struct MHD_Daemon *daemons[MT_HTTP_MAX];
static size_t n_daemons;

static enum MHD_Result mt_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	static struct log_rate rl = LOG_RATE_INIT("metrics refused");
	struct stp_conf *c = ext_conf_current();
	bool ok = c && mt_conf_allowed(mt_conf_get(c), addr);
	char who[SA_STR_MAX];

	(void)cls;
	(void)addrlen;
	if (c)
		conf_unref(c);
	if (!ok)
		log_warn_rl(&rl, "metrics: refused %s: not in 'allow'", sa_str(addr, who, sizeof(who)));
	return ok ? MHD_YES : MHD_NO;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
			     char *body, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result rc = MHD_NO;

	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	rc = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return rc;
}

static enum MHD_Result mt_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **req_cls)
{
	static int first_call;
	enum { PROM, HTML, TEXT, NONE } what = NONE;
	char *body = NULL;
	size_t len = 0;

	(void)cls;
	(void)version;
	(void)upload;
	if (*req_cls == NULL) { /* the headers only: answer on the next call */
		*req_cls = &first_call;
		return MHD_YES;
	}
	if (*upload_len != 0) {
		*upload_len = 0;
		return MHD_YES;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0)
		return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
			     strdup("method not allowed\n"), 19);
	if (strcmp(url, "/metrics") == 0)
		what = PROM;
	else if (strcmp(url, "/") == 0)
		what = HTML;
	else if (strcmp(url, "/status.txt") == 0)
		what = TEXT;
	if (what == NONE)
		return reply(conn, MHD_HTTP_NOT_FOUND, "text/plain", strdup("not found\n"), 10);

	struct mt_view *v = mt_view_take(what == PROM ? 0 : MT_LISTED);
	FILE *f = v ? open_memstream(&body, &len) : NULL;
	if (!f) {
		mt_view_free(v);
		return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
			     strdup("out of memory\n"), 14);
	}
	if (what == PROM)
		mt_prom_write(f, v);
	else if (what == HTML)
		mt_page_html(f, v);
	else
		mt_page_text(f, v);
	fclose(f);
	mt_view_free(v);
	return reply(conn, MHD_HTTP_OK,
		     what == PROM   ? "text/plain; version=0.0.4; charset=utf-8"
		     : what == HTML ? "text/html; charset=utf-8"
				    : "text/plain; charset=utf-8",
		     body, len);
}

int mt_http_start(const struct stp_conf *c, char *err, size_t errlen)
{
	const struct mt_conf *m = mt_conf_get(c);
	char where[SA_STR_MAX];

	mt_view_started();
	for (size_t i = 0; m && i < m->n_http; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&m->http[i];
		unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
		if (sa->sa_family == AF_INET6)
			flags |= MHD_USE_IPv6;
		struct MHD_Daemon *d = MHD_start_daemon(
			flags, (uint16_t)sa_port(sa), mt_accept, NULL, mt_request, NULL,
			MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT, MT_CONNS,
			MHD_OPTION_CONNECTION_TIMEOUT, MT_TIMEOUT,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_END);
		if (!d) {
			snprintf(err, errlen, "metrics: cannot serve http on %s",
				 sa_str(sa, where, sizeof(where)));
			mt_http_stop();
			return -1;
		}
		daemons[n_daemons++] = d;
		log_info("metrics: serving http://%s/metrics and the status page",
			 sa_str(sa, where, sizeof(where)));
	}
	return 0;
}

void mt_http_stop(void)
{
	while (n_daemons > 0)
		MHD_stop_daemon(daemons[--n_daemons]);
}
