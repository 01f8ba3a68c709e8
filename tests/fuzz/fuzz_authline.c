/*
 * fuzz_authline.c - lines of the RFC 1929 password file (src/auth/
 * authline.c), which stpd reads at start and on every reload. Input: the
 * file; each '\n'-separated line is parsed the way authfile.c does.
 *
 * Checks: a blank line is blanks or a comment; a refused line says why; a
 * taken line has a valid user, a hash crypt(3) knows and at most
 * AUTH_GROUPS_MAX valid groups, and "user:hash[:g1,g2...]" put back
 * together is the line itself.
 */
#include <stdlib.h>
#include <string.h>

#include "auth/authint.h"
#include "auth/authline.h"
#include "fuzz_check.h"

/* The fields joined again: equal to the input line when it was taken
 * (a line "user:hash:" with an empty group list keeps its ':'). */
static void authline_check_entry(const struct authline *l, const char *orig, size_t len)
{
	size_t o = 0;
	char *re = malloc(len + 2);

	FUZZ_CHECK(re != NULL);
	FUZZ_CHECK(authfile_user_invalid(l->user) == NULL);
	FUZZ_CHECK(authcrypt_known(l->hash));
	FUZZ_CHECK(l->n_groups <= AUTH_GROUPS_MAX);
	size_t ul = strlen(l->user), hl = strlen(l->hash);
	FUZZ_CHECK(ul + 1 + hl <= len);
	memcpy(re + o, l->user, ul);
	o += ul;
	re[o++] = ':';
	memcpy(re + o, l->hash, hl);
	o += hl;
	for (size_t i = 0; i < l->n_groups; i++) {
		size_t gl = strlen(l->groups[i]);
		FUZZ_CHECK(authfile_group_invalid(l->groups[i], gl) == NULL);
		FUZZ_CHECK(o + 1 + gl <= len);
		re[o++] = i == 0 ? ':' : ',';
		memcpy(re + o, l->groups[i], gl);
		o += gl;
	}
	if (l->n_groups == 0 && o + 1 == len && orig[o] == ':')
		re[o++] = ':';
	FUZZ_CHECK(o == len && memcmp(re, orig, len) == 0);
	free(re);
}

static void authline_one(const uint8_t *p, size_t len)
{
	char *line = malloc(len + 1), *orig = malloc(len + 1);
	struct authline l;
	const char *why = "unset";

	FUZZ_CHECK(line != NULL && orig != NULL);
	memcpy(line, p, len);
	line[len] = '\0';
	memcpy(orig, line, len + 1);
	switch (authline_parse(&l, line, len, &why)) {
	case AUTHLINE_BLANK: {
		size_t b = strspn(orig, " \t");
		FUZZ_CHECK(why == NULL && (orig[b] == '\0' || orig[b] == '#'));
		FUZZ_CHECK(strlen(orig) == len);
		break;
	}
	case AUTHLINE_ENTRY:
		FUZZ_CHECK(why == NULL);
		authline_check_entry(&l, orig, len);
		break;
	case AUTHLINE_BAD:
		FUZZ_CHECK(why != NULL && why[0] != '\0');
		break;
	default:
		FUZZ_CHECK(!"unknown result");
	}
	free(orig);
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	while (size > 0) {
		const uint8_t *nl = memchr(data, '\n', size);
		size_t len = nl ? (size_t)(nl - data) : size;
		authline_one(data, len);
		if (nl == NULL)
			break;
		data += len + 1;
		size -= len + 1;
	}
	return 0;
}
