/*
 * auth.h - RFC 1929 credential checking for stpd, off the event loop.
 *
 * crypt(3) with yescrypt/bcrypt costs milliseconds and PAM may block on
 * anything, so checks run on a small pool of threads; the result comes back
 * to the submitting libev loop through an ev_async.
 */
#ifndef STP_AUTH_AUTH_H
#define STP_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/authconf.h"

struct ev_loop;

/* ---- password file: "user:crypt-hash[:group,group...]" per line ---- */
struct authfile;
/* Loads path. NULL with "file:line: message" in err on failure. */
struct authfile *authfile_load(const char *path, char *err, size_t errlen);
void authfile_free(struct authfile *f);
/* True when user exists and pass matches. Takes as long for an unknown user
 * as for a wrong password (checks against a dummy hash). groups/n_groups
 * (may be NULL) receive the user's groups from the file, pointers valid
 * while f lives. Thread-safe (crypt_r). */
bool authfile_check(const struct authfile *f, const char *user, const char *pass,
		    const char *const **groups, size_t *n_groups);

/* ---- PAM ---- */
/* True when PAM service `service` authenticates user/pass (pam_authenticate
 * then pam_acct_mgmt). Blocking; thread-safe. */
bool authpam_check(const char *service, const char *user, const char *pass);

/* ---- a snapshot's backends: the chain, the directories, the cache ---- */
struct authset;
struct authset_conf {
	enum auth_backend_kind chain[AUTH_CHAIN_MAX]; /* tried in order */
	size_t n_chain;
	const char *users_file;                      /* for AUTH_KIND_FILE */
	const char *pam_service;                     /* for AUTH_KIND_PAM */
	const struct auth_ldap_conf *ldap;           /* for AUTH_KIND_LDAP */
	const struct auth_radius_conf *radius;       /* for AUTH_KIND_RADIUS */
	struct auth_cache_conf cache;
	unsigned down_time; /* seconds a directory that failed is skipped */
	enum auth_backend_kind *failed; /* out, may be NULL: whose error err holds */
};
/* Loads the users file, reads the secret files, checks the directories'
 * settings (it does not contact them). NULL with a message in err. The set
 * starts with one reference; every job using it holds one more. */
struct authset *authset_new(const struct authset_conf *c, char *err, size_t errlen);
struct authset *authset_ref(struct authset *s);
void authset_unref(struct authset *s);
/* The set's users file, or NULL (for `stpd -t` summaries and tests). */
const struct authfile *authset_file(const struct authset *s);

/* ---- the off-loop pool ---- */
struct auth_job;
typedef void (*auth_done_fn)(struct auth_job *job);

enum auth_backend { AUTH_BACKEND_FILE = 0, AUTH_BACKEND_PAM = 1 };

#define AUTH_GROUPS_MAX 16

/* Embedded in the caller's session. Fill the inputs, call auth_submit();
 * done() runs later on the loop given to authpool_attach(). To abandon a job
 * whose session is closing, call auth_cancel(): done() then still runs and
 * must only free the memory. */
struct auth_job {
	/* inputs: a backend set (then backend/file/pam_service are ignored),
	 * or one backend of the three fields below */
	struct authset *set;         /* auth_submit takes a reference */
	enum auth_backend backend;
	const struct authfile *file; /* AUTH_BACKEND_FILE; must outlive the job */
	const char *pam_service;     /* AUTH_BACKEND_PAM; must outlive the job */
	char user[256];
	char pass[256];              /* wiped by the pool once checked */
	auth_done_fn done;
	void *ctx;
	/* outputs */
	bool ok;
	bool cancelled;
	char groups[AUTH_GROUPS_MAX][64];
	size_t n_groups;
	bool cached;                 /* answered by the cache, no backend asked */
	const char *via;             /* when ok: "file", "pam", "ldap", "radius", "cache" */
	char why[128];               /* when !ok: what each backend said */
	/* pool-private */
	size_t step;                 /* index in set's chain */
	uint8_t key[32];             /* cache key (keyed hash of user and pass) */
	struct auth_job *next;
	struct authpool_loop *home;
};

/* Starts the process-wide pool with n threads (idempotent). 0 or -1. */
int authpool_start(unsigned nthreads);
/* Stops and joins the pool's threads (for a clean exit; authpool_start may
 * be called again). Jobs still queued complete unchecked, as cancelled. */
void authpool_stop(void);
/* Registers a libev loop that will receive completions; call once per worker
 * from that worker's thread. Returns a handle for auth_submit. */
struct authpool_loop *authpool_attach(struct ev_loop *loop);
/* From the loop's thread. Any job still outstanding for pl gets its done()
 * (queued ones as cancelled) before this returns. */
void authpool_detach(struct authpool_loop *pl);
void auth_submit(struct authpool_loop *pl, struct auth_job *job);
void auth_cancel(struct auth_job *job);

/* "stpd passwd FILE USER": reads a password (twice, from the terminal, or
 * one line from stdin when it is not a terminal), hashes it with yescrypt
 * (crypt_gensalt_rn), and adds or replaces USER in FILE atomically (temp file
 * + rename), keeping other lines. Exit status for main(). */
int authfile_passwd_main(int argc, char **argv);

#endif
