/*
 * tp_nft_ct.c - the kernel engine's conntrack side (libnetfilter-conntrack):
 * a relay's entry is looked up and deleted by its original tuple
 * S.ADDR:S.PORT -> BND, the one flow a relay can ever have (its source and
 * BND are both exact). Deleting it after the rules are gone means the next
 * packet starts a new entry that no rule forwards: nothing passes.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

/* Collected by a filtered dump, deleted after it (no query inside a dump). */
struct ct_list {
	struct nf_conntrack *ct[256];
	size_t n;
};

static int collect_cb(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *arg)
{
	struct ct_list *l = arg;

	if (l->n < sizeof(l->ct) / sizeof(l->ct[0]))
		l->ct[l->n++] = nfct_clone(ct);
	return NFCT_CB_CONTINUE;
}

int tp_nft_ct_forget_mark(struct nfct_handle *q, uint32_t id)
{
	struct nfct_filter_dump *fd = nfct_filter_dump_create();
	struct nfct_filter_dump_mark m = { id, TP_NFT_ID_MASK };
	struct ct_list *l = calloc(1, sizeof(*l));
	int deleted = 0;

	if (!fd || !l) {
		if (fd)
			nfct_filter_dump_destroy(fd);
		free(l);
		return -1;
	}
	nfct_filter_dump_set_attr(fd, NFCT_FILTER_DUMP_MARK, &m);
	nfct_filter_dump_set_attr_u8(fd, NFCT_FILTER_DUMP_L3NUM, AF_UNSPEC);
	nfct_callback_register(q, NFCT_T_ALL, collect_cb, l);
	nfct_query(q, NFCT_Q_DUMP_FILTER, fd);
	nfct_callback_unregister(q);
	nfct_filter_dump_destroy(fd);
	for (size_t i = 0; i < l->n; i++) {
		if (l->ct[i] && nfct_query(q, NFCT_Q_DESTROY, l->ct[i]) == 0)
			deleted++;
		if (l->ct[i])
			nfct_destroy(l->ct[i]);
	}
	free(l);
	return deleted;
}
