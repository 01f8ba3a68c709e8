/*
 * cli_relay.c - netcat's loop: stdin -> socket and socket -> stdout, with
 * stdin's EOF passed on as a half-close, until both directions are done.
 *
 * The socket is non-blocking with a buffer toward it, so a peer that does
 * not read never stops us reading from it. stdin and stdout stay as the
 * caller gave them (their flags are shared with other processes).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/client.h"

#define RELAY_BUF 65536

struct relay {
	int fd;
	uint8_t up[RELAY_BUF]; /* stdin -> socket */
	size_t up_len, up_off;
	bool in_eof, up_done;  /* stdin ended; everything sent and SHUT_WR done */
	bool down_done;        /* socket ended and stdout has it all */
	int rc;
};

static void relay_stdin(struct relay *r)
{
	ssize_t n = read(STDIN_FILENO, r->up, sizeof(r->up));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		r->in_eof = true;
		return;
	}
	r->up_len = (size_t)n;
	r->up_off = 0;
}

static void relay_send(struct relay *r)
{
	while (r->up_off < r->up_len) {
		ssize_t n = send(r->fd, r->up + r->up_off, r->up_len - r->up_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n < 0) {
			fprintf(stderr, "stp: send: %s\n", strerror(errno));
			r->rc = CLI_EXIT_LOCAL;
			r->up_done = r->in_eof = true;
			r->up_len = r->up_off = 0;
			return;
		}
		r->up_off += (size_t)n;
	}
	r->up_len = r->up_off = 0;
}

static void relay_recv(struct relay *r)
{
	uint8_t buf[RELAY_BUF];
	ssize_t n = recv(r->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n < 0) {
		fprintf(stderr, "stp: recv: %s\n", strerror(errno));
		r->rc = CLI_EXIT_LOCAL;
		r->down_done = r->up_done = true;
		return;
	}
	if (n == 0) {
		r->down_done = true;
		close(STDOUT_FILENO); /* pass the EOF on to our reader */
		return;
	}
	if (!client_write_all(STDOUT_FILENO, buf, (size_t)n)) {
		/* Nobody reads our output any more: stop taking the peer's. */
		shutdown(r->fd, SHUT_RD);
		r->down_done = true;
	}
}

int cli_relay(int fd)
{
	static struct relay r; /* 64 KiB: keep it off the stack */

	memset(&r, 0, sizeof(r));
	r.fd = fd;
	client_set_blocking(fd, false);
	while (!(r.up_done && r.down_done)) {
		struct pollfd p[2] = { { .fd = -1 }, { .fd = fd } };
		if (!r.in_eof && r.up_len == 0) {
			p[0].fd = STDIN_FILENO;
			p[0].events = POLLIN;
		}
		if (r.up_len > 0)
			p[1].events |= POLLOUT;
		if (!r.down_done)
			p[1].events |= POLLIN;
		if (p[1].events == 0)
			p[1].fd = -1; /* else a hung-up socket would wake us forever */
		if (r.in_eof && r.up_len == 0 && !r.up_done) {
			shutdown(fd, SHUT_WR);
			r.up_done = true;
			continue;
		}
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return CLI_EXIT_LOCAL;
		}
		if (p[0].revents)
			relay_stdin(&r);
		if (p[1].revents & (POLLOUT | POLLERR))
			relay_send(&r);
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR) && !r.down_done)
			relay_recv(&r);
	}
	close(fd);
	return r.rc;
}
