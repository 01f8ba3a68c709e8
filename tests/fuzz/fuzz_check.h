/*
 * fuzz_check.h - invariants shared by the codec fuzz targets. A violated
 * invariant aborts, which libFuzzer reports as a crash and the replay
 * runner (replay.c) as a failed test.
 */
#ifndef STP_FUZZ_CHECK_H
#define STP_FUZZ_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_fail(const char *file, int line, const char *what);
#define FUZZ_CHECK(c)                                      \
	do {                                               \
		if (!(c))                                  \
			fuzz_fail(__FILE__, __LINE__, #c); \
	} while (0)

/* A parser taking its output as void *, so one checker serves them all. */
typedef enum socks_res (*fuzz_parse_fn)(void *out, const uint8_t *p, size_t n, size_t *used,
					struct socks_err *err);

/* Heap copy of exactly n bytes, so ASan sees any read past n. */
uint8_t *fuzz_dup(const uint8_t *p, size_t n);

/*
 * Runs fn on data[0..size) into out (outsize bytes, zeroed first) and
 * checks the streaming contract over every prefix up to max (the longest
 * message the parser can ever need): MORE, MORE, ... then either DONE at
 * exactly k == used and the same DONE for every longer input, or BAD and
 * BAD from then on. Returns the result for the whole input.
 */
enum socks_res fuzz_check_stream(fuzz_parse_fn fn, void *out, size_t outsize, const uint8_t *data,
				 size_t size, size_t max, size_t *used);

#endif
