/*
 * mmsg.c - sendmmsg/recvmmsg, emulated with sendmsg/recvmsg, and the
 * raw syscalls turned off.
 *
 * libuv up to 1.44 (Debian 12: dig, BIND, node's dgram) calls sendmmsg
 * and recvmmsg through syscall(2), which no LD_PRELOAD hook can see: its
 * datagrams would leave without a SOCKS header. A seccomp filter makes
 * those two syscalls fail with ENOSYS; libuv's start-up probe then falls
 * back to sendmsg/recvmsg, which stpify wraps. Programs that call the libc
 * functions get the emulation below (one sendmsg/recvmsg per message).
 *
 * Installing a filter needs CAP_SYS_ADMIN, or no_new_privs, which would
 * stop setuid programs started later from gaining privileges. So the
 * filter is installed when it can be without no_new_privs, and with it
 * only when mmsg_filter is "force" (STP_MMSG_FILTER=force); "off" never
 * installs it.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim/shim.h"

#if defined(__x86_64__)
#define MMSG_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define MMSG_ARCH AUDIT_ARCH_AARCH64
#endif

bool mmsg_filtered;

static int mmsg_seccomp(const struct sock_fprog *prog)
{
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog);
}

void mmsg_install(void)
{
#ifdef MMSG_ARCH
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MMSG_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendmmsg, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_recvmmsg, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	const char *mode = getenv("STP_MMSG_FILTER");

	if (!shim_conf.have_proxy || (mode != NULL && strcmp(mode, "off") == 0))
		return;
	if (mmsg_seccomp(&prog) == 0) {
		mmsg_filtered = true;
	} else if (errno == EACCES && mode != NULL && strcmp(mode, "force") == 0 &&
		   prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && mmsg_seccomp(&prog) == 0) {
		mmsg_filtered = true;
	}
	shim_log(SHIM_LOG_DEBUG, "sendmmsg/recvmmsg syscalls %s",
		 mmsg_filtered ? "off (seccomp)" : "left alone");
#endif
}
