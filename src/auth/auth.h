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
	/* inputs */
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
	/* pool-private */
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
