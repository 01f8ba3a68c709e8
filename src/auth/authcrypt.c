/*
 * authcrypt.c - crypt(3) wrappers: which hashes the password file accepts,
 * hashing a new password, and verifying one in constant time.
 */
#include "auth/authint.h"

#include <crypt.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Only modern, deliberately slow hashes: DES, MD5 and NT are refused. */
static const char *const authcrypt_prefixes[AUTHCRYPT_KINDS] = {
	"$y$",  /* yescrypt */
	"$2b$", /* bcrypt */
	"$2y$", /* bcrypt (PHP spelling, same algorithm) */
	"$6$",  /* sha512-crypt */
	"$5$",  /* sha256-crypt */
};

static bool
authcrypt_char_ok(char c)
{
	/* crypt(3) alphabet plus '$' separators and sha-crypt's "rounds=". */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '/' || c == '$' || c == '=';
}

int
authcrypt_kind(const char *hash)
{
	for (size_t i = 0; i < AUTHCRYPT_KINDS; i++)
		if (strncmp(hash, authcrypt_prefixes[i], strlen(authcrypt_prefixes[i])) == 0)
			return (int)i;
	return -1;
}

bool
authcrypt_known(const char *hash)
{
	int kind = authcrypt_kind(hash);
	const char *rest = kind < 0 ? NULL : hash + strlen(authcrypt_prefixes[kind]);

	if (rest == NULL || strlen(hash) >= CRYPT_OUTPUT_SIZE)
		return false;
	for (const char *p = rest; *p != '\0'; p++)
		if (!authcrypt_char_ok(*p))
			return false;
	/* Parameters or salt, then '$', then a non-empty tail. */
	const char *dollar = strrchr(rest, '$');
	if (dollar == NULL || dollar == rest || dollar[1] == '\0')
		return false;
	int cs = crypt_checksalt(hash);
	return cs == CRYPT_SALT_OK || cs == CRYPT_SALT_METHOD_LEGACY;
}

int
authcrypt_memcmp(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n);
}

bool
authcrypt_verify(const char *pass, const char *hash)
{
	/* ~32 KiB: too big for the small stacks of pool threads' callers. */
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	if (cd == NULL)
		return false;
	const char *out = crypt_r(pass, hash, cd);
	bool ok = false;
	/* libxcrypt signals failure with a token starting with '*'. The length
	 * of a good result depends only on the (public) stored setting, so
	 * comparing lengths first leaks nothing about the password. */
	if (out != NULL && out[0] != '*') {
		size_t n = strlen(out);
		ok = n == strlen(hash) && authcrypt_memcmp(out, hash, n) == 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

int
authcrypt_crypt(const char *pass, const char *setting, char *out, size_t outlen,
		const char **why)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	if (cd == NULL) {
		*why = "out of memory";
		return -1;
	}
	int rc = -1;
	const char *h = crypt_r(pass, setting, cd);
	if (h == NULL || h[0] == '*')
		*why = "crypt failed";
	else if (strlen(h) >= outlen)
		*why = "hash too long";
	else {
		memcpy(out, h, strlen(h) + 1);
		rc = 0;
	}
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return rc;
}

int
authcrypt_hash(const char *prefix, const char *pass, char *out, size_t outlen,
	       const char **why)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	/* count 0 = the library's default cost; rbytes NULL = it reads
	 * getentropy(2) itself. */
	if (crypt_gensalt_rn(prefix, 0, NULL, 0, setting, sizeof(setting)) == NULL) {
		*why = "cannot generate a salt";
		return -1;
	}
	return authcrypt_crypt(pass, setting, out, outlen, why);
}
