/*
 * seccomp_poke.c - LD_PRELOADed into stpd by test_privsep.py: on SIGUSR2
 * the thread that receives it calls unshare(0), a system call no stpd
 * thread makes (a no-op when allowed), so the test can see what the
 * seccomp filter does with a worker that steps outside its allow-list.
 * Test builds only; stpd itself has no such trigger.
 */

#include <signal.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static void poke(int sig)
{
	char line[96];
	(void)sig;
	long r = syscall(SYS_unshare, 0);
	int n = snprintf(line, sizeof(line), "poke: unshare returned %ld in thread %ld\n", r,
			 (long)syscall(SYS_gettid));
	(void)!write(STDERR_FILENO, line, (size_t)n);
}

__attribute__((constructor)) static void poke_init(void)
{
	signal(SIGUSR2, poke);
}
