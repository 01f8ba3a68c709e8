/*
 * mc_settings.c - what a relay runs under, read from the configuration's
 * mcast block (docs/config.md), and the key relays are found by.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ext/mcast/mc.h"
#include "ext/mcast/mc_conf.h"

void mc_settings_get(const struct stp_conf *c, struct mc_settings *out)
{
	const struct mc_conf *m = mc_conf_get(c);

	memset(out, 0, sizeof(*out));
	snprintf(out->ext_if, sizeof(out->ext_if), "%s", m->external_if);
	snprintf(out->int_if, sizeof(out->int_if), "%s", m->internal_if);
	out->pool4 = m->pool4;
	out->pool6 = m->pool6;
	out->suite = (uint8_t)m->encryption; /* mc_conf_encryption = KEY SUITE */
	out->max_members = m->max_members;
	out->max_time = m->max_time;
	out->idle = m->idle_timeout;
	out->rate = m->rate;
	out->burst = m->burst ? m->burst : m->rate;
	if (out->rate && out->burst < 2048)
		out->burst = 2048; /* room for one large datagram */
	out->ttl = m->ttl ? m->ttl : 16;
}

static int src_cmp(const void *a, const void *b)
{
	return memcmp(a, b, 16);
}

int mc_key_make(struct mc_key *k, const struct socks_addr *group, const struct mcast_filter *f)
{
	size_t alen = group->atyp == SOCKS_ATYP_IPV4 ? 4 : 16;

	memset(k, 0, sizeof(*k));
	if (group->atyp != SOCKS_ATYP_IPV4 && group->atyp != SOCKS_ATYP_IPV6)
		return -1;
	if (f->mode && f->nsrc && f->atyp != group->atyp)
		return -1;
	k->family = group->atyp == SOCKS_ATYP_IPV4 ? AF_INET : AF_INET6;
	memcpy(k->group, group->u.v6, alen);
	k->port = group->port;
	if (f->mode == 0)
		return 0;
	k->filter.mode = f->mode;
	k->filter.nsrc = f->nsrc;
	k->filter.atyp = f->nsrc ? f->atyp : 0;
	for (unsigned i = 0; i < f->nsrc; i++)
		memcpy(k->filter.src[i], f->src[i], alen);
	qsort(k->filter.src, f->nsrc, sizeof(k->filter.src[0]), src_cmp);
	/* Duplicates would make equal filters compare different. */
	unsigned n = 0;
	for (unsigned i = 0; i < k->filter.nsrc; i++)
		if (n == 0 || memcmp(k->filter.src[n - 1], k->filter.src[i], 16) != 0)
			memmove(k->filter.src[n++], k->filter.src[i], 16);
	for (unsigned i = n; i < k->filter.nsrc; i++)
		memset(k->filter.src[i], 0, 16);
	k->filter.nsrc = (uint8_t)n;
	if (k->filter.mode == MCAST_FMODE_EXCLUDE && n == 0)
		k->filter.mode = 0; /* EXCLUDE nothing is any-source */
	return 0;
}
