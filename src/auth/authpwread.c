/*
 * authpwread.c - reads the new password for `stpd passwd`: twice with echo
 * off from the controlling terminal, or one line from a pipe or file.
 */
#include "auth/authint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* Reads one line (without its '\n') into pw. Returns its length, or -1 on
 * a read error, a NUL byte, or a line that does not fit in cap - 1 bytes. An EOF ends
 * the line like '\n' does. */
static ssize_t
authpw_read_line(int fd, char *pw, size_t cap)
{
	size_t n = 0;
	bool toolong = false;

	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0 || c == '\n')
			break;
		if (c == '\0')
			toolong = true; /* cannot be passed on as a C string */
		else if (n + 1 < cap)
			pw[n++] = c;
		else
			toolong = true; /* keep reading: swallow the rest of the line */
		c = 0;
	}
	pw[n] = '\0';
	if (toolong)
		return -1;
	return (ssize_t)n;
}

static ssize_t
authpw_prompt(int fd, const char *prompt, char *pw, size_t cap)
{
	if (write(fd, prompt, strlen(prompt)) < 0)
		return -1;
	return authpw_read_line(fd, pw, cap);
}

/* Two prompts with echo off; both answers must match. */
static int
authpw_read_tty(char *pw, size_t cap)
{
	char again[AUTH_NAME_MAX + 2];
	struct termios old, noecho;
	int rc = -1;

	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		fprintf(stderr, "stpd passwd: /dev/tty: %s\n", strerror(errno));
		return -1;
	}
	if (tcgetattr(fd, &old) < 0) {
		fprintf(stderr, "stpd passwd: /dev/tty: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)ECHO;
	noecho.c_lflag |= ECHONL;
	tcsetattr(fd, TCSAFLUSH, &noecho);
	ssize_t n1 = authpw_prompt(fd, "Password: ", pw, cap);
	ssize_t n2 = n1 < 0 ? -1 : authpw_prompt(fd, "Retype password: ", again, sizeof(again));
	tcsetattr(fd, TCSAFLUSH, &old);
	close(fd);
	if (n1 < 0 || n2 < 0)
		fprintf(stderr, "stpd passwd: password longer than %d bytes, with a NUL, or unreadable\n",
			AUTH_NAME_MAX);
	else if (n1 != n2 || authcrypt_memcmp(pw, again, (size_t)n1) != 0)
		fprintf(stderr, "stpd passwd: passwords do not match\n");
	else
		rc = 0;
	explicit_bzero(again, sizeof(again));
	return rc;
}

int
authpw_read(char *pw, size_t cap)
{
	int rc = 0;

	if (isatty(STDIN_FILENO)) {
		rc = authpw_read_tty(pw, cap);
	} else if (authpw_read_line(STDIN_FILENO, pw, cap) < 0) {
		fprintf(stderr, "stpd passwd: password longer than %d bytes, with a NUL, or unreadable\n",
			AUTH_NAME_MAX);
		rc = -1;
	}
	if (rc == 0 && pw[0] == '\0') {
		fprintf(stderr, "stpd passwd: empty password refused\n");
		rc = -1;
	}
	return rc;
}
