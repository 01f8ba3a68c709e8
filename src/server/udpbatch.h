/*
 * udpbatch.h - batched datagram I/O for the UDP relay: recvmmsg(2) fills up
 * to UDP_BATCH slots in one system call, sendmmsg(2) sends what was queued
 * in one more. One batch per worker, reused by every association on it.
 *
 * Each slot has UDP_HEADROOM bytes in front of the datagram, so a SOCKS UDP
 * header can be prepended in place (target -> client) without a copy.
 *
 * Sending, a run of queued datagrams of one size to one address goes out as
 * one UDP GSO "super-datagram" (UDP_SEGMENT): the stack routes and builds one
 * packet and cuts it into datagrams at the end, instead of once per datagram.
 * The receiver sees the same datagrams either way.
 */
#ifndef STP_SERVER_UDPBATCH_H
#define STP_SERVER_UDPBATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proto/socks.h"

#define UDP_BATCH 16
#define UDP_HEADROOM SOCKS_UDP_HDR_MAX
#define UDP_SLOT_PAYLOAD 65536

struct udp_batch {
	/* received: n datagrams, slot i holds len[i] bytes at data(b, i) */
	struct mmsghdr in[UDP_BATCH];
	struct iovec in_iov[UDP_BATCH];
	struct sockaddr_storage from[UDP_BATCH];
	unsigned n_in;
	/* queued to send on one socket */
	struct mmsghdr out[UDP_BATCH];
	struct iovec out_iov[UDP_BATCH];
	struct sockaddr_storage to[UDP_BATCH];
	size_t out_hdr[UDP_BATCH];            /* SOCKS header bytes, not payload */
	unsigned n_out;
	/* the queue grouped for sendmmsg: one entry per GSO run or datagram */
	struct mmsghdr grp[UDP_BATCH];
	unsigned grp_first[UDP_BATCH], grp_count[UDP_BATCH];
	_Alignas(struct cmsghdr) char grp_cmsg[UDP_BATCH][CMSG_SPACE(sizeof(uint16_t))];
	unsigned gso_pause;                   /* sends left without GSO after a refusal */
	uint8_t *slots;
};

struct udp_batch *udp_batch_new(void);
void udp_batch_free(struct udp_batch *b);

/* The payload of slot i (UDP_HEADROOM bytes of room before it). */
uint8_t *udp_batch_data(struct udp_batch *b, unsigned i);

/* Reads up to UDP_BATCH datagrams from fd (non-blocking). Returns how many
 * (0 when none is waiting or on error); their sources are unmapped from
 * IPv4-mapped IPv6. */
unsigned udp_batch_recv(struct udp_batch *b, int fd);

/* Queues len bytes at data for sending, to `to` (NULL on a connected
 * socket); the first hdr of them are a SOCKS header, not payload. The bytes
 * must stay put until udp_batch_send. */
void udp_batch_queue(struct udp_batch *b, const void *data, size_t len, size_t hdr,
		     const struct sockaddr *to);

/* Sends the queue on fd and empties it. A datagram the kernel refuses is
 * dropped and the rest still go. Adds the datagrams and payload bytes sent
 * to *sent and *bytes; returns the number dropped. */
unsigned udp_batch_send(struct udp_batch *b, int fd, uint64_t *sent, uint64_t *bytes);

#endif
