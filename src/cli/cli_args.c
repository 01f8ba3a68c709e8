/*
 * cli_args.c - options, usage text, and the mapping from libstp errors to
 * the command's exit codes.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void cli_usage(FILE *f)
{
	fputs("usage: stp [options] connect HOST PORT   relay stdin/stdout to HOST:PORT\n"
	      "       stp [options] udp HOST PORT       one datagram per stdin line, replies as lines\n"
	      "       stp [options] bind [HOST PORT]    print \"bound ADDR:PORT\", wait for a peer\n"
	      "                                         (HOST PORT: the one expected), print\n"
	      "                                         \"peer ADDR:PORT\", then relay\n"
	      "       stp [options] listen SPEC...      expose local services through the proxy's\n"
	      "                                         binds (like ssh -R); SPEC is\n"
	      "                                         tcp:[RPORT:]HOST:PORT or udp:[RPORT:]HOST:PORT;\n"
	      "                                         prints \"bound tcp ADDR:PORT -> HOST:PORT\"\n"
	      "       stp [options] resolve NAME        look NAME up (A, AAAA) through the proxy\n"
	      "                                         (DNS QUERY X'F2', else RESOLVE X'F0'; with\n"
	      "                                         --dns: DNS over UDP ASSOCIATE)\n"
	      "       stp [options] dns [--listen ADDR:PORT] [PROXY-URL]\n"
	      "                                         a local DNS stub resolver (UDP and TCP):\n"
	      "                                         every query goes through the proxy\n"
	      "       stp [options] autoconfig          print the configuration the proxy serves\n"
	      "                                         (CMD X'F4'; cached, see docs/client.md)\n"
	      "       stp [options] features [PROXY-URL] [--json]\n"
	      "                                         what the proxy offers us (feature\n"
	      "                                         discovery), for people or as JSON\n"
	      "       stp [options] lookup NAME         NAME's address: through the proxy's\n"
	      "                                         RESOLVE when it offers it, else locally\n"
	      "                                         (never locally for socks5h/socks4a)\n"
	      "       stp [options] transparent --udp|--tcp --local ADDR:PORT [PROXY-URL] HOST:PORT\n"
	      "                                         forward a local UDP or TCP port to\n"
	      "                                         HOST:PORT through TRANSPARENT (X'04'):\n"
	      "                                         plain packets, no SOCKS header\n"
	      "       stp [options] tunnel --local ADDR:PORT [--tls] [--tunnel-user USER]\n"
	      "           [--tunnel-cert] [PROXY-URL] REMOTE:PORT FAR:PORT\n"
	      "                                         a local UDP port tunnelled through the\n"
	      "                                         proxy and the stpd at REMOTE to FAR\n"
	      "                                         (X'20'; password: STP_TUNNEL_PASSWORD)\n"
	      "       stp mcast join GROUP:PORT [--send] [--source ADDR]...\n"
	      "                                         receive a multicast group through the\n"
	      "                                         proxy (stdin lines sent with --send);\n"
	      "                                         see stp mcast --help\n"
	      "       stp status [--metrics] http://HOST:PORT\n"
	      "                                         stpd's status (sessions, counters) from\n"
	      "                                         its metrics listener; --metrics: Prometheus\n",
	      f);
	/* two strings: C17 promises string literals of 4095 bytes only */
	fputs("options:\n"
	      "  --proxy URL        socks5://, socks5h://, socks4://, socks4a://[user:pass@]host[:port]\n"
	      "                     TLS: socks5+tls:// (any scheme +tls), socks5s:// (method X'86'),\n"
	      "                     with ?ca=FILE&cert=FILE&key=FILE&sni=NAME&udp-naked=1\n"
	      "                     (default: $STP_PROXY, else $ALL_PROXY)\n"
	      "  --timeout SECONDS  handshake deadline (default 30); also bounds the wait for a\n"
	      "                     BIND peer and for UDP replies after stdin ends (default 2)\n"
	      "  --ca FILE          TLS proxies: trust the CAs in FILE (as ?ca=FILE)\n"
	      "  --insecure         TLS proxies: do not verify the certificate (as ?insecure=1)\n"
	      "  --dns ADDR[:PORT]  resolve: ask this DNS server through a UDP ASSOCIATE\n"
	      "                     instead of the proxy's own resolver\n"
	      "  --listen ADDR:PORT dns: where the stub listens (default 127.0.0.1:53;\n"
	      "                     port 0: any, printed on stderr)\n"
	      "  --autoconfig       ask the proxy for its configuration (X'F4') even with --proxy;\n"
	      "                     with only $STP_PROXY it is asked unless STP_AUTOCONF=0\n"
	      "  --no-autoconfig    never ask\n"
	      "  --json             features: print JSON\n"
	      "  --udp, --tcp       transparent: the protocol forwarded\n"
	      "  --local ADDR:PORT  transparent: where to listen ([V6]:PORT for IPv6)\n"
	      "  --mux              connect: a stream of a multiplexed connection (X'30')\n"
	      "  -v, --verbose      debug lines on stderr\n"
	      "  -h, --help         this text\n"
	      "  --version          print the version\n"
	      "exit codes:\n"
	      "  0 ok, 1 usage, 2 bad proxy URL (or none set), 3 proxy unreachable,\n"
	      "  4 authentication failed (or no acceptable method), 5 protocol error,\n"
	      "  6 timeout, 7 local error, 8 name not found (resolve),\n"
	      "  9 SOCKS4 request rejected, 10 + N the proxy replied X'0N' (11 general failure,\n"
	      "  12 not allowed, 13 network unreachable, 14 host unreachable, 15 connection\n"
	      "  refused, 16 TTL expired, 17 command not supported, 18 address type not\n"
	      "  supported), 20 another reply code, 21 TLS handshake failed or the proxy's\n"
	      "  certificate not trusted / for another name\n",
	      f);
}

int cli_exit_code(enum stp_err err)
{
	int rep = stp_err_rep(err);

	if (rep > 0)
		return CLI_EXIT_REP_BASE + rep;
	switch (err) {
	case STP_OK: return CLI_EXIT_OK;
	case STP_ERR_URL_SCHEME:
	case STP_ERR_URL_USERINFO:
	case STP_ERR_URL_HOST:
	case STP_ERR_URL_PORT:
	case STP_ERR_URL_SYNTAX:
	case STP_ERR_NO_PROXY: return CLI_EXIT_BAD_URL;
	case STP_ERR_PROXY_RESOLVE:
	case STP_ERR_PROXY_UNREACHABLE: return CLI_EXIT_UNREACHABLE;
	case STP_ERR_NO_METHOD:
	case STP_ERR_AUTH_FAILED: return CLI_EXIT_AUTH;
	case STP_ERR_PROXY_CLOSED:
	case STP_ERR_PROTOCOL: return CLI_EXIT_PROTOCOL;
	case STP_ERR_TIMEOUT: return CLI_EXIT_TIMEOUT;
	case STP_ERR_REP_OTHER: return CLI_EXIT_REP_OTHER;
	case STP_ERR_URL_OPTION:
	case STP_ERR_TLS_CONFIG: return CLI_EXIT_BAD_URL;
	case STP_ERR_GSS_CREDENTIALS:
	case STP_ERR_GSS_REFUSED:
	case STP_ERR_GSS_PROTECTION: return CLI_EXIT_AUTH;
	case STP_ERR_TLS_HANDSHAKE:
	case STP_ERR_TLS_UNTRUSTED:
	case STP_ERR_TLS_NAME: return CLI_EXIT_TLS;
	case STP_ERR_SOCKS4_REJECTED:
	case STP_ERR_SOCKS4_NO_IDENTD:
	case STP_ERR_SOCKS4_IDENT_MISMATCH: return CLI_EXIT_SOCKS4;
	default: return CLI_EXIT_LOCAL;
	}
}

int cli_fail(const struct cli_opts *o, const char *what, enum stp_err err)
{
	int e = errno;
	char url[600];

	if (err == STP_ERR_PROXY_UNREACHABLE || err == STP_ERR_PROXY_RESOLVE) {
		fprintf(stderr, "stp: %s: %s (%s)%s%s\n", what, stp_strerror(err),
			stp_proxy_str(&o->proxy, url, sizeof(url)),
			err == STP_ERR_PROXY_UNREACHABLE && e ? ": " : "",
			err == STP_ERR_PROXY_UNREACHABLE && e ? strerror(e) : "");
	} else {
		/* TLS failures carry OpenSSL's reason (stp_err_detail). */
		const char *detail = stp_err_detail();
		fprintf(stderr, "stp: %s: %s%s%s\n", what, stp_strerror(err), *detail ? ": " : "",
			detail);
	}
	return cli_exit_code(err);
}

static _Noreturn void cli_usage_exit(const char *why)
{
	if (why)
		fprintf(stderr, "stp: %s\n", why);
	cli_usage(stderr);
	exit(CLI_EXIT_USAGE);
}

uint16_t cli_port(const char *s, bool zero_ok)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < (zero_ok ? 0 : 1) || v > 65535) {
		fprintf(stderr, "stp: bad port '%s'\n", s);
		exit(CLI_EXIT_USAGE);
	}
	return (uint16_t)v;
}

int cli_hostport(const char *s, char *host, size_t cap, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	size_t n;

	if (!colon || colon == s)
		return -1;
	n = (size_t)(colon - s);
	if (s[0] == '[' && n >= 2 && s[n - 1] == ']') {
		s++;
		n -= 2;
	}
	if (n == 0 || n >= cap)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	*port = cli_port(colon + 1, false);
	return 0;
}

static int cli_timeout(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end != '\0' || !(v >= 0) || v > 86400)
		cli_usage_exit("--timeout wants seconds (0 to 86400)");
	return (int)(v * 1000);
}

/* --ca and --insecure: the URL's TLS options, for TLS proxies only. */
static void cli_tls_options(struct cli_opts *o)
{
	if (!o->ca && !o->insecure)
		return;
	if (o->proxy.tls.mode == STP_TLS_NONE) {
		fprintf(stderr, "stp: --ca and --insecure need a TLS proxy URL "
				"(socks5+tls://, socks5h+tls://, socks5s://, socks5hs://)\n");
		exit(CLI_EXIT_USAGE);
	}
	if (o->ca && snprintf(o->proxy.tls.ca, sizeof(o->proxy.tls.ca), "%s", o->ca) >=
			     (int)sizeof(o->proxy.tls.ca)) {
		fprintf(stderr, "stp: --ca: path too long\n");
		exit(CLI_EXIT_USAGE);
	}
	if (o->insecure)
		o->proxy.tls.insecure = true;
}

/* The served configuration (docs/client.md "Auto-configuration"): asked
 * for when the proxy comes from the environment alone (STP_AUTOCONF=0
 * turns that off) or with --autoconfig; it may change the proxy (host,
 * port, socks5/socks5h, credentials), and connect follows its routes. A
 * proxy without it (X'07', X'02') leaves everything as it was. */
static void cli_autoconfig(struct cli_opts *o)
{
	const char *env = getenv("STP_AUTOCONF");
	bool want = o->autoconfig == 1 || strcmp(o->cmd, "autoconfig") == 0 ||
		    (o->autoconfig < 0 && o->proxy_url == NULL && !(env && strcmp(env, "0") == 0));
	enum stp_err err;

	if (!want)
		return;
	o->ac = stp_autoconf_get(&o->proxy, o->timeout_ms, &err);
	if (o->ac == NULL) {
		if (o->verbose)
			fprintf(stderr, "stp: autoconfig: %s\n", stp_strerror(err));
		o->autoconfig_err = err;
		return;
	}
	if (stp_autoconf_apply(o->ac, &o->proxy, &err) < 0) {
		fprintf(stderr, "stp: autoconfig: %s\n", stp_strerror(err));
		exit(CLI_EXIT_BAD_URL);
	}
	if (o->verbose)
		fprintf(stderr, "stp: autoconfig: profile %s\n", stp_autoconf_profile(o->ac));
}

void cli_load_proxy(struct cli_opts *o)
{
	const char *url = o->proxy_url;
	enum stp_err err;
	int rc = url ? stp_proxy_parse(&o->proxy, url, &err) : stp_proxy_from_env(&o->proxy, &err);

	if (rc < 0) {
		fprintf(stderr, "stp: %s%s%s%s\n", stp_strerror(err), url ? " ('" : "",
			url ? url : "", url ? "')" : "");
		exit(CLI_EXIT_BAD_URL);
	}
	cli_tls_options(o);
	cli_autoconfig(o);
}

void cli_parse(struct cli_opts *o, int argc, char **argv)
{
	enum { OPT_PROXY = 256, OPT_TIMEOUT, OPT_DNS, OPT_CA, OPT_INSECURE, OPT_LISTEN, OPT_AC,
	       OPT_NO_AC, OPT_JSON, OPT_UDP, OPT_TCP, OPT_LOCAL,
	       OPT_TUNNEL_TLS, OPT_TUNNEL_USER, OPT_TUNNEL_CERT, OPT_VERSION, OPT_MUX };
	static const struct option longopts[] = {
		{ "proxy", required_argument, NULL, OPT_PROXY },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "dns", required_argument, NULL, OPT_DNS },
		{ "ca", required_argument, NULL, OPT_CA },
		{ "insecure", no_argument, NULL, OPT_INSECURE },
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "autoconfig", no_argument, NULL, OPT_AC },
		{ "no-autoconfig", no_argument, NULL, OPT_NO_AC },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "udp", no_argument, NULL, OPT_UDP },
		{ "tcp", no_argument, NULL, OPT_TCP },
		{ "local", required_argument, NULL, OPT_LOCAL },
		{ "tls", no_argument, NULL, OPT_TUNNEL_TLS },
		{ "tunnel-user", required_argument, NULL, OPT_TUNNEL_USER },
		{ "tunnel-cert", no_argument, NULL, OPT_TUNNEL_CERT },
		{ "mux", no_argument, NULL, OPT_MUX },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->timeout_ms = 30000;
	o->autoconfig = -1;
	while ((ch = getopt_long(argc, argv, "vh", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_PROXY: o->proxy_url = optarg; break;
		case OPT_TIMEOUT:
			o->timeout_ms = cli_timeout(optarg);
			o->timeout_set = true;
			break;
		case OPT_DNS: o->dns = optarg; break;
		case OPT_CA: o->ca = optarg; break;
		case OPT_INSECURE: o->insecure = true; break;
		case OPT_LISTEN: o->listen = optarg; break;
		case OPT_AC: o->autoconfig = 1; break;
		case OPT_NO_AC: o->autoconfig = 0; break;
		case OPT_JSON: o->json = true; break;
		case OPT_UDP: o->ptcl = STP_PTCL_UDP; break;
		case OPT_TCP: o->ptcl = STP_PTCL_TCP; break;
		case OPT_LOCAL: o->local = optarg; break;
		case OPT_TUNNEL_TLS: o->tunnel_tls = true; break;
		case OPT_TUNNEL_USER: o->tunnel_user = optarg; break;
		case OPT_TUNNEL_CERT: o->tunnel_cert = true; break;
		case OPT_VERSION: printf("stp %s\n", STP_VERSION); exit(CLI_EXIT_OK);
		case OPT_MUX: o->mux = true; break;
		case 'v': o->verbose = true; break;
		case 'h': cli_usage(stdout); exit(CLI_EXIT_OK);
		default: cli_usage_exit(NULL);
		}
	}
	if (optind >= argc)
		cli_usage_exit("no command given");
	o->cmd = argv[optind];
	o->args = argv + optind + 1;
	o->nargs = argc - optind - 1;
	if (o->verbose)
		stp_set_debug(true);
}
