/*
 * sandbox.c - the seccomp allow-lists (sandbox.h), built with libseccomp.
 *
 * The workers' list is what stpd's threads call after start-up, module by
 * module: the event loops (epoll, eventfd, timers), sockets of the four
 * families stpd uses (UNIX for the broker channels and nscd, INET, INET6,
 * NETLINK for the nftables/conntrack engine), the relay (splice, pipes),
 * threads (clone, futex), memory, files (reload re-reads the
 * configuration, users file, certificates; Kerberos reads its keytab and
 * keeps a replay cache), time, randomness. Not on it: exec, ptrace,
 * mount, setns, unshare, module loading, bpf, keyctl, setuid and the
 * other credential calls, reboot, kexec, perf, io_uring, userfaultfd...
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox/sandbox.h"

#ifdef STP_SECCOMP
#include <seccomp.h>

/* Calls every stpd thread may make. */
static const char *const common_calls[] = {
	/* memory, threads, signals, time, process basics */
	"brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mincore", "membarrier",
	"futex", "futex_waitv", "set_robust_list", "get_robust_list", "rseq", "set_tid_address",
	"clone", "clone3", "exit", "exit_group", "arch_prctl", "sched_yield",
	"sched_getaffinity", "sched_getparam", "sched_getscheduler", "getcpu",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack",
	"restart_syscall", "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres",
	"gettimeofday", "time", "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid",
	"getegid", "getgroups", "getresuid", "getresgid", "getrandom", "uname", "prlimit64",
	"getrlimit", "sysinfo", "capget",
	/* I/O on descriptors it holds, and the log */
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "close",
	"close_range", "fcntl", "fstat", "newfstatat", "statx", "lseek", "poll", "ppoll",
	"recvfrom", "recvmsg", "sendmsg", "sendto", "dup", "dup2", "dup3",
	/* reading files: the configuration, /proc/self/..., libc's own */
	"open", "openat", "stat", "lstat", "access", "faccessat", "faccessat2", "readlink",
	"readlinkat", "getdents64", "fstatfs", "statfs", "getcwd",
};

/* stpd's process after the drop: everything it serves clients with. */
static const char *const worker_calls[] = {
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
	"epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "timerfd_create",
	"timerfd_settime", "timerfd_gettime", "select", "pselect6", "pipe", "pipe2",
	"splice", "tee", "sendfile", "ioctl",
	"socketpair", "bind", "listen", "accept", "accept4", "connect", "shutdown",
	"getsockname", "getpeername", "setsockopt", "getsockopt", "recvmmsg", "sendmmsg",
	"preadv2", "pwritev2", "fsync", "fdatasync", "ftruncate", "flock", "fadvise64",
	/* Kerberos' replay cache and OpenSSL/krb5 temporary files */
	"unlink", "unlinkat", "rename", "renameat", "renameat2", "umask", "fchmod", "mkdir",
	"mkdirat", "utimensat",
	/* the broker, at stop; tgkill: pthread_kill, raise */
	"wait4", "tgkill", "prctl", "setitimer", "getitimer", "alarm", "getpriority",
	"sched_setaffinity",
	/* c-ares watches resolv.conf (newer releases) */
	"inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	/* a reload's copy of a keytab the broker opened (gss_keytab.c) */
	"memfd_create",
};

/* The broker: its channels, namespaces, and reload's file reads; binding
 * the listen addresses a reload adds (LISTEN). */
static const char *const broker_calls[] = {
	"setns", "setsockopt", "bind",
};

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif
#ifdef SANDBOX_ASAN
/* Sanitizer builds only: LeakSanitizer stops the world at exit from a
 * tracer task (ptrace, kill, waitpid), and reports through its own
 * calls. Never in a production build. */
static const char *const asan_calls[] = {
	"ptrace", "kill", "tkill", "waitid", "personality", "process_vm_readv", "sched_yield",
	"prctl", "wait4", "tgkill", "pipe2", "sigaltstack", "getdents", "open", "stat",
};
#endif

/* socket(): only the families stpd uses, never AF_PACKET and the like. */
static const int worker_families[] = { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK };
static const int broker_families[] = { AF_INET, AF_INET6 };

#define NAME_NR_MAX 512
#define NAME_LEN 24
static char sys_names[NAME_NR_MAX][NAME_LEN]; /* filled before the filter: the
					       * handler must not allocate */

static void put(char *buf, size_t *pos, size_t cap, const char *s)
{
	while (*s && *pos + 1 < cap)
		buf[(*pos)++] = *s++;
}

static void put_num(char *buf, size_t *pos, size_t cap, long v)
{
	char d[24];
	int n = 0;
	if (v < 0) {
		put(buf, pos, cap, "-");
		v = -v;
	}
	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n < (int)sizeof(d));
	while (n > 0 && *pos + 1 < cap)
		buf[(*pos)++] = d[--n];
}

/* SIGSYS from the filter: one line (async-signal-safe), then the whole
 * process ends. */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	char line[200];
	size_t pos = 0;
	int nr = si->si_syscall;
	put(line, &pos, sizeof(line), "stpd: seccomp: forbidden system call ");
	put(line, &pos, sizeof(line),
	    nr >= 0 && nr < NAME_NR_MAX && sys_names[nr][0] ? sys_names[nr] : "?");
	put(line, &pos, sizeof(line), " (");
	put_num(line, &pos, sizeof(line), nr);
	put(line, &pos, sizeof(line), ") in thread ");
	put_num(line, &pos, sizeof(line), (long)gettid());
	put(line, &pos, sizeof(line), "; stopping (docs/operations.md: seccomp off to debug)\n");
	(void)!write(STDERR_FILENO, line, pos);
	_exit(SANDBOX_EXIT_STATUS);
}

static void fill_names(void)
{
	for (int nr = 0; nr < NAME_NR_MAX; nr++) {
		char *n = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (n) {
			snprintf(sys_names[nr], NAME_LEN, "%s", n);
			free(n);
		}
	}
}

static int allow_list(scmp_filter_ctx f, const char *const *names, size_t n, char *err,
		      size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(names[i]);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not on this architecture (e.g. "open" on arm64) */
		int rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
		if (rc < 0) {
			snprintf(err, errlen, "seccomp: allow %s: %s", names[i], strerror(-rc));
			return -1;
		}
	}
	return 0;
}

static int allow_families(scmp_filter_ctx f, const int *fam, size_t n, char *err,
			  size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		/* socket(family == fam[i], ...): written out, SCMP_A0 leaves a field
		 * to the compiler's zeroing, which clang warns about. */
		struct scmp_arg_cmp eq = { .arg = 0, .op = SCMP_CMP_EQ,
					   .datum_a = (scmp_datum_t)fam[i], .datum_b = 0 };
		int rc = seccomp_rule_add_array(f, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, &eq);
		if (rc < 0) {
			snprintf(err, errlen, "seccomp: allow socket(%d): %s", fam[i],
				 strerror(-rc));
			return -1;
		}
	}
	return 0;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

int sandbox_install(enum sandbox_profile p, char *err, size_t errlen)
{
	struct sigaction sa;
	int rc = -1;

	fill_names();
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		snprintf(err, errlen, "seccomp: SIGSYS handler: %s", strerror(errno));
		return -1;
	}
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_TRAP);
	if (!f) {
		snprintf(err, errlen, "seccomp: cannot make a filter");
		return -1;
	}
	/* Every thread at once: the authentication lanes and module threads
	 * exist before the filter does. */
	if ((rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1)) < 0) {
		snprintf(err, errlen, "seccomp: TSYNC: %s", strerror(-rc));
		goto out;
	}
	rc = -1;
	if (allow_list(f, common_calls, N(common_calls), err, errlen) < 0)
		goto out;
	if (p == SANDBOX_WORKERS
		    ? allow_list(f, worker_calls, N(worker_calls), err, errlen) < 0 ||
			      allow_families(f, worker_families, N(worker_families), err, errlen) < 0
		    : allow_list(f, broker_calls, N(broker_calls), err, errlen) < 0 ||
			      allow_families(f, broker_families, N(broker_families), err, errlen) < 0)
		goto out;
#ifdef SANDBOX_ASAN
	if (allow_list(f, asan_calls, N(asan_calls), err, errlen) < 0)
		goto out;
#endif
	/* seccomp_load sets NO_NEW_PRIVS itself (SCMP_FLTATR_CTL_NNP). */
	if ((rc = seccomp_load(f)) < 0) {
		snprintf(err, errlen, "seccomp: load: %s", strerror(-rc));
		rc = -1;
		goto out;
	}
	rc = 0;
out:
	seccomp_release(f);
	return rc;
}

bool sandbox_built(void)
{
	return true;
}

#else /* built with -Dseccomp=false */

int sandbox_install(enum sandbox_profile p, char *err, size_t errlen)
{
	(void)p;
	(void)err;
	(void)errlen;
	return 0;
}

bool sandbox_built(void)
{
	return false;
}

#endif
