/*
 * test_authpool.c - the auth thread pool with real libev loops: results
 * and groups come back through done(), cancellation, detach with jobs
 * outstanding, several loops at once, and stop/restart.
 */
#include "auth/auth.h"
#include "authtest.h"

#include <ev.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static struct authfile *file;

struct tjob {
	struct auth_job job; /* first: done() gets &job */
	bool want_ok;
	int done_calls;
};

struct run {
	int outstanding;
	bool timed_out;
};

static int
setup(void **state)
{
	char text[2048], err[512];
	(void)state;

	authtest_mkdir();
	int n = snprintf(text, sizeof(text), "# pool test\nalice:%s:staff,wheel\n",
			 authtest_hash("$y$", "alice-pw"));
	n += snprintf(text + n, sizeof(text) - (size_t)n, "bob:%s\n",
		      authtest_hash("$2b$", "bob-pw"));
	snprintf(text + n, sizeof(text) - (size_t)n, "carol:%s:ops\n",
		 authtest_hash("$6$", "carol-pw"));
	authtest_write(authtest_path("users"), text);
	file = authfile_load(authtest_path("users"), err, sizeof(err));
	if (file == NULL)
		fprintf(stderr, "%s\n", err);
	assert_non_null(file);
	assert_int_equal(authpool_start(3), 0);
	assert_int_equal(authpool_start(5), 0); /* idempotent */
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	authpool_stop();
	authfile_free(file);
	authtest_rmdir();
	return 0;
}

static void
tjob_done(struct auth_job *job)
{
	struct tjob *t = (struct tjob *)job;
	struct run *r = job->ctx;
	t->done_calls++;
	r->outstanding--;
}

static void
tjob_fill(struct tjob *t, struct run *r, const char *user, const char *pass, bool want)
{
	memset(t, 0, sizeof(*t));
	t->job.backend = AUTH_BACKEND_FILE;
	t->job.file = file;
	snprintf(t->job.user, sizeof(t->job.user), "%s", user);
	snprintf(t->job.pass, sizeof(t->job.pass), "%s", pass);
	t->job.done = tjob_done;
	t->job.ctx = r;
	t->want_ok = want;
	r->outstanding++;
}

static void
watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct run *r = w->data;
	(void)revents;
	r->timed_out = true;
	ev_break(loop, EVBREAK_ALL);
}

/* Runs loop until it has nothing left: the pool holds a reference on it
 * exactly while jobs are outstanding. An unref'd watchdog guards hangs. */
static void
run_loop(struct ev_loop *loop, struct run *r)
{
	ev_timer wd;
	ev_timer_init(&wd, watchdog_cb, 60.0, 0.0);
	wd.data = r;
	ev_timer_start(loop, &wd);
	ev_unref(loop);
	ev_run(loop, 0);
	ev_ref(loop);
	ev_timer_stop(loop, &wd);
	assert_false(r->timed_out);
	assert_int_equal(r->outstanding, 0);
}

static bool
all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void
check_result(const struct tjob *t)
{
	assert_int_equal(t->done_calls, 1);
	assert_false(t->job.cancelled);
	assert_int_equal(t->job.ok, t->want_ok);
	assert_true(all_zero(t->job.pass, sizeof(t->job.pass)));
	if (!t->want_ok) {
		assert_int_equal(t->job.n_groups, 0);
	} else if (strcmp(t->job.user, "alice") == 0) {
		assert_int_equal(t->job.n_groups, 2);
		assert_string_equal(t->job.groups[0], "staff");
		assert_string_equal(t->job.groups[1], "wheel");
	} else if (strcmp(t->job.user, "carol") == 0) {
		assert_int_equal(t->job.n_groups, 1);
		assert_string_equal(t->job.groups[0], "ops");
	} else {
		assert_int_equal(t->job.n_groups, 0);
	}
}

static const struct {
	const char *user, *pass;
	bool ok;
} cases[] = {
	{ "alice", "alice-pw", true }, { "bob", "bob-pw", true },
	{ "carol", "carol-pw", true }, { "alice", "bob-pw", false },
	{ "bob", "", false },          { "mallory", "alice-pw", false },
	{ "carol", "carol-pw", true }, { "alice", "alice-pw", true },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static void
test_results(void **state)
{
	struct tjob jobs[NCASES];
	struct run r = { 0 };
	(void)state;

	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct authpool_loop *pl = authpool_attach(loop);
	assert_non_null(pl);
	for (size_t i = 0; i < NCASES; i++) {
		tjob_fill(&jobs[i], &r, cases[i].user, cases[i].pass, cases[i].ok);
		auth_submit(pl, &jobs[i].job);
	}
	run_loop(loop, &r);
	for (size_t i = 0; i < NCASES; i++)
		check_result(&jobs[i]);
	/* The loop is idle again: an empty run returns at once. */
	ev_run(loop, 0);
	authpool_detach(pl);
	ev_loop_destroy(loop);
}

/* done() may submit again from inside the callback. */
static void
resubmit_done(struct auth_job *job)
{
	struct tjob *t = (struct tjob *)job;
	struct run *r = job->ctx;
	if (t->done_calls++ == 0) {
		snprintf(job->pass, sizeof(job->pass), "bob-pw");
		auth_submit(job->home, job);
		return;
	}
	r->outstanding--;
}

static void
test_resubmit_from_done(void **state)
{
	struct tjob t;
	struct run r = { 0 };
	(void)state;

	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct authpool_loop *pl = authpool_attach(loop);
	tjob_fill(&t, &r, "bob", "wrong", true);
	t.job.done = resubmit_done;
	auth_submit(pl, &t.job);
	run_loop(loop, &r);
	assert_int_equal(t.done_calls, 2);
	assert_true(t.job.ok);
	authpool_detach(pl);
	ev_loop_destroy(loop);
}

/* Jobs cancelled right after submission: done() still runs for every one,
 * with cancelled set; the ones still queued are never checked. */
static void
test_cancel(void **state)
{
	enum { N = 24 };
	struct tjob jobs[N];
	struct run r = { 0 };
	(void)state;

	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct authpool_loop *pl = authpool_attach(loop);
	for (int i = 0; i < N; i++) {
		tjob_fill(&jobs[i], &r, "alice", "alice-pw", true);
		auth_submit(pl, &jobs[i].job);
	}
	for (int i = N / 2; i < N; i++)
		auth_cancel(&jobs[i].job);
	run_loop(loop, &r);
	int skipped = 0;
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_true(all_zero(jobs[i].job.pass, sizeof(jobs[i].job.pass)));
		if (i < N / 2) {
			check_result(&jobs[i]);
		} else {
			assert_true(jobs[i].job.cancelled);
			skipped += !jobs[i].job.ok;
		}
	}
	/* 3 threads, yescrypt: the last cancelled jobs were still queued. */
	assert_true(skipped >= 1);
	authpool_detach(pl);
	ev_loop_destroy(loop);
}

/* Detach with jobs queued and running: every done() runs before detach
 * returns; the loop is left without the pool's reference. */
static void
test_detach_pending(void **state)
{
	enum { N = 16 };
	struct tjob jobs[N];
	struct run r = { 0 };
	(void)state;

	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct authpool_loop *pl = authpool_attach(loop);
	for (int i = 0; i < N; i++) {
		tjob_fill(&jobs[i], &r, "alice", "alice-pw", true);
		auth_submit(pl, &jobs[i].job);
	}
	authpool_detach(pl);
	assert_int_equal(r.outstanding, 0);
	int cancelled = 0;
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].done_calls, 1);
		assert_true(all_zero(jobs[i].job.pass, sizeof(jobs[i].job.pass)));
		if (jobs[i].job.cancelled)
			cancelled++;
		else
			assert_true(jobs[i].job.ok);
	}
	assert_true(cancelled >= 1);
	assert_int_equal(ev_run(loop, 0), 0); /* nothing keeps it alive */
	ev_loop_destroy(loop);
}

/* Two loops on two threads share the pool; each gets only its own jobs. */
struct loop_thread {
	struct tjob jobs[NCASES];
	struct run r;
};

static void *
loop_thread_main(void *arg)
{
	struct loop_thread *lt = arg;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct authpool_loop *pl = authpool_attach(loop);
	for (size_t i = 0; i < NCASES; i++) {
		tjob_fill(&lt->jobs[i], &lt->r, cases[i].user, cases[i].pass, cases[i].ok);
		auth_submit(pl, &lt->jobs[i].job);
	}
	ev_run(loop, 0);
	authpool_detach(pl);
	ev_loop_destroy(loop);
	return NULL;
}

static void
test_two_loops(void **state)
{
	struct loop_thread lt[2];
	pthread_t th[2];
	(void)state;

	memset(lt, 0, sizeof(lt));
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, loop_thread_main, &lt[i]), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(lt[i].r.outstanding, 0);
		for (size_t j = 0; j < NCASES; j++)
			check_result(&lt[i].jobs[j]);
	}
}

/* Without a pool a job fails, still through the loop; a restarted pool
 * works again. */
static void
test_stop_restart(void **state)
{
	struct tjob t;
	struct run r = { 0 };
	(void)state;

	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct authpool_loop *pl = authpool_attach(loop);
	authpool_stop();
	tjob_fill(&t, &r, "alice", "alice-pw", false);
	auth_submit(pl, &t.job);
	assert_int_equal(t.done_calls, 0); /* never synchronously */
	run_loop(loop, &r);
	check_result(&t);

	assert_int_equal(authpool_start(2), 0);
	tjob_fill(&t, &r, "alice", "alice-pw", true);
	auth_submit(pl, &t.job);
	run_loop(loop, &r);
	check_result(&t);
	authpool_detach(pl);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_results),
		cmocka_unit_test(test_resubmit_from_done),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_detach_pending),
		cmocka_unit_test(test_two_loops),
		cmocka_unit_test(test_stop_restart),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
