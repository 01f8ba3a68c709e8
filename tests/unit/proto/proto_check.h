/*
 * proto_check.h - the checks every codec parser goes through, after
 * picohttpparser's tests: every cut point, one byte at a time, trailing
 * bytes, every byte corrupted. Inputs are copied into heap blocks of
 * exactly the given length, so an ASan build catches any read past n.
 */
#ifndef STP_TESTS_PROTO_CHECK_H
#define STP_TESTS_PROTO_CHECK_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "proto/socks.h"
#include "wire_cases.h"

/* A parser with its output struct bound (the test file keeps it static). */
typedef enum socks_res (*pc_parse_fn)(const uint8_t *p, size_t n, size_t *used,
				      struct socks_err *err);
/* A writer with its arguments bound. */
typedef size_t (*pc_write_fn)(uint8_t *dst, size_t cap, const void *arg);

/* What the failing assertion was looking at, printed with it. */
extern const char *pc_case;
extern size_t pc_at;

#define pc_assert(c)                                                                         \
	do {                                                                                 \
		if (!(c))                                                                    \
			fail_msg("%s:%d: %s (case '%s', at %zu)", __FILE__, __LINE__, #c,    \
				 pc_case ? pc_case : "-", pc_at);                            \
	} while (0)

/* Heap copy of exactly n bytes (n may be 0). Free it with free(). */
uint8_t *pc_dup(const uint8_t *p, size_t n);

/* Runs fn on an exact-size copy and checks the result is one of the three,
 * that DONE has 0 < used <= n and BAD has a reason. */
enum socks_res pc_run(pc_parse_fn fn, const uint8_t *p, size_t n, size_t *used,
		      struct socks_err *err);

/* fn must say BAD for p[0..n) with this rep (rep < 0: any rep). */
void pc_expect_bad(pc_parse_fn fn, const uint8_t *p, size_t n, int rep);
#define pc_expect_bad_str(fn, s, rep) pc_expect_bad(fn, (const uint8_t *)(s), sizeof(s) - 1, rep)

void pc_check_done(pc_parse_fn fn, const uint8_t *p, size_t n);
void pc_check_cuts(pc_parse_fn fn, const uint8_t *p, size_t n);
void pc_check_bytewise(pc_parse_fn fn, const uint8_t *p, size_t n);
void pc_check_trailing(pc_parse_fn fn, const uint8_t *p, size_t n);
void pc_check_corrupt(pc_parse_fn fn, const uint8_t *p, size_t n);
/* All of the above. */
void pc_check_stream(pc_parse_fn fn, const uint8_t *p, size_t n);

/* Runs pc_check_stream on every wire case of kind; returns how many. */
size_t pc_check_kind(pc_parse_fn fn, enum wire_kind kind);

/* The writer produces exactly expect[0..n), returns 0 and writes nothing
 * for every cap < n, and never writes past the length it returns. */
void pc_check_writer(pc_write_fn w, const void *arg, const uint8_t *expect, size_t n);

#endif
