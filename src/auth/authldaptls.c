/*
 * authldaptls.c - one TLS context per CA file for the LDAP backend's
 * ldaps:// and StartTLS connections, instead of a new one per check.
 *
 * authldap.c opens a connection per check. With LDAP_OPT_X_TLS_NEWCTX on
 * each, libldap (GnuTLS on Debian) re-read and re-parsed the CA file and
 * built a new credentials object every time. libldap's public
 * LDAP_OPT_X_TLS_CTX option hands a context from one handle to another by
 * reference: a context is made once on a handle that never connects, taken
 * from it with ldap_get_option (which adds a reference) and set on each
 * check's handle (which adds its own, dropped by ldap_unbind).
 *
 * The reference ldap_get_option gives can only be dropped with libldap's
 * private API, so contexts are kept for the life of the process, in a small
 * table keyed by CA file and its mtime and size: a reload with the same CA
 * file reuses its context, a changed file gets a new one. When the table
 * is full, or making a context fails, NULL tells the caller to make a
 * context per connection as before (and report its error there).
 */
#include "auth/authdir.h"

#include <ldap.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define TLS_CTX_MAX 8

struct tls_entry {
	char ca_file[AUTHCONF_STR_MAX]; /* "" = libldap's default CAs */
	struct timespec mtime;
	off_t size;
	void *ctx;
};

static struct {
	pthread_mutex_t lock;
	struct tls_entry e[TLS_CTX_MAX];
	size_t n;
} tls = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A context for ca_file made on a handle for uri (never connected). */
static void *tls_ctx_make(const char *uri, const char *ca_file)
{
	LDAP *ld = NULL;
	void *ctx = NULL;
	int demand = LDAP_OPT_X_TLS_DEMAND, zero = 0;

	if (ldap_initialize(&ld, uri) != LDAP_SUCCESS)
		return NULL;
	if (ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand) != LDAP_OPT_SUCCESS ||
	    (ca_file[0] &&
	     ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, ca_file) != LDAP_OPT_SUCCESS) ||
	    ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero) != LDAP_OPT_SUCCESS ||
	    ldap_get_option(ld, LDAP_OPT_X_TLS_CTX, &ctx) != LDAP_OPT_SUCCESS)
		ctx = NULL;
	ldap_unbind_ext_s(ld, NULL, NULL); /* ctx keeps the reference get gave */
	return ctx;
}

void *authldap_tls_ctx(const char *uri, const char *ca_file)
{
	struct stat st = { 0 };
	void *ctx = NULL;

	if (ca_file[0] && stat(ca_file, &st) < 0)
		return NULL;
	pthread_mutex_lock(&tls.lock);
	for (size_t i = 0; i < tls.n && ctx == NULL; i++) {
		const struct tls_entry *e = &tls.e[i];
		if (strcmp(e->ca_file, ca_file) == 0 && e->size == st.st_size &&
		    e->mtime.tv_sec == st.st_mtim.tv_sec && e->mtime.tv_nsec == st.st_mtim.tv_nsec)
			ctx = e->ctx;
	}
	if (ctx == NULL && tls.n < TLS_CTX_MAX && (ctx = tls_ctx_make(uri, ca_file)) != NULL) {
		struct tls_entry *e = &tls.e[tls.n++];
		snprintf(e->ca_file, sizeof(e->ca_file), "%s", ca_file);
		e->mtime = st.st_mtim;
		e->size = st.st_size;
		e->ctx = ctx;
	}
	pthread_mutex_unlock(&tls.lock);
	return ctx;
}
