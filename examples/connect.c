/*
 * connect.c - the smallest libstp program: connect to HOST PORT through
 * the proxy in $STP_PROXY (or $ALL_PROXY), send one line, print the reply.
 *
 *   STP_PROXY=socks5h://127.0.0.1:1080 ./stp-example-connect example.com 7 hello
 *
 * Build outside the tree: cc connect.c $(pkg-config --cflags --libs libstp)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stp/stp.h>

int main(int argc, char **argv)
{
	struct stp_proxy proxy;
	enum stp_err err;
	char line[1024], reply[4096];
	ssize_t n;
	int fd;

	if (argc < 3) {
		fprintf(stderr, "usage: %s HOST PORT [LINE]\n", argv[0]);
		return 1;
	}
	if (stp_proxy_from_env(&proxy, &err) < 0) {
		fprintf(stderr, "proxy: %s\n", stp_strerror(err));
		return 2;
	}
	fd = stp_connect(&proxy, argv[1], (uint16_t)atoi(argv[2]), 10000, &err);
	if (fd < 0) {
		fprintf(stderr, "connect: %s\n", stp_strerror(err));
		return 3;
	}
	snprintf(line, sizeof(line), "%s\n", argc > 3 ? argv[3] : "hello");
	if (write(fd, line, strlen(line)) < 0) {
		perror("write");
		return 3;
	}
	n = read(fd, reply, sizeof(reply) - 1);
	if (n > 0) {
		reply[n] = '\0';
		fputs(reply, stdout);
	}
	close(fd);
	return n > 0 ? 0 : 3;
}
