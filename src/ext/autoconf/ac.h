/*
 * ac.h - the auto-configuration module's parts (docs/architecture.md):
 *   ac_conf.c  the autoconfig { } section and profile selection (config only)
 *   ac_doc.c   a profile as the X'F4' document and as a PAC file (pure)
 *   ac_cmd.c   CMD X'F4' on a worker: rules, document, reply
 *   ac_http.c  the PAC listener: libmicrohttpd's own thread, reading the
 *              current snapshot per request (ext_conf_current)
 */
#ifndef STP_EXT_AUTOCONF_AC_H
#define STP_EXT_AUTOCONF_AC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "ext/autoconf/ac_conf.h"

struct session;

#define AC_PAC_MAX 65536 /* a PAC file: 64 entries of 256 bytes fit many times */

/* The X'F4' DOC of profile pr in c (docs/protocol.md 5.5) into dst: its
 * length, or 0 when it does not fit (cap or ACDOC_MAX). */
size_t ac_doc_build(uint8_t *dst, size_t cap, const struct stp_conf *c,
		    const struct ac_profile *pr);
/* The PAC file (JavaScript, FindProxyForURL) of profile pr for client:
 * its length (without the NUL it also writes), or 0 when it does not fit. */
size_t ac_pac_build(char *dst, size_t cap, const struct stp_conf *c, const struct ac_profile *pr,
		    const struct sockaddr *client);
/* The i-th proxy of pr as HOST:PORT (the first listener's address when
 * the profile names none); false past the last. */
bool ac_proxy_at(const struct stp_conf *c, const struct ac_profile *pr, size_t i, char *out,
		 size_t cap);

/* CMD X'F4' (ac_cmd.c). */
void ac_cmd_start(struct session *s);

/* The HTTP listeners (ac_http.c). */
int ac_http_start(const struct stp_conf *c, char *err, size_t errlen);
void ac_http_stop(void);

#endif
