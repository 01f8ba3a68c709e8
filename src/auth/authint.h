/*
 * authint.h - helpers shared inside src/auth (not part of the stpd API):
 * crypt(3) wrappers and the name rules of the password file.
 */
#ifndef STP_AUTH_AUTHINT_H
#define STP_AUTH_AUTHINT_H

#include <stdbool.h>
#include <stddef.h>

/* RFC 1929 ULEN/PLEN are one byte: names and passwords are 1..255 bytes. */
#define AUTH_NAME_MAX 255
/* Group names must fit struct auth_job's groups[][64] with the NUL. */
#define AUTH_GROUP_NAME_MAX 63

/* Index of hash's prefix among the AUTHCRYPT_KINDS accepted ones, or -1. */
#define AUTHCRYPT_KINDS 5
int authcrypt_kind(const char *hash);
/* True when hash starts with a prefix we accept ($y$, $2b$, $2y$, $6$,
 * $5$) and the rest looks like crypt(3) output. */
bool authcrypt_known(const char *hash);
/* crypt_r(pass, hash) compared to hash in constant time. False also when
 * crypt fails. Allocates its crypt_data on the heap (it is ~32 KiB). */
bool authcrypt_verify(const char *pass, const char *hash);
/* Hashes pass with a fresh salt for prefix (e.g. "$y$"), default cost.
 * 0, or -1 with a static reason in *why. */
int authcrypt_hash(const char *prefix, const char *pass, char *out, size_t outlen,
		   const char **why);
/* crypt_r(pass, setting) into out. 0, or -1 with a static reason. */
int authcrypt_crypt(const char *pass, const char *setting, char *out, size_t outlen,
		    const char **why);
/* Constant-time comparison of two equal-length buffers, 0 when equal. */
int authcrypt_memcmp(const void *a, const void *b, size_t n);

/* NULL when user is a valid file user name (1..255 bytes, no ':', no
 * control characters), else a static reason. */
const char *authfile_user_invalid(const char *user);
/* Same for one group name (1..63 bytes, no ':', ',', control chars). */
const char *authfile_group_invalid(const char *group, size_t len);
/* Validates a "g1,g2" list: NULL or a static reason. Empty list allowed. */
const char *authfile_groups_invalid(const char *list);

/* Reads the new password for `stpd passwd` into pw (cap >= 256): twice
 * with echo off from /dev/tty when stdin is a terminal, else one line of
 * stdin. 0, or -1 with a message on stderr (empty, too long, mismatch). */
int authpw_read(char *pw, size_t cap);

#endif
