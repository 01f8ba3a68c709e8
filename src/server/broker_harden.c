/*
 * broker_harden.c - what the broker keeps of root (docs/operations.md
 * "Privilege separation"): CAP_DAC_READ_SEARCH (opening root-only files
 * for reloads) and CAP_NET_BIND_SERVICE (binding listen addresses a reload
 * adds) when stpd drops to `user`, and what the module's hook asks for
 * (the compartments: CAP_SYS_ADMIN for setns), in its bounding, permitted
 * and effective sets; stpd's `user` as its uid (setns needs the
 * capability, not uid 0, and the file it re-reads on reload must be
 * readable by that user for stpd anyway); NO_NEW_PRIVS; and its own
 * seccomp filter (src/sandbox), unless the configuration says `seccomp
 * off`.
 */
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/log.h"
#include "policy/conf.h"
#include "sandbox/sandbox.h"
#include "server/broker.h"

#define CAP(x) (1ULL << (x))
#define DROP_CAPS "CAP_DAC_READ_SEARCH and CAP_NET_BIND_SERVICE"

/* uid/gid of `user`, keeping the permitted set across setuid. The broker
 * is single-threaded here (forked from stpd's main thread). */
static void become_user(const char *user, const char *caps)
{
	struct passwd *pw;

	if (!user[0] || geteuid() != 0)
		return;
	if (!(pw = getpwnam(user)) || pw->pw_uid == 0)
		return; /* stpd itself refuses an unknown user */
	prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
	if (setgroups(1, &pw->pw_gid) < 0 || setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) < 0 ||
	    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
		log_warn("broker: cannot become %s; not serving", user);
		_exit(1);
	}
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	log_info("broker: running as %s with %s only", user, caps);
}

void broker_harden(const struct stp_conf *c)
{
	const struct broker_hook *h = broker_hook_get();
	const char *mod = NULL;
	char err[256], names[256];
	bool drops = c->run_as_user[0] && geteuid() == 0;
	unsigned long long keep = (h && h->caps ? h->caps(c, &mod) : 0) |
				  (drops ? CAP(CAP_DAC_READ_SEARCH) | CAP(CAP_NET_BIND_SERVICE) : 0);

	if (mod && drops)
		snprintf(names, sizeof(names), "%s, " DROP_CAPS, mod);
	else
		snprintf(names, sizeof(names), "%s", mod ? mod : drops ? DROP_CAPS : "nothing");
	privs_bound_only(keep); /* while CAP_SETPCAP is still effective */
	become_user(c->run_as_user, names);
	if (privs_keep_only(keep) < 0)
		log_warn("broker: cannot drop capabilities other than %s", names);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (c->no_seccomp || !sandbox_built())
		return;
	if (sandbox_install(SANDBOX_BROKER, err, sizeof(err)) < 0) {
		log_warnx("broker: %s; not serving", err);
		_exit(1);
	}
	log_info("broker: seccomp filter installed");
}
