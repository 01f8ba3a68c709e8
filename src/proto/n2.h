/*
 * n2.h - N2, the message protocol between a TRANSPARENT control side
 * (stpd's module, engine "remote") and a PTCL relay proxy (stp-relayd):
 * seed 003's "N2" interface, specified in docs/protocol.md section
 * "N2: control server to relay proxy".
 *
 * Every message is TYPE(1) ID(4) LEN(2) BODY(LEN), multi-byte fields
 * big-endian, over a reliable byte stream (a Unix socket or TLS). Same
 * contract as socks.h: pure, allocation-free, MORE/DONE/BAD; the writer
 * returns the bytes written or 0 when cap is too small or the message is
 * not valid.
 */
#ifndef STP_PROTO_N2_H
#define STP_PROTO_N2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

#define N2_VERSION  1
#define N2_HDR_LEN  7   /* TYPE ID LEN */
#define N2_BODY_MAX 128 /* any LEN above is BAD as soon as the header is in */
#define N2_MSG_MAX  (N2_HDR_LEN + N2_BODY_MAX)
#define N2_WHY_MAX  32 /* ENDED's reason, printable ASCII */

enum n2_type {
	N2_HELLO = 0x01,    /* both ways, first message, ID 0: VER */
	N2_OPEN = 0x02,     /* control -> relay: one relay configuration */
	N2_OPENED = 0x03,   /* relay -> control: REP and BND */
	N2_COUNTERS = 0x04, /* control -> relay: ask for the counters */
	N2_COUNTS = 0x05,   /* relay -> control: the counters */
	N2_CLOSE = 0x06,    /* control -> relay: tear down */
	N2_CLOSED = 0x07,   /* relay -> control: torn down, final counters */
	N2_ENDED = 0x08,    /* relay -> control: ended on the relay's side, why, final counters */
};

enum { N2_OPEN_END_ON_FIN = 0x01 }; /* OPEN FLAGS; other bits must be 0 */

/* An IP address and port: ATYP X'01' (4 bytes) or X'04' (16 bytes). */
struct n2_addr {
	uint8_t atyp;
	uint8_t ip[16]; /* IPv4 in the first 4 bytes, the rest 0 */
	uint16_t port;  /* host order */
};

struct n2_counters {
	uint64_t pkts_up, bytes_up, pkts_down, bytes_down;
};

struct n2_open {
	uint8_t ptcl;  /* 6 TCP, 17 UDP: any value travels, the relay decides */
	uint8_t flags; /* N2_OPEN_* */
	uint32_t idle_ms;
	struct n2_addr src, dst, bnd;
};

struct n2_msg {
	uint8_t type;
	uint32_t id; /* the relay this is about; 0 for HELLO */
	union {
		uint8_t version;     /* HELLO */
		struct n2_open open; /* OPEN */
		struct {
			uint8_t rep;
			struct n2_addr bnd;
		} opened;                  /* OPENED */
		struct n2_counters counts; /* COUNTS, CLOSED */
		struct {
			char why[N2_WHY_MAX + 1]; /* NUL-terminated */
			struct n2_counters c;
		} ended; /* ENDED */
	} u;
};

/* One message from the start of p[0..n). BAD: unknown TYPE, LEN over
 * N2_BODY_MAX, a body of the wrong length for its TYPE, a bad ATYP, set
 * reserved OPEN flags, HELLO with an ID, another message with ID 0, or an
 * empty or unprintable ENDED reason. *out is written only on DONE. */
enum socks_res n2_parse(struct n2_msg *out, const uint8_t *p, size_t n, size_t *used,
			struct socks_err *err);
size_t n2_write(uint8_t *dst, size_t cap, const struct n2_msg *m);

const char *n2_type_name(uint8_t type);

#endif
