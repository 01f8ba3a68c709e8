/*
 * cli_mcast.h - `stp mcast join`: a multicast membership through stpd
 * (docs/mcast.md, "Client"). It takes options after the command name
 * (--send, --source ...), so it parses its own command line.
 */
#ifndef STP_CLI_MCAST_H
#define STP_CLI_MCAST_H

#include <stdbool.h>

/* True when argv's command (its first operand) is "mcast". */
bool cli_mcast_wanted(int argc, char **argv);
/* The whole command: options, join, the loop. Returns the exit code. */
int cli_mcast_main(int argc, char **argv);
/* `stp status [--metrics] URL` (cli_status.c): stpd's status page as text. */
int cli_status_main(int argc, char **argv);

#endif
