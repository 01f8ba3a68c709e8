/*
 * snapshot.c - a config snapshot plus what was loaded because of it (the
 * userpass backends: users file, directories, cache), swapped whole on
 * reload; sessions hold a reference.
 */
#include <stdio.h>
#include <stdlib.h>

#include "auth/auth.h"
#include "ext/ext_conf.h"
#include "policy/conf_ext.h"
#include "server/ext.h"
#include "server/server.h"

struct server g_server = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* "CONFIG:LINE: " in front of err. */
static void prefix_where(const struct stp_conf *conf, int line, char *err, size_t errlen)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", err);
	snprintf(err, errlen, "%s:%d: %s", conf->path[0] ? conf->path : "(embedded)", line, msg);
}

/* The config line that set up backend k (0: the command line or none). */
static int backend_line(const struct stp_conf *conf, enum auth_backend_kind k)
{
	switch (k) {
	case AUTH_KIND_FILE:
		return conf->users_file_line;
	case AUTH_KIND_LDAP:
		return conf->ldap.line;
	case AUTH_KIND_RADIUS:
		return conf->radius.line;
	default:
		return 0;
	}
}

struct snapshot *snapshot_new(struct stp_conf *conf, char *err, size_t errlen)
{
	if (ext_conf_check(conf, err, errlen) < 0)
		return NULL;
	struct snapshot *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* RFC 1929 runs as a method of its own or inside an extension's (X'86'
	 * subauth). */
	if (conf_auth_used(conf) & AUTH_BIT_USERPASS) {
		enum auth_backend_kind failed = AUTH_KIND_PAM;
		struct authset_conf ac = {
			.failed = &failed,
			.n_chain = conf->n_backends,
			.users_file = conf->users_file,
			.pam_service = conf->pam_service,
			.ldap = &conf->ldap,
			.radius = &conf->radius,
			.cache = conf->auth_cache,
			.down_time = conf->auth_down_time,
		};
		for (size_t i = 0; i < conf->n_backends; i++)
			ac.chain[i] = (enum auth_backend_kind)conf->backends[i];
		s->auth = authset_new(&ac, err, errlen);
		if (!s->auth) {
			free(s);
			int line = backend_line(conf, failed);
			if (line > 0) /* point at the line that named it */
				prefix_where(conf, line, err, errlen);
			return NULL;
		}
	}
	atomic_init(&s->refs, 1);
	s->conf = conf;
	return s;
}

struct snapshot *snapshot_ref(struct snapshot *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void snapshot_unref(struct snapshot *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	authset_unref(s->auth);
	conf_unref(s->conf);
	free(s);
}

struct snapshot *server_snapshot(void)
{
	pthread_mutex_lock(&g_server.lock);
	struct snapshot *s = snapshot_ref(g_server.snap);
	pthread_mutex_unlock(&g_server.lock);
	return s;
}

void server_set_snapshot(struct snapshot *s)
{
	pthread_mutex_lock(&g_server.lock);
	struct snapshot *old = g_server.snap;
	g_server.snap = s;
	pthread_mutex_unlock(&g_server.lock);
	if (old)
		snapshot_unref(old);
}

struct stp_conf *ext_conf_current(void)
{
	struct stp_conf *c = NULL;
	pthread_mutex_lock(&g_server.lock);
	if (g_server.snap)
		c = conf_ref(g_server.snap->conf);
	pthread_mutex_unlock(&g_server.lock);
	return c;
}
