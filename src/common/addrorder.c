/*
 * addrorder.c - address order and error choice for trying every address
 * of a name (see addrorder.h).
 */
#include "common/addrorder.h"

#include <errno.h>
#include <string.h>

void addr_interleave(struct sockaddr_storage *a, size_t n, int first)
{
	struct sockaddr_storage in[ADDR_ORDER_MAX];
	size_t i6 = 0, i4 = 0, k = 0;

	if (n > ADDR_ORDER_MAX)
		n = ADDR_ORDER_MAX;
	if (n < 2)
		return;
	memcpy(in, a, n * sizeof(*a));
	/* Take the next of each family in turn: i6 and i4 walk the copy. */
	if (first != AF_INET)
		first = AF_INET6;
	for (int want = first; k < n; want = want == AF_INET6 ? AF_INET : AF_INET6) {
		size_t *i = want == AF_INET6 ? &i6 : &i4;
		while (*i < n && in[*i].ss_family != want)
			(*i)++;
		if (*i < n) {
			a[k++] = in[(*i)++];
			continue;
		}
		/* This family is used up: the other one, then anything else. */
		if (i6 >= n && i4 >= n)
			break;
	}
	for (size_t j = 0; j < n && k < n; j++)
		if (in[j].ss_family != AF_INET6 && in[j].ss_family != AF_INET)
			a[k++] = in[j];
}

/* Higher: the error tells more about the target. */
static int err_rank(int err)
{
	switch (err) {
	case 0: return 0;
	/* Local: this host cannot even send to the address's family. */
	case EAFNOSUPPORT:
	case EADDRNOTAVAIL:
	case ENETUNREACH:
	case ENETDOWN: return 1;
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case EHOSTDOWN: return 2;
	/* The target answered. */
	case ECONNREFUSED: return 4;
	default: return 3;
	}
}

int addr_better_err(int kept, int next)
{
	return err_rank(next) >= err_rank(kept) ? next : kept;
}
