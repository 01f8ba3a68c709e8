/*
 * gss_keytab.c - the acceptor's keytab, copied into memory while stpd may
 * read it (docs/operations.md §8). A keytab is root's and 0600 as a rule
 * (/etc/krb5.keytab), and Kerberos opens it by name for every context,
 * which workers that dropped to `user` could not do. So the main thread
 * copies its entries into a MEMORY: keytab at start (as root, before the
 * drop: server_start) and again on every reload (SIGHUP: through the
 * broker when the file is root's, privfile_open), and sessions name that
 * copy instead of the file.
 *
 * Each load makes a new MEMORY keytab, published with one atomic pointer;
 * older ones stay open (a credential being acquired may still name one),
 * so a reload costs the keytab's size once.
 */
#include <errno.h>
#include <fcntl.h>
#include <krb5.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/privfile.h"
#include "ext/gssapi/gss_conf.h"
#include "ext/gssapi/gss_keytab.h"

struct gss_kt {
	char path[CONF_PATH_MAX]; /* as configured; "" = Kerberos's default */
	char name[64];            /* "MEMORY:stpd-gss-N" */
	krb5_keytab kt;           /* kept open: a MEMORY keytab dies with its last handle */
	struct gss_kt *older;
};

static _Atomic(struct gss_kt *) current;
static krb5_context kctx;
static unsigned generation;

/* The configured file as Kerberos opens it, or a copy of it in a memfd
 * named through /proc/self/fd when stpd (now `user`) may not open it and
 * the broker did (memfd: the fd of a root-only file cannot be opened
 * again by path). -1 in *memfd when none was needed. */
static int source_name(const char *path, char *buf, size_t cap, int *memfd, char *err,
		       size_t errlen)
{
	*memfd = -1;
	if (!path[0]) {
		krb5_kt_default_name(kctx, buf, (int)cap);
		return 0;
	}
	if (access(path, R_OK) == 0) {
		snprintf(buf, cap, "FILE:%s", path);
		return 0;
	}
	int fd = privfile_open(path);
	if (fd < 0) {
		snprintf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	*memfd = memfd_create("stpd-keytab", MFD_CLOEXEC);
	char chunk[4096];
	ssize_t n;
	while (*memfd >= 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
		if (write(*memfd, chunk, (size_t)n) != n)
			n = -1;
	close(fd);
	if (*memfd < 0) {
		snprintf(err, errlen, "copy: %s", strerror(errno));
		return -1;
	}
	snprintf(buf, cap, "FILE:/proc/self/fd/%d", *memfd);
	return 0;
}

/* Copies every entry of the source keytab into dst. */
static int copy_entries(const char *src_name, krb5_keytab dst, char *err, size_t errlen)
{
	krb5_keytab src;
	krb5_kt_cursor cur;
	krb5_keytab_entry e;
	krb5_error_code rc;
	unsigned n = 0;

	if ((rc = krb5_kt_resolve(kctx, src_name, &src)) != 0 ||
	    (rc = krb5_kt_start_seq_get(kctx, src, &cur)) != 0) {
		const char *m = krb5_get_error_message(kctx, rc);
		snprintf(err, errlen, "%s", m);
		krb5_free_error_message(kctx, m);
		return -1;
	}
	while ((rc = krb5_kt_next_entry(kctx, src, &e, &cur)) == 0) {
		if (krb5_kt_add_entry(kctx, dst, &e) == 0)
			n++;
		krb5_free_keytab_entry_contents(kctx, &e);
	}
	krb5_kt_end_seq_get(kctx, src, &cur);
	krb5_kt_close(kctx, src);
	if (n == 0) {
		snprintf(err, errlen, "no keys in it");
		return -1;
	}
	return 0;
}

int gss_keytab_load(const struct gss_conf *g, char *err, size_t errlen)
{
	char src[CONF_PATH_MAX + 32];
	int memfd;

	if (!kctx && krb5_init_context(&kctx) != 0) {
		snprintf(err, errlen, "cannot make a Kerberos context");
		return -1;
	}
	if (source_name(g->keytab, src, sizeof(src), &memfd, err, errlen) < 0)
		return -1;
	struct gss_kt *k = calloc(1, sizeof(*k));
	if (!k) {
		snprintf(err, errlen, "out of memory");
		if (memfd >= 0)
			close(memfd);
		return -1;
	}
	snprintf(k->path, sizeof(k->path), "%s", g->keytab);
	snprintf(k->name, sizeof(k->name), "MEMORY:stpd-gss-%u", ++generation);
	int rc = krb5_kt_resolve(kctx, k->name, &k->kt) != 0 ? -1 : copy_entries(src, k->kt, err,
										 errlen);
	if (memfd >= 0)
		close(memfd);
	if (rc < 0) {
		if (k->kt)
			krb5_kt_close(kctx, k->kt);
		free(k);
		return -1;
	}
	k->older = atomic_load(&current);
	atomic_store(&current, k);
	return 0;
}

const char *gss_keytab_name(const struct gss_conf *g)
{
	const struct gss_kt *k = atomic_load(&current);
	if (k && strcmp(k->path, g->keytab) == 0)
		return k->name;
	return g->keytab; /* not loaded (a keytab stpd can read itself) */
}

void gss_keytab_unload(void)
{
	struct gss_kt *k = atomic_exchange(&current, NULL);
	while (k) {
		struct gss_kt *older = k->older;
		krb5_kt_close(kctx, k->kt);
		free(k);
		k = older;
	}
	if (kctx)
		krb5_free_context(kctx);
	kctx = NULL;
}
