/*
 * authtest.c - see authtest.h.
 */
#include "authtest.h"

#include <crypt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static char authtest_dir[64];

const char *
authtest_mkdir(void)
{
	snprintf(authtest_dir, sizeof(authtest_dir), "/tmp/stp-auth-test.XXXXXX");
	assert_non_null(mkdtemp(authtest_dir));
	return authtest_dir;
}

void
authtest_rmdir(void)
{
	char cmd[128];

	if (authtest_dir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", authtest_dir);
	assert_int_equal(system(cmd), 0);
	authtest_dir[0] = '\0';
}

const char *
authtest_path(const char *name)
{
	static char path[256];

	snprintf(path, sizeof(path), "%s/%s", authtest_dir, name);
	return path;
}

void
authtest_write(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

char *
authtest_read(const char *path)
{
	FILE *fp = fopen(path, "r");
	if (fp == NULL)
		return NULL;
	char *buf = calloc(1, 1 << 16);
	assert_non_null(buf);
	size_t n = fread(buf, 1, (1 << 16) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

const char *
authtest_hash(const char *prefix, const char *pass)
{
	static char out[CRYPT_OUTPUT_SIZE];
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof(*cd));

	assert_non_null(cd);
	assert_non_null(crypt_gensalt_rn(prefix, 0, NULL, 0, setting, sizeof(setting)));
	const char *h = crypt_r(pass, setting, cd);
	assert_non_null(h);
	assert_int_not_equal(h[0], '*');
	assert_int_equal(strncmp(h, prefix, strlen(prefix)), 0);
	snprintf(out, sizeof(out), "%s", h);
	free(cd);
	return out;
}
