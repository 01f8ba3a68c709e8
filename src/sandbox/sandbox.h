/*
 * sandbox.h - stpd's seccomp filters and capability sets (docs/operations.md,
 * "Privilege separation").
 *
 * Two profiles: SANDBOX_WORKERS for stpd itself after it dropped its
 * privileges (event-loop workers, authentication lanes, module threads
 * and the main thread that reloads: one filter for the whole process,
 * synchronised to every thread), SANDBOX_BROKER for the privileged broker
 * (src/server/broker.h; a few calls: poll, the channels, setns, socket).
 *
 * A call outside the allow-list traps (SIGSYS): the handler writes
 * "stpd: seccomp: forbidden system call NAME (NR) ..." to stderr and ends
 * the whole process with exit status 159 (128 + SIGSYS). Nothing may
 * carry on after a call the filter did not expect: an EPERM would let a
 * compromised worker probe the kernel quietly.
 */
#ifndef STP_SANDBOX_SANDBOX_H
#define STP_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

enum sandbox_profile { SANDBOX_WORKERS, SANDBOX_BROKER };

#define SANDBOX_EXIT_STATUS 159 /* 128 + SIGSYS */

/* Installs the profile's filter on every thread of the calling process
 * (sets NO_NEW_PRIVS first). 0, or -1 with the reason in err. */
int sandbox_install(enum sandbox_profile p, char *err, size_t errlen);
/* Whether this build has the filters (meson option seccomp). */
bool sandbox_built(void);

/* Capabilities: keeps only the ones in mask (bit = CAP_*) in the
 * bounding, permitted and effective sets of the calling process's threads
 * (bounding: process-wide; capset: this thread, so call it before
 * starting threads). 0 or -1 with errno. */
int privs_keep_only(unsigned long long mask);
/* The bounding set only (this thread; needs CAP_SETPCAP). */
void privs_bound_only(unsigned long long mask);
/* The names of mask's capabilities ("CAP_NET_ADMIN ..."), in buf. */
const char *privs_cap_names(unsigned long long mask, char *buf, size_t cap);

/* The account stpd drops to after start (docs/operations.md §8), written to
 * out: "" when it keeps its uid, i.e. not started as root, or `user` names
 * an account with uid 0 (`user root`); else the `user` key (configured),
 * or, when that is "", the first of defaults (n names) that exists. why
 * gets the reason for stpd's log line; *warn is set when that line is a
 * warning (staying root). 0, or -1 when no account fits (why says so). */
int privs_choose_user(const char *configured, const char *const *defaults, size_t n,
		      char *out, size_t outlen, char *why, size_t whylen, bool *warn);

#endif
