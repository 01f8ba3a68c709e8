/*
 * gss_keytab.c - the acceptor's keytab when stpd drops from root to `user`
 * (docs/operations.md "Privilege separation"; gss_int.h). Kerberos opens a
 * FILE: keytab by name whenever it needs a key, which a root-only (0600)
 * keytab refuses to stpd's `user`. So stpd reads the configured keytab
 * itself, at start (still root) and at every reload through privfile_open
 * (the broker opens it when its own copy of the configuration names it),
 * and copies its entries into a MEMORY: keytab, the one the sessions'
 * credentials use. krb5 parses keytab files only by name: the bytes go
 * through a memfd this process owns, read as FILE:/proc/self/fd/N (the
 * broker's descriptor cannot be re-opened that way: /proc checks the
 * file's own mode again).
 *
 * MEMORY: keytabs are process-wide and live while a handle is open: `held`
 * keeps the current copy; a session's credentials hold their own handle,
 * so a copy replaced by a reload lives on until its last session ends.
 * The rwlock keeps a copy from being dropped between a session reading its
 * name and gss_acquire_cred_from resolving it.
 */
#include <errno.h>
#include <krb5/krb5.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/privfile.h"
#include "ext/gssapi/gss_int.h"

static pthread_rwlock_t lock = PTHREAD_RWLOCK_INITIALIZER;
static char cur_path[4096];   /* the file the copy was made of ("" = none) */
static char cur_name[64];     /* MEMORY:stpd-gss-N */
static krb5_context held_ctx; /* the handle that keeps the copy alive */
static krb5_keytab held;
static unsigned generation;

/* The bytes of fd in a new memfd (offset 0), or -1 with errno. */
static int to_memfd(int fd)
{
	char buf[8192];
	ssize_t n;
	int m = memfd_create("stpd-keytab", MFD_CLOEXEC);

	if (m < 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (write(m, buf, (size_t)n) != n) {
			n = -1;
			break;
		}
	if (n < 0) {
		int e = errno;
		close(m);
		errno = e;
		return -1;
	}
	return m;
}

/* Copies every entry of keytab src into dst; the number copied or -1. */
static int copy_entries(krb5_context ctx, krb5_keytab src, krb5_keytab dst, krb5_error_code *rc)
{
	krb5_kt_cursor cur;
	krb5_keytab_entry e;
	int n = 0;

	if ((*rc = krb5_kt_start_seq_get(ctx, src, &cur)) != 0)
		return -1;
	while ((*rc = krb5_kt_next_entry(ctx, src, &e, &cur)) == 0) {
		*rc = krb5_kt_add_entry(ctx, dst, &e);
		krb5_free_keytab_entry_contents(ctx, &e);
		if (*rc != 0)
			break;
		n++;
	}
	krb5_kt_end_seq_get(ctx, src, &cur);
	if (*rc == KRB5_KT_END)
		*rc = 0;
	return *rc ? -1 : n;
}

/* Makes the new copy the current one and lets the old one go. */
static void swap_in(const char *path, const char *name, krb5_context ctx, krb5_keytab kt)
{
	krb5_context old_ctx;
	krb5_keytab old;

	pthread_rwlock_wrlock(&lock);
	old_ctx = held_ctx;
	old = held;
	held_ctx = ctx;
	held = kt;
	snprintf(cur_path, sizeof(cur_path), "%s", path);
	snprintf(cur_name, sizeof(cur_name), "%s", name);
	pthread_rwlock_unlock(&lock);
	if (old) {
		krb5_kt_close(old_ctx, old);
		krb5_free_context(old_ctx);
	}
}

int gss_keytab_load(const char *path, char *why, size_t cap)
{
	char name[64], file[64];
	krb5_context ctx;
	krb5_keytab src = NULL, mem = NULL;
	krb5_error_code rc;
	int n = -1, fd, m = -1;

	if ((fd = privfile_open(path)) < 0 || (m = to_memfd(fd)) < 0) {
		snprintf(why, cap, "keytab %.300s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if ((rc = krb5_init_context(&ctx)) != 0) {
		snprintf(why, cap, "keytab %.300s: krb5_init_context: %s", path, strerror(rc));
		close(m);
		return -1;
	}
	snprintf(name, sizeof(name), "MEMORY:stpd-gss-%u", ++generation);
	snprintf(file, sizeof(file), "FILE:/proc/self/fd/%d", m);
	if ((rc = krb5_kt_resolve(ctx, file, &src)) == 0 &&
	    (rc = krb5_kt_resolve(ctx, name, &mem)) == 0)
		n = copy_entries(ctx, src, mem, &rc);
	if (src)
		krb5_kt_close(ctx, src);
	close(m);
	if (n <= 0) {
		const char *msg = rc ? krb5_get_error_message(ctx, rc) : NULL;
		snprintf(why, cap, "keytab %.300s: %s", path, msg ? msg : "no keys in it");
		if (msg)
			krb5_free_error_message(ctx, msg);
		if (mem)
			krb5_kt_close(ctx, mem);
		krb5_free_context(ctx);
		return -1;
	}
	swap_in(path, name, ctx, mem);
	return n;
}

void gss_keytab_drop(void)
{
	swap_in("", "", NULL, NULL);
}

void gss_keytab_begin(const char *path, char *name, size_t cap)
{
	pthread_rwlock_rdlock(&lock);
	snprintf(name, cap, "%s", cur_path[0] && strcmp(cur_path, path) == 0 ? cur_name : path);
}

void gss_keytab_end(void)
{
	pthread_rwlock_unlock(&lock);
}

bool gss_keytab_is(const char *path)
{
	pthread_rwlock_rdlock(&lock);
	bool is = cur_path[0] && strcmp(cur_path, path) == 0;
	pthread_rwlock_unlock(&lock);
	return is;
}

void gss_keytab_default(char *path, size_t cap)
{
	char name[4096];
	krb5_context ctx;

	path[0] = '\0';
	if (krb5_init_context(&ctx) != 0)
		return;
	if (krb5_kt_default_name(ctx, name, sizeof(name)) == 0) {
		const char *p = name;
		if (strncmp(p, "FILE:", 5) == 0)
			p += 5;
		else if (strncmp(p, "WRFILE:", 7) == 0)
			p += 7;
		if (p[0] == '/' && strlen(p) < cap)
			snprintf(path, cap, "%s", p);
	}
	krb5_free_context(ctx);
}
