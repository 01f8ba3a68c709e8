/*
 * privfile.h - opening a file stpd may no longer read itself
 * (docs/operations.md "Privilege separation"). After stpd drops to `user`,
 * a reload still has to read the users file, certificates, keys and secret
 * files, which are often root's and 0600. privfile_open tries open(2)
 * first; when that is refused (EACCES/EPERM) and a privileged helper has
 * registered itself (the broker: src/server/broker.h), it asks the helper,
 * which opens the file only when its own copy of the configuration names
 * it, and passes the descriptor back.
 */
#ifndef STP_COMMON_PRIVFILE_H
#define STP_COMMON_PRIVFILE_H

#include <stdio.h>
#include <sys/socket.h>

/* Opens path for reading: fd or -1 with errno (the helper's answer when it
 * was asked). Any thread. */
int privfile_open(const char *path);
/* The same as a stdio stream (mode "r" with close-on-exec). */
FILE *privfile_fopen(const char *path);
/* The helper: opens path for reading on stpd's behalf (fd or -1 with
 * errno). NULL removes it. Set before threads start. */
void privfile_set_helper(int (*open_fn)(const char *path));

/* The same for a listen address added by a reload: a TCP socket bound to
 * addr (SO_REUSEADDR, SO_REUSEPORT, V6ONLY; not listening yet), made by
 * the helper when bind(2) was refused (EACCES: a port below 1024 after the
 * drop) and its configuration lists the address. fd or -1 with errno. */
int privfile_bound_socket(const struct sockaddr *addr, socklen_t len);
void privfile_set_bind_helper(int (*bind_fn)(const struct sockaddr *addr, socklen_t len));

#endif
