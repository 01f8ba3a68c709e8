/*
 * udpbatch.c - recvmmsg/sendmmsg for the UDP relay (see udpbatch.h).
 *
 * Batching saves the per-call entry, file lookup and address copies, which
 * the profile put at about a tenth of the relay's cost per datagram
 * (bench/NOTES.md). The slots are one allocation of UDP_BATCH x 64 KiB; the
 * kernel only touches the pages a datagram lands on, so a worker that
 * relays small datagrams keeps a few pages resident.
 */
#include <errno.h>
#include <netinet/udp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/sockaddr.h"
#include "server/udpbatch.h"

#define SLOT_SIZE (UDP_HEADROOM + UDP_SLOT_PAYLOAD)
#define UDP_GSO_MAX 1400 /* largest datagram sent as a GSO segment */
#define UDP_GSO_PAUSE 1024

struct udp_batch *udp_batch_new(void)
{
	struct udp_batch *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->slots = malloc((size_t)UDP_BATCH * SLOT_SIZE);
	if (!b->slots) {
		free(b);
		return NULL;
	}
	return b;
}

void udp_batch_free(struct udp_batch *b)
{
	if (!b)
		return;
	free(b->slots);
	free(b);
}

uint8_t *udp_batch_data(struct udp_batch *b, unsigned i)
{
	return b->slots + (size_t)i * SLOT_SIZE + UDP_HEADROOM;
}

unsigned udp_batch_recv(struct udp_batch *b, int fd)
{
	for (unsigned i = 0; i < UDP_BATCH; i++) {
		b->in_iov[i] = (struct iovec){ udp_batch_data(b, i), UDP_SLOT_PAYLOAD };
		b->in[i].msg_hdr = (struct msghdr){
			.msg_name = &b->from[i],
			.msg_namelen = sizeof(b->from[i]),
			.msg_iov = &b->in_iov[i],
			.msg_iovlen = 1,
		};
	}
	int n = recvmmsg(fd, b->in, UDP_BATCH, MSG_DONTWAIT, NULL);
	b->n_in = n > 0 ? (unsigned)n : 0;
	for (unsigned i = 0; i < b->n_in; i++)
		sa_unmap(&b->from[i]);
	return b->n_in;
}

void udp_batch_queue(struct udp_batch *b, const void *data, size_t len, size_t hdr,
		     const struct sockaddr *to)
{
	unsigned i = b->n_out++;
	b->out_iov[i] = (struct iovec){ (void *)data, len };
	b->out_hdr[i] = hdr;
	b->out[i].msg_hdr = (struct msghdr){ .msg_iov = &b->out_iov[i], .msg_iovlen = 1 };
	if (to) {
		socklen_t tl = sa_len(to);
		memcpy(&b->to[i], to, tl);
		b->out[i].msg_hdr.msg_name = &b->to[i];
		b->out[i].msg_hdr.msg_namelen = tl;
	}
}

/* Same destination: both unaddressed (connected socket) or equal bytes. */
static bool same_to(const struct msghdr *a, const struct msghdr *b)
{
	return a->msg_namelen == b->msg_namelen &&
	       (a->msg_namelen == 0 || memcmp(a->msg_name, b->msg_name, a->msg_namelen) == 0);
}

/* Groups the queue: consecutive datagrams to one address, all of the first
 * one's size (the last may be shorter, not empty), become one GSO entry. Datagrams
 * above UDP_GSO_MAX stay single: larger ones may not fit a real link's MTU,
 * which GSO refuses (EINVAL), and gain little. Returns the entry count. */
static unsigned group(struct udp_batch *b, bool gso)
{
	unsigned n = 0;
	for (unsigned i = 0; i < b->n_out; n++) {
		size_t size = b->out_iov[i].iov_len;
		unsigned k = 1;
		while (gso && size <= UDP_GSO_MAX && i + k < b->n_out &&
		       b->out_iov[i + k - 1].iov_len == size && b->out_iov[i + k].iov_len <= size &&
		       b->out_iov[i + k].iov_len > 0 && /* GSO would lose an empty one */
		       same_to(&b->out[i].msg_hdr, &b->out[i + k].msg_hdr))
			k++;
		struct msghdr *m = &b->grp[n].msg_hdr;
		*m = b->out[i].msg_hdr;
		m->msg_iovlen = k;
		if (k > 1) {
			struct cmsghdr *c = (struct cmsghdr *)b->grp_cmsg[n];
			uint16_t seg = (uint16_t)size;
			m->msg_control = b->grp_cmsg[n];
			m->msg_controllen = sizeof(b->grp_cmsg[n]);
			c->cmsg_level = SOL_UDP;
			c->cmsg_type = UDP_SEGMENT;
			c->cmsg_len = CMSG_LEN(sizeof(seg));
			memcpy(CMSG_DATA(c), &seg, sizeof(seg));
		}
		b->grp_first[n] = i;
		b->grp_count[n] = k;
		i += k;
	}
	return n;
}

static void count_sent(struct udp_batch *b, unsigned g, uint64_t *sent, uint64_t *bytes)
{
	for (unsigned i = b->grp_first[g]; i < b->grp_first[g] + b->grp_count[g]; i++)
		*bytes += b->out_iov[i].iov_len - b->out_hdr[i];
	*sent += b->grp_count[g];
}

/* A GSO entry the kernel refused: its datagrams one by one. Should they
 * go where the run did not, GSO is what failed (old kernel, device, a
 * path MTU below the datagram size): singles for the next UDP_GSO_PAUSE
 * sends, then GSO is tried again. */
static void send_singles(struct udp_batch *b, int fd, unsigned g, uint64_t *sent, uint64_t *bytes,
			unsigned *dropped)
{
	unsigned first = b->grp_first[g], count = b->grp_count[g], before = *dropped;
	for (unsigned i = first; i < first + count; i++) {
		ssize_t r;
		do
			r = sendmsg(fd, &b->out[i].msg_hdr, MSG_DONTWAIT);
		while (r < 0 && errno == EINTR);
		if (r < 0) {
			++*dropped;
			continue;
		}
		*bytes += b->out_iov[i].iov_len - b->out_hdr[i];
		++*sent;
	}
	if (*dropped - before < count)
		b->gso_pause = UDP_GSO_PAUSE;
}

unsigned udp_batch_send(struct udp_batch *b, int fd, uint64_t *sent, uint64_t *bytes)
{
	unsigned dropped = 0, done = 0, n = group(b, b->gso_pause == 0);

	if (b->gso_pause > 0)
		b->gso_pause--;

	while (done < n) {
		int r = sendmmsg(fd, b->grp + done, n - done, MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r > 0) {
			for (unsigned g = done; g < done + (unsigned)r; g++)
				count_sent(b, g, sent, bytes);
			done += (unsigned)r;
		} else if (b->grp_count[done] > 1) {
			send_singles(b, fd, done++, sent, bytes, &dropped);
		} else {
			dropped++; /* full buffer, unreachable, ...: skip it */
			done++;
		}
	}
	b->n_out = 0;
	return dropped;
}
