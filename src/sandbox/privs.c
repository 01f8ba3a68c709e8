/*
 * privs.c - keep only some capabilities (sandbox.h).
 */
#include <linux/capability.h>
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
