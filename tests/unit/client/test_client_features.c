/*
 * test_client_features.c - libstp's feature discovery (src/client/
 * features.c) against a scripted proxy on loopback TCP: the greeting it
 * sends, a document parsed into lists and entries, "no discovery" (X'FF'),
 * the per-process cache (no second connection) and STP_FEATURES_FRESH,
 * the answer cut at every byte, a malformed document, a wrong method, and
 * stp_features_pick.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "stp/stp.h"

/* ---- the scripted proxy: answers every connection with `reply` ---- */

struct script {
	int lfd;
	uint16_t port;
	const uint8_t *reply;
	size_t rlen;
	atomic_int accepted;
	uint8_t greeting[3];
	pthread_t thread;
};

static void *script_run(void *arg)
{
	struct script *sc = arg;
	for (;;) {
		int fd = accept(sc->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		sc->accepted++;
		size_t got = 0;
		while (got < sizeof(sc->greeting)) {
			ssize_t n = recv(fd, sc->greeting + got, sizeof(sc->greeting) - got, 0);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		if (sc->rlen)
			(void)!send(fd, sc->reply, sc->rlen, MSG_NOSIGNAL);
		close(fd); /* a cut answer ends here */
	}
}

static void script_start(struct script *sc, const uint8_t *reply, size_t rlen)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	memset(sc, 0, sizeof(*sc));
	sc->reply = reply;
	sc->rlen = rlen;
	sc->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(sc->lfd >= 0);
	assert_int_equal(bind(sc->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(sc->lfd, 16), 0);
	assert_int_equal(getsockname(sc->lfd, (struct sockaddr *)&a, &len), 0);
	sc->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&sc->thread, NULL, script_run, sc), 0);
}

static void script_stop(struct script *sc)
{
	shutdown(sc->lfd, SHUT_RDWR);
	close(sc->lfd);
	pthread_join(sc->thread, NULL);
}

static struct stp_proxy proxy_of(const struct script *sc)
{
	struct stp_proxy p;
	enum stp_err err;
	char url[64];
	snprintf(url, sizeof(url), "socks5://127.0.0.1:%u", sc->port);
	assert_int_equal(stp_proxy_parse(&p, url, &err), 0);
	return p;
}

/* 05 87, then a document: versions 4 5, methods 87 00, commands F3 01 03,
 * a uint on CONNECT and a flag on X'86'. */
static const uint8_t answer[] = {
	0x05, 0x87, 0x01, 0x00, 0x00, 0x48, 0x00, 0x00, 0x03, 0x08, 'v', 'e', 'r', 's',  'i',  'o',
	'n',  's',  0x02, 0x04, 0x05, 0x00, 0x00, 0x03, 0x07, 'm',  'e', 't', 'h', 'o',  'd',  's',
	0x02, 0x87, 0x00, 0x00, 0x00, 0x03, 0x08, 'c',  'o',  'm',  'm', 'a', 'n', 'd',  's',  0x03,
	0xF3, 0x01, 0x03, 0x02, 0x01, 0x01, 0x07, 't',  'i',  'm',  'e', 'o', 'u', 't',  0x01, 0x1e,
	0x01, 0x86, 0x04, 0x09, 'u',  'd',  'p',  '-',  'n',  'a',  'k', 'e', 'd', 0x00,
};

static void test_document_and_cache(void **state)
{
	struct script sc;
	struct stp_features f;
	struct stp_feature e;
	enum stp_err err;

	stp_features_flush();
	script_start(&sc, answer, sizeof(answer));
	struct stp_proxy p = proxy_of(&sc);
	assert_int_equal(stp_features_get(&p, &f, 0, 5000, &err), 0);
	assert_memory_equal(sc.greeting, "\x05\x01\x87", 3);
	assert_true(f.supported && !f.truncated && !f.cached);
	assert_int_equal(f.n_versions, 2);
	assert_int_equal(f.n_methods, 2);
	assert_int_equal(f.methods[0], 0x87);
	assert_true(stp_features_has_command(&f, 0x03) && !stp_features_has_command(&f, 0x02));
	assert_true(stp_features_has_method(&f, 0x00) && !stp_features_has_method(&f, 0x02));
	assert_true(stp_features_find(&f, STP_FEAT_COMMAND, 0x01, "timeout", &e));
	assert_int_equal(e.type, STP_FEAT_UINT);
	assert_int_equal(e.uint, 30);
	assert_true(stp_features_find(&f, STP_FEAT_METHOD, 0x86, "udp-naked", &e));
	assert_int_equal(e.type, STP_FEAT_FLAG);
	/* path choice: TRANSPARENT is not offered, UDP ASSOCIATE is */
	assert_int_equal(stp_features_pick(&f, STP_FEAT_COMMAND, (const uint8_t[]){ 0x04, 0x03 },
					   2),
			 0x03);
	assert_int_equal(stp_features_pick(&f, STP_FEAT_METHOD, (const uint8_t[]){ 0x86, 0x02 }, 2),
			 -1);
	/* cached: no second connection; FRESH asks again */
	assert_int_equal(stp_features_get(&p, &f, 0, 5000, &err), 0);
	assert_true(f.cached && f.supported && f.n_commands == 3);
	assert_int_equal(sc.accepted, 1);
	assert_int_equal(stp_features_get(&p, &f, STP_FEATURES_FRESH, 5000, &err), 0);
	assert_false(f.cached);
	assert_int_equal(sc.accepted, 2);
	script_stop(&sc);
}

static void test_no_discovery(void **state)
{
	static const uint8_t ff[] = { 0x05, 0xFF };
	struct script sc;
	struct stp_features f;
	enum stp_err err;

	script_start(&sc, ff, sizeof(ff));
	struct stp_proxy p = proxy_of(&sc);
	assert_int_equal(stp_features_get(&p, &f, 0, 5000, &err), 0);
	assert_false(f.supported);
	assert_int_equal(f.n_methods, 0);
	assert_int_equal(stp_features_pick(&f, STP_FEAT_COMMAND, (const uint8_t[]){ 0x01 }, 1), -1);
	/* "no discovery" is cached too */
	assert_int_equal(stp_features_get(&p, &f, 0, 5000, &err), 0);
	assert_true(f.cached && !f.supported);
	assert_int_equal(sc.accepted, 1);
	script_stop(&sc);
}

/* The answer cut after every byte: an error, never a document. */
static void test_cut_everywhere(void **state)
{
	for (size_t cut = 0; cut < sizeof(answer); cut++) {
		struct script sc;
		struct stp_features f;
		enum stp_err err = STP_OK;
		script_start(&sc, answer, cut);
		struct stp_proxy p = proxy_of(&sc);
		int rc = stp_features_get(&p, &f, STP_FEATURES_FRESH, 5000, &err);
		if (rc == 0)
			fail_msg("cut at %zu: accepted", cut);
		if (err != STP_ERR_PROXY_CLOSED && err != STP_ERR_IO)
			fail_msg("cut at %zu: %s", cut, stp_strerror(err));
		script_stop(&sc);
	}
}

static void test_bad_answers(void **state)
{
	static const uint8_t other_method[] = { 0x05, 0x00 };
	static const uint8_t bad_name[] = { 0x05, 0x87, 0x01, 0x00, 0x00, 0x06,
					    0x00, 0x00, 0x04, 0x01, 'X',  0x00 };
	static const uint8_t too_long[] = { 0x05, 0x87, 0x01, 0x00, 0x10, 0x01 };
	static const uint8_t not_socks[] = { 'H', 'T' };
	const struct {
		const uint8_t *p;
		size_t n;
	} cases[] = { { other_method, sizeof(other_method) },
		      { bad_name, sizeof(bad_name) },
		      { too_long, sizeof(too_long) },
		      { not_socks, sizeof(not_socks) } };
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct script sc;
		struct stp_features f;
		enum stp_err err = STP_OK;
		script_start(&sc, cases[i].p, cases[i].n);
		struct stp_proxy p = proxy_of(&sc);
		assert_int_equal(stp_features_get(&p, &f, STP_FEATURES_FRESH, 5000, &err), -1);
		assert_int_equal(err, STP_ERR_PROTOCOL);
		script_stop(&sc);
	}
}

/* A later FVER is framed by LEN and skipped: discovery, but no lists. */
static void test_later_version(void **state)
{
	static const uint8_t v2[] = { 0x05, 0x87, 0x02, 0x00, 0x00, 0x02, 0xde, 0xad };
	struct stp_features f;
	assert_int_equal(stp_features_parse(&f, v2 + 2, sizeof(v2) - 2), 0);
	assert_true(f.supported);
	assert_int_equal(f.n_methods + f.n_commands + f.n_versions, 0);
	assert_int_equal(stp_features_parse(&f, v2 + 2, sizeof(v2) - 3), -1);
}

static void test_socks4_not_asked(void **state)
{
	struct stp_proxy p;
	struct stp_features f;
	enum stp_err err;
	assert_int_equal(stp_proxy_parse(&p, "socks4a://127.0.0.1:9", &err), 0);
	assert_int_equal(stp_features_get(&p, &f, 0, 1000, &err), 0);
	assert_false(f.supported);
}

int main(void)
{
	/* The process's cache only: a disk copy left by another run for the
	 * same ephemeral port would answer instead of the scripted proxy. */
	setenv("STP_FEATURES_CACHE", "0", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_document_and_cache), cmocka_unit_test(test_no_discovery),
		cmocka_unit_test(test_cut_everywhere),     cmocka_unit_test(test_bad_answers),
		cmocka_unit_test(test_later_version),      cmocka_unit_test(test_socks4_not_asked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
