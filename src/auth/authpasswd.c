/*
 * authpasswd.c - `stpd passwd [--group G1,G2] FILE USER`: sets USER's
 * password in the password file, atomically (temp file in the same
 * directory, fsync, rename), keeping every other line and comment.
 */
#include "auth/auth.h"
#include "auth/authint.h"

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AUTHPASSWD_USAGE "usage: stpd passwd [--group G1,G2] FILE USER\n"

struct authpasswd_req {
	const char *path;
	const char *user;
	const char *groups; /* NULL: keep the line's groups */
	char hash[CRYPT_OUTPUT_SIZE];
};

/* The temp file: same directory (so rename is atomic), same mode and
 * owner as the file it replaces, 0600 for a new file. */
struct authpasswd_tmp {
	char path[4096];
	int fd;
	FILE *fp;
};

static int
authpasswd_args(int argc, char **argv, struct authpasswd_req *rq)
{
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		} else if (strcmp(argv[i], "--group") == 0 && i + 1 < argc) {
			rq->groups = argv[++i];
		} else if (strncmp(argv[i], "--group=", 8) == 0) {
			rq->groups = argv[i] + 8;
		} else {
			return -1;
		}
	}
	if (argc - i != 2)
		return -1;
	rq->path = argv[i];
	rq->user = argv[i + 1];
	return 0;
}

static int
authpasswd_tmp_open(struct authpasswd_tmp *t, const char *path, const struct stat *st)
{
	if ((size_t)snprintf(t->path, sizeof(t->path), "%s.XXXXXX", path) >= sizeof(t->path)) {
		fprintf(stderr, "stpd passwd: %s: path too long\n", path);
		return -1;
	}
	if ((t->fd = mkostemp(t->path, O_CLOEXEC)) < 0) {
		fprintf(stderr, "stpd passwd: %s: %s\n", t->path, strerror(errno));
		return -1;
	}
	if (st != NULL) {
		/* Best effort: only root can give the file away. */
		if (fchown(t->fd, st->st_uid, st->st_gid) < 0 && errno != EPERM)
			fprintf(stderr, "stpd passwd: chown %s: %s\n", t->path, strerror(errno));
		fchmod(t->fd, st->st_mode & 07777);
	}
	if ((t->fp = fdopen(t->fd, "w")) == NULL) {
		fprintf(stderr, "stpd passwd: %s: %s\n", t->path, strerror(errno));
		close(t->fd);
		unlink(t->path);
		return -1;
	}
	return 0;
}

/* Flushes to disk and renames over path; then syncs the directory so the
 * rename itself survives a crash. */
static int
authpasswd_tmp_commit(struct authpasswd_tmp *t, const char *path)
{
	bool ok = fflush(t->fp) == 0 && fsync(t->fd) == 0;
	int err = errno;
	if (fclose(t->fp) != 0 && ok) {
		ok = false;
		err = errno;
	}
	if (ok && rename(t->path, path) < 0) {
		ok = false;
		err = errno;
	}
	if (!ok) {
		fprintf(stderr, "stpd passwd: writing %s: %s\n", path, strerror(err));
		unlink(t->path);
		return -1;
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", path);
	int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* "user:..." for this user? Comments and blank lines never are. */
static bool
authpasswd_is_user(const char *line, const char *user)
{
	size_t n = strlen(user);
	return line[0] != '#' && strncmp(line, user, n) == 0 && line[n] == ':';
}

static void
authpasswd_write_entry(FILE *out, const struct authpasswd_req *rq, const char *old)
{
	const char *groups = rq->groups;

	if (groups == NULL && old != NULL) {
		/* old is "user:hash[:groups]\n": keep the third field. */
		const char *g = strchr(old + strlen(rq->user) + 1, ':');
		groups = g != NULL ? g + 1 : NULL;
	}
	size_t glen = groups != NULL ? strcspn(groups, "\n") : 0;
	fprintf(out, "%s:%s%s%.*s\n", rq->user, rq->hash, glen > 0 ? ":" : "", (int)glen,
		groups != NULL ? groups : "");
}

/* Copies in to out, replacing the user's line (or appending one). Returns
 * 1 when it replaced a line, 0 when it appended. */
static int
authpasswd_copy(FILE *in, FILE *out, const struct authpasswd_req *rq)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int replaced = 0;

	while (in != NULL && (len = getline(&line, &cap, in)) >= 0) {
		if (!authpasswd_is_user(line, rq->user)) {
			fputs(line, out);
			if (len > 0 && line[len - 1] != '\n')
				fputc('\n', out);
		} else if (!replaced) {
			authpasswd_write_entry(out, rq, line);
			replaced = 1;
		} else {
			fprintf(stderr, "stpd passwd: dropping a duplicate line for '%s'\n", rq->user);
		}
	}
	free(line);
	if (!replaced)
		authpasswd_write_entry(out, rq, NULL);
	return replaced;
}

static int
authpasswd_rewrite(const struct authpasswd_req *rq)
{
	struct authpasswd_tmp t;
	struct stat st;

	FILE *in = fopen(rq->path, "re");
	if (in == NULL && errno != ENOENT) {
		fprintf(stderr, "stpd passwd: %s: %s\n", rq->path, strerror(errno));
		return -1;
	}
	if (in != NULL && fstat(fileno(in), &st) < 0) {
		fprintf(stderr, "stpd passwd: %s: %s\n", rq->path, strerror(errno));
		fclose(in);
		return -1;
	}
	if (authpasswd_tmp_open(&t, rq->path, in != NULL ? &st : NULL) < 0) {
		if (in != NULL)
			fclose(in);
		return -1;
	}
	int replaced = authpasswd_copy(in, t.fp, rq);
	bool rerr = in != NULL && ferror(in);
	if (in != NULL)
		fclose(in);
	if (rerr) {
		fprintf(stderr, "stpd passwd: reading %s failed\n", rq->path);
		fclose(t.fp);
		unlink(t.path);
		return -1;
	}
	if (authpasswd_tmp_commit(&t, rq->path) < 0)
		return -1;
	fprintf(stderr, "stpd passwd: %s user '%s' in %s\n", replaced ? "updated" : "added",
		rq->user, rq->path);
	return 0;
}

int
authfile_passwd_main(int argc, char **argv)
{
	struct authpasswd_req rq = { 0 };
	char pw[AUTH_NAME_MAX + 1];
	const char *why;

	if (authpasswd_args(argc, argv, &rq) < 0) {
		fputs(AUTHPASSWD_USAGE, stderr);
		return 2;
	}
	if ((why = authfile_user_invalid(rq.user)) != NULL ||
	    (rq.groups != NULL && (why = authfile_groups_invalid(rq.groups)) != NULL)) {
		fprintf(stderr, "stpd passwd: %s\n", why);
		return 1;
	}
	if (authpw_read(pw, sizeof(pw)) < 0)
		return 1;
	int rc = authcrypt_hash("$y$", pw, rq.hash, sizeof(rq.hash), &why);
	explicit_bzero(pw, sizeof(pw));
	if (rc < 0) {
		fprintf(stderr, "stpd passwd: %s\n", why);
		return 1;
	}
	return authpasswd_rewrite(&rq) < 0 ? 1 : 0;
}
