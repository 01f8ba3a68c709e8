/*
 * test_authpam.c - PAM against a real pam_unix: a temporary system user
 * with a known password and a temporary service file. Needs root and
 * useradd; skipped otherwise. Names carry the pid so parallel builds
 * don't collide.
 */
#include "auth/auth.h"

#include <ev.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char user[32];
static char service[64];
static char service_path[128];
static const char *skip_reason;

static int __attribute__((format(printf, 1, 2)))
sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

/* useradd may race with another test process for /etc/passwd's lock. */
static int
add_user(void)
{
	for (int i = 0; i < 20; i++) {
		if (sh("useradd -M -U -s /usr/sbin/nologin %s 2>/dev/null", user) == 0)
			return 0;
		usleep(100000);
	}
	return -1;
}

static int
setup(void **state)
{
	(void)state;
	if (geteuid() != 0) {
		skip_reason = "not running as root";
		return 0;
	}
	if (access("/usr/sbin/useradd", X_OK) != 0 || access("/usr/sbin/chpasswd", X_OK) != 0) {
		skip_reason = "useradd/chpasswd not installed";
		return 0;
	}
	snprintf(user, sizeof(user), "stpt%ld", (long)getpid());
	snprintf(service, sizeof(service), "stpd-test-%ld", (long)getpid());
	snprintf(service_path, sizeof(service_path), "/etc/pam.d/%s", service);
	FILE *fp = fopen(service_path, "w");
	if (fp == NULL) {
		skip_reason = "cannot write /etc/pam.d";
		return 0;
	}
	fputs("auth required pam_unix.so nodelay\naccount required pam_unix.so\n", fp);
	fclose(fp);
	if (add_user() < 0) {
		unlink(service_path);
		skip_reason = "useradd failed";
		return 0;
	}
	char line[128];
	snprintf(line, sizeof(line), "echo '%s:Right Pass 1' | chpasswd", user);
	assert_int_equal(sh("%s", line), 0);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (user[0] != '\0') {
		sh("userdel %s 2>/dev/null", user);
		sh("groupdel %s 2>/dev/null", user); /* if userdel left it */
	}
	if (service_path[0] != '\0')
		unlink(service_path);
	authpool_stop();
	return 0;
}

static void
test_pam_check(void **state)
{
	(void)state;
	if (skip_reason != NULL) {
		print_message("skipped: %s\n", skip_reason);
		skip();
	}
	assert_true(authpam_check(service, user, "Right Pass 1"));
	assert_false(authpam_check(service, user, "Right Pass 2"));
	assert_false(authpam_check(service, user, "right pass 1"));
	assert_false(authpam_check(service, user, ""));
	assert_false(authpam_check(service, "stp-no-such-user", "Right Pass 1"));
}

struct pamjob {
	struct auth_job job;
	int calls;
};

static void
pamjob_done(struct auth_job *job)
{
	((struct pamjob *)job)->calls++;
}

/* Through the pool: groups are the user's system groups (its own user
 * private group from useradd -U). */
static void
test_pam_pool(void **state)
{
	struct pamjob good = { 0 }, bad = { 0 };
	(void)state;
	if (skip_reason != NULL) {
		print_message("skipped: %s\n", skip_reason);
		skip();
	}
	assert_int_equal(authpool_start(2), 0);
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct authpool_loop *pl = authpool_attach(loop);
	struct pamjob *jobs[] = { &good, &bad };
	for (int i = 0; i < 2; i++) {
		jobs[i]->job.backend = AUTH_BACKEND_PAM;
		jobs[i]->job.pam_service = service;
		snprintf(jobs[i]->job.user, sizeof(jobs[i]->job.user), "%s", user);
		snprintf(jobs[i]->job.pass, sizeof(jobs[i]->job.pass), "%s",
			 i == 0 ? "Right Pass 1" : "Wrong");
		jobs[i]->job.done = pamjob_done;
		auth_submit(pl, &jobs[i]->job);
	}
	ev_run(loop, 0); /* returns once both jobs are done */
	assert_int_equal(good.calls, 1);
	assert_int_equal(bad.calls, 1);
	assert_true(good.job.ok);
	assert_false(bad.job.ok);
	assert_int_equal(bad.job.n_groups, 0);
	bool found = false;
	for (size_t i = 0; i < good.job.n_groups; i++)
		found |= strcmp(good.job.groups[i], user) == 0;
	assert_true(good.job.n_groups >= 1);
	assert_true(found);
	assert_int_equal(good.job.pass[0], 0);
	authpool_detach(pl);
	ev_loop_destroy(loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pam_check),
		cmocka_unit_test(test_pam_pool),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
