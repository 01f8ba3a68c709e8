/*
 * test_authpasswd.c - `stpd passwd FILE USER` run in a child process with
 * its stdin on a pipe (and once on a pseudo-terminal), then checked by
 * loading the file it wrote.
 */
#include "auth/auth.h"
#include "authtest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char child_err[4096];

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

static void
read_all(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;
	while (n + 1 < cap && ((r = read(fd, buf + n, cap - 1 - n)) > 0 || (r < 0 && errno == EINTR)))
		if (r > 0)
			n += (size_t)r;
	buf[n] = '\0';
}

/* Runs authfile_passwd_main(argv) in a child with `input` on its stdin;
 * its stderr lands in child_err. Returns the exit status. */
static int
run_passwd(char **argv, const char *input)
{
	int in[2], err[2];
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(err), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(in[0], STDIN_FILENO);
		dup2(err[1], STDERR_FILENO);
		close(in[0]);
		close(in[1]);
		close(err[0]);
		close(err[1]);
		int argc = 0;
		while (argv[argc] != NULL)
			argc++;
		_exit(authfile_passwd_main(argc, argv));
	}
	close(in[0]);
	close(err[1]);
	/* A child refusing its arguments exits without reading: EPIPE then. */
	ssize_t w = write(in[1], input, strlen(input));
	assert_true(w == (ssize_t)strlen(input) || (w < 0 && errno == EPIPE));
	close(in[1]);
	read_all(err[0], child_err, sizeof(child_err));
	close(err[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static struct authfile *
load(const char *path)
{
	char err[512];
	struct authfile *f = authfile_load(path, err, sizeof(err));
	if (f == NULL)
		print_error("%s\n", err);
	assert_non_null(f);
	return f;
}

static void
test_create(void **state)
{
	struct stat st;
	(void)state;

	char path[256];
	snprintf(path, sizeof(path), "%s", authtest_path("users"));
	char *argv[] = { "passwd", path, "alice", NULL };
	assert_int_equal(run_passwd(argv, "correct horse\n"), 0);
	assert_non_null(strstr(child_err, "added user 'alice'"));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	char *text = authtest_read(path);
	assert_int_equal(strncmp(text, "alice:$y$", 9), 0);
	assert_non_null(strchr(text, '\n'));
	assert_int_equal(strchr(text, '\n')[1], '\0'); /* one line */
	free(text);

	struct authfile *f = load(path);
	assert_true(authfile_check(f, "alice", "correct horse", NULL, NULL));
	assert_false(authfile_check(f, "alice", "correct horse\n", NULL, NULL));
	assert_false(authfile_check(f, "alice", "correct", NULL, NULL));
	authfile_free(f);

	/* No temp files left behind. */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", authtest_path(""));
	assert_int_equal(system(cmd), 0);
}

static void
test_replace_keeps_lines(void **state)
{
	char text[2048], bob_line[512];
	(void)state;

	char path[256];
	snprintf(path, sizeof(path), "%s", authtest_path("users"));
	snprintf(bob_line, sizeof(bob_line), "bob:%s\n", authtest_hash("$2b$", "bob-pw"));
	int n = snprintf(text, sizeof(text), "# header comment\n\n%s", bob_line);
	n += snprintf(text + n, sizeof(text) - (size_t)n, "alice:%s:admins,ops\n",
		      authtest_hash("$6$", "old-pw"));
	snprintf(text + n, sizeof(text) - (size_t)n, "# trailing comment");
	authtest_write(path, text);
	assert_int_equal(chmod(path, 0640), 0);

	char *argv[] = { "passwd", path, "alice", NULL };
	assert_int_equal(run_passwd(argv, "new-pw\n"), 0);
	assert_non_null(strstr(child_err, "updated user 'alice'"));

	char *out = authtest_read(path);
	assert_int_equal(strncmp(out, "# header comment\n\n", 18), 0);
	assert_int_equal(strncmp(out + 18, bob_line, strlen(bob_line)), 0);
	const char *alice = out + 18 + strlen(bob_line);
	assert_int_equal(strncmp(alice, "alice:$y$", 9), 0);
	const char *eol = strchr(alice, '\n');
	assert_non_null(eol);
	assert_int_equal(strncmp(eol - 11, ":admins,ops", 11), 0);
	assert_string_equal(eol + 1, "# trailing comment\n");
	free(out);

	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);

	struct authfile *f = load(path);
	const char *const *g;
	size_t ng;
	assert_true(authfile_check(f, "alice", "new-pw", &g, &ng));
	assert_int_equal(ng, 2);
	assert_string_equal(g[0], "admins");
	assert_string_equal(g[1], "ops");
	assert_false(authfile_check(f, "alice", "old-pw", NULL, NULL));
	assert_true(authfile_check(f, "bob", "bob-pw", NULL, NULL));
	authfile_free(f);

	/* Adding a second user appends and keeps alice. */
	char *argv2[] = { "passwd", path, "carol", NULL };
	assert_int_equal(run_passwd(argv2, "carol-pw"), 0); /* no newline at EOF */
	f = load(path);
	assert_true(authfile_check(f, "carol", "carol-pw", NULL, NULL));
	assert_true(authfile_check(f, "alice", "new-pw", NULL, NULL));
	authfile_free(f);
}

static void
test_group_flag(void **state)
{
	(void)state;
	char path[256];
	snprintf(path, sizeof(path), "%s", authtest_path("users"));
	char *argv[] = { "passwd", "--group", "red,blue", path, "dave", NULL };
	assert_int_equal(run_passwd(argv, "pw1\n"), 0);
	struct authfile *f = load(path);
	const char *const *g;
	size_t ng;
	assert_true(authfile_check(f, "dave", "pw1", &g, &ng));
	assert_int_equal(ng, 2);
	assert_string_equal(g[0], "red");
	assert_string_equal(g[1], "blue");
	authfile_free(f);

	/* --group= replaces them; an empty list clears them. */
	char *argv2[] = { "passwd", "--group=", path, "dave", NULL };
	assert_int_equal(run_passwd(argv2, "pw2\n"), 0);
	f = load(path);
	assert_true(authfile_check(f, "dave", "pw2", &g, &ng));
	assert_int_equal(ng, 0);
	authfile_free(f);

	char *argv3[] = { "passwd", "--group", "a,,b", path, "dave", NULL };
	assert_int_equal(run_passwd(argv3, "pw3\n"), 1);
	assert_non_null(strstr(child_err, "empty group name"));
}

static void
test_usage_and_refusals(void **state)
{
	(void)state;
	char path[256];
	snprintf(path, sizeof(path), "%s", authtest_path("users"));

	char *u1[] = { "passwd", NULL };
	char *u2[] = { "passwd", path, NULL };
	char *u3[] = { "passwd", "--bogus", path, "x", NULL };
	char *u4[] = { "passwd", path, "x", "extra", NULL };
	char *u5[] = { "passwd", "--group", NULL };
	char **usage[] = { u1, u2, u3, u4, u5 };
	for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
		assert_int_equal(run_passwd(usage[i], "pw\n"), 2);
		assert_non_null(strstr(child_err, "usage: stpd passwd"));
	}

	char *colon[] = { "passwd", path, "a:b", NULL };
	assert_int_equal(run_passwd(colon, "pw\n"), 1);
	assert_non_null(strstr(child_err, "user name contains ':'"));
	char *ctl[] = { "passwd", path, "a\tb", NULL };
	assert_int_equal(run_passwd(ctl, "pw\n"), 1);
	char *empty_user[] = { "passwd", path, "", NULL };
	assert_int_equal(run_passwd(empty_user, "pw\n"), 1);

	char *ok[] = { "passwd", path, "erin", NULL };
	assert_int_equal(run_passwd(ok, "\n"), 1);
	assert_non_null(strstr(child_err, "empty password"));
	assert_int_equal(run_passwd(ok, ""), 1);
	char longpw[300];
	memset(longpw, 'x', 256);
	snprintf(longpw + 256, sizeof(longpw) - 256, "\n");
	assert_int_equal(run_passwd(ok, longpw), 1);
	assert_non_null(strstr(child_err, "longer than 255"));
	/* None of the refusals wrote anything. */
	assert_int_equal(access(path, F_OK), -1);

	longpw[255] = '\n';
	longpw[256] = '\0';
	assert_int_equal(run_passwd(ok, longpw), 0); /* exactly 255 is fine */
	longpw[255] = '\0';
	struct authfile *f = load(path);
	assert_true(authfile_check(f, "erin", longpw, NULL, NULL));
	authfile_free(f);
}

/* Reads the pty master until `want` appears (or a 10 s timeout). */
static bool
pty_expect(int fd, const char *want)
{
	char buf[1024];
	size_t n = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	while (n + 1 < sizeof(buf) && poll(&p, 1, 10000) == 1) {
		ssize_t r = read(fd, buf + n, sizeof(buf) - 1 - n);
		if (r <= 0)
			return false;
		n += (size_t)r;
		buf[n] = '\0';
		if (strstr(buf, want) != NULL)
			return true;
	}
	return false;
}

/* On a terminal: two prompts; the answers must match. */
static int
run_tty(char *path, const char *pw1, const char *pw2, char *out, size_t outcap)
{
	int master;
	fflush(NULL);
	pid_t pid = forkpty(&master, NULL, NULL, NULL);
	assert_true(pid >= 0);
	if (pid == 0) {
		char *argv[] = { "passwd", path, "tty-user", NULL };
		_exit(authfile_passwd_main(3, argv));
	}
	assert_true(pty_expect(master, "Password: "));
	assert_int_equal(write(master, pw1, strlen(pw1)), (ssize_t)strlen(pw1));
	assert_true(pty_expect(master, "Retype password: "));
	assert_int_equal(write(master, pw2, strlen(pw2)), (ssize_t)strlen(pw2));
	/* The rest of the child's output; EIO once it has exited. */
	size_t n = 0;
	ssize_t r;
	while (n + 1 < outcap && (r = read(master, out + n, outcap - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	close(master);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_tty(void **state)
{
	char out[2048];
	(void)state;
	char path[256];
	snprintf(path, sizeof(path), "%s", authtest_path("users"));

	assert_int_equal(run_tty(path, "tty-pw-1\n", "tty-pw-2\n", out, sizeof(out)), 1);
	assert_non_null(strstr(out, "passwords do not match"));
	assert_int_equal(access(path, F_OK), -1);

	assert_int_equal(run_tty(path, "tty-pw\n", "tty-pw\n", out, sizeof(out)), 0);
	assert_null(strstr(out, "tty-pw")); /* echo was off */
	struct authfile *f = load(path);
	assert_true(authfile_check(f, "tty-user", "tty-pw", NULL, NULL));
	authfile_free(f);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace_keeps_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_flag, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tty, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
