/*
 * cli_tunnel.c - `stp tunnel --local ADDR:PORT [--tls] [--tunnel-user USER]
 * [--tunnel-cert] [PROXY-URL] REMOTE:PORT FAR:PORT`: a local UDP port whose
 * datagrams go through a SETUP_UDP_TUNNEL (X'20', docs/protocol.md 5.10):
 * the proxy carries them to the stpd at REMOTE:PORT, which relays them to
 * FAR:PORT in its network. Programs talk to the local port as if it were
 * FAR (dig @127.0.0.1 -p 5300). The password for --tunnel-user comes from
 * the environment (STP_TUNNEL_PASSWORD), never from the command line.
 * Replies go to the local peer that sent last. Runs until killed or until
 * the tunnel ends. FAR may be a name: the remote stpd looks it up (nothing
 * here resolves it), so the datagrams' own header (which the tunnel does
 * not use) then carries 0.0.0.0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/sockaddr.h"

/* An address literal goes in the header as it is; a name would make
 * libstp resolve it here (socks5://), so the header says 0.0.0.0:PORT. */
static void send_up(struct stp_udp *u, const void *buf, size_t n, const char *far, uint16_t port)
{
	struct in6_addr a;
	enum stp_err err;
	if (inet_pton(AF_INET, far, &a) == 1 || inet_pton(AF_INET6, far, &a) == 1) {
		stp_udp_sendto(u, buf, n, far, port, &err);
		return;
	}
	struct sockaddr_in any = { .sin_family = AF_INET, .sin_port = htons(port) };
	stp_udp_sendto_sa(u, buf, n, (struct sockaddr *)&any, &err);
}

static int relay(struct stp_udp *u, int lfd, const char *far, uint16_t port)
{
	static uint8_t buf[65536];
	struct sockaddr_storage peer;
	socklen_t plen = 0;
	enum stp_err err;

	for (;;) {
		struct pollfd p[3] = {
			{ lfd, POLLIN, 0 },
			{ stp_udp_fd(u), POLLIN, 0 },
			{ stp_udp_control_fd(u), POLLIN, 0 },
		};
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return CLI_EXIT_LOCAL;
		}
		if (p[0].revents & POLLIN) {
			socklen_t l = sizeof(peer);
			ssize_t n = recvfrom(lfd, buf, sizeof(buf), 0, (struct sockaddr *)&peer,
					     &l);
			if (n >= 0) {
				plen = l;
				send_up(u, buf, (size_t)n, far, port);
			}
		}
		if (p[1].revents & (POLLIN | POLLERR)) {
			struct stp_addr src;
			ssize_t n = stp_udp_recvfrom(u, buf, sizeof(buf), &src, 0, &err);
			if (n >= 0 && plen > 0)
				sendto(lfd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
		}
		if (p[2].revents) {
			ssize_t n = recv(stp_udp_control_fd(u), buf, sizeof(buf), MSG_DONTWAIT);
			if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
				fprintf(stderr, "stp: tunnel: the proxy ended the tunnel\n");
				return CLI_EXIT_PROTOCOL;
			}
		}
	}
}

int cli_cmd_tunnel(const struct cli_opts *o)
{
	char remote[256], far[256];
	struct stp_tunnel_opts t = { .transport = o->tunnel_tls ? STP_TUNNEL_TLS :
								  STP_TUNNEL_DTLS };
	struct sockaddr_storage local;
	socklen_t len;
	enum stp_err err;
	int lfd, one = 1, rc;

	if (!o->local) {
		fprintf(stderr, "stp: tunnel: needs --local ADDR:PORT\n");
		return CLI_EXIT_USAGE;
	}
	if (cli_hostport(o->args[0], remote, sizeof(remote), &t.remote_port) < 0 ||
	    cli_hostport(o->args[1], far, sizeof(far), &t.far_port) < 0) {
		fprintf(stderr, "stp: tunnel: want REMOTE:PORT FAR:PORT\n");
		return CLI_EXIT_USAGE;
	}
	t.remote_host = remote;
	t.far_host = far;
	t.client_cert = o->tunnel_cert;
	if (o->tunnel_user) {
		t.user = o->tunnel_user;
		t.password = getenv("STP_TUNNEL_PASSWORD");
		if (!t.password || !t.password[0]) {
			fprintf(stderr, "stp: tunnel: --tunnel-user needs STP_TUNNEL_PASSWORD\n");
			return CLI_EXIT_USAGE;
		}
	}
	if (sa_parse(&local, &len, o->local, -1) < 0) {
		fprintf(stderr, "stp: tunnel: bad --local '%s'\n", o->local);
		return CLI_EXIT_USAGE;
	}
	lfd = socket(local.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(lfd, (struct sockaddr *)&local, len) < 0) {
		fprintf(stderr, "stp: tunnel: %s: %s\n", o->local, strerror(errno));
		return CLI_EXIT_LOCAL;
	}
	struct stp_udp *u = stp_tunnel_open(&o->proxy, &t, o->timeout_ms, &err);
	if (!u) {
		close(lfd);
		return cli_fail(o, "tunnel", err);
	}
	char b[STP_ADDR_STR_MAX];
	fprintf(stderr, "stp: tunnel %s -> %s via %s (%s), relay %s\n", o->local, o->args[1],
		o->args[0], o->tunnel_tls ? "tls" : "dtls",
		stp_addr_str(stp_udp_relay(u), b, sizeof(b)));
	rc = relay(u, lfd, far, t.far_port);
	stp_udp_close(u);
	close(lfd);
	return rc;
}
