/*
 * cmp_harden.c - what the broker keeps of root (docs/compartments.md,
 * docs/operations.md "Privilege separation"): CAP_SYS_ADMIN alone (setns)
 * in its bounding, permitted and effective sets, NO_NEW_PRIVS, and its
 * own seccomp filter (src/sandbox: poll, its channels, threads, setns,
 * INET/INET6 sockets, reading the configuration on reload), unless the
 * configuration says `seccomp off`.
 */
#include <linux/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/log.h"
#include "ext/compartment/cmp.h"
#include "policy/conf.h"
#include "sandbox/sandbox.h"

void cmp_broker_harden(const struct stp_conf *c)
{
	char err[256];

	if (privs_keep_only(1ULL << CAP_SYS_ADMIN) < 0)
		log_warn("broker: cannot drop capabilities other than CAP_SYS_ADMIN");
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (c->no_seccomp || !sandbox_built())
		return;
	if (sandbox_install(SANDBOX_BROKER, err, sizeof(err)) < 0) {
		log_warnx("broker: %s; not serving", err);
		_exit(1);
	}
	log_info("broker: seccomp filter installed");
}
