/*
 * test_listendiag.c - listendiag_foreign on real listening sockets: a second
 * SO_REUSEPORT listener on our address is found (the case a same-user second
 * stpd creates), ours are not; wildcards and dual-stack IPv6 cover IPv4,
 * IPV6_V6ONLY ones and other ports do not.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/listendiag.h"

/* A listening socket on addr:port (port 0: any); *port gets its port. */
static int listen_on(int family, const char *addr, unsigned *port, int v6only)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)*port);
		inet_pton(AF_INET, addr, &a->sin_addr);
		len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)*port);
		inet_pton(AF_INET6, addr, &a->sin6_addr);
		len = sizeof(*a);
	}
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
	assert_int_equal(listen(fd, 8), 0);
	len = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &len);
	*port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

static ino_t inode(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

static struct sockaddr_in v4(const char *addr, unsigned port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, addr, &a.sin_addr);
	return a;
}

/* listendiag_foreign for ours[] on sa; fails the test when it cannot tell. */
static int foreign(const void *sa, const ino_t *ours, size_t n, char *who)
{
	char err[256] = "";
	int r = listendiag_foreign(sa, ours, n, who, 128, err, sizeof(err));
	if (r < 0)
		fail_msg("%s", err);
	return r;
}

static void test_second_reuseport_listener_found(void **state)
{
	unsigned port = 0;
	char who[128], want[64];
	(void)state;
	int a = listen_on(AF_INET, "127.0.0.1", &port, 0);
	struct sockaddr_in sa = v4("127.0.0.1", port);
	ino_t ours[2] = { inode(a), 0 };
	assert_int_equal(foreign(&sa, ours, 1, who), 0);

	int b = listen_on(AF_INET, "127.0.0.1", &port, 0); /* joins a's group */
	assert_int_equal(foreign(&sa, ours, 1, who), 1);
	snprintf(want, sizeof(want), "127.0.0.1:%u (socket inode %lu)", port,
		 (unsigned long)inode(b));
	assert_string_equal(who, want);
	ours[1] = inode(b); /* both ours: nobody else */
	assert_int_equal(foreign(&sa, ours, 2, who), 0);
	close(a);
	close(b);
}

static void test_wildcard_covers_specific(void **state)
{
	unsigned port = 0;
	char who[128];
	(void)state;
	int w = listen_on(AF_INET, "0.0.0.0", &port, 0);
	int a = listen_on(AF_INET, "127.0.0.1", &port, 0);
	struct sockaddr_in sa = v4("127.0.0.1", port);
	ino_t ours[1] = { inode(a) };
	assert_int_equal(foreign(&sa, ours, 1, who), 1);
	/* and the other way round: our wildcard, their 127.0.0.1 */
	struct sockaddr_in any = v4("0.0.0.0", port);
	ours[0] = inode(w);
	assert_int_equal(foreign(&any, ours, 1, who), 1);
	close(w);
	close(a);
}

static void test_ipv6_dual_stack_and_v6only(void **state)
{
	unsigned port = 0;
	char who[128];
	(void)state;
	int a = listen_on(AF_INET, "127.0.0.1", &port, 0);
	struct sockaddr_in sa = v4("127.0.0.1", port);
	ino_t ours[1] = { inode(a) };
	int six = listen_on(AF_INET6, "::1", &port, 1);
	assert_int_equal(foreign(&sa, ours, 1, who), 0); /* [::1] takes no IPv4 */
	int only = listen_on(AF_INET6, "::", &port, 1);
	assert_int_equal(foreign(&sa, ours, 1, who), 0); /* V6ONLY [::] neither */
	close(only);
	int dual = listen_on(AF_INET6, "::", &port, 0);
	assert_int_equal(foreign(&sa, ours, 1, who), 1); /* dual-stack [::] does */
	close(dual);

	/* for our IPv6 address, the [::1] socket is someone else's */
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
				    .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	assert_int_equal(foreign(&sa6, ours, 1, who), 1);
	close(six);
	assert_int_equal(foreign(&sa6, ours, 1, who), 0);
	close(a);
}

static void test_other_port_ignored(void **state)
{
	unsigned port = 0;
	char who[128];
	(void)state;
	int a = listen_on(AF_INET, "127.0.0.1", &port, 0);
	struct sockaddr_in sa = v4("127.0.0.1", port == 65535 ? port - 1 : port + 1);
	assert_int_equal(foreign(&sa, NULL, 0, who), 0);
	close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_second_reuseport_listener_found),
		cmocka_unit_test(test_wildcard_covers_specific),
		cmocka_unit_test(test_ipv6_dual_stack_and_v6only),
		cmocka_unit_test(test_other_port_ignored),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
