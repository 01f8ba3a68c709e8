/*
 * cmp.h - the compartment module's inside (docs/compartments.md).
 *
 * Threads and processes: the broker is a child process forked by
 * server_start while stpd is still root; it alone enters namespaces
 * (setns) after the privilege drop. Each worker thread has its own
 * SOCK_SEQPACKET channel to it (cmp_chan[worker id]), used only from that
 * thread, so no lock; the main thread has the last one (reload). Listening
 * sockets are made before the drop by cmp_ns_socket (a short-lived thread
 * that enters the namespace). Per worker thread, resolvers per
 * (arriving, outgoing) compartment pair are made on first use (cmp_ext.c).
 */
#ifndef STP_EXT_COMPARTMENT_CMP_H
#define STP_EXT_COMPARTMENT_CMP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct stp_conf;

/* A socket made inside the network namespace at path (from a thread that
 * joins it, so the caller's namespace never changes). Needs CAP_SYS_ADMIN.
 * fd or -1 with errno. */
int cmp_ns_socket(const char *path, int domain, int type, int protocol);

/* Forks the broker for n_workers workers (+1 channel for the main thread).
 * c is the configuration it starts with; it re-reads c's file on reload. */
int cmp_broker_start(const struct stp_conf *c, unsigned n_workers, char *err, size_t errlen);
void cmp_broker_stop(void);
bool cmp_broker_running(void);
/* A socket in compartment out for a session arrived in `in`, asked over
 * channel chan (a worker id, or the main thread's: n_workers). fd (with
 * O_NONBLOCK when nonblock) or -1 with errno: EACCES when the broker
 * refused, ETIMEDOUT/EPIPE when it did not answer. */
int cmp_broker_socket(unsigned chan, const char *in, const char *out, int domain, int type,
		      int protocol);
/* A file stpd can no longer read (users file, certificate, key, secret
 * file), opened by the broker when its configuration names it: fd or -1
 * with errno (EACCES when refused). The privfile helper (common/privfile.h);
 * any thread, over the main thread's channel. */
int cmp_broker_open(const char *path);
/* A TCP socket bound to addr by the broker (LISTEN: a listen address a
 * reload added); the privfile bind helper. fd or -1 with errno. */
int cmp_broker_bind(const struct sockaddr *addr, socklen_t len);
/* Asks the broker to re-read the configuration file (main thread). */
void cmp_broker_reload(void);
/* In the broker, as it starts: the capabilities it needs (CAP_SYS_ADMIN with
 * compartments, CAP_DAC_READ_SEARCH to open root-only files),
 * NO_NEW_PRIVS and its seccomp filter (cmp_harden.c). */
void cmp_broker_harden(const struct stp_conf *c);
/* The broker's side of one channel, for tests: serves fd until EOF under
 * configuration c (never returns a socket c does not allow). */
void cmp_broker_serve_one(int fd, const struct stp_conf *c);

#endif
