/*
 * cli.h - the `stp` command's private pieces: options, exit codes, the
 * stdin/stdout relay, and the DNS messages (on c-ares) of `stp resolve`
 * and `stp dns`.
 */
#ifndef STP_CLI_CLI_H
#define STP_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "stp/stp.h"

/* Exit codes (documented in `stp --help` and docs/client.md). */
enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_USAGE = 1,
	CLI_EXIT_BAD_URL = 2,     /* bad proxy URL, or none configured */
	CLI_EXIT_UNREACHABLE = 3, /* proxy name unresolvable, or connect refused / timed out */
	CLI_EXIT_AUTH = 4,        /* authentication failed, or no acceptable method */
	CLI_EXIT_PROTOCOL = 5,    /* the proxy broke the protocol or hung up mid-way */
	CLI_EXIT_TIMEOUT = 6,     /* --timeout passed during the handshake */
	CLI_EXIT_LOCAL = 7,       /* local trouble: bad target, I/O error */
	CLI_EXIT_NXDOMAIN = 8,    /* stp resolve: the name has no address */
	CLI_EXIT_SOCKS4 = 9,      /* a SOCKS4 proxy rejected the request (91-93) */
	CLI_EXIT_REP_BASE = 10,   /* + the SOCKS5 reply code X'01'..X'09' */
	CLI_EXIT_REP_OTHER = 20,  /* any other SOCKS5 reply code */
	CLI_EXIT_TLS = 21,        /* TLS handshake failed, proxy certificate not trusted
				   * or for another name (docs/client.md) */
};

struct cli_opts {
	const char *proxy_url; /* --proxy, or NULL for the environment */
	struct stp_proxy proxy;
	int timeout_ms;    /* handshake deadline */
	bool timeout_set;  /* --timeout given: also bounds waits for peers/replies */
	bool verbose;
	const char *dns;   /* stp resolve: ADDR[:PORT] */
	const char *listen; /* stp dns: ADDR:PORT */
	const char *ca;    /* --ca FILE: as ?ca=FILE in a TLS proxy URL */
	bool insecure;     /* --insecure: as ?insecure=1 */
	bool json;         /* --json: stp features prints JSON */
	int ptcl;          /* transparent: --udp (17) or --tcp (6) */
	const char *local; /* transparent, tunnel: --local ADDR:PORT */
	bool tunnel_tls;   /* tunnel: --tls (TLS between the servers, not DTLS) */
	bool tunnel_cert;  /* tunnel: --tunnel-cert (the proxy's certificate) */
	const char *tunnel_user; /* tunnel: --tunnel-user (STP_TUNNEL_PASSWORD) */
	bool mux;          /* connect --mux: through stp_mux_* (CMD X'30') */
	char **args;       /* after the command name */
	int nargs;
	const char *cmd;
	int autoconfig;    /* --autoconfig 1, --no-autoconfig 0, else -1 (docs/client.md) */
	struct stp_autoconf *ac; /* the proxy's served configuration, or NULL */
	enum stp_err autoconfig_err; /* why ac is NULL when it was asked for */
};

/* Parses argv; exits with CLI_EXIT_USAGE itself. */
void cli_parse(struct cli_opts *o, int argc, char **argv);
/* --proxy or the environment into o->proxy; exits with CLI_EXIT_BAD_URL. */
void cli_load_proxy(struct cli_opts *o);
void cli_usage(FILE *f);
int cli_exit_code(enum stp_err err);
/* "stp: <what>: <stp_strerror>[: <errno text>]"; returns the exit code. */
int cli_fail(const struct cli_opts *o, const char *what, enum stp_err err);
/* A port number in 1..65535 (0 allowed when zero_ok), or exits. */
uint16_t cli_port(const char *s, bool zero_ok);
/* HOST:PORT or [V6]:PORT into host (cap bytes) and *port (exits on a bad
 * port); -1 when there is no host or it does not fit. */
int cli_hostport(const char *s, char *host, size_t cap, uint16_t *port);

/* Relays stdin -> fd and fd -> stdout until both directions end; stdin EOF
 * becomes shutdown(SHUT_WR). Returns an exit code. */
int cli_relay(int fd);
/* The served configuration's word on host (port 0: any) for command what
 * (docs/client.md "Auto-configuration"): true when it goes direct; else
 * false with *via the proxy to use, the applied one or the one a `route`
 * names. Without a document: false, *via the proxy. Says so with -v. */
bool cli_route(const struct cli_opts *o, const char *what, const char *host, uint16_t port,
	       struct stp_proxy *via);

int cli_cmd_connect(const struct cli_opts *o);
int cli_cmd_bind(const struct cli_opts *o);
int cli_cmd_udp(const struct cli_opts *o);
int cli_cmd_resolve(const struct cli_opts *o);
int cli_cmd_dns(const struct cli_opts *o); /* cli_dnsproxy.c */
int cli_cmd_autoconfig(const struct cli_opts *o);
int cli_cmd_features(const struct cli_opts *o); /* cli_features.c */
int cli_cmd_lookup(const struct cli_opts *o);
int cli_cmd_transparent(const struct cli_opts *o); /* cli_transparent.c */
int cli_cmd_listen(const struct cli_opts *o);
int cli_cmd_tunnel(const struct cli_opts *o); /* cli_tunnel.c */

/* ---- DNS messages (cli_dns.c, on c-ares) ---- */
#define DNS_TYPE_A 1
#define DNS_TYPE_PTR 12
#define DNS_TYPE_AAAA 28
#define DNS_MSG_MAX 512
#define DNS_RCODE_FORMERR 1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP 4
#define DNS_RCODE_REFUSED 5

/* A query for name (no trailing dot needed) with RD set. 0 on a bad name. */
size_t dns_query_write(uint8_t *dst, size_t cap, uint16_t id, const char *name, uint16_t qtype);

struct dns_answer {
	int rcode;
	size_t naddr;
	struct {
		int family; /* AF_INET or AF_INET6 */
		uint8_t addr[16];
	} addr[16];
};
/* Parses a response to query id; -1 when it is not one (wrong id, not a
 * response, truncated, malformed). Collects A and AAAA records. */
int dns_response_parse(struct dns_answer *out, const uint8_t *p, size_t n, uint16_t id);

/* The one question of a message (QDCOUNT must be 1). */
struct dns_question {
	char name[256];    /* c-ares' spelling: no trailing dot, "" for the root */
	uint16_t id, flags, type, class;
	size_t end;        /* offset just past the question */
	uint16_t udp_size; /* a query's EDNS payload size, 0 without OPT */
};
int dns_question_parse(struct dns_question *q, const uint8_t *p, size_t n);
/* name in wire form (labels), 0 when it is not a valid name or cap too small. */
size_t dns_name_encode(uint8_t *dst, size_t cap, const char *name);

/* An answer made for a query (q parsed from query): its header and question
 * with QR and RA set, rcode, TC when tc, and one record of q's type and
 * class with rdata when rdlen > 0. Its length, or 0 when cap is too small. */
struct dns_synth {
	unsigned rcode;
	bool tc;
	const uint8_t *rdata;
	size_t rdlen;
	uint32_t ttl;
};
size_t dns_answer_synth(uint8_t *dst, size_t cap, const uint8_t *query,
			const struct dns_question *q, const struct dns_synth *a);

#endif
