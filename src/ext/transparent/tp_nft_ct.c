/*
 * tp_nft_ct.c - the kernel engine's conntrack side (libnetfilter-conntrack):
 * a relay's entry is looked up and deleted by its original tuple
 * S.ADDR:S.PORT -> BND, the one flow a relay can ever have (its source and
 * BND are both exact). Deleting it after the rules are gone means the next
 * packet starts a new entry that no rule forwards: nothing passes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include "ext/transparent/tp_nft.h"

/* A conntrack object holding the flow's original tuple; NULL on ENOMEM. */
static struct nf_conntrack *tuple_of(const struct tp_nft_flow *f)
{
	struct nf_conntrack *ct = nfct_new();

	if (!ct)
		return NULL;
	if (f->src.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)&f->src, *b = (const void *)&f->bnd;

		nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET6);
		nfct_set_attr(ct, ATTR_IPV6_SRC, &s->sin6_addr);
		nfct_set_attr(ct, ATTR_IPV6_DST, &b->sin6_addr);
		nfct_set_attr_u16(ct, ATTR_PORT_SRC, s->sin6_port);
		nfct_set_attr_u16(ct, ATTR_PORT_DST, b->sin6_port);
	} else {
		const struct sockaddr_in *s = (const void *)&f->src, *b = (const void *)&f->bnd;

		nfct_set_attr_u8(ct, ATTR_L3PROTO, AF_INET);
		nfct_set_attr_u32(ct, ATTR_IPV4_SRC, s->sin_addr.s_addr);
		nfct_set_attr_u32(ct, ATTR_IPV4_DST, b->sin_addr.s_addr);
		nfct_set_attr_u16(ct, ATTR_PORT_SRC, s->sin_port);
		nfct_set_attr_u16(ct, ATTR_PORT_DST, b->sin_port);
	}
	nfct_set_attr_u8(ct, ATTR_L4PROTO, f->ptcl);
	return ct;
}

int tp_nft_ct_forget(struct nfct_handle *q, const struct tp_nft_flow *f)
{
	struct nf_conntrack *ct = tuple_of(f);
	int rc;

	if (!ct)
		return -1;
	rc = nfct_query(q, NFCT_Q_DESTROY, ct);
	nfct_destroy(ct);
	return rc == 0 || errno == ENOENT ? 0 : -1;
}

static int get_mark_cb(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *arg)
{
	*(uint32_t *)arg = nfct_get_attr_u32(ct, ATTR_MARK);
	return NFCT_CB_STOP;
}

int tp_nft_ct_mark(struct nfct_handle *q, const struct tp_nft_flow *f, uint32_t *mark)
{
	struct nf_conntrack *ct = tuple_of(f);
	int rc;

	if (!ct)
		return -1;
	*mark = 0;
	nfct_callback_register(q, NFCT_T_ALL, get_mark_cb, mark);
	rc = nfct_query(q, NFCT_Q_GET, ct);
	nfct_callback_unregister(q);
	nfct_destroy(ct);
	return rc;
}
