/*
 * fuzz_udp.c - UDP datagram header parser. Datagrams are whole: never
 * MORE, BAD for every cut inside the header, DONE with the same header
 * for every cut after it.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"

/* Parses an exact-size copy of p[0..n). */
static enum socks_res udp_run(struct socks_udp_hdr *h, const uint8_t *p, size_t n)
{
	uint8_t *d = fuzz_dup(p, n);
	struct socks_err err = {0, NULL};
	enum socks_res r;

	memset(h, 0, sizeof(*h));
	r = socks_udp_parse(h, n > 0 ? d : d + 1, n, &err);
	free(d);
	FUZZ_CHECK(r == SOCKS_DONE || r == SOCKS_BAD);
	if (r == SOCKS_BAD)
		FUZZ_CHECK(err.why != NULL && err.why[0] != '\0');
	else /* the shortest: a one-byte domain */
		FUZZ_CHECK(h->hdrlen >= 3 + 1 + 1 + 1 + 2 && h->hdrlen <= n &&
			   h->hdrlen <= SOCKS_UDP_HDR_MAX);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct socks_udp_hdr h, cut;
	uint8_t buf[SOCKS_UDP_HDR_MAX];
	size_t last = size < SOCKS_UDP_HDR_MAX + 1 ? size : SOCKS_UDP_HDR_MAX + 1;

	if (udp_run(&h, data, size) != SOCKS_DONE) {
		/* A bad header stays bad however it is cut. */
		for (size_t k = 0; k <= last; k++)
			FUZZ_CHECK(udp_run(&cut, data, k) == SOCKS_BAD);
		return 0;
	}
	for (size_t k = 0; k <= last; k++) {
		enum socks_res r = udp_run(&cut, data, k);

		FUZZ_CHECK(r == (k < h.hdrlen ? SOCKS_BAD : SOCKS_DONE));
		if (r == SOCKS_DONE)
			FUZZ_CHECK(memcmp(&cut, &h, sizeof(h)) == 0);
	}
	FUZZ_CHECK(socks_udp_write(buf, sizeof(buf), h.frag, &h.addr) == h.hdrlen);
	FUZZ_CHECK(buf[0] == 0 && buf[1] == 0); /* RSV is written as zero */
	FUZZ_CHECK(memcmp(buf + 2, data + 2, h.hdrlen - 2) == 0);
	FUZZ_CHECK(udp_run(&cut, buf, h.hdrlen) == SOCKS_DONE);
	FUZZ_CHECK(memcmp(&cut, &h, sizeof(h)) == 0);
	return 0;
}
