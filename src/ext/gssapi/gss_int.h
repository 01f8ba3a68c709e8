/*
 * gss_int.h - internals of the GSS-API module (src/ext/gssapi, method X'01',
 * RFC 1961): the stream filter that carries the session from the method
 * choice on, and the state of context establishment, which lives in the
 * filter so it goes with the session. Nothing outside src/ext/gssapi
 * includes it.
 *
 * The filter has three phases:
 * - HANDSHAKE: bytes pass through unchanged, but read() never hands out
 *   bytes of two frames in one call, so the method (gss_method.c) can move
 *   the filter to the next phase right after the protection-level frame
 *   and the frames behind it (the request, already protected) are read in
 *   the new phase. The method collects the frames into `acc`: a token may
 *   be far larger than the session's 1 KiB handshake buffer.
 * - CLEAR: protection level 0 (curl's "no protection"): bytes pass through.
 * - WRAP: every byte in either direction is gss_wrap()ped into MTYP X'03'
 *   frames (RFC 1961 section 5), with confidentiality at level 2.
 */
#ifndef STP_EXT_GSSAPI_GSS_INT_H
#define STP_EXT_GSSAPI_GSS_INT_H

#include <gssapi/gssapi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/bytebuf.h"
#include "server/filter.h"
#include "server/session.h"

/* A peer that never reads cannot make an output buffer grow past this
 * (TLS_OBUF_MAX's size: a relay read plus framing). */
#define GSS_BUF_MAX (4u << 20)
/* Input: a partial frame plus one socket read (conn.c reads 16.5 KiB). */
#define GSS_IN_MAX  (128u * 1024)

enum gss_phase { GSS_PH_HANDSHAKE, GSS_PH_CLEAR, GSS_PH_WRAP };
enum gss_step { GSS_STEP_CONTEXT, GSS_STEP_LEVEL, GSS_STEP_DONE };

struct gss_filter {
	struct stream_filter base; /* first */
	enum gss_phase phase;
	struct bytebuf in, plain, out;
	size_t frame_left;   /* HANDSHAKE: bytes of the current frame not handed out */
	bool conf;           /* WRAP: confidentiality (level 2) */
	OM_uint32 max_plain; /* WRAP: plaintext bytes per token */

	/* context establishment (gss_method.c) */
	enum gss_step step;
	struct bytebuf acc; /* the frame being collected */
	gss_cred_id_t cred;
	gss_ctx_id_t ctx;
	OM_uint32 flags;                  /* ret_flags of the established context */
	char principal[256];              /* the client's, once established */
	char mech[24];                    /* "krb5", "spnego/krb5", "other"... */
	bool spnego;                      /* the first token was SPNEGO's */
	bool nec;                         /* the level came unwrapped (curl --socks5-gssapi-nec) */
	struct session_dgram_guard guard; /* levels 1, 2: UDP ASSOCIATE's datagrams */
};

/* A filter in phase HANDSHAKE, owning cred (released by free). NULL when
 * out of memory. */
struct gss_filter *gss_filter_new(gss_cred_id_t cred);
/* Moves to CLEAR (level 0) or WRAP (levels 1, 2). 0, or -1 with why set. */
int gss_filter_protect(struct gss_filter *g, uint8_t level);

/* RFC 1961 section 5 for UDP: a whole SOCKS UDP datagram (header and data)
 * is one X'03' frame, VER MTYP LEN gss_wrap(datagram). The session's
 * datagram guard (session.h) with ctx = the filter (gss_dgram.c). */
int gss_dgram_unseal(void *ctx, uint8_t *p, size_t len);
uint8_t *gss_dgram_seal(void *ctx, uint8_t *p, size_t *len, size_t room);

/* "major: minor" text of a GSS-API status into out. */
void gss_status_str(OM_uint32 major, OM_uint32 minor, char *out, size_t cap);

/* The keytab copy (gss_keytab.c), made when stpd drops from root: loads
 * the keytab file at path (through privfile_open) into a new MEMORY:
 * keytab that replaces the current copy; the number of keys, or -1 with
 * why. Main thread. gss_keytab_drop forgets the copy. */
int gss_keytab_load(const char *path, char *why, size_t cap);
void gss_keytab_drop(void);
/* The keytab name to acquire credentials from for the configured path:
 * the copy's when it was made of path, else path itself; valid until
 * gss_keytab_end, which must follow (any thread). */
void gss_keytab_begin(const char *path, char *name, size_t cap);
void gss_keytab_end(void);
/* Whether the copy in use was made of path. */
bool gss_keytab_is(const char *path);
/* Kerberos's default keytab (KRB5_KTNAME, else krb5.conf's
 * default_keytab_name, else /etc/krb5.keytab) as a file path, or "" when
 * it names another kind of keytab. */
void gss_keytab_default(char *path, size_t cap);

#endif
