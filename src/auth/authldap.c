/*
 * authldap.c - RFC 1929 credentials checked against an LDAP directory with
 * libldap (OpenLDAP), on the pool's LDAP lane:
 *
 *   user-dn set:  bind as the template's DN with the password
 *   else:         bind as bind-dn (or anonymously), search base for filter,
 *                 exactly one entry, then bind as that entry's DN
 *   groups:       group-attribute values of the user's entry (memberOf: a
 *                 DN, whose first RDN value is the name) and/or the entries
 *                 under group-base matching group-filter (their
 *                 group-name-attribute), read with the user's own bind
 *
 * One connection per check, closed after: no shared state between threads
 * but the read-only settings and, for ldaps:// and StartTLS, one TLS
 * context per CA file (authldaptls.c: the CA file is not read per check).
 * A whole check is bounded by `timeout` (the watchdog below; libldap's own
 * timeouts bound the connect and each operation). The user name goes into DNs and filters escaped (RFC 4514,
 * RFC 4515), so it cannot change their meaning.
 */
#include "auth/authdir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ldap.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>

struct authldap {
	struct auth_ldap_conf c;
	char bind_pw[256];
	void *tls_ctx;      /* shared TLS context (authldaptls.c), or NULL */
	ldap_conncb conncb; /* registers each connection with the watchdog */
};

/*
 * The watchdog. libldap bounds the connect (LDAP_OPT_NETWORK_TIMEOUT) and
 * each operation (LDAP_OPT_TIMEOUT), but not the TLS handshake of ldaps://
 * or StartTLS: against a server that accepts and then says nothing, the
 * Debian 12 libldap spins on EAGAIN for ever (seen with strace), holding a
 * thread and a core. So each check has a deadline (`timeout` after it
 * starts); its connection's socket is registered when libldap has
 * connected it (LDAP_OPT_CONNECT_CB) and unregistered before libldap closes
 * it, and one process-wide thread shuts down (shutdown(2), never close) the
 * sockets whose deadline passed: every read then sees EOF and the check
 * fails at once, whatever libldap was doing.
 */
struct watch {
	int fd;              /* -1 until connected */
	struct timespec end; /* CLOCK_MONOTONIC */
	bool fired;
	struct watch *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct watch *head;
	pthread_once_t once;
	bool running;
} wd = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, PTHREAD_ONCE_INIT, false };

/* The check running on this thread (set by authldap_check). */
static _Thread_local struct watch *cur_watch;

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void *watchdog(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wd.lock);
	for (;;) {
		struct timespec now, *next = NULL;
		clock_gettime(CLOCK_MONOTONIC, &now);
		for (struct watch *w = wd.head; w != NULL; w = w->next) {
			if (w->fired)
				continue;
			if (!ts_before(&now, &w->end)) {
				shutdown(w->fd, SHUT_RDWR);
				w->fired = true;
			} else if (next == NULL || ts_before(&w->end, next)) {
				next = &w->end;
			}
		}
		if (next == NULL)
			pthread_cond_wait(&wd.cond, &wd.lock);
		else
			pthread_cond_timedwait(&wd.cond, &wd.lock, next);
	}
	return NULL;
}

static void watchdog_start(void)
{
	pthread_condattr_t ca;
	pthread_attr_t at;
	pthread_t t;
	sigset_t all, old;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_destroy(&wd.cond);
	pthread_cond_init(&wd.cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (pthread_create(&t, &at, watchdog, NULL) == 0) {
		pthread_setname_np(t, "stp-ldapwd");
		wd.running = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&at);
}

static void watch_remove(struct watch *w)
{
	pthread_mutex_lock(&wd.lock);
	for (struct watch **pp = &wd.head; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	w->next = NULL;
	w->fd = -1;
	pthread_mutex_unlock(&wd.lock);
}

static int conn_add(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr,
		    struct ldap_conncb *ctx)
{
	struct watch *w = cur_watch;
	int fd = -1;
	(void)ld;
	(void)srv;
	(void)addr;
	(void)ctx;
	if (w == NULL || ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) != 1 || fd < 0)
		return 0;
	pthread_mutex_lock(&wd.lock);
	if (w->fd < 0) {
		w->fd = fd;
		w->next = wd.head;
		wd.head = w;
		pthread_cond_signal(&wd.cond);
	}
	pthread_mutex_unlock(&wd.lock);
	return 0;
}

static void conn_del(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	(void)ld;
	(void)sb;
	(void)ctx;
	if (cur_watch != NULL)
		watch_remove(cur_watch);
}

struct authldap *authldap_new(const struct auth_ldap_conf *c, char *err, size_t errlen)
{
	struct authldap *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->c = *c;
	l->conncb = (ldap_conncb){ .lc_add = conn_add, .lc_del = conn_del, .lc_arg = l };
	if (c->bind_password_file[0] && authdir_read_secret(c->bind_password_file, l->bind_pw,
							    sizeof(l->bind_pw), err, errlen) < 0) {
		free(l);
		return NULL;
	}
	/* libldap checks the URI list's syntax without connecting. */
	LDAP *ld = NULL;
	int rc = ldap_initialize(&ld, c->uri);
	if (rc != LDAP_SUCCESS) {
		snprintf(err, errlen, "ldap uri '%s': %s", c->uri, ldap_err2string(rc));
		free(l);
		return NULL;
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
	if (strncmp(c->uri, "ldaps://", 8) == 0 || c->starttls)
		l->tls_ctx = authldap_tls_ctx(c->uri, c->ca_file);
	return l;
}

void authldap_free(struct authldap *l)
{
	if (l == NULL)
		return;
	explicit_bzero(l->bind_pw, sizeof(l->bind_pw));
	free(l);
}

/* RFC 4514 section 2.4: a value inside a DN. */
static void dn_escape(const char *in, char *out, size_t cap)
{
	size_t n = 0, len = strlen(in);
	for (size_t i = 0; i < len && n + 4 < cap; i++) {
		unsigned char ch = (unsigned char)in[i];
		if (ch < 0x20 || ch == 0x7f) {
			n += (size_t)snprintf(out + n, cap - n, "\\%02x", ch);
			continue;
		}
		if (strchr("\"+,;<>\\=", ch) != NULL || (i == 0 && (ch == ' ' || ch == '#')) ||
		    (i + 1 == len && ch == ' '))
			out[n++] = '\\';
		out[n++] = (char)ch;
	}
	out[n] = '\0';
}

/* RFC 4515: a value inside a filter, by libldap. */
static void filter_escape(const char *in, char *out, size_t cap)
{
	struct berval bin = { .bv_len = strlen(in), .bv_val = (char *)in }, bout = { 0 };
	out[0] = '\0';
	if (ldap_bv2escaped_filter_value(&bin, &bout) == 0 && bout.bv_val != NULL) {
		if (bout.bv_len < cap)
			memcpy(out, bout.bv_val, bout.bv_len + 1);
		ber_memfree(bout.bv_val);
	}
}

/* Expands %u (user), %d (dn) and %% in t. -1 when it does not fit. */
static int expand(const char *t, const char *u, const char *d, char *out, size_t cap)
{
	size_t n = 0;
	for (const char *q = t; *q; q++) {
		const char *add = NULL;
		char one[2] = { *q, 0 };
		if (*q == '%' && (q[1] == 'u' || q[1] == 'd' || q[1] == '%')) {
			add = q[1] == 'u' ? u : q[1] == 'd' ? (d ? d : "") : "%";
			q++;
		} else {
			add = one;
		}
		size_t al = strlen(add);
		if (n + al >= cap)
			return -1;
		memcpy(out + n, add, al);
		n += al;
	}
	out[n] = '\0';
	return 0;
}

/* LDAP result codes that mean the directory answered "no" rather than
 * failing to answer. */
static enum auth_result classify(int rc)
{
	switch (rc) {
	case LDAP_SUCCESS:
		return AUTH_RES_OK;
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_UNWILLING_TO_PERFORM: /* e.g. a disabled account */
	case LDAP_NO_SUCH_OBJECT:
	case LDAP_INVALID_DN_SYNTAX:
		return AUTH_RES_REJECT;
	default:
		return AUTH_RES_ERROR;
	}
}

static int authldap_connect(struct authldap *l, LDAP **out)
{
	LDAP *ld = NULL;
	int rc = ldap_initialize(&ld, l->c.uri);
	if (rc != LDAP_SUCCESS)
		return rc;
	int v3 = LDAP_VERSION3, demand = LDAP_OPT_X_TLS_DEMAND, zero = 0;
	struct timeval tv = { .tv_sec = (time_t)l->c.timeout };
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_CONNECT_CB, &l->conncb);
	ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
	if (l->tls_ctx != NULL) {
		ldap_set_option(ld, LDAP_OPT_X_TLS_CTX, l->tls_ctx);
	} else {
		if (l->c.ca_file[0])
			ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, l->c.ca_file);
		/* The TLS options above take effect in a new context, made last. */
		ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	}
	if (l->c.starttls && (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		return rc;
	}
	*out = ld;
	return LDAP_SUCCESS;
}

static int simple_bind(LDAP *ld, const char *dn, const char *pw)
{
	struct berval cred = { .bv_len = pw ? strlen(pw) : 0, .bv_val = (char *)pw };
	return ldap_sasl_bind_s(ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
}

/* sizelimit: entries wanted at most; more gives LDAP_SIZELIMIT_EXCEEDED
 * with the first ones in *res. */
static int search(struct authldap *l, LDAP *ld, const char *base, int scope, const char *filter,
		  const char *attr, int sizelimit, LDAPMessage **res)
{
	char *attrs[] = { (char *)attr, NULL };
	struct timeval tv = { .tv_sec = (time_t)l->c.timeout };
	*res = NULL;
	return ldap_search_ext_s(ld, base, scope, filter, attrs, 0, NULL, NULL, &tv, sizelimit,
				 res);
}

/* Search-then-bind, first half: the one entry the filter finds. */
static enum auth_result find_user(struct authldap *l, LDAP *ld, const char *user, char *dn,
				  size_t cap, char *why, size_t whylen)
{
	char esc[3 * 256 + 1], filter[AUTHCONF_STR_MAX + sizeof(esc)];
	int rc = simple_bind(ld, l->c.bind_dn[0] ? l->c.bind_dn : NULL,
			     l->c.bind_dn[0] ? l->bind_pw : NULL);
	if (rc != LDAP_SUCCESS) {
		/* The service account is ours: its refusal is a fault, not a no. */
		snprintf(why, whylen, "service bind: %s", ldap_err2string(rc));
		return AUTH_RES_ERROR;
	}
	filter_escape(user, esc, sizeof(esc));
	if (expand(l->c.filter, esc, NULL, filter, sizeof(filter)) < 0) {
		snprintf(why, whylen, "filter too long");
		return AUTH_RES_REJECT;
	}
	LDAPMessage *res;
	/* Two are enough to know the filter is ambiguous. */
	rc = search(l, ld, l->c.base, LDAP_SCOPE_SUBTREE, filter, LDAP_NO_ATTRS, 2, &res);
	if (rc == LDAP_SIZELIMIT_EXCEEDED) {
		snprintf(why, whylen, "several entries match");
		ldap_msgfree(res);
		return AUTH_RES_REJECT;
	}
	enum auth_result r = classify(rc);
	if (r != AUTH_RES_OK) {
		snprintf(why, whylen, "user search: %s", ldap_err2string(rc));
		ldap_msgfree(res);
		return r;
	}
	int n = ldap_count_entries(ld, res);
	if (n != 1) {
		snprintf(why, whylen, n == 0 ? "no such user" : "several entries match");
		ldap_msgfree(res);
		return AUTH_RES_REJECT;
	}
	char *d = ldap_get_dn(ld, ldap_first_entry(ld, res));
	r = d != NULL && strlen(d) < cap ? AUTH_RES_OK : AUTH_RES_REJECT;
	if (r == AUTH_RES_OK)
		memcpy(dn, d, strlen(d) + 1);
	else
		snprintf(why, whylen, "bad entry DN");
	ldap_memfree(d);
	ldap_msgfree(res);
	return r;
}

/* A group attribute's value: a DN names the group by its first RDN's value
 * (cn=staff,ou=groups,... -> staff); anything else is the name itself. */
static void add_group_value(struct auth_job *job, const struct berval *v)
{
	LDAPDN dn = NULL;
	if (ldap_bv2dn((struct berval *)v, &dn, LDAP_DN_FORMAT_LDAPV3) == LDAP_SUCCESS &&
	    dn != NULL && dn[0] != NULL && dn[0][0] != NULL) {
		authdir_add_group(job, dn[0][0]->la_value.bv_val, dn[0][0]->la_value.bv_len);
	} else {
		authdir_add_group(job, v->bv_val, v->bv_len);
	}
	if (dn != NULL)
		ldap_dnfree(dn);
}

/* The values of attr in every entry of res, as groups. */
static void add_groups(LDAP *ld, LDAPMessage *res, const char *attr, struct auth_job *job)
{
	for (LDAPMessage *e = ldap_first_entry(ld, res); e != NULL; e = ldap_next_entry(ld, e)) {
		struct berval **vals = ldap_get_values_len(ld, e, attr);
		for (size_t i = 0; vals != NULL && vals[i] != NULL; i++)
			add_group_value(job, vals[i]);
		ldap_value_free_len(vals);
	}
}

static enum auth_result read_groups(struct authldap *l, LDAP *ld, const char *dn,
				    struct auth_job *job, char *why, size_t whylen)
{
	LDAPMessage *res;
	int rc;
	if (l->c.group_attribute[0]) {
		rc = search(l, ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", l->c.group_attribute, 1,
			    &res);
		if (rc == LDAP_SUCCESS)
			add_groups(ld, res, l->c.group_attribute, job);
		ldap_msgfree(res);
		if (rc != LDAP_SUCCESS) {
			snprintf(why, whylen, "group attribute: %s", ldap_err2string(rc));
			return AUTH_RES_ERROR;
		}
	}
	if (l->c.group_filter[0]) {
		char eu[3 * 256 + 1], ed[2 * AUTHCONF_STR_MAX], filter[3 * AUTHCONF_STR_MAX];
		filter_escape(job->user, eu, sizeof(eu));
		filter_escape(dn, ed, sizeof(ed));
		if (expand(l->c.group_filter, eu, ed, filter, sizeof(filter)) < 0) {
			snprintf(why, whylen, "group filter too long");
			return AUTH_RES_REJECT; /* the name's length: not the server's fault */
		}
		const char *base = l->c.group_base[0] ? l->c.group_base : l->c.base;
		/* Only AUTH_GROUPS_MAX are kept: more entries than that are
		 * not an error. */
		rc = search(l, ld, base, LDAP_SCOPE_SUBTREE, filter, l->c.group_name_attribute,
			    4 * AUTH_GROUPS_MAX, &res);
		if (rc == LDAP_SIZELIMIT_EXCEEDED)
			rc = LDAP_SUCCESS;
		if (rc == LDAP_SUCCESS)
			add_groups(ld, res, l->c.group_name_attribute, job);
		ldap_msgfree(res);
		if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT) {
			snprintf(why, whylen, "group search: %s", ldap_err2string(rc));
			return AUTH_RES_ERROR;
		}
	}
	return AUTH_RES_OK;
}

static enum auth_result check(struct authldap *l, struct auth_job *job, char *why, size_t whylen)
{
	char dn[AUTHCONF_STR_MAX + 3 * 256];
	LDAP *ld = NULL;
	enum auth_result r;

	int rc = authldap_connect(l, &ld);
	if (rc != LDAP_SUCCESS) {
		snprintf(why, whylen, "%s", ldap_err2string(rc));
		return AUTH_RES_ERROR;
	}
	if (l->c.user_dn[0]) {
		char esc[3 * 256 + 1];
		dn_escape(job->user, esc, sizeof(esc));
		r = expand(l->c.user_dn, esc, NULL, dn, sizeof(dn)) == 0 ? AUTH_RES_OK :
									   AUTH_RES_REJECT;
		if (r != AUTH_RES_OK)
			snprintf(why, whylen, "user DN too long");
	} else {
		r = find_user(l, ld, job->user, dn, sizeof(dn), why, whylen);
	}
	if (r == AUTH_RES_OK) {
		/* The caller refused empty passwords: an empty one would be an
		 * unauthenticated bind (RFC 4513 5.1.2), which succeeds. */
		rc = job->pass[0] ? simple_bind(ld, dn, job->pass) : LDAP_INVALID_CREDENTIALS;
		r = classify(rc);
		if (r != AUTH_RES_OK)
			snprintf(why, whylen, "%s",
				 rc == LDAP_INVALID_CREDENTIALS ? "bad password or no such user" :
								  ldap_err2string(rc));
	}
	if (r == AUTH_RES_OK)
		r = read_groups(l, ld, dn, job, why, whylen);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return r;
}

enum auth_result authldap_check(struct authldap *l, struct auth_job *job, char *why, size_t whylen)
{
	struct watch w = { .fd = -1 };

	/* Started by the first check, not with the configuration: stpd forks
	 * its broker after reading the file, and a thread alive at a fork can
	 * leave a lock (ASan's allocator's) held for ever in the child. */
	pthread_once(&wd.once, watchdog_start);
	if (!wd.running) {
		snprintf(why, whylen, "ldap: cannot start the watchdog thread");
		return AUTH_RES_ERROR;
	}
	clock_gettime(CLOCK_MONOTONIC, &w.end);
	w.end.tv_sec += (time_t)l->c.timeout;
	cur_watch = &w;
	enum auth_result r = check(l, job, why, whylen);
	watch_remove(&w); /* when libldap did not call conn_del */
	cur_watch = NULL;
	if (w.fired && r != AUTH_RES_OK) {
		snprintf(why, whylen, "no answer within %us", l->c.timeout);
		r = AUTH_RES_ERROR;
	}
	return r;
}
