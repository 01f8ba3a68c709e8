/*
 * featcache_parse.c - the header of a feature discovery cache file
 * (featcache.c, docs/client.md "Disk cache"), apart so tests/fuzz can
 * feed it any bytes: another process may have written the file.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "client/featcache.h"

int featcache_parse(const uint8_t *buf, size_t n, struct featcache_hdr *h)
{
	char hdr[FC_HDR_MAX + 1], tail;
	int64_t at, off;
	unsigned sup, len, who = 0, x86 = 0;
	const uint8_t *nl = memchr(buf, '\n', n < FC_HDR_MAX ? n : FC_HDR_MAX);

	if (nl == NULL)
		return -1;
	memcpy(hdr, buf, (size_t)(nl - buf));
	hdr[nl - buf] = '\0';
	if (strlen(hdr) != (size_t)(nl - buf)) /* a NUL inside: not our text */
		return -1;
	size_t body = n - (size_t)(nl + 1 - buf);
	/* %c catches anything after LEN; LEN must be all that follows. */
	if (sscanf(hdr, "stp-features 2 %" SCNd64 " %" SCNd64 " %u %u %u %u%c", &at, &off, &sup,
		   &who, &x86, &len, &tail) != 6 &&
	    sscanf(hdr, "stp-features 1 %" SCNd64 " %" SCNd64 " %u %u%c", &at, &off, &sup, &len,
		   &tail) != 4)
		return -1;
	if (at <= 0 || off < 0 || sup > 1 || len != body || (sup == 0 && len != 0) || who > 7 ||
	    (x86 != 0 && x86 != 1 && x86 != 4))
		return -1;
	h->fetched = at;
	h->off = off;
	h->supported = sup == 1;
	h->x86_who = (uint8_t)who;
	h->x86_sub = (uint8_t)x86;
	h->doc = nl + 1;
	h->len = len;
	return 0;
}
