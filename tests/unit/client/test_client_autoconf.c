/*
 * test_client_autoconf.c - libstp's side of auto-configuration
 * (src/client/autoconf.c, netrc.c): reading the document (unknown keys and
 * values skipped, bad documents refused), the routes, applying it to a
 * proxy, netrc, the cache file's name and the disk cache.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/client.h"
#include "stp/stp.h"

static const char DOC[] = "stp-autoconfig 1\nprofile office\nrefresh 300\n"
			  "proxy proxy.example:1081\nproxy other.example:1080\nmethod userpass\n"
			  "credentials netrc\ndns remote\ndefault proxy\n"
			  "via secure.intranet.example\nvia 10.9.0.0/16\n"
			  "route lab-proxy.example:1090 .lab.intranet.example\n"
			  "route [::1]:1091 10.1.0.0/16\n"
			  "direct .intranet.example\ndirect 10.0.0.0/8\ndirect fe80::/10\n"
			  "direct-port 8443\ndirect-port 9000-9100\n"
			  "x-later-key anything at all\nmethod gssapi-v9\n";

static struct stp_autoconf *parse(const char *text)
{
	enum stp_err err;
	struct stp_autoconf *ac = stp_autoconf_parse(text, strlen(text), &err);
	if (!ac)
		fail_msg("%s", stp_strerror(err));
	return ac;
}

static int setup(void **state)
{
	(void)state;
	unsetenv("NO_PROXY");
	unsetenv("no_proxy");
	return 0;
}

static void test_routes(void **state)
{
	(void)state;
	struct stp_autoconf *ac = parse(DOC);
	assert_string_equal(stp_autoconf_profile(ac), "office");
	assert_int_equal(stp_autoconf_refresh(ac), 300);
	assert_true(stp_autoconf_remote_dns(ac));
	assert_true(stp_autoconf_direct(ac, "www.intranet.example", 80));
	assert_true(stp_autoconf_direct(ac, "intranet.example", 80));
	assert_false(stp_autoconf_direct(ac, "secure.intranet.example", 80)); /* via first */
	assert_false(stp_autoconf_direct(ac, "secure.intranet.example", 8443));
	assert_false(stp_autoconf_direct(ac, "example.com", 80));
	assert_true(stp_autoconf_direct(ac, "example.com", 8443));
	assert_true(stp_autoconf_direct(ac, "example.com", 9050));
	assert_false(stp_autoconf_direct(ac, "example.com", 9101));
	assert_true(stp_autoconf_direct(ac, "10.2.2.3", 80));
	assert_false(stp_autoconf_direct(ac, "10.9.2.3", 80));
	/* Routes: through their own proxy, never direct. */
	struct stp_proxy p;
	enum stp_err err;
	assert_int_equal(stp_proxy_parse(&p, "socks5h://u:pw@127.0.0.1:1080", &err), 0);
	assert_false(stp_autoconf_direct(ac, "www.lab.intranet.example", 80));
	assert_false(stp_autoconf_direct(ac, "10.1.2.3", 80));
	assert_true(stp_autoconf_route(ac, "www.lab.intranet.example", 80, &p));
	assert_string_equal(p.host, "lab-proxy.example");
	assert_int_equal(p.port, 1090);
	assert_string_equal(p.user, "u");
	assert_true(stp_autoconf_route(ac, "10.1.2.3", 80, &p));
	assert_string_equal(p.host, "::1");
	assert_int_equal(p.port, 1091);
	assert_false(stp_autoconf_route(ac, "www.intranet.example", 80, &p));
	assert_string_equal(p.host, "::1");
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(80) };
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	assert_false(stp_autoconf_direct_addr(ac, (struct sockaddr *)&sin));
	inet_pton(AF_INET, "10.2.2.3", &sin.sin_addr);
	assert_true(stp_autoconf_direct_addr(ac, (struct sockaddr *)&sin));
	inet_pton(AF_INET, "10.9.2.3", &sin.sin_addr);
	assert_false(stp_autoconf_direct_addr(ac, (struct sockaddr *)&sin));
	sin.sin_port = htons(8443);
	assert_false(stp_autoconf_direct_addr(ac, (struct sockaddr *)&sin)); /* via wins */
	inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr);
	assert_true(stp_autoconf_direct_addr(ac, (struct sockaddr *)&sin));
	struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons(80) };
	inet_pton(AF_INET6, "fe80::1", &s6.sin6_addr);
	assert_true(stp_autoconf_direct_addr(ac, (struct sockaddr *)&s6));
	size_t len;
	assert_memory_equal(stp_autoconf_text(ac, &len), DOC, sizeof(DOC) - 1);
	assert_int_equal(len, sizeof(DOC) - 1);
	stp_autoconf_free(ac);
	/* default direct, and NO_PROXY (the local override) before `via`. */
	setenv("NO_PROXY", "secure.intranet.example", 1);
	ac = parse(
		"stp-autoconfig 1\ndefault direct\nvia secure.intranet.example\nvia 10.0.0.0/8\n");
	assert_true(stp_autoconf_direct(ac, "example.com", 80));
	assert_true(stp_autoconf_direct(ac, "secure.intranet.example", 80));
	assert_false(stp_autoconf_direct(ac, "10.0.0.1", 80));
	unsetenv("NO_PROXY");
	stp_autoconf_free(ac);
}

static void test_bad_docs(void **state)
{
	static const char *const bad[] = {
		"",
		"stp-autoconfig 2\n",
		"proxy a:1\n",
		"stp-autoconfig 1",
		"stp-autoconfig 1\n\n",
		"stp-autoconfig 1\nproxy a:1\r\n",
	};
	enum stp_err err;
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_null(stp_autoconf_parse(bad[i], strlen(bad[i]), &err));
		assert_int_equal(err, STP_ERR_AUTOCONF);
	}
	assert_null(stp_autoconf_parse(NULL, 0, &err));
	assert_int_equal(stp_err_errno(STP_ERR_AUTOCONF) != 0, 1);
}

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_netrc_and_apply(void **state)
{
	char user[64], pass[64], path[128];
	struct stp_proxy p;
	enum stp_err err;
	(void)state;
	snprintf(path, sizeof(path), "%s/netrc", tmpdir);
	write_file("netrc", "machine other.example login x password y\n"
			    "macdef init\ncd /\n\n"
			    "machine proxy.example\n  login alice\n  password s3cret\n"
			    "default login anon password guest\n");
	setenv("NETRC", path, 1);
	assert_int_equal(client_netrc_lookup("PROXY.example", user, sizeof(user), pass,
					     sizeof(pass)),
			 0);
	assert_string_equal(user, "alice");
	assert_string_equal(pass, "s3cret");
	assert_int_equal(client_netrc_lookup("none.example", user, sizeof(user), pass,
					     sizeof(pass)),
			 0);
	assert_string_equal(user, "anon");
	/* Applied: the served proxy, socks5h, netrc credentials. */
	assert_int_equal(stp_proxy_parse(&p, "socks5://127.0.0.1:1080", &err), 0);
	struct stp_autoconf *ac = parse(DOC);
	assert_int_equal(stp_autoconf_apply(ac, &p, &err), 0);
	assert_string_equal(p.host, "proxy.example");
	assert_int_equal(p.port, 1081);
	assert_int_equal(p.kind, STP_SOCKS5H);
	assert_true(p.has_auth);
	assert_string_equal(p.user, "alice");
	/* The URL's own credentials win. */
	assert_int_equal(stp_proxy_parse(&p, "socks5h://bob:pw@127.0.0.1:1080", &err), 0);
	assert_int_equal(stp_autoconf_apply(ac, &p, &err), 0);
	assert_string_equal(p.user, "bob");
	stp_autoconf_free(ac);
	/* dns local: socks5; tls: X'86'. */
	ac = parse("stp-autoconfig 1\ndns local\nmethod tls\n");
	assert_int_equal(stp_proxy_parse(&p, "socks5h://127.0.0.1:1080", &err), 0);
	assert_int_equal(stp_autoconf_apply(ac, &p, &err), 0);
	assert_int_equal(p.kind, STP_SOCKS5);
	assert_int_equal(p.tls.mode, STP_TLS_X86);
	assert_string_equal(p.host, "127.0.0.1");
	stp_autoconf_free(ac);
	unsetenv("NETRC");
}

static void test_cache(void **state)
{
	char path[256], want[256];
	struct stp_proxy p;
	enum stp_err err;
	(void)state;
	setenv("XDG_CACHE_HOME", tmpdir, 1);
	setenv("NETRC", "/nonexistent", 1);
	assert_int_equal(stp_proxy_parse(&p, "socks5h://u%2F:pw@[::1]:1080", &err), 0);
	assert_int_equal(stp_autoconf_cache_path(&p, path, sizeof(path)), 0);
	snprintf(want, sizeof(want), "%s/stp/autoconfig-u_@__1_1080.txt", tmpdir);
	assert_string_equal(path, want);
	/* A fresh file is the answer: no proxy is asked (none listens). */
	assert_int_equal(stp_proxy_parse(&p, "socks5h://127.0.0.1:9", &err), 0);
	assert_int_equal(stp_autoconf_cache_path(&p, path, sizeof(path)), 0);
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/stp", tmpdir);
	mkdir(dir, 0700);
	write_file("stp/autoconfig-127.0.0.1_9.txt", "stp-autoconfig 1\nprofile cached\n");
	struct stp_autoconf *ac = stp_autoconf_get(&p, 2000, &err);
	assert_non_null(ac);
	assert_string_equal(stp_autoconf_profile(ac), "cached");
	stp_autoconf_free(ac);
	/* Stale (and not in this process's cache: another port), the fetch
	 * fails: the stale copy, with the failure in err. */
	assert_int_equal(stp_proxy_parse(&p, "socks5h://127.0.0.1:7", &err), 0);
	write_file("stp/autoconfig-127.0.0.1_7.txt", "stp-autoconfig 1\nprofile old\nrefresh 10\n");
	snprintf(path, sizeof(path), "%s/stp/autoconfig-127.0.0.1_7.txt", tmpdir);
	struct timespec old[2] = { { time(NULL) - 60, 0 }, { time(NULL) - 60, 0 } };
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	ac = stp_autoconf_get(&p, 2000, &err);
	assert_non_null(ac);
	assert_string_equal(stp_autoconf_profile(ac), "old");
	assert_int_equal(err, STP_ERR_PROXY_UNREACHABLE);
	stp_autoconf_free(ac);
	unsetenv("XDG_CACHE_HOME");
	unsetenv("NETRC");
}

int main(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/stp-ac-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_bad_docs),
		cmocka_unit_test(test_netrc_and_apply),
		cmocka_unit_test(test_cache),
	};
	int rc = cmocka_run_group_tests(tests, setup, NULL);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	return rc;
}
