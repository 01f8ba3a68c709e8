/*
 * fuzz_noproxy.c - NO_PROXY lists (src/client/noproxy.c), as stpify and
 * libstp read them from the environment and the config file.
 * Input: LIST [ '\n' HOST ]; the host defaults to a name under one of the
 * list's entries when absent.
 *
 * Checks: the list always parses (bad entries are skipped, never fatal);
 * the answer for HOST does not depend on which separators (',' ' ' '\t')
 * are used or on the order of the entries; a '*' entry matches everything;
 * names match case-insensitively.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "stp/stp.h"

#define NP_SEP ", \t"

/* s with each entry's separators replaced by `sep`, entries reversed when
 * `reverse`: the same entries, so the same answers. */
static char *np_respell(const char *s, char sep, int reverse)
{
	size_t n = strlen(s), o = 0;
	char *out = malloc(n + 2);
	const char *p = s;

	FUZZ_CHECK(out != NULL);
	if (!reverse) {
		while (*p) {
			p += strspn(p, NP_SEP);
			size_t k = strcspn(p, NP_SEP);
			if (k > 0) {
				memcpy(out + o, p, k);
				o += k;
				out[o++] = sep;
			}
			p += k;
		}
	} else {
		size_t end = n;
		while (end > 0) {
			while (end > 0 && strchr(NP_SEP, s[end - 1]) != NULL)
				end--;
			size_t start = end;
			while (start > 0 && strchr(NP_SEP, s[start - 1]) == NULL)
				start--;
			if (end > start) {
				memcpy(out + o, s + start, end - start);
				o += end - start;
				out[o++] = sep;
			}
			end = start;
		}
	}
	out[o] = '\0';
	return out;
}

/* Whether the list holds the entry "*". */
static int np_has_star(const char *s)
{
	for (const char *p = s; *p;) {
		p += strspn(p, NP_SEP);
		size_t k = strcspn(p, NP_SEP);
		if (k == 1 && *p == '*')
			return 1;
		p += k;
	}
	return 0;
}

static int np_answer(const char *list, const char *host)
{
	struct stp_noproxy *np = stp_noproxy_new(list);
	int m;

	FUZZ_CHECK(np != NULL);
	m = stp_noproxy_match(np, host);
	stp_noproxy_free(np);
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *list = malloc(size + 1), *host, *upper;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t llen = nl ? (size_t)(nl - data) : size;

	FUZZ_CHECK(list != NULL);
	memcpy(list, data, llen);
	list[llen] = '\0';
	if (nl != NULL) {
		size_t hlen = size - llen - 1;
		host = malloc(hlen + 1);
		FUZZ_CHECK(host != NULL);
		memcpy(host, nl + 1, hlen);
		host[hlen] = '\0';
	} else {
		/* a name under the first entry, so that matches get exercised */
		const char *p = list + strspn(list, NP_SEP);
		size_t k = strcspn(p, NP_SEP);
		host = malloc(k + 3);
		FUZZ_CHECK(host != NULL);
		memcpy(host, "w.", 2);
		memcpy(host + 2, p, k);
		host[k + 2] = '\0';
	}

	int m = np_answer(list, host);
	if (np_has_star(list))
		FUZZ_CHECK(m);
	static const char seps[] = { ',', ' ', '\t' };
	for (size_t i = 0; i < sizeof(seps); i++) {
		for (int rev = 0; rev <= 1; rev++) {
			char *again = np_respell(list, seps[i], rev);
			FUZZ_CHECK(np_answer(again, host) == m);
			free(again);
		}
	}
	upper = strdup(host);
	FUZZ_CHECK(upper != NULL);
	for (char *c = upper; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	FUZZ_CHECK(np_answer(list, upper) == m);
	free(upper);
	free(host);
	free(list);
	return 0;
}
