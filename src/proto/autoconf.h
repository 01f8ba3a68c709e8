/*
 * autoconf.h - the client configuration document of CMD X'F4' "get
 * configuration" (docs/protocol.md section 5.5).
 *
 * After an X'00' reply to X'F4' the server sends one frame and closes:
 *
 *   +-----+-----+--------+
 *   | LEN (2, MSB first) | DOC (LEN bytes)
 *   +-----+-----+--------+
 *
 * LEN is 1..ACDOC_MAX. DOC is lines of US-ASCII, each "KEY SP VALUE LF":
 * KEY 1..ACDOC_KEY_MAX of [a-z0-9-], VALUE 1..ACDOC_VALUE_MAX of X'20'..X'7E'
 * not starting with a space. The first line is "stp-autoconfig 1" (the
 * format's version); readers skip keys they do not know.
 *
 * Same contract as socks.h: pure, allocation-free, MORE/DONE/BAD, writers
 * return the bytes written (here: the new end) or 0 when cap is too small.
 */
#ifndef STP_PROTO_AUTOCONF_H
#define STP_PROTO_AUTOCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

#define ACDOC_VERSION   1
#define ACDOC_MAX       8192 /* bytes of DOC */
#define ACDOC_HDR       2    /* LEN */
#define ACDOC_KEY_MAX   32
#define ACDOC_VALUE_MAX 300
#define ACDOC_MAGIC     "stp-autoconfig"

struct acdoc_line {
	const char *key, *value; /* into the document, not NUL-terminated */
	size_t key_len, value_len;
};

/* The frame at p[0..n): DONE with *doc and *doclen pointing into p and *used =
 * ACDOC_HDR + LEN, once every line of DOC is well formed and the first is
 * the version line of ACDOC_VERSION. MORE: the frame is not all there.
 * BAD: LEN 0 or over ACDOC_MAX, a malformed line, another version
 * (err->rep X'01'; err->why says which). */
enum socks_res acdoc_frame_parse(const uint8_t *p, size_t n, size_t *used, const uint8_t **doc,
				 size_t *doclen, struct socks_err *err);

/* DOC alone (the same checks, for a cached copy). DONE or BAD. */
enum socks_res acdoc_check(const uint8_t *doc, size_t len, struct socks_err *err);

/* The next line of a checked DOC from *off (0 to start; the version line
 * comes first). false at the end. */
bool acdoc_next(const uint8_t *doc, size_t len, size_t *off, struct acdoc_line *line);

/* True when line->key is key (a NUL-terminated string). */
bool acdoc_key_is(const struct acdoc_line *line, const char *key);

/* Appends "key value\n" at dst[at]: the new end, or 0 when it does not fit
 * in cap or key/value break the rules above. Start with at = 0 and the
 * version line (acdoc_put_version). */
size_t acdoc_put(uint8_t *dst, size_t cap, size_t at, const char *key, const char *value);
size_t acdoc_put_version(uint8_t *dst, size_t cap);

/* The LEN field for a DOC of doclen bytes: ACDOC_HDR, or 0 when doclen is
 * 0 or over ACDOC_MAX. */
size_t acdoc_frame_header(uint8_t *dst, size_t cap, size_t doclen);

#endif
