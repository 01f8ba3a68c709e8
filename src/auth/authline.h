/*
 * authline.h - one line of the RFC 1929 password file, "user:hash[:g1,g2]",
 * parsed in place. Pure (no I/O, no allocation) so that the loader
 * (authfile.c) and the fuzz target (tests/fuzz/fuzz_authline.c) share it.
 */
#ifndef STP_AUTH_AUTHLINE_H
#define STP_AUTH_AUTHLINE_H

#include <stddef.h>

#include "auth/auth.h"

/* Longer lines are refused (the longest real one is far shorter). */
#define AUTHLINE_MAX 4096

enum authline_res {
	AUTHLINE_BLANK, /* empty, blanks only, or a '#' comment */
	AUTHLINE_ENTRY, /* a user: *out filled */
	AUTHLINE_BAD,   /* *why says what is wrong */
};

struct authline {
	const char *user;
	const char *hash;
	const char *groups[AUTH_GROUPS_MAX];
	size_t n_groups;
};

/*
 * line[0..len) is one line without its '\n' and line[len] is a NUL; it may
 * hold NUL bytes of its own (refused). On AUTHLINE_ENTRY the ':' and ','
 * in line are overwritten with NULs and *out points into line. On
 * AUTHLINE_BAD, *why is a static reason and line may have been changed.
 */
enum authline_res authline_parse(struct authline *out, char *line, size_t len, const char **why);

#endif
