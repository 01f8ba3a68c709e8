/*
 * authpool.c - runs credential checks off the event loops.
 *
 *   loop thread                 pool thread
 *   auth_submit() --queue-->    worker: check, wipe pass
 *   async cb: job->done() <--   push on home's done list, ev_async_send
 *
 * Three lanes, each a queue (under the one pool mutex) with its own
 * threads: local checks (file, PAM: CPU-bound, as many threads as asked),
 * LDAP and RADIUS (network-bound, AUTHPOOL_DIR_THREADS each). A job with a
 * backend chain runs one backend per turn and moves to the lane of the next
 * one when refused, so a slow or dead directory fills its own lane only and
 * never delays checks against the users file or the other directory.
 *
 * Each attached loop has its own completion list and ev_async. A loop's
 * ev_async holds a reference on the loop only while it has jobs
 * outstanding, so an idle pool never keeps ev_run() from returning.
 */
#include "auth/auth.h"
#include "auth/authint.h"
#include "auth/authset.h"

#include <ev.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct authpool_loop {
	struct ev_loop *loop;
	ev_async async;
	pthread_mutex_t lock; /* guards done_head/done_tail */
	struct auth_job *done_head, *done_tail;
	unsigned running; /* jobs a worker holds; under authpool.lock */
	unsigned pending; /* submitted, done() not yet called; loop thread only */
};

enum { LANE_LOCAL, LANE_LDAP, LANE_RADIUS, LANES };
/* Threads of each directory lane: how many logins may wait on one directory
 * at once (each holds one connection to it for at most its timeout). */
#define AUTHPOOL_DIR_THREADS 8

struct authpool_lane {
	pthread_cond_t work; /* a job was queued, or stop */
	struct auth_job *head, *tail;
	pthread_t *threads;
	unsigned nthreads;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t idle; /* some loop's running count fell to 0 */
	struct authpool_lane lanes[LANES];
	bool started;
	bool stopping;
} authpool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
	.lanes = { { .work = PTHREAD_COND_INITIALIZER }, { .work = PTHREAD_COND_INITIALIZER },
		   { .work = PTHREAD_COND_INITIALIZER } },
};

/* Copies the file entry's groups into the job. */
static void
authpool_file_check(struct auth_job *job)
{
	const char *const *groups;
	size_t n;

	job->ok = authfile_check(job->file, job->user, job->pass, &groups, &n);
	for (size_t i = 0; job->ok && i < n && i < AUTH_GROUPS_MAX; i++)
		snprintf(job->groups[job->n_groups++], sizeof(job->groups[0]), "%s", groups[i]);
}

/* The user's system groups (primary first), names that fit only. */
void
authpool_system_groups(struct auth_job *job)
{
	char buf[16384];
	struct passwd pw, *pwp = NULL;
	gid_t gids[256];
	int ng = (int)(sizeof(gids) / sizeof(gids[0]));

	if (getpwnam_r(job->user, &pw, buf, sizeof(buf), &pwp) != 0 || pwp == NULL)
		return;
	/* Too many groups: getgrouplist fills what fits and returns -1. */
	if (getgrouplist(job->user, pw.pw_gid, gids, &ng) < 0)
		ng = (int)(sizeof(gids) / sizeof(gids[0]));
	for (int i = 0; i < ng && job->n_groups < AUTH_GROUPS_MAX; i++) {
		struct group gr, *grp = NULL;
		if (getgrgid_r(gids[i], &gr, buf, sizeof(buf), &grp) != 0 || grp == NULL)
			continue;
		size_t len = strlen(gr.gr_name);
		if (len >= sizeof(job->groups[0]))
			continue; /* a truncated name could match another group */
		memcpy(job->groups[job->n_groups++], gr.gr_name, len + 1);
	}
}

static void
authpool_check_one(struct auth_job *job)
{
	if (job->backend == AUTH_BACKEND_FILE && job->file != NULL) {
		authpool_file_check(job);
		job->via = "file";
	} else if (job->backend == AUTH_BACKEND_PAM && job->pam_service != NULL) {
		job->ok = authpam_check(job->pam_service, job->user, job->pass);
		job->via = "pam";
		if (job->ok)
			authpool_system_groups(job);
	}
}

/* One turn of a job. True when it is finished (accepted, or the chain is
 * exhausted); false when the next backend of its chain is to be tried. */
static bool
authpool_check(struct auth_job *job)
{
	if (job->set == NULL) {
		authpool_check_one(job);
		return true;
	}
	if (authset_check_step(job->set, job))
		return true;
	return ++job->step >= authset_chain_len(job->set);
}

static unsigned
authpool_lane_of(const struct auth_job *job)
{
	if (job->set == NULL)
		return LANE_LOCAL;
	switch (authset_kind(job->set, job->step)) {
	case AUTH_KIND_LDAP:
		return LANE_LDAP;
	case AUTH_KIND_RADIUS:
		return LANE_RADIUS;
	default:
		return LANE_LOCAL;
	}
}

/* Under authpool.lock. */
static void
authpool_enqueue(struct auth_job *job)
{
	struct authpool_lane *ln = &authpool.lanes[authpool_lane_of(job)];
	job->next = NULL;
	if (ln->tail != NULL)
		ln->tail->next = job;
	else
		ln->head = job;
	ln->tail = job;
	pthread_cond_signal(&ln->work);
}

/* Hands a finished job to its loop. The job may be freed by done() as soon
 * as the lock is dropped, so only pl is used afterwards. */
static void
authpool_complete(struct auth_job *job)
{
	struct authpool_loop *pl = job->home;

	explicit_bzero(job->pass, sizeof(job->pass));
	job->next = NULL;
	pthread_mutex_lock(&pl->lock);
	if (pl->done_tail != NULL)
		pl->done_tail->next = job;
	else
		pl->done_head = job;
	pl->done_tail = job;
	pthread_mutex_unlock(&pl->lock);
	ev_async_send(pl->loop, &pl->async);
}

static void *
authpool_worker(void *arg)
{
	struct authpool_lane *ln = arg;

	pthread_mutex_lock(&authpool.lock);
	for (;;) {
		while (ln->head == NULL && !authpool.stopping)
			pthread_cond_wait(&ln->work, &authpool.lock);
		struct auth_job *job = ln->head;
		if (job == NULL)
			break; /* stopping, and the queue is drained */
		if ((ln->head = job->next) == NULL)
			ln->tail = NULL;
		struct authpool_loop *pl = job->home;
		pl->running++;
		bool cancelled = job->cancelled;
		pthread_mutex_unlock(&authpool.lock);

		bool finished = cancelled || authpool_check(job);

		pthread_mutex_lock(&authpool.lock);
		if (!finished && !job->cancelled && !authpool.stopping) {
			authpool_enqueue(job); /* the chain's next backend */
		} else {
			pthread_mutex_unlock(&authpool.lock);
			authpool_complete(job);
			pthread_mutex_lock(&authpool.lock);
		}
		if (--pl->running == 0)
			pthread_cond_broadcast(&authpool.idle);
	}
	pthread_mutex_unlock(&authpool.lock);
	return NULL;
}

/* Under authpool.lock, signals blocked. -1 when no thread could start. */
static int
authpool_lane_start(struct authpool_lane *ln, unsigned n)
{
	ln->threads = calloc(n, sizeof(*ln->threads));
	if (ln->threads == NULL)
		return -1;
	for (unsigned i = 0; i < n; i++) {
		if (pthread_create(&ln->threads[i], NULL, authpool_worker, ln) != 0)
			break;
		pthread_setname_np(ln->threads[i], "stp-auth");
		ln->nthreads++;
	}
	if (ln->nthreads == 0) {
		free(ln->threads);
		ln->threads = NULL;
		return -1;
	}
	return 0;
}

int
authpool_start(unsigned nthreads)
{
	sigset_t all, old;
	int rc = 0;

	if (nthreads == 0)
		nthreads = 1;
	pthread_mutex_lock(&authpool.lock);
	if (authpool.started)
		goto out;
	/* Signals belong to the main loop, never to a pool thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < LANES && rc == 0; i++)
		rc = authpool_lane_start(&authpool.lanes[i],
					 i == LANE_LOCAL ? nthreads : AUTHPOOL_DIR_THREADS);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	authpool.started = true;
	if (rc < 0) {
		pthread_mutex_unlock(&authpool.lock);
		authpool_stop();
		return -1;
	}
out:
	pthread_mutex_unlock(&authpool.lock);
	return rc;
}

void
authpool_stop(void)
{
	struct authpool_lane copy[LANES];

	pthread_mutex_lock(&authpool.lock);
	/* Queued jobs are completed unchecked, as cancelled. */
	for (unsigned i = 0; i < LANES; i++) {
		struct authpool_lane *ln = &authpool.lanes[i];
		for (struct auth_job *j = ln->head; j != NULL; j = j->next)
			j->cancelled = true;
		pthread_cond_broadcast(&ln->work);
		copy[i] = *ln;
	}
	authpool.stopping = true;
	pthread_mutex_unlock(&authpool.lock);

	for (unsigned i = 0; i < LANES; i++)
		for (unsigned t = 0; t < copy[i].nthreads; t++)
			pthread_join(copy[i].threads[t], NULL);

	pthread_mutex_lock(&authpool.lock);
	for (unsigned i = 0; i < LANES; i++) {
		free(authpool.lanes[i].threads);
		authpool.lanes[i].threads = NULL;
		authpool.lanes[i].nthreads = 0;
	}
	authpool.started = false;
	authpool.stopping = false;
	pthread_mutex_unlock(&authpool.lock);
}

/* One done() call; the loop's reference goes with the last pending job. */
static void
authpool_deliver(struct authpool_loop *pl, struct auth_job *job)
{
	struct authset *set = job->set; /* done() may free job */

	if (--pl->pending == 0)
		ev_unref(pl->loop);
	job->next = NULL;
	job->done(job);
	authset_unref(set);
}

static void
authpool_async_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	struct authpool_loop *pl = w->data;

	(void)loop;
	(void)revents;
	pthread_mutex_lock(&pl->lock);
	struct auth_job *job = pl->done_head;
	pl->done_head = pl->done_tail = NULL;
	pthread_mutex_unlock(&pl->lock);
	while (job != NULL) {
		struct auth_job *next = job->next; /* done() may free job */
		authpool_deliver(pl, job);
		job = next;
	}
}

struct authpool_loop *
authpool_attach(struct ev_loop *loop)
{
	struct authpool_loop *pl = calloc(1, sizeof(*pl));
	if (pl == NULL)
		return NULL;
	pl->loop = loop;
	pthread_mutex_init(&pl->lock, NULL);
	ev_async_init(&pl->async, authpool_async_cb);
	pl->async.data = pl;
	ev_async_start(loop, &pl->async);
	ev_unref(loop); /* idle: don't keep the loop alive */
	return pl;
}

void
auth_submit(struct authpool_loop *pl, struct auth_job *job)
{
	job->user[sizeof(job->user) - 1] = '\0';
	job->pass[sizeof(job->pass) - 1] = '\0';
	job->ok = false;
	job->cancelled = false;
	job->cached = false;
	job->via = NULL;
	job->why[0] = '\0';
	job->n_groups = 0;
	job->step = 0;
	job->next = NULL;
	job->home = pl;
	if (pl->pending++ == 0)
		ev_ref(pl->loop);
	if (job->set != NULL) {
		authset_ref(job->set);
		/* A hit costs one HMAC: answered here, still through the loop. */
		if (authset_cache_lookup(job->set, job)) {
			job->ok = job->cached = true;
			job->via = "cache";
			authpool_complete(job);
			return;
		}
		if (authset_chain_len(job->set) == 0) {
			authpool_complete(job);
			return;
		}
	}

	pthread_mutex_lock(&authpool.lock);
	bool running = authpool.started && !authpool.stopping;
	if (running)
		authpool_enqueue(job);
	pthread_mutex_unlock(&authpool.lock);
	if (!running)
		authpool_complete(job); /* no pool: fail, still through the loop */
}

void
auth_cancel(struct auth_job *job)
{
	pthread_mutex_lock(&authpool.lock);
	job->cancelled = true;
	pthread_mutex_unlock(&authpool.lock);
}

/* Takes pl's queued jobs out of the pool queue (as cancelled) and waits
 * until no worker holds one of its jobs. Returns the jobs taken. */
static struct auth_job *
authpool_reclaim(struct authpool_loop *pl)
{
	struct auth_job *mine = NULL, **mt = &mine;

	pthread_mutex_lock(&authpool.lock);
	/* Scan again after each wait: a worker may have moved one of pl's
	 * jobs to the next lane of its chain before letting go of it. */
	for (;;) {
		for (unsigned i = 0; i < LANES; i++) {
			struct authpool_lane *ln = &authpool.lanes[i];
			struct auth_job **pp = &ln->head;
			ln->tail = NULL;
			while (*pp != NULL) {
				struct auth_job *j = *pp;
				if (j->home == pl) {
					*pp = j->next;
					j->next = NULL;
					j->cancelled = true;
					*mt = j;
					mt = &j->next;
				} else {
					ln->tail = j;
					pp = &j->next;
				}
			}
		}
		if (pl->running == 0)
			break;
		pthread_cond_wait(&authpool.idle, &authpool.lock);
	}
	pthread_mutex_unlock(&authpool.lock);
	return mine;
}

void
authpool_detach(struct authpool_loop *pl)
{
	if (pl == NULL)
		return;
	struct auth_job *mine = authpool_reclaim(pl);
	/* No worker touches pl any more; stop the watcher with the reference
	 * it holds restored, as libev requires for an unref'd watcher. */
	if (pl->pending == 0)
		ev_ref(pl->loop);
	ev_async_stop(pl->loop, &pl->async);
	pl->pending = 0;
	for (int pass = 0; pass < 2; pass++) {
		struct auth_job *job = pass == 0 ? pl->done_head : mine;
		while (job != NULL) {
			struct auth_job *next = job->next;
			struct authset *set = job->set;
			explicit_bzero(job->pass, sizeof(job->pass));
			job->next = NULL;
			job->done(job);
			authset_unref(set);
			job = next;
		}
	}
	pthread_mutex_destroy(&pl->lock);
	free(pl);
}
