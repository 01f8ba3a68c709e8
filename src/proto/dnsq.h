/*
 * dnsq.h - CMD X'F2' DNS QUERY (docs/protocol.md §5.4): after the RFC 1928
 * request (DST = ATYP X'03' QNAME, DST.PORT = QTYPE) the client sends one
 * DNS message as LEN(2, MSB first) MSG; after a X'00' reply the server
 * sends the answer in the same form. This file only frames: the DNS
 * message itself is built and read with c-ares, never here.
 *
 * Same contract as socks.h: pure, allocation-free, MORE/DONE/BAD, writers
 * return the bytes written or 0 when cap is too small.
 */
#ifndef STP_PROTO_DNSQ_H
#define STP_PROTO_DNSQ_H

#include <stddef.h>
#include <stdint.h>

#include "proto/socks.h"

/* A query fits the server's request buffer behind the longest request
 * (1232: the DNS Flag Day 2020 size); an answer is at most the largest DNS
 * message over TCP. */
#define DNSQ_MSG_MIN    12 /* a DNS header alone (RFC 1035 4.1.1) */
#define DNSQ_QUERY_MAX  1232
#define DNSQ_ANSWER_MAX 65535
#define DNSQ_FRAME_HDR  2

/* One framed message: p[off..off + len) of the parsed input. */
struct dnsq_frame {
	size_t off, len;
};

/* LEN MSG, the client's query: LEN in DNSQ_MSG_MIN..DNSQ_QUERY_MAX, else
 * BAD (rep X'01'); MORE until all LEN bytes are in; *used is the frame's
 * size on DONE. */
enum socks_res dnsq_query_parse(struct dnsq_frame *out, const uint8_t *p, size_t n, size_t *used,
				struct socks_err *err);
/* The same for the answer after the second reply: LEN in
 * DNSQ_MSG_MIN..DNSQ_ANSWER_MAX. */
enum socks_res dnsq_answer_parse(struct dnsq_frame *out, const uint8_t *p, size_t n, size_t *used,
				 struct socks_err *err);
/* LEN MSG: 0 when cap is too small or len is out of 1..DNSQ_ANSWER_MAX. */
size_t dnsq_frame_write(uint8_t *dst, size_t cap, const uint8_t *msg, size_t len);

#endif
