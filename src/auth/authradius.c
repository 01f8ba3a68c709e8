/*
 * authradius.c - RFC 1929 credentials checked by RADIUS (RFC 2865) with
 * radcli, on the pool's RADIUS lane. The servers are tried in order (radcli
 * fails over to the next after `retries + 1` unanswered tries of `timeout`
 * seconds each; radcli's own dead-server memory is off, stpd's `down-time`
 * does that job for the whole backend).
 *
 * PAP sends the password in User-Password, hidden with the shared secret
 * (RFC 2865 5.2). CHAP (RFC 1994, RFC 2865 5.3): RFC 1929 hands stpd the
 * cleartext password, so stpd itself plays the CHAP peer, with a fresh
 * random challenge per request: CHAP-Password = id || MD5(id || password ||
 * challenge). What CHAP protects here is only the stpd-to-RADIUS leg: the
 * password never crosses it, even hidden, so a captured Access-Request
 * plus the shared secret does not give it away (it still allows an offline
 * guess of a weak password). It does not protect the client-to-stpd leg:
 * use method X'86' (TLS) for that. The RADIUS server must hold the password
 * in a form CHAP can use (cleartext), which is why PAP is the default.
 *
 * Groups (`group-attribute`): the values of Class (25) and/or Filter-Id
 * (11) in the Access-Accept, each one group name; values that are not a
 * usable name (too long, control characters: Class is often an opaque
 * session cookie) are skipped by authdir_add_group.
 *
 * radcli handles are not shared between threads: a small free list holds
 * the ones not in use, each built from the same settings.
 */
#include "auth/authdir.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <radcli/radcli.h>

/* Only the attributes stpd sends or reads: no dictionary file needed. */
static const char dictionary[] = "ATTRIBUTE User-Name 1 string\n"
				 "ATTRIBUTE User-Password 2 string\n"
				 "ATTRIBUTE CHAP-Password 3 string\n"
				 "ATTRIBUTE NAS-IP-Address 4 ipaddr\n"
				 "ATTRIBUTE NAS-Port 5 integer\n"
				 "ATTRIBUTE Service-Type 6 integer\n"
				 "ATTRIBUTE Filter-Id 11 string\n"
				 "ATTRIBUTE Reply-Message 18 string\n"
				 "ATTRIBUTE Class 25 string\n"
				 "ATTRIBUTE NAS-Identifier 32 string\n"
				 "ATTRIBUTE CHAP-Challenge 60 string\n"
				 "ATTRIBUTE NAS-IPv6-Address 95 string\n";

#define FREE_MAX 16

struct authradius {
	char servers[AUTHCONF_RADIUS_SERVERS * (128 + 100)]; /* "h:p:secret,..." */
	char timeout[16], tries[16];
	char nas_identifier[64];
	bool chap;
	unsigned group_attrs[2];
	size_t n_group_attrs;
	pthread_mutex_t lock;
	rc_handle *free_list[FREE_MAX];
	size_t n_free;
};

/* rc_new() and rc_destroy() update a global counter of radcli's without a
 * lock: handles are made and destroyed one at a time, under handle_lock. */
static pthread_mutex_t handle_lock = PTHREAD_MUTEX_INITIALIZER;

/* rc_destroy() frees only the first server's name and secret (radcli
 * 1.2's rc_config_free): free the others here, wiping the secrets. */
static void handle_free_locked(rc_handle *rh)
{
	SERVER *srv = rc_conf_srv(rh, "authserver");
	for (int i = 0; srv != NULL && i < srv->max && i < SERVER_MAX; i++) {
		if (srv->secret[i] != NULL)
			explicit_bzero(srv->secret[i], strlen(srv->secret[i]));
		if (i == 0)
			continue;
		free(srv->name[i]);
		free(srv->secret[i]);
		srv->name[i] = srv->secret[i] = NULL;
	}
	rc_destroy(rh);
}

static rc_handle *handle_new_locked(const struct authradius *r)
{
	rc_handle *rh = rc_new();
	if (rh == NULL)
		return NULL;
	if (rc_config_init(rh) == NULL) /* destroys rh on failure */
		return NULL;
	if (rc_add_config(rh, "authserver", r->servers, "stpd", 0) != 0 ||
	    rc_add_config(rh, "radius_timeout", r->timeout, "stpd", 0) != 0 ||
	    rc_add_config(rh, "radius_retries", r->tries, "stpd", 0) != 0 ||
	    rc_add_config(rh, "radius_deadtime", "0", "stpd", 0) != 0 ||
	    rc_add_config(rh, "dictionary", "(built in)", "stpd", 0) != 0 ||
	    rc_apply_config(rh) != 0 ||
	    rc_read_dictionary_from_buffer(rh, dictionary, sizeof(dictionary) - 1) != 0) {
		handle_free_locked(rh);
		return NULL;
	}
	return rh;
}

static void handle_free(rc_handle *rh)
{
	pthread_mutex_lock(&handle_lock);
	handle_free_locked(rh);
	pthread_mutex_unlock(&handle_lock);
}

static rc_handle *handle_new(const struct authradius *r)
{
	pthread_mutex_lock(&handle_lock);
	rc_handle *rh = handle_new_locked(r);
	pthread_mutex_unlock(&handle_lock);
	return rh;
}

struct authradius *authradius_new(const struct auth_radius_conf *c, char *err, size_t errlen)
{
	char secret[MAX_SECRET_LENGTH + 1];
	struct authradius *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (authdir_read_secret(c->secret_file, secret, sizeof(secret), err, errlen) < 0) {
		free(r);
		return NULL;
	}
	/* radcli splits the server list at ',', ' ' and tabs. */
	if (strpbrk(secret, ", \t") != NULL) {
		snprintf(err, errlen, "%s: the RADIUS secret may not hold ',', spaces or tabs",
			 c->secret_file);
		explicit_bzero(secret, sizeof(secret));
		free(r);
		return NULL;
	}
	size_t n = 0;
	for (size_t i = 0; i < c->n_servers; i++)
		n += (size_t)snprintf(r->servers + n, sizeof(r->servers) - n, "%s%s:%s",
				      i ? "," : "", c->servers[i], secret);
	explicit_bzero(secret, sizeof(secret));
	snprintf(r->timeout, sizeof(r->timeout), "%u", c->timeout);
	/* radcli's radius_retries counts tries after the first. */
	snprintf(r->tries, sizeof(r->tries), "%u", c->retries);
	snprintf(r->nas_identifier, sizeof(r->nas_identifier), "%s", c->nas_identifier);
	r->chap = c->chap;
	memcpy(r->group_attrs, c->group_attrs, sizeof(r->group_attrs));
	r->n_group_attrs = c->n_group_attrs;
	pthread_mutex_init(&r->lock, NULL);
	rc_handle *rh = handle_new(r);
	if (rh == NULL) {
		snprintf(err, errlen, "radius: cannot set up radcli with these servers");
		authradius_free(r);
		return NULL;
	}
	r->free_list[r->n_free++] = rh;
	return r;
}

void authradius_free(struct authradius *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_free; i++)
		handle_free(r->free_list[i]);
	explicit_bzero(r->servers, sizeof(r->servers));
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static rc_handle *handle_get(struct authradius *r)
{
	rc_handle *rh = NULL;
	pthread_mutex_lock(&r->lock);
	if (r->n_free > 0)
		rh = r->free_list[--r->n_free];
	pthread_mutex_unlock(&r->lock);
	return rh != NULL ? rh : handle_new(r);
}

static void handle_put(struct authradius *r, rc_handle *rh)
{
	pthread_mutex_lock(&r->lock);
	if (r->n_free < FREE_MAX) {
		r->free_list[r->n_free++] = rh;
		rh = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	if (rh != NULL)
		handle_free(rh);
}

/* CHAP-Password and CHAP-Challenge for pass. -1 on failure. */
static int add_chap(rc_handle *rh, VALUE_PAIR **send, const char *pass)
{
	uint8_t challenge[16], resp[1 + 16];
	unsigned len = 16;

	if (RAND_bytes(challenge, sizeof(challenge)) != 1 || RAND_bytes(resp, 1) != 1)
		return -1;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = md != NULL && EVP_DigestInit_ex(md, EVP_md5(), NULL) == 1 &&
		 EVP_DigestUpdate(md, resp, 1) == 1 &&
		 EVP_DigestUpdate(md, pass, strlen(pass)) == 1 &&
		 EVP_DigestUpdate(md, challenge, sizeof(challenge)) == 1 &&
		 EVP_DigestFinal_ex(md, resp + 1, &len) == 1;
	EVP_MD_CTX_free(md);
	if (!ok)
		return -1;
	if (rc_avpair_add(rh, send, PW_CHAP_PASSWORD, resp, sizeof(resp), 0) == NULL ||
	    rc_avpair_add(rh, send, PW_CHAP_CHALLENGE, challenge, sizeof(challenge), 0) == NULL)
		return -1;
	return 0;
}

/* The configured reply attributes' values, in the order received. */
static void add_groups(const struct authradius *r, VALUE_PAIR *received, struct auth_job *job)
{
	for (VALUE_PAIR *vp = received; vp != NULL; vp = rc_avpair_next(vp)) {
		unsigned type, id;
		char *val;
		unsigned len;
		rc_avpair_get_attr(vp, &type, &id);
		for (size_t i = 0; i < r->n_group_attrs; i++)
			if (id == r->group_attrs[i] && rc_avpair_get_raw(vp, &val, &len) == 0)
				authdir_add_group(job, val, len);
	}
}

enum auth_result authradius_check(struct authradius *r, struct auth_job *job, char *why,
				  size_t whylen)
{
	VALUE_PAIR *send = NULL, *received = NULL;
	char msg[PW_MAX_MSG_SIZE];
	uint32_t service = 8; /* Authenticate-Only (RFC 2865 5.6) */
	enum auth_result res = AUTH_RES_ERROR;

	/* Lengths a client chooses must give a refusal, never a failure that
	 * would mark the backend down for everybody. */
	if (strlen(job->user) > AUTH_STRING_LEN ||
	    (!r->chap && strlen(job->pass) > AUTH_PASS_LEN)) {
		snprintf(why, whylen, "name or password too long for RADIUS");
		return AUTH_RES_REJECT;
	}
	rc_handle *rh = handle_get(r);
	if (rh == NULL) {
		snprintf(why, whylen, "cannot set up radcli");
		return AUTH_RES_ERROR;
	}
	if (rc_avpair_add(rh, &send, PW_USER_NAME, job->user, -1, 0) == NULL ||
	    rc_avpair_add(rh, &send, PW_SERVICE_TYPE, &service, -1, 0) == NULL ||
	    rc_avpair_add(rh, &send, PW_NAS_IDENTIFIER, r->nas_identifier, -1, 0) == NULL ||
	    (r->chap ? add_chap(rh, &send, job->pass) < 0 :
		       rc_avpair_add(rh, &send, PW_USER_PASSWORD, job->pass, -1, 0) == NULL)) {
		snprintf(why, whylen, "cannot build the request");
		goto out;
	}
	msg[0] = '\0';
	int rc = rc_auth(rh, 0, send, &received, msg);
	switch (rc) {
	case OK_RC:
		res = AUTH_RES_OK;
		add_groups(r, received, job);
		break;
	case REJECT_RC:
		res = AUTH_RES_REJECT;
		snprintf(why, whylen, "rejected");
		break;
	case TIMEOUT_RC:
		snprintf(why, whylen, "no answer from any server");
		break;
	case CHALLENGE_RC:
		res = AUTH_RES_REJECT; /* RFC 1929 has no way to ask the user more */
		snprintf(why, whylen, "the server sent an Access-Challenge");
		break;
	default:
		snprintf(why, whylen, "error %d (bad answer or secret?)", rc);
		break;
	}
out:
	rc_avpair_free(send); /* User-Password's copy is wiped by nobody else */
	rc_avpair_free(received);
	explicit_bzero(msg, sizeof(msg));
	handle_put(r, rh);
	return res;
}
