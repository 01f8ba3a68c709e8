/*
 * privs.c - keep only some capabilities, and choose the account stpd runs
 * as after start (sandbox.h).
 */
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

void privs_bound_only(unsigned long long mask)
{
	for (int cap = 0; cap <= 63; cap++)
		if (!(mask & (1ULL << cap)))
			prctl(PR_CAPBSET_DROP, cap, 0, 0, 0); /* EINVAL past the last: fine */
}

int privs_keep_only(unsigned long long mask)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	privs_bound_only(mask);
	memset(d, 0, sizeof(d));
	d[0].effective = d[0].permitted = (unsigned)(mask & 0xffffffffu);
	d[1].effective = d[1].permitted = (unsigned)(mask >> 32);
	return (int)syscall(SYS_capset, &h, d);
}

/* For log lines: the capabilities stpd's modules and broker ask for by
 * name, any other by number. */
const char *privs_cap_names(unsigned long long m, char *buf, size_t cap)
{
	static const struct { int bit; const char *name; } known[] = {
		{ CAP_NET_ADMIN, "CAP_NET_ADMIN" }, { CAP_NET_RAW, "CAP_NET_RAW" },
		{ CAP_NET_BIND_SERVICE, "CAP_NET_BIND_SERVICE" },
		{ CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH" },
	};
	size_t pos = 0;
	buf[0] = '\0';
	for (int b = 0; b < 64 && pos < cap; b++) {
		if (!(m & (1ULL << b)))
			continue;
		const char *n = NULL;
		for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (known[i].bit == b)
				n = known[i].name;
		pos += n ? (size_t)snprintf(buf + pos, cap - pos, "%s%s", pos ? " " : "", n)
			 : (size_t)snprintf(buf + pos, cap - pos, "%scapability %d", pos ? " " : "",
					    b);
	}
	return buf;
}

int privs_choose_user(const char *configured, const char *const *defaults, size_t n,
		      char *out, size_t outlen, char *why, size_t whylen, bool *warn)
{
	const struct passwd *pw = NULL;

	*warn = false;
	snprintf(out, outlen, "%s", "");
	snprintf(why, whylen, "%s", "");
	if (configured[0] && !(pw = getpwnam(configured))) {
		snprintf(why, whylen, "user %s: no such user", configured);
		return -1;
	}
	if (geteuid() != 0) {
		/* As started (e.g. by a unit with User=): nothing to drop, but
		 * another `user` cannot be reached. */
		if (configured[0] && pw->pw_uid != geteuid()) {
			snprintf(why, whylen, "user %s: stpd was started as uid %u, not root, and "
				 "cannot become it", configured, (unsigned)geteuid());
			return -1;
		}
		return 0;
	}
	if (configured[0]) {
		if (pw->pw_uid == 0) {
			*warn = true;
			snprintf(why, whylen,
				 "running as root (`user %s`): every thread keeps every "
				 "capability, without privilege separation", configured);
			return 0;
		}
		snprintf(out, outlen, "%s", configured);
		snprintf(why, whylen, "running as %s (`user %s`)", configured, configured);
		return 0;
	}
	/* No `user`: root is never kept by default. */
	for (size_t i = 0; i < n; i++)
		if ((pw = getpwnam(defaults[i])) && pw->pw_uid != 0) {
			snprintf(out, outlen, "%s", defaults[i]);
			snprintf(why, whylen,
				 "running as %s: the default without `user`%s%s%s (`user root` "
				 "keeps root)", defaults[i], i ? ", there is no account " : "",
				 i ? defaults[0] : "", i ? "" : ", the account made for stpd");
			return 0;
		}
	char names[128] = "";
	for (size_t i = 0, pos = 0; i < n && pos < sizeof(names); i++)
		pos += (size_t)snprintf(names + pos, sizeof(names) - pos, "%s%s", i ? ", " : "",
					defaults[i]);
	snprintf(why, whylen,
		 "no `user` in the configuration and none of the default accounts (%s) exists: "
		 "create one, name another with `user`, or set `user root`",
		 names);
	return -1;
}
