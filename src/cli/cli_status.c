/*
 * cli_status.c - `stp status [--metrics] URL`: prints stpd's status (the
 * text form of its status page, /status.txt) or its Prometheus metrics
 * (/metrics) from the metrics listener (docs/operations.md). URL is
 * http://HOST:PORT[/]; the request is one HTTP/1.0 GET and the answer is
 * read to the end (the listener closes it), so all this needs of HTTP is
 * the status line and the blank line before the body.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_mcast.h"

#define STATUS_MAX (16u << 20) /* an answer larger than this is not stpd's */

static int usage(void)
{
	fprintf(stderr, "usage: stp status [--metrics] http://HOST:PORT\n");
	return CLI_EXIT_USAGE;
}

/* http://HOST:PORT[/...] into host and port ([V6] without brackets). */
static int split_url(const char *url, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *p = url, *end;

	if (strncmp(p, "http://", 7) != 0)
		return -1;
	p += 7;
	if (*p == '[') {
		end = strchr(++p, ']');
		if (!end || end[1] != ':')
			return -1;
	} else {
		end = strchr(p, ':');
		if (!end)
			return -1;
	}
	if ((size_t)(end - p) >= hcap || end == p)
		return -1;
	memcpy(host, p, (size_t)(end - p));
	host[end - p] = '\0';
	p = end + (*end == ']' ? 2 : 1);
	size_t n = strcspn(p, "/");
	if (n == 0 || n >= pcap)
		return -1;
	memcpy(port, p, n);
	port[n] = '\0';
	return 0;
}

static int dial(const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *a;
	struct timeval tv = { .tv_sec = 10 };
	int fd = -1;

	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	for (a = res; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	return fd;
}

int cli_status_main(int argc, char **argv)
{
	bool metrics = argc == 4 && strcmp(argv[2], "--metrics") == 0;
	char host[256], port[16], req[512];
	size_t len = 0, cap = 65536;
	char *buf;
	ssize_t n;

	if (argc != 3 && !metrics)
		return usage();
	if (split_url(argv[argc - 1], host, sizeof(host), port, sizeof(port)) < 0)
		return usage();
	int fd = dial(host, port);
	if (fd < 0) {
		fprintf(stderr, "stp: status: cannot connect to %s\n", argv[argc - 1]);
		return CLI_EXIT_UNREACHABLE;
	}
	int rl = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n",
			  metrics ? "/metrics" : "/status.txt", host);
	if (write(fd, req, (size_t)rl) != rl || !(buf = malloc(cap))) {
		close(fd);
		fprintf(stderr, "stp: status: cannot send the request\n");
		return CLI_EXIT_LOCAL;
	}
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (len + 1 == cap) {
			char *b = cap < STATUS_MAX ? realloc(buf, cap * 2) : NULL;
			if (!b)
				break;
			buf = b;
			cap *= 2;
		}
	}
	close(fd);
	buf[len] = '\0';
	char *body = strstr(buf, "\r\n\r\n");
	int code = 0;
	if (sscanf(buf, "HTTP/%*d.%*d %d", &code) != 1 || !body) {
		fprintf(stderr, "stp: status: no HTTP answer from %s\n", argv[argc - 1]);
		free(buf);
		return CLI_EXIT_PROTOCOL;
	}
	body += 4;
	fwrite(body, 1, len - (size_t)(body - buf), code == 200 ? stdout : stderr);
	free(buf);
	if (code != 200) {
		fprintf(stderr, "stp: status: HTTP %d from %s\n", code, argv[argc - 1]);
		return CLI_EXIT_PROTOCOL;
	}
	return 0;
}
