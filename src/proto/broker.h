/*
 * broker.h - the compartment broker's messages (docs/compartments.md,
 * "The broker's protocol"): a worker asks the privileged broker for a
 * socket made in a compartment (a network namespace); the broker answers
 * with a status and, on success, the socket as SCM_RIGHTS ancillary data.
 *
 * Same contract as socks.h: pure, allocation-free, MORE/DONE/BAD (err->rep
 * is not used: the broker answers BAD with BROKER_ST_BAD), writers return
 * the bytes written or 0 when cap is too small.
 *
 * Request (worker -> broker), one SOCK_SEQPACKET message:
 *   +-----+----+--------+------+-------+--------+------+---------+-------+
 *   | VER | OP | FAMILY | TYPE | PROTO | IN.LEN |  IN  | OUT.LEN |  OUT  |
 *   |  1  | 1  |   1    |  1   |   1   |   1    | 1-63 |    1    | 1-63  |
 *   +-----+----+--------+------+-------+--------+------+---------+-------+
 * OP X'02' RELOAD carries nothing after OP.
 * OP X'03' OPEN (a file stpd can no longer read, for a reload):
 *   +-----+----+----------+---------+
 *   | VER | OP | PATH.LEN |  PATH   |
 *   |  1  | 1  | 2 (net.) | 1-511   |
 *   +-----+----+----------+---------+
 *   PATH absolute, no NUL; the reply's fd is the file opened read-only.
 * OP X'04' LISTEN (a listen address added by a reload, port < 1024 too):
 *   +-----+----+--------+----------+--------+-----------+-------+
 *   | VER | OP | FAMILY |   PORT   |  ADDR  | PLACE.LEN | PLACE |
 *   |  1  | 1  |  1     | 2 (net.) | 4 / 16 |     1     | 0-63  |
 *   +-----+----+--------+----------+--------+-----------+-------+
 *   FAMILY 4 (ADDR 4 octets) or 6 (16); PORT not 0; PLACE the compartment
 *   the address is in (a name as for SOCKET), none (PLACE.LEN 0) for
 *   stpd's own namespace; the reply's fd is a TCP socket made in PLACE
 *   and bound there (SO_REUSEADDR, SO_REUSEPORT, V6ONLY), not yet
 *   listening.
 * Reply (broker -> worker): VER STATUS ERRNO(2, network order).
 */
#ifndef STP_PROTO_BROKER_H
#define STP_PROTO_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

#define BROKER_VERSION 1
#define BROKER_NAME_MAX 63 /* a compartment name, without a NUL */

enum {
	BROKER_OP_SOCKET = 0x01,
	BROKER_OP_RELOAD = 0x02,
	BROKER_OP_OPEN = 0x03,
	BROKER_OP_LISTEN = 0x04,
};
#define BROKER_PATH_MAX 511 /* a path, without a NUL (CONF_PATH_MAX - 1) */
enum { BROKER_FAMILY_INET = 4, BROKER_FAMILY_INET6 = 6 };
enum { BROKER_TYPE_STREAM = 1, BROKER_TYPE_DGRAM = 2 };
enum { BROKER_PROTO_DEFAULT = 0, BROKER_PROTO_TCP = 6, BROKER_PROTO_UDP = 17 };
enum {
	BROKER_ST_OK = 0x00,      /* the socket follows as SCM_RIGHTS */
	BROKER_ST_REFUSED = 0x01, /* the configuration does not allow it */
	BROKER_ST_FAILED = 0x02,  /* allowed, but setns/socket failed: ERRNO says why */
	BROKER_ST_BAD = 0x03,     /* the request did not parse */
};

struct broker_request {
	uint8_t op, family, type, proto;
	char in[BROKER_NAME_MAX + 1];  /* NUL-terminated; OP_SOCKET only */
	char out[BROKER_NAME_MAX + 1]; /* OP_SOCKET; OP_LISTEN's PLACE ("": none) */
	char path[BROKER_PATH_MAX + 1]; /* NUL-terminated; OP_OPEN only */
	uint16_t port;                  /* OP_LISTEN (with family): host order */
	uint8_t addr[16];               /* network order; 4 octets used for INET */
};

#define BROKER_REQUEST_MAX (4 + BROKER_PATH_MAX) /* OPEN is the longest */
#define BROKER_REPLY_LEN 4

/* BAD: VER not 1, an unknown OP, FAMILY, TYPE or PROTO, PROTO not fitting
 * TYPE (TCP with DGRAM, UDP with STREAM), a name of length 0 or over
 * BROKER_NAME_MAX, a name with an octet outside [A-Za-z0-9_.-]; for OPEN a
 * PATH.LEN of 0 or over BROKER_PATH_MAX, a PATH not starting with '/' or
 * holding a NUL; for LISTEN a FAMILY not 4 or 6, PORT 0, a PLACE.LEN over
 * BROKER_NAME_MAX or a PLACE octet outside [A-Za-z0-9_.-]. */
enum socks_res broker_request_parse(struct broker_request *out, const uint8_t *p, size_t n,
				    size_t *used, struct socks_err *err);
/* 0 when a field is out of range (the same checks as the parser). */
size_t broker_request_write(uint8_t *dst, size_t cap, const struct broker_request *r);

struct broker_reply {
	uint8_t status;
	uint16_t err; /* errno for BROKER_ST_FAILED, else 0 */
};

/* BAD: VER not 1, an unknown STATUS. */
enum socks_res broker_reply_parse(struct broker_reply *out, const uint8_t *p, size_t n,
				  size_t *used, struct socks_err *err);
size_t broker_reply_write(uint8_t *dst, size_t cap, const struct broker_reply *r);

/* A compartment name as the broker and the config accept it. */
int broker_name_ok(const char *name, size_t len);

#endif
