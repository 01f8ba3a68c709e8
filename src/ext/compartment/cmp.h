/*
 * cmp.h - the compartment module's inside (docs/compartments.md).
 *
 * Threads and processes: the broker (server/broker.h, stpd's core) is a
 * child process forked by serve() while stpd is still root; it alone
 * enters namespaces (setns, through cmp_hook.c) after the privilege drop.
 * Each worker thread asks over its own channel (broker_socket with its
 * worker id). Listening sockets are made before the drop by cmp_ns_socket
 * (a short-lived thread that enters the namespace). Per worker thread, resolvers per
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

/* The broker's hook (cmp_hook.c): SOCKET requests, CAP_SYS_ADMIN. */
extern const struct broker_hook cmp_broker_hook;

#endif
