/*
 * stp.c - the `stp` command: netcat, UDP and BIND through a SOCKS proxy,
 * and DNS lookups through it, on top of libstp.
 */
#include <signal.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_mcast.h"

static const struct {
	const char *name;
	int (*run)(const struct cli_opts *o);
	int min_args, max_args;
} cli_cmds[] = {
	{ "bind", cli_cmd_bind, 0, 2 },
	{ "connect", cli_cmd_connect, 2, 2 },
	{ "listen", cli_cmd_listen, 1, STP_LISTEN_MAX },
	{ "resolve", cli_cmd_resolve, 1, 1 },
	{ "udp", cli_cmd_udp, 2, 2 },
};

int main(int argc, char **argv)
{
	struct cli_opts o;

	/* A peer that goes away shows up as EPIPE, not as a dead process. */
	signal(SIGPIPE, SIG_IGN);
	/* `mcast join` takes options after its operands: its own parser. */
	if (cli_mcast_wanted(argc, argv))
		return cli_mcast_main(argc, argv);
	cli_parse(&o, argc, argv);
	for (size_t i = 0; i < sizeof(cli_cmds) / sizeof(cli_cmds[0]); i++) {
		if (strcmp(o.cmd, cli_cmds[i].name) != 0)
			continue;
		if (o.nargs < cli_cmds[i].min_args || o.nargs > cli_cmds[i].max_args) {
			fprintf(stderr, "stp: %s: wrong number of arguments\n", o.cmd);
			cli_usage(stderr);
			return CLI_EXIT_USAGE;
		}
		cli_load_proxy(&o);
		return cli_cmds[i].run(&o);
	}
	fprintf(stderr, "stp: unknown command '%s'\n", o.cmd);
	cli_usage(stderr);
	return CLI_EXIT_USAGE;
}
