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

/* Opens path for reading: fd or -1 with errno (the helper's answer when it
 * was asked). Any thread. */
int privfile_open(const char *path);
/* The same as a stdio stream (mode "r" with close-on-exec). */
FILE *privfile_fopen(const char *path);
/* The helper: opens path for reading on stpd's behalf (fd or -1 with
 * errno). NULL removes it. Set before threads start. */
void privfile_set_helper(int (*open_fn)(const char *path));

#endif
