/*
 * ac_http.c - the PAC listener: `autoconfig { http ADDR:PORT }`, served by
 * libmicrohttpd on its own thread (one daemon per address), never on the
 * session loops. Each request reads the configuration new sessions get
 * now (ext_conf_current: a reference taken under the server's lock), so a
 * SIGHUP reload changes the next answer; the addresses themselves are
 * bound at start, before privileges are dropped, and keep until restart.
 *
 * GET or HEAD of /proxy.pac or /wpad.dat: the client rules admit the
 * client's address (no listener name, no user), then the request rules
 * with command autoconfig pick its profile, as for X'F4'; 403 otherwise.
 * /stp-autoconfig gives the same profile as the X'F4' document (text).
 * One log line per request.
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/autoconf/ac.h"
#include "proto/autoconf.h"
#include "server/ext.h"

#define AC_HTTP_CONNS   64 /* at once, per address */
#define AC_HTTP_PER_IP  8
#define AC_HTTP_TIMEOUT 10 /* seconds a connection may idle */

static struct MHD_Daemon *daemons[AC_HTTP_MAX];
static size_t n_daemons;

enum ac_what { AC_PAC, AC_DOC };

struct ac_answer {
	unsigned status;
	const char *type;
	char *body; /* malloc'd */
	size_t len;
	char why[128];
	char profile[AC_NAME_MAX];
	unsigned refresh;
};

static void answer_text(struct ac_answer *a, unsigned status, const char *why)
{
	a->status = status;
	a->type = "text/plain";
	snprintf(a->why, sizeof(a->why), "%s", why);
	a->body = malloc(strlen(why) + 2);
	if (a->body) {
		a->len = (size_t)sprintf(a->body, "%s\n", why);
	}
}

/* The answer for client under c. */
static void ac_answer(struct ac_answer *a, const struct stp_conf *c, const struct sockaddr *client,
		      enum ac_what what)
{
	struct rule_ctx ctx = { .client = client, .now = time(NULL) };
	const struct rule *r = rules_match(c->client_rules, c->n_client_rules, &ctx);
	char where[160];

	if (!r || r->action != RULE_PASS) {
		rules_describe(r, where, sizeof(where));
		char why[200];
		snprintf(why, sizeof(why), "forbidden: client blocked by %s", where);
		answer_text(a, MHD_HTTP_FORBIDDEN, why);
		return;
	}
	const struct ac_profile *pr = ac_conf_select(c, &ctx, &r);
	if (!pr) {
		rules_describe(r, where, sizeof(where));
		char why[200];
		snprintf(why, sizeof(why), "forbidden: no autoconfig profile (%s)", where);
		answer_text(a, MHD_HTTP_FORBIDDEN, why);
		return;
	}
	snprintf(a->profile, sizeof(a->profile), "%s", pr->name);
	a->refresh = pr->refresh;
	size_t cap = what == AC_PAC ? AC_PAC_MAX : ACDOC_MAX;
	a->body = malloc(cap);
	if (!a->body) {
		answer_text(a, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		return;
	}
	a->len = what == AC_PAC ? ac_pac_build(a->body, cap, c, pr, client) :
				  ac_doc_build((uint8_t *)a->body, cap, c, pr);
	if (a->len == 0) {
		free(a->body);
		a->body = NULL;
		answer_text(a, MHD_HTTP_INTERNAL_SERVER_ERROR, "profile too large");
		return;
	}
	a->status = MHD_HTTP_OK;
	a->type = what == AC_PAC ? "application/x-ns-proxy-autoconfig" : "text/plain";
	snprintf(a->why, sizeof(a->why), "profile %s", pr->name);
}

static enum MHD_Result ac_queue(struct MHD_Connection *conn, struct ac_answer *a, bool head)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(head ? 0 : a->len,
								    head ? NULL : a->body,
								    MHD_RESPMEM_MUST_COPY);
	enum MHD_Result rc = MHD_NO;
	char cache[32];

	if (resp) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
		snprintf(cache, sizeof(cache), "max-age=%u",
			 a->status == MHD_HTTP_OK ? a->refresh : 0);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
		rc = MHD_queue_response(conn, a->status, resp);
		MHD_destroy_response(resp);
	}
	free(a->body);
	return rc;
}

static enum MHD_Result ac_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_len, void **req_cls)
{
	static struct log_rate rl = LOG_RATE_INIT("autoconfig http refused");
	static int first_call;
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	struct ac_answer a = { 0 };
	char who[SA_STR_MAX];
	bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

	(void)cls;
	(void)version;
	(void)upload;
	/* The first call has the headers only; answer on the second. */
	if (*req_cls == NULL) {
		*req_cls = &first_call;
		return MHD_YES;
	}
	if (*upload_len != 0) { /* a body: not for us */
		*upload_len = 0;
		return MHD_YES;
	}
	sa_str(ci->client_addr, who, sizeof(who));
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && !head) {
		answer_text(&a, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
	} else if (strcmp(url, "/proxy.pac") != 0 && strcmp(url, "/wpad.dat") != 0 &&
		   strcmp(url, "/stp-autoconfig") != 0) {
		answer_text(&a, MHD_HTTP_NOT_FOUND, "not found");
	} else {
		struct stp_conf *c = ext_conf_current();
		if (!c) {
			answer_text(&a, MHD_HTTP_SERVICE_UNAVAILABLE, "not serving");
		} else {
			ac_answer(&a, c, ci->client_addr,
				  strcmp(url, "/stp-autoconfig") == 0 ? AC_DOC : AC_PAC);
			conf_unref(c);
		}
	}
	if (a.status == MHD_HTTP_OK)
		log_info("autoconfig http client=%s %s %s: %u %s", who, method, url, a.status,
			 a.why);
	else
		log_info_rl(&rl, "autoconfig http client=%s %s %.64s: %u %s", who, method, url,
			    a.status, a.why);
	return ac_queue(conn, &a, head);
}

int ac_http_start(const struct stp_conf *c, char *err, size_t errlen)
{
	const struct ac_conf *ac = ac_conf_get(c);
	char where[SA_STR_MAX];

	for (size_t i = 0; ac && i < ac->n_http; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&ac->http[i];
		unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
		if (sa->sa_family == AF_INET6)
			flags |= MHD_USE_IPv6;
		struct MHD_Daemon *d = MHD_start_daemon(
			flags, (uint16_t)sa_port(sa), NULL, NULL, ac_request, NULL,
			MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT, AC_HTTP_CONNS,
			MHD_OPTION_PER_IP_CONNECTION_LIMIT, AC_HTTP_PER_IP,
			MHD_OPTION_CONNECTION_TIMEOUT, AC_HTTP_TIMEOUT,
			MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384, MHD_OPTION_END);
		if (!d) {
			snprintf(err, errlen, "autoconfig: cannot serve http on %s",
				 sa_str(sa, where, sizeof(where)));
			ac_http_stop();
			return -1;
		}
		daemons[n_daemons++] = d;
		log_info("autoconfig: serving PAC on http://%s/proxy.pac",
			 sa_str(sa, where, sizeof(where)));
	}
	return 0;
}

void ac_http_stop(void)
{
	while (n_daemons > 0)
		MHD_stop_daemon(daemons[--n_daemons]);
}
