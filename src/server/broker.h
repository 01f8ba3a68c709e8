/*
 * broker.h - stpd's privileged part (docs/operations.md "Privilege
 * separation", docs/compartments.md "The broker"): a child process forked
 * by serve() as root before any thread exists, whenever stpd drops to
 * `user` or a module asks for it (broker_hook.wanted: compartments). It
 * keeps only the capabilities it needs and answers requests
 * (proto/broker.h) on one SOCK_SEQPACKET channel per worker plus the main
 * thread's: OPEN (a file the broker's own copy of the configuration names,
 * for a reload), LISTEN (a listen address that copy lists, in stpd's own
 * namespace or in a module's place: a compartment), RELOAD, and SOCKET,
 * which it leaves to the module that registered a broker_hook (the
 * compartments: a socket made in a network namespace).
 *
 * broker.c is the process and its serving side, broker_ask.c stpd's side
 * of the channels, broker_harden.c what the broker keeps of root.
 */
#ifndef STP_SERVER_BROKER_H
#define STP_SERVER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct stp_conf;
struct broker_request;

/* A module's part of the broker (stp_ext.broker; the first one found
 * serves). Every member may be NULL. */
struct broker_hook {
	/* True when c needs the broker even though stpd does not drop to
	 * `user` (stpd stays root; the module's sockets still come from it). */
	bool (*wanted)(const struct stp_conf *c);
	/* Capabilities (bit = CAP_*) the broker keeps for the module under c,
	 * besides the core's (CAP_DAC_READ_SEARCH, CAP_NET_BIND_SERVICE after
	 * a drop); names: how they read in the broker's log line. */
	unsigned long long (*caps)(const struct stp_conf *c, const char **names);
	/* In the broker: the socket SOCKET request rq asks for under c, or -1
	 * with errno (EACCES: c does not allow it, answered REFUSED; anything
	 * else FAILED with that errno). */
	int (*socket)(const struct stp_conf *c, const struct broker_request *rq);
	/* In the broker: an unbound TCP socket of domain made in place (a
	 * listener's ext_listener_place under c, which the broker has checked
	 * lists the address there), or -1 with errno. */
	int (*listen_socket)(const struct stp_conf *c, const char *place, int domain);
};

/* Forks the broker when c needs it (stpd is root and drops to `user`, or
 * the hook wants it) with n_workers + 1 channels, and makes it privfile's
 * helper (common/privfile.h). Call before any thread exists. 0 (also when
 * no broker is needed), or -1 with err. */
int broker_start(const struct stp_conf *c, unsigned n_workers, char *err, size_t errlen);
/* Closes the channels and waits for the broker to end. */
void broker_stop(void);
bool broker_running(void);
/* Asks the broker to re-read the configuration file (main thread, after a
 * reload was accepted); a warning when it does not take it. */
void broker_reload(void);

/* stpd's side (broker_ask.c). A socket for a session arrived in `in` made
 * in `out`, asked over channel chan (a worker id): fd (O_NONBLOCK when
 * type has SOCK_NONBLOCK) or -1 with errno: EACCES when the broker
 * refused, ETIMEDOUT/EPIPE when it did not answer (the channel is then
 * closed for good: a late reply would answer the next request), ENETUNREACH
 * when there is no broker or no such channel. */
int broker_socket(unsigned chan, const char *in, const char *out, int domain, int type,
		  int protocol);
/* OPEN over the main thread's channel (any thread, one at a time):
 * privfile's helper. fd or -1 with errno (EACCES when refused). */
int broker_open(const char *path);
/* LISTEN over channel chan (a worker id, on that worker's thread): a TCP
 * socket bound to addr in place (a listener's ext_listener_place; NULL:
 * stpd's own namespace), not listening yet. fd or -1 with errno as for
 * broker_socket. */
int broker_listen(unsigned chan, const struct sockaddr *addr, socklen_t len, const char *place);

/* The broker's side of one channel, for tests: serves fd until EOF under
 * c, as a worker's channel (no RELOAD or OPEN). */
void broker_serve_one(int fd, const struct stp_conf *c);

/* Internal to broker*.c. */
void broker_harden(const struct stp_conf *c);
const struct broker_hook *broker_hook_get(void);
void broker_ask_init(int *chans, unsigned n);
void broker_ask_fini(void);

#endif
