/*
 * fuzz_greeting.c - method greeting and method choice parsers.
 */
#include <string.h>

#include "fuzz_check.h"

static enum socks_res greeting(void *out, const uint8_t *p, size_t n, size_t *used,
			       struct socks_err *err)
{
	return socks5_greeting_parse(out, p, n, used, err);
}

static enum socks_res choice(void *out, const uint8_t *p, size_t n, size_t *used,
			     struct socks_err *err)
{
	return socks5_choice_parse(out, p, n, used, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks5_greeting g;
	uint8_t m, buf[SOCKS5_GREETING_MAX];
	size_t used;

	if (fuzz_check_stream(greeting, &g, sizeof(g), data, size, SOCKS5_GREETING_MAX, &used) ==
	    SOCKS_DONE) {
		/* The writer reproduces the input exactly. */
		FUZZ_CHECK(socks5_greeting_write(buf, sizeof(buf), g.methods, g.nmethods) == used);
		FUZZ_CHECK(memcmp(buf, data, used) == 0);
		for (size_t i = 0; i < g.nmethods; i++)
			FUZZ_CHECK(socks5_greeting_has(&g, g.methods[i]));
	}
	if (fuzz_check_stream(choice, &m, sizeof(m), data, size, 2, &used) == SOCKS_DONE) {
		FUZZ_CHECK(socks5_choice_write(buf, sizeof(buf), m) == used);
		FUZZ_CHECK(memcmp(buf, data, used) == 0);
	}
	return 0;
}
