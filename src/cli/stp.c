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
	bool url_arg; /* with max_args operands, the first is the proxy URL */
} cli_cmds[] = {
	{ "autoconfig", cli_cmd_autoconfig, 0, 0, false },
	{ "bind", cli_cmd_bind, 0, 2, false },
	{ "connect", cli_cmd_connect, 2, 2, false },
	{ "dns", cli_cmd_dns, 0, 1, true },
	{ "features", cli_cmd_features, 0, 1, true },
	{ "listen", cli_cmd_listen, 1, STP_LISTEN_MAX, false },
	{ "lookup", cli_cmd_lookup, 1, 1, false },
	{ "resolve", cli_cmd_resolve, 1, 1, false },
	{ "transparent", cli_cmd_transparent, 1, 2, true },
	{ "udp", cli_cmd_udp, 2, 2, false },
	{ "tunnel", cli_cmd_tunnel, 2, 3, true },
};

int main(int argc, char **argv)
{
	struct cli_opts o;

	/* A peer that goes away shows up as EPIPE, not as a dead process. */
	signal(SIGPIPE, SIG_IGN);
	/* `mcast join` takes options after its operands: its own parser. */
	if (cli_mcast_wanted(argc, argv))
		return cli_mcast_main(argc, argv);
	/* `status` talks to stpd's metrics listener, not through a proxy. */
	if (argc >= 2 && strcmp(argv[1], "status") == 0)
		return cli_status_main(argc, argv);
	cli_parse(&o, argc, argv);
	for (size_t i = 0; i < sizeof(cli_cmds) / sizeof(cli_cmds[0]); i++) {
		if (strcmp(o.cmd, cli_cmds[i].name) != 0)
			continue;
		if (o.nargs < cli_cmds[i].min_args || o.nargs > cli_cmds[i].max_args) {
			fprintf(stderr, "stp: %s: wrong number of arguments\n", o.cmd);
			cli_usage(stderr);
			return CLI_EXIT_USAGE;
		}
		if (cli_cmds[i].url_arg && o.nargs == cli_cmds[i].max_args) {
			o.proxy_url = o.args[0];
			o.args++;
			o.nargs--;
		}
		cli_load_proxy(&o);
		int rc = cli_cmds[i].run(&o);
		stp_autoconf_free(o.ac);
		return rc;
	}
	fprintf(stderr, "stp: unknown command '%s'\n", o.cmd);
	cli_usage(stderr);
	return CLI_EXIT_USAGE;
}
