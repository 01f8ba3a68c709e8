/*
 * authline.c - see authline.h.
 */
#include "auth/authline.h"
#include "auth/authint.h"

#include <string.h>

static int
authline_blank(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == '\0' || *s == '#';
}

/* Splits the validated "g1,g2" in place. */
static void
authline_split_groups(struct authline *out, char *list)
{
	if (*list == '\0')
		return;
	for (char *p = list; p != NULL;) {
		char *comma = strchr(p, ',');
		if (comma != NULL)
			*comma++ = '\0';
		out->groups[out->n_groups++] = p;
		p = comma;
	}
}

static enum authline_res
authline_bad(const char **why, const char *reason)
{
	*why = reason;
	return AUTHLINE_BAD;
}

enum authline_res
authline_parse(struct authline *out, char *line, size_t len, const char **why)
{
	memset(out, 0, sizeof(*out));
	*why = NULL;
	if (len != strlen(line))
		return authline_bad(why, "NUL byte in line");
	if (len > AUTHLINE_MAX)
		return authline_bad(why, "line too long");
	if (authline_blank(line))
		return AUTHLINE_BLANK;
	if (strchr(line, '\r') != NULL)
		return authline_bad(why, "carriage return in line (DOS line ends?)");
	char *colon = strchr(line, ':');
	if (colon == NULL)
		return authline_bad(why, "bad line: expected user:hash[:group,...]");
	*colon = '\0';
	const char *reason = authfile_user_invalid(line);
	if (reason != NULL)
		return authline_bad(why, reason);
	char *hash = colon + 1;
	char *groups = strchr(hash, ':');
	if (groups != NULL) {
		*groups++ = '\0';
		if (strchr(groups, ':') != NULL)
			return authline_bad(why, "bad line: too many ':' fields");
		if ((reason = authfile_groups_invalid(groups)) != NULL)
			return authline_bad(why, reason);
	}
	if (*hash == '\0')
		return authline_bad(why, "empty password hash");
	if (!authcrypt_known(hash))
		return authline_bad(why,
				    "not a supported crypt(3) hash (want $y$, $2b$, $2y$, $6$ or $5$)");
	out->user = line;
	out->hash = hash;
	if (groups != NULL)
		authline_split_groups(out, groups);
	return AUTHLINE_ENTRY;
}
