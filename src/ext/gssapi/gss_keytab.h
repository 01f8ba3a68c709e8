/*
 * gss_keytab.h - the acceptor's keytab copied into memory while stpd can
 * read it (gss_keytab.c; docs/operations.md §8).
 */
#ifndef STP_EXT_GSSAPI_GSS_KEYTAB_H
#define STP_EXT_GSSAPI_GSS_KEYTAB_H

#include <stddef.h>

struct gss_conf;

/* Copies g's keytab (its file, else Kerberos's default) into a new
 * MEMORY: keytab that gss_keytab_name then names. Main thread: at start
 * before the drop, and on reload (a root-only file through the broker).
 * 0, or -1 with the reason in err (the previous copy stays in use). */
int gss_keytab_load(const struct gss_conf *g, char *err, size_t errlen);
/* The keytab name to give Kerberos for g: the copy when it was made from
 * g's keytab, else g's own setting. Any thread. */
const char *gss_keytab_name(const struct gss_conf *g);
/* Frees every copy (stpd's stop). */
void gss_keytab_unload(void);

#endif
