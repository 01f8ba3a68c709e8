/*
 * netrc.c - the user and password ~/.netrc (or $NETRC) holds for a host,
 * as ftp(1) and curl read it: whitespace-separated tokens, "machine NAME"
 * or "default" starting an entry, "login" and "password" inside it,
 * "macdef" skipping to the next empty line. The first matching machine
 * wins, "default" is used when none matches. Used by auto-configuration
 * (`credentials netrc`, docs/client.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client/client.h"

#define NETRC_TOKEN_MAX 256

/* The next token of f into tok; false at the end. A token longer than the
 * buffer is cut (it matches nothing). */
static bool netrc_token(FILE *f, char *tok, size_t cap)
{
	int c;
	size_t n = 0;

	while ((c = getc(f)) != EOF && (c == ' ' || c == '\t' || c == '\n' || c == '\r'))
		;
	if (c == EOF)
		return false;
	do {
		if (n + 1 < cap)
			tok[n++] = (char)c;
	} while ((c = getc(f)) != EOF && c != ' ' && c != '\t' && c != '\n' && c != '\r');
	tok[n] = '\0';
	return true;
}

/* macdef NAME: its body runs to the first empty line. */
static void netrc_skip_macro(FILE *f)
{
	int c, prev = 0;
	while ((c = getc(f)) != EOF && !(c == '\n' && prev == '\n'))
		prev = c;
}

int client_netrc_lookup(const char *host, char *user, size_t ucap, char *pass, size_t pcap)
{
	char path[STP_PATH_MAX], tok[NETRC_TOKEN_MAX];
	const char *env = getenv("NETRC"), *home = getenv("HOME");
	/* 0 outside an entry, 1 in the matching one, 2 in another. */
	int in = 0, found = 0;
	char d_user[NETRC_TOKEN_MAX] = "", d_pass[NETRC_TOKEN_MAX] = "";
	bool have_default = false, in_default = false;

	if (env && *env)
		snprintf(path, sizeof(path), "%s", env);
	else if (home && *home)
		snprintf(path, sizeof(path), "%s/.netrc", home);
	else
		return -1;
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	user[0] = pass[0] = '\0';
	while (found == 0 && netrc_token(f, tok, sizeof(tok))) {
		bool next = strcmp(tok, "machine") == 0 || strcmp(tok, "default") == 0;
		if (next && in == 1) { /* the matching entry is over */
			found = 1;
		} else if (strcmp(tok, "machine") == 0) {
			if (netrc_token(f, tok, sizeof(tok)))
				in = strcasecmp(tok, host) == 0 ? 1 : 2;
			in_default = false;
		} else if (strcmp(tok, "default") == 0) {
			in = 2;
			in_default = have_default = true;
		} else if (strcmp(tok, "login") == 0 || strcmp(tok, "password") == 0) {
			bool login = tok[0] == 'l';
			if (!netrc_token(f, tok, sizeof(tok)))
				break;
			char *dst = in == 1    ? (login ? user : pass) :
				    in_default ? (login ? d_user : d_pass) :
						 NULL;
			size_t cap = in == 1 ? (login ? ucap : pcap) : NETRC_TOKEN_MAX;
			if (dst)
				snprintf(dst, cap, "%s", tok);
		} else if (strcmp(tok, "account") == 0) {
			netrc_token(f, tok, sizeof(tok));
		} else if (strcmp(tok, "macdef") == 0) {
			netrc_token(f, tok, sizeof(tok));
			netrc_skip_macro(f);
		}
	}
	fclose(f);
	if (in == 1 && user[0])
		return 0;
	if (have_default && d_user[0]) {
		snprintf(user, ucap, "%s", d_user);
		snprintf(pass, pcap, "%s", d_pass);
		return 0;
	}
	return -1;
}
