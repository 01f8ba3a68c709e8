/*
 * authset.c - one snapshot's userpass backends: the chain `backend A B ...`
 * tried in order until one accepts, each directory with its up/down state,
 * and the cache. Built when the config is loaded, shared by the sessions
 * and the pool's jobs through a reference count.
 *
 * Down state: a directory that gives no answer (refused, timed out) is
 * logged once and skipped for `down-time` seconds, so that while it is down
 * each login costs nothing instead of a full timeout; the first check after
 * that time probes it again, and its recovery is logged once too.
 */
#include "auth/authset.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/authdir.h"
#include "common/log.h"
#include "common/privfile.h"

struct authset_backend {
	enum auth_backend_kind kind;
	atomic_llong down_until; /* CLOCK_MONOTONIC seconds; 0 = up */
	atomic_bool down;        /* logged as down, recovery not yet logged */
};

struct authset {
	atomic_int refs;
	struct authset_backend chain[AUTH_CHAIN_MAX];
	size_t n_chain;
	struct authfile *file;
	char pam_service[64];
	struct authldap *ldap;
	struct authradius *radius;
	struct authcache *cache;
	unsigned down_time;
};

static const char *const kind_names[] = { "file", "pam", "ldap", "radius" };

static long long mono_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static int authset_open(struct authset *s, const struct authset_conf *c, enum auth_backend_kind k,
			char *err, size_t errlen)
{
	switch (k) {
	case AUTH_KIND_FILE:
		if (c->users_file == NULL || !c->users_file[0]) {
			snprintf(err, errlen, "backend file needs a users file");
			return -1;
		}
		s->file = authfile_load(c->users_file, err, errlen);
		return s->file ? 0 : -1;
	case AUTH_KIND_PAM:
		snprintf(s->pam_service, sizeof(s->pam_service), "%s",
			 c->pam_service ? c->pam_service : "stpd");
		return 0;
	case AUTH_KIND_LDAP:
		s->ldap = c->ldap ? authldap_new(c->ldap, err, errlen) : NULL;
		return s->ldap ? 0 : -1;
	default:
		s->radius = c->radius ? authradius_new(c->radius, err, errlen) : NULL;
		return s->radius ? 0 : -1;
	}
}

struct authset *authset_new(const struct authset_conf *c, char *err, size_t errlen)
{
	struct authset *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->down_time = c->down_time;
	for (size_t i = 0; i < c->n_chain && i < AUTH_CHAIN_MAX; i++) {
		s->chain[i].kind = c->chain[i];
		s->n_chain++;
		if (authset_open(s, c, c->chain[i], err, errlen) < 0) {
			if (c->failed != NULL)
				*c->failed = c->chain[i];
			authset_unref(s);
			return NULL;
		}
	}
	if (c->cache.ttl > 0 && (s->cache = authcache_new(&c->cache)) == NULL) {
		snprintf(err, errlen, "cannot allocate the authentication cache");
		authset_unref(s);
		return NULL;
	}
	return s;
}

struct authset *authset_ref(struct authset *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void authset_unref(struct authset *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	authfile_free(s->file);
	authldap_free(s->ldap);
	authradius_free(s->radius);
	authcache_free(s->cache);
	free(s);
}

const struct authfile *authset_file(const struct authset *s)
{
	return s->file;
}

size_t authset_chain_len(const struct authset *s)
{
	return s->n_chain;
}

enum auth_backend_kind authset_kind(const struct authset *s, size_t step)
{
	return s->chain[step].kind;
}

/* Appends "; NAME: reason" to job->why. */
static void why_add(struct auth_job *job, const char *name, const char *reason)
{
	size_t n = strlen(job->why);
	snprintf(job->why + n, sizeof(job->why) - n, "%s%s: %s", n ? "; " : "", name, reason);
}

static void authset_file_check(struct authset *s, struct auth_job *job)
{
	const char *const *groups;
	size_t n;
	job->ok = authfile_check(s->file, job->user, job->pass, &groups, &n);
	for (size_t i = 0; job->ok && i < n; i++)
		authdir_add_group(job, groups[i], strlen(groups[i]));
}

/* A directory answered, or did not: keeps the down state and logs its
 * changes only. */
static void authset_note(struct authset *s, struct authset_backend *b, enum auth_result r,
			 const char *why)
{
	if (r != AUTH_RES_ERROR) {
		atomic_store(&b->down_until, 0);
		if (atomic_exchange(&b->down, false))
			log_info("auth: %s backend answers again", kind_names[b->kind]);
		return;
	}
	atomic_store(&b->down_until, mono_sec() + (long long)s->down_time);
	if (!atomic_exchange(&b->down, true))
		log_warnx("auth: %s backend unavailable (%s); skipped for %us after each failure",
			  kind_names[b->kind], why, s->down_time);
}

static enum auth_result authset_dir_check(struct authset *s, struct authset_backend *b,
					  struct auth_job *job, char *why, size_t whylen)
{
	long long until = atomic_load(&b->down_until);
	if (until != 0 && mono_sec() < until) {
		snprintf(why, whylen, "down, skipped");
		return AUTH_RES_ERROR;
	}
	enum auth_result r = b->kind == AUTH_KIND_LDAP ?
				     authldap_check(s->ldap, job, why, whylen) :
				     authradius_check(s->radius, job, why, whylen);
	authset_note(s, b, r, why);
	return r;
}

bool authset_check_step(struct authset *s, struct auth_job *job)
{
	struct authset_backend *b = &s->chain[job->step];
	char why[96] = "";

	job->n_groups = 0;
	switch (b->kind) {
	case AUTH_KIND_FILE:
		authset_file_check(s, job);
		if (!job->ok)
			why_add(job, "file", "rejected");
		break;
	case AUTH_KIND_PAM:
		job->ok = authpam_check(s->pam_service, job->user, job->pass);
		if (job->ok)
			authpool_system_groups(job);
		else
			why_add(job, "pam", "rejected");
		break;
	default: {
		enum auth_result r = authset_dir_check(s, b, job, why, sizeof(why));
		job->ok = r == AUTH_RES_OK;
		if (!job->ok)
			why_add(job, kind_names[b->kind], why[0] ? why : "rejected");
		break;
	}
	}
	if (!job->ok)
		job->n_groups = 0;
	else
		job->via = kind_names[b->kind];
	if (job->ok && s->cache)
		authcache_put(s->cache, job->key, job);
	return job->ok;
}

bool authset_cache_lookup(struct authset *s, struct auth_job *job)
{
	if (s->cache == NULL)
		return false;
	authcache_key(s->cache, job->user, job->pass, job->key);
	return authcache_get(s->cache, job->key, job);
}

void authdir_add_group(struct auth_job *job, const char *name, size_t len)
{
	if (len == 0 || len >= sizeof(job->groups[0]) || job->n_groups >= AUTH_GROUPS_MAX)
		return; /* a truncated name could match another group */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return;
	memcpy(job->groups[job->n_groups], name, len);
	job->groups[job->n_groups++][len] = '\0';
}

int authdir_read_secret(const char *path, char *out, size_t cap, char *err, size_t errlen)
{
	FILE *fp = privfile_fopen(path);
	if (fp == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	char *line = NULL;
	size_t lcap = 0;
	ssize_t n = getline(&line, &lcap, fp);
	fclose(fp);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	int rc = -1;
	if (n <= 0)
		snprintf(err, errlen, "%s: empty (want the secret on the first line)", path);
	else if ((size_t)n >= cap)
		snprintf(err, errlen, "%s: secret longer than %zu bytes", path, cap - 1);
	else {
		memcpy(out, line, (size_t)n + 1);
		rc = 0;
	}
	if (line != NULL) {
		explicit_bzero(line, lcap);
		free(line);
	}
	return rc;
}
