/*
 * authtest.h - helpers shared by the src/auth unit tests: a scratch
 * directory, small file I/O, and hashes made straight with libcrypt (not
 * with the code under test).
 */
#ifndef STP_TEST_AUTHTEST_H
#define STP_TEST_AUTHTEST_H

#include <stddef.h>

/* A fresh mkdtemp directory under /tmp; removed by authtest_rmdir(). */
const char *authtest_mkdir(void);
void authtest_rmdir(void);
/* dir/name into a static buffer (one at a time per caller is enough). */
const char *authtest_path(const char *name);
void authtest_write(const char *path, const char *text);
/* Whole file as a malloc'd string, NULL if missing. */
char *authtest_read(const char *path);
/* crypt(pass) with a fresh salt for prefix ("$y$", "$2b$", "$6$", ...),
 * into a static buffer. Fails the test on error. */
const char *authtest_hash(const char *prefix, const char *pass);

#endif
