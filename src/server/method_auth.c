/*
 * method_auth.c - the core authentication methods: X'00' (none) and X'02'
 * (RFC 1929 username/password, checked off the loop by the auth pool).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/ext.h"
#include "server/server.h"
#include "server/session_int.h"
#include "server/sessionlog.h"

static bool none_enabled(const struct stp_conf *c)
{
	return c->auth_methods & AUTH_BIT_NONE;
}

static void none_start(struct session *s)
{
	session_method_done(s, true);
}

static bool userpass_enabled(const struct stp_conf *c)
{
	return c->auth_methods & AUTH_BIT_USERPASS;
}

static void userpass_start(struct session *s)
{
	/* Nothing to send: the client speaks first (RFC 1929 section 2). */
	session_update_io(s);
}

static void userpass_fail(struct session *s, const char *user, const char *why)
{
	static const uint8_t fail[2] = { SOCKS_USERPASS_VER, 0x01 };
	stats_auth(SOCKS_METHOD_USERPASS, STATS_BE_NONE, false);
	sessionlog_auth_failed(s, user, why);
	/* RFC 1929: on failure the server MUST close the connection. */
	session_close_after_output(s, "authentication failed");
	session_send(s, fail, sizeof(fail));
}

static void userpass_checked(struct auth_job *job)
{
	if (job->cancelled) {
		/* The session closed while the pool was busy. */
		struct worker *w = job->ctx;
		explicit_bzero(job, sizeof(*job));
		free(job);
		w->auth_orphans--;
		worker_session_ended(w);
		return;
	}
	struct session *s = job->ctx;
	static const uint8_t ok[2] = { SOCKS_USERPASS_VER, 0x00 };
	s->auth_pending = false;
	s->hs->auth = NULL;
	if (!job->ok) {
		char why[160];
		snprintf(why, sizeof(why), "bad user name or password (%s)",
			 job->why[0] ? job->why : "no backend");
		userpass_fail(s, job->user, why);
		free(job);
		return;
	}
	stats_auth(SOCKS_METHOD_USERPASS, stats_backend_named(job->via), true);
	snprintf(s->user, sizeof(s->user), "%s", job->user);
	/* Groups live on the heap: most sessions have none. */
	if (job->n_groups > 0 && (s->groups = calloc(job->n_groups, sizeof(*s->groups)))) {
		s->n_groups = job->n_groups < AUTH_GROUPS_MAX ? job->n_groups : AUTH_GROUPS_MAX;
		for (size_t i = 0; i < s->n_groups; i++)
			memcpy(s->groups[i], job->groups[i], sizeof(s->groups[i]));
	}
	free(job);
	if (session_send(s, ok, sizeof(ok)) < 0)
		return;
	session_method_done(s, true);
}

static void userpass_input(struct session *s)
{
	struct socks_userpass up;
	struct socks_err err = { 0 };
	size_t used = 0;
	struct handshake *hs = s->hs;
	enum socks_res r = socks_userpass_parse(&up, hs->in, hs->inlen, &used, &err);

	if (r == SOCKS_MORE)
		return; /* the handshake buffer (1 KiB) holds any valid message */
	if (r == SOCKS_BAD) {
		userpass_fail(s, "-", err.why ? err.why : "malformed request");
		return;
	}
	session_consume(s, used);
	if (up.ulen == 0 || up.plen == 0) {
		explicit_bzero(&up, sizeof(up));
		userpass_fail(s, "-", "empty user name or password");
		return;
	}
	struct auth_job *job = calloc(1, sizeof(*job));
	if (!job) {
		explicit_bzero(&up, sizeof(up));
		userpass_fail(s, "-", "out of memory");
		return;
	}
	hs->auth = job;
	job->set = s->snap->auth;
	memcpy(job->user, up.user, sizeof(job->user));
	memcpy(job->pass, up.pass, sizeof(job->pass));
	explicit_bzero(&up, sizeof(up));
	job->done = userpass_checked;
	job->ctx = s;
	if (!job->set) {
		explicit_bzero(job->pass, sizeof(job->pass));
		userpass_fail(s, job->user, "no userpass backend loaded");
		return;
	}
	s->auth_pending = true;
	session_set_state(s, SS_AUTH_WAIT);
	session_update_io(s);
	auth_submit(s->w->auth, job);
}

const struct stp_method core_methods[] = {
	{ SOCKS_METHOD_USERPASS, userpass_enabled, userpass_start, userpass_input },
	{ SOCKS_METHOD_NONE, none_enabled, none_start, NULL },
};
const size_t n_core_methods = sizeof(core_methods) / sizeof(core_methods[0]);
