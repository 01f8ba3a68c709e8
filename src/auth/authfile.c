/*
 * authfile.c - the RFC 1929 password file: one "user:hash[:g1,g2]" per
 * line, '#' comments and blank lines allowed. Loaded once into a sorted
 * array; checks are read-only and so thread-safe.
 */
#include "auth/auth.h"
#include "auth/authint.h"
#include "auth/authline.h"
#include "common/privfile.h"

#include <crypt.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

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

/* Takes one parsed line into e, with the groups copied out of the parse
 * (the strings stay in line, which e then owns). -1 when out of memory. */
static int
authfile_entry_take(struct authfile_entry *e, char *line, const struct authline *l)
{
	if (l->n_groups > 0) {
		e->groups = calloc(l->n_groups, sizeof(*e->groups));
		if (e->groups == NULL)
			return -1;
		memcpy(e->groups, l->groups, l->n_groups * sizeof(*e->groups));
		e->n_groups = l->n_groups;
	}
	e->line = line;
	e->user = l->user;
	e->hash = l->hash;
	return 0;
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

/* One line of the file (len bytes, NUL-terminated), kept when it names a
 * user, else reported unless blank. */
static void
authfile_line(struct authfile *f, const char *buf, size_t len, unsigned lineno,
	      struct authfile_err *err)
{
	struct authfile_entry e = { .lineno = lineno };
	struct authline l;
	const char *why = NULL;
	char *copy = malloc(len + 1);

	if (copy == NULL) {
		authfile_error(err, lineno, "out of memory");
		return;
	}
	memcpy(copy, buf, len + 1);
	enum authline_res res = authline_parse(&l, copy, len, &why);
	if (res == AUTHLINE_ENTRY &&
	    (authfile_entry_take(&e, copy, &l) < 0 || authfile_push(f, &e) < 0))
		why = "out of memory";
	if (res == AUTHLINE_ENTRY && why == NULL)
		return;
	if (why != NULL)
		authfile_error(err, lineno, "%s", why);
	free(e.groups);
	free(copy);
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
		authfile_line(f, buf, (size_t)len, lineno, err);
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
	FILE *fp = privfile_fopen(path);
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
