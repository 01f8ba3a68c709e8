/*
 * authfile.c - the RFC 1929 password file: one "user:hash[:g1,g2]" per
 * line, '#' comments and blank lines allowed. Loaded once into a sorted
 * array; checks are read-only and so thread-safe.
 */
#include "auth/auth.h"
#include "auth/authint.h"

#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define AUTHFILE_LINE_MAX 4096

struct authfile_entry {
	char *line; /* owns the bytes user, hash and groups point into */
	const char *user;
	const char *hash;
	const char **groups;
	size_t n_groups;
	unsigned lineno;
};

struct authfile {
	struct authfile_entry *ents;
	size_t n, cap;
	/* Checked against for unknown users, so that they cost as much as a
	 * wrong password (a hash of a random password, never matched). */
	char dummy[CRYPT_OUTPUT_SIZE];
};

/* Collects the first error as "file:line: message" and counts the rest. */
struct authfile_err {
	const char *path;
	char *buf;
	size_t len;
	unsigned count;
};

static void __attribute__((format(printf, 3, 4)))
authfile_error(struct authfile_err *e, unsigned lineno, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (e->count++ > 0 || e->len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (lineno > 0)
		snprintf(e->buf, e->len, "%s:%u: %s", e->path, lineno, msg);
	else
		snprintf(e->buf, e->len, "%s: %s", e->path, msg);
}

static bool
authfile_blank(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return *s == '\0' || *s == '#';
}

/* Splits "g1,g2" in place into e->groups. The list was validated. */
static int
authfile_split_groups(struct authfile_entry *e, char *list)
{
	if (*list == '\0')
		return 0;
	e->groups = calloc(AUTH_GROUPS_MAX, sizeof(*e->groups));
	if (e->groups == NULL)
		return -1;
	for (char *p = list; p != NULL;) {
		char *comma = strchr(p, ',');
		if (comma != NULL)
			*comma++ = '\0';
		e->groups[e->n_groups++] = p;
		p = comma;
	}
	return 0;
}

/* Parses one non-blank line (owned by e on success). NULL or the reason. */
static const char *
authfile_parse_line(struct authfile_entry *e, char *line)
{
	char *colon = strchr(line, ':');
	if (colon == NULL)
		return "bad line: expected user:hash[:group,...]";
	*colon = '\0';
	const char *why = authfile_user_invalid(line);
	if (why != NULL)
		return why;
	char *hash = colon + 1;
	char *groups = strchr(hash, ':');
	if (groups != NULL) {
		*groups++ = '\0';
		if (strchr(groups, ':') != NULL)
			return "bad line: too many ':' fields";
		if ((why = authfile_groups_invalid(groups)) != NULL)
			return why;
	}
	if (*hash == '\0')
		return "empty password hash";
	if (!authcrypt_known(hash))
		return "not a supported crypt(3) hash (want $y$, $2b$, $2y$, $6$ or $5$)";
	e->line = line;
	e->user = line;
	e->hash = hash;
	if (groups != NULL && authfile_split_groups(e, groups) < 0)
		return "out of memory";
	return NULL;
}

static int
authfile_push(struct authfile *f, const struct authfile_entry *e)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 16;
		struct authfile_entry *n = reallocarray(f->ents, cap, sizeof(*n));
		if (n == NULL)
			return -1;
		f->ents = n;
		f->cap = cap;
	}
	f->ents[f->n++] = *e;
	return 0;
}

static void
authfile_read_lines(struct authfile *f, FILE *fp, struct authfile_err *err)
{
	char *buf = NULL;
	size_t bufcap = 0;
	ssize_t len;
	unsigned lineno = 0;

	while ((len = getline(&buf, &bufcap, fp)) >= 0) {
		lineno++;
		if (len > 0 && buf[len - 1] == '\n')
			buf[--len] = '\0';
		if ((size_t)len != strlen(buf)) {
			authfile_error(err, lineno, "NUL byte in line");
			continue;
		}
		if (len > AUTHFILE_LINE_MAX) {
			authfile_error(err, lineno, "line too long");
			continue;
		}
		if (authfile_blank(buf))
			continue;
		if (strchr(buf, '\r') != NULL) {
			authfile_error(err, lineno, "carriage return in line (DOS line ends?)");
			continue;
		}
		struct authfile_entry e = { .lineno = lineno };
		char *copy = strdup(buf);
		const char *why = copy != NULL ? authfile_parse_line(&e, copy) : "out of memory";
		if (why == NULL && authfile_push(f, &e) < 0)
			why = "out of memory";
		if (why != NULL) {
			authfile_error(err, lineno, "%s", why);
			free(e.groups);
			free(copy);
		}
	}
	if (ferror(fp))
		authfile_error(err, 0, "read error: %s", strerror(errno));
	free(buf);
}

static int
authfile_cmp(const void *a, const void *b)
{
	const struct authfile_entry *x = a, *y = b;
	return strcmp(x->user, y->user);
}

/* Sorts for bsearch; the sort puts duplicates side by side. */
static void
authfile_sort(struct authfile *f, struct authfile_err *err)
{
	if (f->n > 1)
		qsort(f->ents, f->n, sizeof(*f->ents), authfile_cmp);
	unsigned first = 0, dup = 0;
	const char *name = NULL;
	for (size_t i = 1; i < f->n; i++) {
		const struct authfile_entry *a = &f->ents[i - 1], *b = &f->ents[i];
		if (strcmp(a->user, b->user) != 0)
			continue;
		unsigned lo = a->lineno < b->lineno ? a->lineno : b->lineno;
		unsigned hi = a->lineno ^ b->lineno ^ lo;
		if (dup == 0 || hi < dup) {
			dup = hi;
			first = lo;
			name = a->user;
		}
	}
	if (dup != 0)
		authfile_error(err, dup, "duplicate user '%s' (first on line %u)", name, first);
}

/* The dummy copies the settings (algorithm and cost) of the most common
 * hash kind in the file, so unknown users take as long as real ones. */
static int
authfile_make_dummy(struct authfile *f, struct authfile_err *err)
{
	unsigned char rnd[16];
	char pw[sizeof(rnd) * 2 + 1];
	const char *why = NULL;
	int rc;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		authfile_error(err, 0, "getrandom: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(pw + 2 * i, 3, "%02x", rnd[i]);
	size_t count[AUTHCRYPT_KINDS] = { 0 };
	const struct authfile_entry *first[AUTHCRYPT_KINDS] = { NULL };
	for (size_t i = 0; i < f->n; i++) {
		int k = authcrypt_kind(f->ents[i].hash); /* >= 0: validated */
		if (count[k]++ == 0)
			first[k] = &f->ents[i];
	}
	const struct authfile_entry *best = NULL;
	for (size_t k = 0, best_n = 0; k < AUTHCRYPT_KINDS; k++) {
		if (count[k] > best_n) {
			best_n = count[k];
			best = first[k];
		}
	}
	if (best != NULL)
		rc = authcrypt_crypt(pw, best->hash, f->dummy, sizeof(f->dummy), &why);
	else
		rc = authcrypt_hash("$y$", pw, f->dummy, sizeof(f->dummy), &why);
	explicit_bzero(pw, sizeof(pw));
	if (rc < 0)
		authfile_error(err, 0, "cannot make the dummy hash: %s", why);
	return rc;
}

struct authfile *
authfile_load(const char *path, char *errbuf, size_t errlen)
{
	struct authfile_err err = { .path = path, .buf = errbuf, .len = errlen };
	struct authfile *f = calloc(1, sizeof(*f));
	if (f == NULL) {
		authfile_error(&err, 0, "out of memory");
		return NULL;
	}
	FILE *fp = fopen(path, "re");
	if (fp == NULL) {
		int e = errno;
		/* A fresh machine has no users file yet: say how to make one. */
		if (e == ENOENT)
			authfile_error(&err, 0, "%s (create it with: stpd passwd %s USER)",
				       strerror(e), path);
		else
			authfile_error(&err, 0, "%s", strerror(e));
		free(f);
		return NULL;
	}
	authfile_read_lines(f, fp, &err);
	fclose(fp);
	if (err.count == 0)
		authfile_sort(f, &err);
	if (err.count == 0)
		authfile_make_dummy(f, &err);
	if (err.count > 1) {
		size_t n = strlen(errbuf);
		snprintf(errbuf + n, errlen - n, " (and %u more errors)", err.count - 1);
	}
	if (err.count > 0) {
		authfile_free(f);
		return NULL;
	}
	return f;
}

void
authfile_free(struct authfile *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n; i++) {
		free(f->ents[i].groups);
		free(f->ents[i].line);
	}
	free(f->ents);
	free(f);
}

static const struct authfile_entry *
authfile_find(const struct authfile *f, const char *user)
{
	struct authfile_entry key = { .user = user };
	if (f->n == 0)
		return NULL;
	return bsearch(&key, f->ents, f->n, sizeof(*f->ents), authfile_cmp);
}

bool
authfile_check(const struct authfile *f, const char *user, const char *pass,
	       const char *const **groups, size_t *n_groups)
{
	if (groups != NULL)
		*groups = NULL;
	if (n_groups != NULL)
		*n_groups = 0;
	size_t ulen = strnlen(user, AUTH_NAME_MAX + 1);
	size_t plen = strnlen(pass, AUTH_NAME_MAX + 1);
	if (ulen == 0 || ulen > AUTH_NAME_MAX || plen == 0 || plen > AUTH_NAME_MAX)
		return false;
	const struct authfile_entry *e = authfile_find(f, user);
	/* Always pay for one crypt, whether or not the user exists. */
	bool match = authcrypt_verify(pass, e != NULL ? e->hash : f->dummy);
	if (e == NULL || !match)
		return false;
	if (groups != NULL)
		*groups = e->groups;
	if (n_groups != NULL)
		*n_groups = e->n_groups;
	return true;
}
