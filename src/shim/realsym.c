/*
 * realsym.c - the libc functions stpify wraps, resolved once with
 * dlsym(RTLD_NEXT) under pthread_once (after proxychains-ng's load_sym).
 *
 * A symbol that resolves back to stpify itself would make its hook call
 * itself forever (a second copy of stpify preloaded, or a wrapper that
 * forwards to RTLD_NEXT again). Such a symbol is left NULL and the hook
 * fails with ENOSYS: a host program must never be killed from here.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim/shim.h"

struct shim_real shim_real;

static ssize_t realsym_hs_send(void *ctx, int fd, const void *buf, size_t len, int flags)
{
	(void)ctx;
	return shim_real.send(fd, buf, len, flags);
}

static ssize_t realsym_hs_recv(void *ctx, int fd, void *buf, size_t len, int flags)
{
	(void)ctx;
	return shim_real.recv(fd, buf, len, flags);
}

const struct stp_io shim_real_io = { realsym_hs_send, realsym_hs_recv, NULL };

static pthread_once_t realsym_once = PTHREAD_ONCE_INIT;
static __thread int realsym_depth;

bool shim_busy(void) { return realsym_depth > 0; }
void shim_enter(void) { realsym_depth++; }
void shim_leave(void) { realsym_depth--; }

/* A line on stderr without going through any wrapped function. */
static void realsym_complain(const char *name)
{
	static const char head[] = "stpify: cannot find the real ";
	(void)!syscall(SYS_write, 2, head, sizeof(head) - 1);
	(void)!syscall(SYS_write, 2, name, strlen(name));
	(void)!syscall(SYS_write, 2, "\n", 1);
}

/*
 * The next definition of name after ours, or NULL. A definition inside
 * our own object (found through dladdr) is a self-reference.
 */
static void *realsym_lookup(const char *name)
{
	static Dl_info self;
	Dl_info where;
	void *p = dlsym(RTLD_NEXT, name);

	if (self.dli_fbase == NULL)
		dladdr((void *)&shim_real, &self);
	if (p == NULL || (dladdr(p, &where) != 0 && where.dli_fbase == self.dli_fbase)) {
		realsym_complain(name);
		return NULL;
	}
	return p;
}

/* POSIX's way to turn dlsym's void * into a function pointer. */
#define LOAD(field, unused)                                         \
	do {                                                        \
		void *p_ = realsym_lookup(#field);                  \
		memcpy(&shim_real.field, &p_, sizeof(p_));          \
	} while (0)

static void realsym_load(void)
{
	shim_enter();
	LOAD(socket, socket);
	LOAD(connect, connect);
	LOAD(bind, bind);
	LOAD(listen, listen);
	LOAD(accept, accept);
	LOAD(accept4, accept4);
	LOAD(close, close);
	LOAD(dup, dup);
	LOAD(dup2, dup2);
	LOAD(dup3, dup3);
	LOAD(getpeername, getpeername);
	LOAD(getsockname, getsockname);
	LOAD(getsockopt, getsockopt);
	LOAD(send, send);
	LOAD(recv, recv);
	LOAD(sendto, sendto);
	LOAD(recvfrom, recvfrom);
	LOAD(sendmsg, sendmsg);
	LOAD(recvmsg, recvmsg);
	LOAD(sendmmsg, sendmmsg);
	LOAD(recvmmsg, recvmmsg);
	LOAD(read, read);
	LOAD(write, write);
	LOAD(poll, poll);
	LOAD(getaddrinfo, getaddrinfo);
	LOAD(freeaddrinfo, freeaddrinfo);
	LOAD(gethostbyname, gethostbyname);
	LOAD(gethostbyname2, gethostbyname2);
	LOAD(gethostbyname_r, gethostbyname_r);
	LOAD(gethostbyname2_r, gethostbyname2_r);
	LOAD(getnameinfo, getnameinfo);
	shim_conf_load();
	fakedns_init();
	mmsg_install();
	/* prepare handlers run last-registered first: fdtab, then gssdgram */
	pthread_atfork(gssdgram_atfork_prepare, gssdgram_atfork_parent, gssdgram_atfork_child);
	pthread_atfork(fdtab_atfork_prepare, fdtab_atfork_parent, fdtab_atfork_child);
	shim_leave();
}

void shim_init(void)
{
	pthread_once(&realsym_once, realsym_load);
}
