/*
 * test_authset.c - backend sets through the real pool: the chain (a dead
 * LDAP server in front of the users file), its down state, the cache
 * (hits, groups kept, refusals never cached, eviction), and the secret
 * files' errors. Directories with real servers: tests/integration.
 */
#include "auth/auth.h"
#include "auth/authdir.h"
#include "authtest.h"

#include <arpa/inet.h>
#include <ev.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

struct tjob {
	struct auth_job job;
	int *outstanding;
};

static int setup(void **state)
{
	char text[1024];
	(void)state;
	authtest_mkdir();
	/* authtest_hash returns a static buffer: one call per snprintf. */
	int n = snprintf(text, sizeof(text), "alice:%s:staff,web\n",
			 authtest_hash("$y$", "alice-pw"));
	snprintf(text + n, sizeof(text) - (size_t)n, "bob:%s\n", authtest_hash("$y$", "bob-pw"));
	authtest_write(authtest_path("users"), text);
	assert_int_equal(authpool_start(2), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	authpool_stop();
	authtest_rmdir();
	return 0;
}

static void tjob_done(struct auth_job *job)
{
	struct tjob *t = (struct tjob *)job;
	(*t->outstanding)--;
}

/* One check through the pool, waited for on a private loop. */
static void check(struct authset *set, const char *user, const char *pass, struct tjob *t)
{
	int outstanding = 1;
	memset(t, 0, sizeof(*t));
	t->job.set = set;
	t->outstanding = &outstanding;
	snprintf(t->job.user, sizeof(t->job.user), "%s", user);
	snprintf(t->job.pass, sizeof(t->job.pass), "%s", pass);
	t->job.done = tjob_done;
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct authpool_loop *pl = authpool_attach(loop);
	auth_submit(pl, &t->job);
	ev_run(loop, 0); /* the pool holds the loop while the job is out */
	assert_int_equal(outstanding, 0);
	authpool_detach(pl);
	ev_loop_destroy(loop);
}

/* A loopback TCP port nobody listens on. */
static unsigned closed_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static void test_file_with_cache(void **state)
{
	struct authset_conf c = { .chain = { AUTH_KIND_FILE },
				  .n_chain = 1,
				  .users_file = authtest_path("users"),
				  .cache = { .ttl = 60, .size = 16 } };
	char err[256];
	struct tjob t;
	(void)state;

	struct authset *set = authset_new(&c, err, sizeof(err));
	assert_non_null(set);
	check(set, "alice", "alice-pw", &t);
	assert_true(t.job.ok);
	assert_false(t.job.cached);
	assert_int_equal(t.job.n_groups, 2);
	/* Same user and password: from the cache, groups included. */
	check(set, "alice", "alice-pw", &t);
	assert_true(t.job.ok);
	assert_true(t.job.cached);
	assert_int_equal(t.job.n_groups, 2);
	assert_string_equal(t.job.groups[0], "staff");
	assert_string_equal(t.job.groups[1], "web");
	/* Another password is not a hit, and a refusal is not cached. */
	check(set, "alice", "bob-pw", &t);
	assert_false(t.job.ok);
	assert_false(t.job.cached);
	assert_string_equal(t.job.why, "file: rejected");
	check(set, "alice", "bob-pw", &t);
	assert_false(t.job.ok);
	assert_false(t.job.cached);
	/* The user name is part of the key. */
	check(set, "bob", "alice-pw", &t);
	assert_false(t.job.ok);
	authset_unref(set);
}

static void test_dead_ldap_then_file(void **state)
{
	struct auth_ldap_conf l = { .timeout = 2 };
	struct authset_conf c = { .chain = { AUTH_KIND_LDAP, AUTH_KIND_FILE },
				  .n_chain = 2,
				  .users_file = authtest_path("users"),
				  .ldap = &l,
				  .down_time = 60 };
	char err[256];
	struct tjob t;
	(void)state;

	snprintf(l.uri, sizeof(l.uri), "ldap://127.0.0.1:%u", closed_port());
	snprintf(l.user_dn, sizeof(l.user_dn), "uid=%%u,dc=x");
	struct authset *set = authset_new(&c, err, sizeof(err));
	assert_non_null(set);
	/* LDAP fails (refused), the file accepts. */
	check(set, "alice", "alice-pw", &t);
	assert_true(t.job.ok);
	assert_int_equal(t.job.n_groups, 2);
	/* Now LDAP is down: skipped without trying, then the file refuses. */
	time_t t0 = time(NULL);
	check(set, "alice", "wrong", &t);
	assert_false(t.job.ok);
	assert_string_equal(t.job.why, "ldap: down, skipped; file: rejected");
	assert_true(time(NULL) - t0 <= 1);
	authset_unref(set);
}

static void test_secret_files(void **state)
{
	struct auth_radius_conf r = { .n_servers = 1, .timeout = 1, .retries = 0 };
	struct authset_conf c = { .chain = { AUTH_KIND_RADIUS }, .n_chain = 1, .radius = &r };
	char err[512];
	(void)state;

	snprintf(r.servers[0], sizeof(r.servers[0]), "127.0.0.1:1812");
	snprintf(r.nas_identifier, sizeof(r.nas_identifier), "t");
	snprintf(r.secret_file, sizeof(r.secret_file), "%s", authtest_path("none"));
	assert_null(authset_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file"));
	authtest_write(authtest_path("empty"), "\n");
	snprintf(r.secret_file, sizeof(r.secret_file), "%s", authtest_path("empty"));
	assert_null(authset_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "empty"));
	authtest_write(authtest_path("spaced"), "two words\n");
	snprintf(r.secret_file, sizeof(r.secret_file), "%s", authtest_path("spaced"));
	assert_null(authset_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "may not hold"));
	authtest_write(authtest_path("good"), "s3cret\n");
	snprintf(r.secret_file, sizeof(r.secret_file), "%s", authtest_path("good"));
	struct authset *set = authset_new(&c, err, sizeof(err));
	assert_non_null(set);
	authset_unref(set);
}

static void test_cache_eviction(void **state)
{
	struct auth_cache_conf cc = { .ttl = 60, .size = 4 }; /* one set of 4 */
	struct auth_job job;
	uint8_t keys[5][32];
	char pw[8];
	(void)state;

	struct authcache *c = authcache_new(&cc);
	assert_non_null(c);
	memset(&job, 0, sizeof(job));
	job.n_groups = 1;
	snprintf(job.groups[0], sizeof(job.groups[0]), "g");
	for (int i = 0; i < 5; i++) {
		snprintf(pw, sizeof(pw), "pw%d", i);
		authcache_key(c, "u", pw, keys[i]);
		authcache_put(c, keys[i], &job);
	}
	int hits = 0;
	for (int i = 0; i < 5; i++) {
		struct auth_job out;
		memset(&out, 0, sizeof(out));
		if (authcache_get(c, keys[i], &out)) {
			hits++;
			assert_int_equal(out.n_groups, 1);
			assert_string_equal(out.groups[0], "g");
		}
	}
	assert_int_equal(hits, 4);
	/* Keys differ by user and password, and are not the plain hash. */
	uint8_t k1[32], k2[32];
	authcache_key(c, "ab", "c", k1);
	authcache_key(c, "a", "bc", k2);
	assert_memory_not_equal(k1, k2, 32);
	authcache_free(c);
	struct auth_cache_conf off = { .ttl = 0, .size = 4 };
	assert_null(authcache_new(&off));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_with_cache),
		cmocka_unit_test(test_dead_ldap_then_file),
		cmocka_unit_test(test_secret_files),
		cmocka_unit_test(test_cache_eviction),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
