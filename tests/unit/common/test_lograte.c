/*
 * test_lograte.c - the per-call-site log rate limiter (src/common/lograte.c):
 * a burst passes, the rest is counted exactly, also when several threads hit
 * one site at once; the count is written as one line, and filtered levels
 * neither pass nor count. Log lines are read back from a pipe on stderr.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"

#define THREADS 4
#define CALLS 5000

static int pipe_rd, saved_stderr;

static int setup(void **state)
{
	int p[2];
	(void)state;
	if (pipe2(p, O_NONBLOCK) < 0)
		return -1;
	fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
	saved_stderr = dup(STDERR_FILENO);
	dup2(p[1], STDERR_FILENO);
	close(p[1]);
	pipe_rd = p[0];
	log_init("test", false, false, LOG_INFO);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	dup2(saved_stderr, STDERR_FILENO);
	close(pipe_rd);
	return 0;
}

/* Lines written since the last call. */
static size_t drain(char *out, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	while (len + 1 < cap && (n = read(pipe_rd, out + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	size_t lines = 0;
	for (size_t i = 0; i < len; i++)
		lines += out[i] == '\n';
	return lines;
}

static struct log_rate shared = LOG_RATE_INIT("shared site");
static unsigned passed_by[THREADS];

static void *hammer(void *arg)
{
	unsigned *passed = arg;
	for (int i = 0; i < CALLS; i++)
		if (log_rate_pass(&shared, LOG_WARNING))
			(*passed)++;
	return NULL;
}

static void test_burst_then_count_across_threads(void **state)
{
	pthread_t t[THREADS];
	unsigned total = 0;
	char buf[4096];
	(void)state;

	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, hammer, &passed_by[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		total += passed_by[i];
	}
	/* well inside one interval: exactly a burst passed, the rest counted */
	assert_int_equal(total, LOG_RATE_BURST);
	assert_int_equal(shared.suppressed, THREADS * CALLS - LOG_RATE_BURST);
	/* nothing written yet: the interval is not over */
	log_rate_flush(false);
	assert_int_equal(drain(buf, sizeof(buf)), 0);

	/* once it is, one line carries the count */
	shared.start -= LOG_RATE_INTERVAL;
	log_rate_flush(false);
	assert_int_equal(drain(buf, sizeof(buf)), 1);
	char want[128];
	snprintf(want, sizeof(want), "warning: suppressed %u more \"shared site\" lines in the last 5 s",
		 THREADS * CALLS - LOG_RATE_BURST);
	assert_non_null(strstr(buf, want));
	assert_int_equal(shared.suppressed, 0);
	log_rate_flush(true);
	assert_int_equal(drain(buf, sizeof(buf)), 0);
}

static void test_flush_everything_at_exit(void **state)
{
	static struct log_rate rl = LOG_RATE_INIT("site three");
	char buf[4096];
	(void)state;

	for (int i = 0; i < LOG_RATE_BURST + 2; i++)
		log_rate_at(&rl, LOG_WARNING, false, "event %d", i);
	assert_int_equal(drain(buf, sizeof(buf)), LOG_RATE_BURST);
	log_rate_flush(false); /* interval still running: held */
	assert_int_equal(drain(buf, sizeof(buf)), 0);
	log_rate_flush(true);
	assert_int_equal(drain(buf, sizeof(buf)), 1);
	assert_non_null(strstr(buf, "suppressed 2 more \"site three\" lines"));
}

static void test_summary_precedes_next_line(void **state)
{
	static struct log_rate rl = LOG_RATE_INIT("site two");
	char buf[4096];
	(void)state;

	for (int i = 0; i < LOG_RATE_BURST + 3; i++)
		log_rate_at(&rl, LOG_WARNING, false, "event %d", i);
	assert_int_equal(drain(buf, sizeof(buf)), LOG_RATE_BURST);
	assert_null(strstr(buf, "event 5"));
	rl.start -= LOG_RATE_INTERVAL; /* the interval ends; the next event reports */
	log_rate_at(&rl, LOG_WARNING, false, "event %d", 99);
	assert_int_equal(drain(buf, sizeof(buf)), 2);
	char *sum = strstr(buf, "suppressed 3 more \"site two\" lines");
	char *ev = strstr(buf, "event 99");
	assert_non_null(sum);
	assert_non_null(ev);
	assert_true(sum < ev);
}

static void test_filtered_level_not_counted(void **state)
{
	static struct log_rate rl = LOG_RATE_INIT("debug site");
	(void)state;
	for (int i = 0; i < 100; i++)
		assert_false(log_rate_pass(&rl, LOG_DEBUG));
	assert_int_equal(rl.suppressed, 0);
	assert_int_equal(rl.shown, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_count_across_threads),
		cmocka_unit_test(test_summary_precedes_next_line),
		cmocka_unit_test(test_filtered_level_not_counted),
		cmocka_unit_test(test_flush_everything_at_exit),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
