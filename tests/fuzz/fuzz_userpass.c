/*
 * fuzz_userpass.c - RFC 1929 request and status parsers.
 */
#include <string.h>

#include "fuzz_check.h"

static enum socks_res userpass(void *out, const uint8_t *p, size_t n, size_t *used,
			       struct socks_err *err)
{
	return socks_userpass_parse(out, p, n, used, err);
}

static enum socks_res status(void *out, const uint8_t *p, size_t n, size_t *used,
			     struct socks_err *err)
{
	return socks_userpass_status_parse(out, p, n, used, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks_userpass up;
	uint8_t st, buf[SOCKS_USERPASS_MAX];
	size_t used;

	if (fuzz_check_stream(userpass, &up, sizeof(up), data, size, SOCKS_USERPASS_MAX, &used) ==
	    SOCKS_DONE) {
		/* No NUL gets through, so the C strings hold every byte. */
		FUZZ_CHECK(strlen(up.user) == up.ulen && strlen(up.pass) == up.plen);
		FUZZ_CHECK(socks_userpass_write(buf, sizeof(buf), up.user, up.pass) == used);
		FUZZ_CHECK(memcmp(buf, data, used) == 0);
	}
	if (fuzz_check_stream(status, &st, sizeof(st), data, size, 2, &used) == SOCKS_DONE) {
		FUZZ_CHECK(socks_userpass_status_write(buf, sizeof(buf), st) == used);
		FUZZ_CHECK(buf[1] == data[1]); /* VER may be X'05' on input */
	}
	return 0;
}
