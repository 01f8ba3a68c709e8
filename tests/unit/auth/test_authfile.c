/*
 * test_authfile.c - the password file: parsing, file:line errors, and
 * checks against every supported crypt(3) kind.
 */
#include "auth/auth.h"
#include "authtest.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

static int
setup(void **state)
{
	(void)state;
	authtest_mkdir();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	authtest_rmdir();
	return 0;
}

static struct authfile *
load_text(const char *text, char *err, size_t errlen)
{
	const char *path = authtest_path("users");
	authtest_write(path, text);
	err[0] = '\0';
	return authfile_load(path, err, errlen);
}

static void
test_good_file(void **state)
{
	char text[4096], y[256], b[256], s[256], err[512];
	(void)state;

	snprintf(y, sizeof(y), "%s", authtest_hash("$y$", "alice-pw"));
	snprintf(b, sizeof(b), "%s", authtest_hash("$2b$", "bob-pw"));
	snprintf(s, sizeof(s), "%s", authtest_hash("$6$", "carol-pw"));
	snprintf(text, sizeof(text),
		 "# stp users\n"
		 "\n"
		 "   \n"
		 "  # indented comment\n"
		 "alice:%s:admins,ops\n"
		 "bob:%s\n"
		 "carol:%s:\n",
		 y, b, s);
	struct authfile *f = load_text(text, err, sizeof(err));
	assert_non_null(f);
	assert_string_equal(err, "");

	const char *const *g = (const char *const *)1;
	size_t ng = 99;
	assert_true(authfile_check(f, "alice", "alice-pw", &g, &ng));
	assert_int_equal(ng, 2);
	assert_string_equal(g[0], "admins");
	assert_string_equal(g[1], "ops");

	assert_true(authfile_check(f, "bob", "bob-pw", &g, &ng));
	assert_int_equal(ng, 0);
	assert_true(authfile_check(f, "carol", "carol-pw", &g, &ng));
	assert_int_equal(ng, 0);
	assert_true(authfile_check(f, "carol", "carol-pw", NULL, NULL));

	/* Wrong password, another user's password, unknown user. */
	ng = 99;
	assert_false(authfile_check(f, "alice", "alice-pW", &g, &ng));
	assert_null(g);
	assert_int_equal(ng, 0);
	assert_false(authfile_check(f, "alice", "bob-pw", &g, &ng));
	assert_false(authfile_check(f, "bob", "alice-pw", &g, &ng));
	assert_false(authfile_check(f, "dave", "alice-pw", &g, &ng));
	assert_false(authfile_check(f, "Alice", "alice-pw", &g, &ng));
	assert_false(authfile_check(f, "alice", "", &g, &ng));
	assert_false(authfile_check(f, "", "alice-pw", &g, &ng));
	authfile_free(f);
}

static void
check_kind(const char *prefix)
{
	char text[1024], err[512];

	snprintf(text, sizeof(text), "u:%s:g\n", authtest_hash(prefix, "s3cret pass"));
	struct authfile *f = load_text(text, err, sizeof(err));
	assert_non_null(f);
	const char *const *g;
	size_t ng;
	assert_true(authfile_check(f, "u", "s3cret pass", &g, &ng));
	assert_int_equal(ng, 1);
	assert_string_equal(g[0], "g");
	assert_false(authfile_check(f, "u", "s3cret pas", &g, &ng));
	assert_false(authfile_check(f, "u", "s3cret pass ", &g, &ng));
	assert_false(authfile_check(f, "x", "s3cret pass", &g, &ng));
	authfile_free(f);
}

static void
test_yescrypt(void **state)
{
	(void)state;
	check_kind("$y$");
}

static void
test_bcrypt(void **state)
{
	(void)state;
	check_kind("$2b$");
	check_kind("$2y$");
}

static void
test_sha_crypt(void **state)
{
	(void)state;
	check_kind("$6$");
	check_kind("$5$");
}

/* Errors: the expected text after "PATH:". */
struct bad_case {
	const char *text; /* "HASH" is replaced by a valid yescrypt hash */
	const char *want;
};

static const struct bad_case bad_cases[] = {
	{ "alice\n", "1: bad line: expected user:hash[:group,...]" },
	{ "# c\n\n:HASH\n", "3: empty user name" },
	{ "a\001b:HASH\n", "1: user name contains a control character" },
	{ "ab\177:HASH\n", "1: user name contains a control character" },
	{ "ok:HASH\r\n", "1: carriage return in line (DOS line ends?)" },
	{ "alice:HASH\nbob:HASH\nalice:HASH\n", "3: duplicate user 'alice' (first on line 1)" },
	{ "alice:$1$abcdefgh$0123456789abcdefghijkl\n",
	  "1: not a supported crypt(3) hash (want $y$, $2b$, $2y$, $6$ or $5$)" },
	{ "alice:plaintext\n", "1: not a supported crypt(3) hash (want $y$, $2b$, $2y$, $6$ or $5$)" },
	{ "alice:$y$\n", "1: not a supported crypt(3) hash (want $y$, $2b$, $2y$, $6$ or $5$)" },
	{ "alice:\n", "1: empty password hash" },
	{ "alice:HASH:g1,,g2\n", "1: empty group name" },
	{ "alice:HASH:g1:g2\n", "1: bad line: too many ':' fields" },
	{ "alice:HASH:g\001\n", "1: group name contains a control character" },
	{ "alice:HASH:0123456789012345678901234567890123456789012345678901234567890123\n",
	  "1: group name longer than 63 bytes" },
	{ "alice:HASH:a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q\n", "1: too many groups" },
	{ "good:HASH\nx\ny:\n", "2: bad line: expected user:hash[:group,...] (and 1 more errors)" },
};

/* Replaces every "HASH" in text with hash. */
static void
subst_hash(char *out, size_t cap, const char *text, const char *hash)
{
	size_t n = 0;
	for (const char *p = text; *p != '\0';) {
		if (strncmp(p, "HASH", 4) == 0) {
			n += (size_t)snprintf(out + n, cap - n, "%s", hash);
			p += 4;
		} else {
			out[n++] = *p++;
		}
		assert_true(n < cap);
	}
	out[n] = '\0';
}

static void
test_errors(void **state)
{
	char hash[256], text[4096], err[512], want[1024];
	(void)state;

	snprintf(hash, sizeof(hash), "%s", authtest_hash("$y$", "pw"));
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		subst_hash(text, sizeof(text), bad_cases[i].text, hash);
		struct authfile *f = load_text(text, err, sizeof(err));
		snprintf(want, sizeof(want), "%s:%s", authtest_path("users"), bad_cases[i].want);
		if (f != NULL || strcmp(err, want) != 0)
			print_error("case %zu: got '%s', want '%s'\n", i, err, want);
		assert_null(f);
		assert_string_equal(err, want);
	}
}

static void
test_nul_byte(void **state)
{
	char text[1024], err[512], want[512];
	(void)state;

	int n = snprintf(text, sizeof(text), "ok:%s\nno", authtest_hash("$y$", "pw"));
	n += snprintf(text + n + 1, sizeof(text) - (size_t)n - 1, "nul:x\n") + 1;
	FILE *fp = fopen(authtest_path("users"), "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, (size_t)n, fp), n);
	fclose(fp);
	assert_null(authfile_load(authtest_path("users"), err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", authtest_path("users"));
	assert_string_equal(err, want);
}

static void
test_long_names(void **state)
{
	char user[300], text[1024], err[512], want[600];
	(void)state;

	memset(user, 'u', 255);
	user[255] = '\0';
	snprintf(text, sizeof(text), "%s:%s\n", user, authtest_hash("$y$", "pw"));
	struct authfile *f = load_text(text, err, sizeof(err));
	assert_non_null(f);
	assert_true(authfile_check(f, user, "pw", NULL, NULL));
	char pass[300];
	memset(pass, 'p', 256);
	pass[256] = '\0';
	assert_false(authfile_check(f, user, pass, NULL, NULL)); /* PLEN > 255 */
	authfile_free(f);

	memset(user, 'u', 256);
	user[256] = '\0';
	snprintf(text, sizeof(text), "%s:%s\n", user, authtest_hash("$y$", "pw"));
	assert_null(load_text(text, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:1: user name longer than 255 bytes",
		 authtest_path("users"));
	assert_string_equal(err, want);
}

static void
test_missing_and_empty(void **state)
{
	char err[512], want[512];
	(void)state;

	const char *path = authtest_path("nope");
	assert_null(authfile_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want),
		 "%s: No such file or directory (create it with: stpd passwd %s USER)", path, path);
	assert_string_equal(err, want);

	struct authfile *f = load_text("# nobody yet\n", err, sizeof(err));
	assert_non_null(f);
	assert_false(authfile_check(f, "alice", "pw", NULL, NULL));
	authfile_free(f);
	authfile_free(NULL);
}

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median time of 7 checks. */
static double
time_check(const struct authfile *f, const char *user, const char *pass)
{
	double t[7];
	for (int i = 0; i < 7; i++) {
		double t0 = now();
		assert_false(authfile_check(f, user, pass, NULL, NULL));
		t[i] = now() - t0;
	}
	qsort(t, 7, sizeof(t[0]), cmp_double);
	return t[3];
}

/* An unknown user must cost a crypt like a wrong password does: without
 * the dummy hash it would take microseconds instead of milliseconds. */
static void
test_unknown_user_timing(void **state)
{
	char text[1024], err[512];
	(void)state;

	snprintf(text, sizeof(text), "alice:%s\n", authtest_hash("$y$", "pw"));
	struct authfile *f = load_text(text, err, sizeof(err));
	assert_non_null(f);
	double wrong = time_check(f, "alice", "wrong");
	double unknown = time_check(f, "mallory", "wrong");
	print_message("wrong password %.2f ms, unknown user %.2f ms\n", wrong * 1e3,
		      unknown * 1e3);
	assert_true(wrong > 0.0005); /* yescrypt really ran */
	/* Loose bounds: other tests may load the machine. */
	assert_true(unknown > wrong * 0.25);
	assert_true(unknown < wrong * 4.0);
	authfile_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_yescrypt),
		cmocka_unit_test(test_bcrypt),
		cmocka_unit_test(test_sha_crypt),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_long_names),
		cmocka_unit_test(test_missing_and_empty),
		cmocka_unit_test(test_unknown_user_timing),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
