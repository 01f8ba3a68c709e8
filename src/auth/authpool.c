/*
 * authpool.c - runs credential checks off the event loops.
 *
 *   loop thread                 pool thread
 *   auth_submit() --queue-->    worker: check, wipe pass
 *   async cb: job->done() <--   push on home's done list, ev_async_send
 *
 * One process-wide queue (mutex + condvar) feeds N threads; each attached
 * loop has its own completion list and ev_async. A loop's ev_async holds a
 * reference on the loop only while it has jobs outstanding, so an idle pool
 * never keeps ev_run() from returning.
 */
#include "auth/auth.h"
#include "auth/authint.h"

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

static struct {
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t idle; /* some loop's running count fell to 0 */
	struct auth_job *head, *tail;
	pthread_t *threads;
	unsigned nthreads;
	bool stopping;
} authpool = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.work = PTHREAD_COND_INITIALIZER,
	.idle = PTHREAD_COND_INITIALIZER,
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
static void
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
authpool_check(struct auth_job *job)
{
	if (job->backend == AUTH_BACKEND_FILE && job->file != NULL) {
		authpool_file_check(job);
	} else if (job->backend == AUTH_BACKEND_PAM && job->pam_service != NULL) {
		job->ok = authpam_check(job->pam_service, job->user, job->pass);
		if (job->ok)
			authpool_system_groups(job);
	}
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
	(void)arg;
	pthread_mutex_lock(&authpool.lock);
	for (;;) {
		while (authpool.head == NULL && !authpool.stopping)
			pthread_cond_wait(&authpool.work, &authpool.lock);
		struct auth_job *job = authpool.head;
		if (job == NULL)
			break; /* stopping, and the queue is drained */
		if ((authpool.head = job->next) == NULL)
			authpool.tail = NULL;
		struct authpool_loop *pl = job->home;
		pl->running++;
		bool cancelled = job->cancelled;
		pthread_mutex_unlock(&authpool.lock);

		if (!cancelled)
			authpool_check(job);
		authpool_complete(job);

		pthread_mutex_lock(&authpool.lock);
		if (--pl->running == 0)
			pthread_cond_broadcast(&authpool.idle);
	}
	pthread_mutex_unlock(&authpool.lock);
	return NULL;
}

int
authpool_start(unsigned nthreads)
{
	sigset_t all, old;
	int rc = 0;

	if (nthreads == 0)
		nthreads = 1;
	pthread_mutex_lock(&authpool.lock);
	if (authpool.nthreads > 0)
		goto out;
	authpool.threads = calloc(nthreads, sizeof(*authpool.threads));
	if (authpool.threads == NULL) {
		rc = -1;
		goto out;
	}
	/* Signals belong to the main loop, never to a pool thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&authpool.threads[i], NULL, authpool_worker, NULL) != 0)
			break;
		pthread_setname_np(authpool.threads[i], "stp-auth");
		authpool.nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (authpool.nthreads == 0) {
		free(authpool.threads);
		authpool.threads = NULL;
		rc = -1;
	}
out:
	pthread_mutex_unlock(&authpool.lock);
	return rc;
}

void
authpool_stop(void)
{
	pthread_mutex_lock(&authpool.lock);
	unsigned n = authpool.nthreads;
	pthread_t *threads = authpool.threads;
	/* Queued jobs are completed unchecked, as cancelled. */
	for (struct auth_job *j = authpool.head; j != NULL; j = j->next)
		j->cancelled = true;
	authpool.stopping = true;
	pthread_cond_broadcast(&authpool.work);
	pthread_mutex_unlock(&authpool.lock);

	for (unsigned i = 0; i < n; i++)
		pthread_join(threads[i], NULL);

	pthread_mutex_lock(&authpool.lock);
	free(authpool.threads);
	authpool.threads = NULL;
	authpool.nthreads = 0;
	authpool.stopping = false;
	pthread_mutex_unlock(&authpool.lock);
}

/* One done() call; the loop's reference goes with the last pending job. */
static void
authpool_deliver(struct authpool_loop *pl, struct auth_job *job)
{
	if (--pl->pending == 0)
		ev_unref(pl->loop);
	job->next = NULL;
	job->done(job);
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
	job->n_groups = 0;
	job->next = NULL;
	job->home = pl;
	if (pl->pending++ == 0)
		ev_ref(pl->loop);

	pthread_mutex_lock(&authpool.lock);
	bool running = authpool.nthreads > 0 && !authpool.stopping;
	if (running) {
		if (authpool.tail != NULL)
			authpool.tail->next = job;
		else
			authpool.head = job;
		authpool.tail = job;
		pthread_cond_signal(&authpool.work);
	}
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
	struct auth_job **pp = &authpool.head;
	authpool.tail = NULL;
	while (*pp != NULL) {
		struct auth_job *j = *pp;
		if (j->home == pl) {
			*pp = j->next;
			j->next = NULL;
			j->cancelled = true;
			*mt = j;
			mt = &j->next;
		} else {
			authpool.tail = j;
			pp = &j->next;
		}
	}
	while (pl->running > 0)
		pthread_cond_wait(&authpool.idle, &authpool.lock);
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
			explicit_bzero(job->pass, sizeof(job->pass));
			job->next = NULL;
			job->done(job);
			job = next;
		}
	}
	pthread_mutex_destroy(&pl->lock);
	free(pl);
}
