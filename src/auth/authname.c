/*
 * authname.c - what a user or group name in the password file may hold.
 * Shared by the loader and by `stpd passwd`, so that the tool never writes
 * a line the loader would refuse.
 */
#include "auth/auth.h"
#include "auth/authint.h"

#include <string.h>

static bool
authname_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

const char *
authfile_user_invalid(const char *user)
{
	size_t n = strlen(user);

	if (n == 0)
		return "empty user name";
	if (n > AUTH_NAME_MAX)
		return "user name longer than 255 bytes";
	for (size_t i = 0; i < n; i++) {
		if (user[i] == ':')
			return "user name contains ':'";
		if (authname_ctl((unsigned char)user[i]))
			return "user name contains a control character";
	}
	return NULL;
}

const char *
authfile_group_invalid(const char *group, size_t len)
{
	if (len == 0)
		return "empty group name";
	if (len > AUTH_GROUP_NAME_MAX)
		return "group name longer than 63 bytes";
	for (size_t i = 0; i < len; i++) {
		if (group[i] == ':' || group[i] == ',')
			return "group name contains ':' or ','";
		if (authname_ctl((unsigned char)group[i]))
			return "group name contains a control character";
	}
	return NULL;
}

const char *
authfile_groups_invalid(const char *list)
{
	size_t count = 0;

	if (*list == '\0')
		return NULL;
	for (const char *p = list;; p++) {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		const char *why = authfile_group_invalid(p, len);
		if (why != NULL)
			return why;
		if (++count > AUTH_GROUPS_MAX)
			return "too many groups";
		if (end == NULL)
			return NULL;
		p = end;
	}
}
