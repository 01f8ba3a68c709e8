/*
 * fuzz_conf.c - libFuzzer target for the stpd.conf parser: any bytes in,
 * either a snapshot (described, then freed) or errors that each start with
 * "fuzz.conf:"; the extensions' sections are registered as in stpd. Seeds:
 * contrib/stpd.conf and the texts in tests/unit/policy/test_conf_*.c.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ext/ext_conf.h"
#include "fuzz_check.h"
#include "policy/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char err[8192], desc[4096];
	static bool registered;
	/* The extensions' sections and keys, as stpd registers them. */
	if (!registered) {
		FUZZ_CHECK(ext_conf_register_all(err, sizeof(err)) == 0);
		registered = true;
	}
	/* An exact-size heap copy: ASan catches any read past size. */
	uint8_t *text = fuzz_dup(data, size);
	struct stp_conf *c = conf_parse_string("fuzz.conf", (const char *)text, size, err,
					       sizeof(err));
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
	if (c) {
		FUZZ_CHECK(err[0] == '\0');
		FUZZ_CHECK(c->n_listeners > 0 && c->n_client_rules > 0 && c->n_request_rules > 0);
		conf_describe(c, desc, sizeof(desc));
		FUZZ_CHECK(conf_ref(c) == c);
		conf_unref(c);
		conf_unref(c);
	} else {
		/* Every line names the file (the buffer may end mid-line). */
		for (const char *l = err; *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : "")
			FUZZ_CHECK(strncmp(l, "fuzz.conf:", strlen(l) < 10 ? strlen(l) : 10) == 0);
		FUZZ_CHECK(err[0] != '\0');
	}
	free(text);
	return 0;
}
