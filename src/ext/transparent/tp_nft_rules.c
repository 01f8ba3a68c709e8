/*
 * tp_nft_rules.c - the kernel engine's nftables table, written in nft's
 * own syntax and run through libnftables (one transaction per call).
 *
 * Per relay N the table gets two chains and two named counters, reached
 * through map elements keyed by the exact 5-tuple (prerouting) and by the
 * conntrack mark N (forward), so no rule handle is ever needed: removing
 * a relay deletes its elements, chains and counters by name.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nftables/libnftables.h>

#include "ext/transparent/tp_nft.h"

/*
 * The base chains. The forward chain's policy is drop: the host forwards
 * pinholed flows and nothing else, whatever ip_forward says. Packets to a
 * relay's BND from anyone but its source reach the input hook (no DNAT
 * matched) and are dropped there, so the reserved socket never answers.
 */
#define TABLE_TEXT                                                                           \
	"add table inet %s\n"                                                                \
	"delete table inet %s\n"                                                             \
	"table inet %s {\n"                                                                  \
	" map pre4 { type inet_proto . ipv4_addr . inet_service . ipv4_addr . inet_service"  \
	" : verdict; }\n"                                                                    \
	" map pre6 { type inet_proto . ipv6_addr . inet_service . ipv6_addr . inet_service"  \
	" : verdict; }\n"                                                                    \
	" map fwdv { type mark : verdict; }\n"                                               \
	" set marks { type mark; }\n"                                                        \
	" set bnd4 { type ipv4_addr . inet_service; }\n"                                     \
	" set bnd6 { type ipv6_addr . inet_service; }\n"                                     \
	" chain pre { type nat hook prerouting priority dstnat; policy accept;\n"            \
	"  meta l4proto . ip saddr . th sport . ip daddr . th dport vmap @pre4\n"            \
	"  meta l4proto . ip6 saddr . th sport . ip6 daddr . th dport vmap @pre6\n"          \
	" }\n"                                                                               \
	" chain post { type nat hook postrouting priority srcnat; policy accept;\n"          \
	"  ct direction original ct mark and 0x1fffffff @marks masquerade\n"                 \
	" }\n"                                                                               \
	" chain forward { type filter hook forward priority filter; policy drop;\n"          \
	"  ct mark and 0x1fffffff vmap @fwdv\n"                                              \
	" }\n"                                                                               \
	" chain input { type filter hook input priority filter; policy accept;\n"            \
	"  meta l4proto { tcp, udp, udplite, sctp, dccp } ip daddr . th dport @bnd4 drop\n"  \
	"  meta l4proto { tcp, udp, udplite, sctp, dccp } ip6 daddr . th dport @bnd6 drop\n" \
	" }\n"                                                                               \
	"}\n"

struct nft_ctx *tp_nft_ctx_new(void)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);

	if (!nft)
		return NULL;
	if (nft_ctx_buffer_output(nft) != 0 || nft_ctx_buffer_error(nft) != 0) {
		nft_ctx_free(nft);
		return NULL;
	}
	return nft;
}

/* Runs cmds; on failure the first line of nft's error text goes to err.
 * The error buffer is taken every time (taking it empties it), so text of
 * a failure nobody asked about never piles up or shows in the next one. */
static int run(struct nft_ctx *nft, const char *cmds, char *err, size_t errlen)
{
	int rc = nft_run_cmd_from_buffer(nft, cmds);
	const char *e = nft_ctx_get_error_buffer(nft);

	if (rc == 0)
		return 0;
	if (err && errlen) {
		const char *nl = e ? strchr(e, '\n') : NULL;
		int n = e ? (nl ? (int)(nl - e) : (int)strlen(e)) : 0;

		snprintf(err, errlen, "nft: %.*s", n, n ? e : "failed");
	}
	errno = EIO;
	return -1;
}

int tp_nft_table_reset(struct nft_ctx *nft, const char *table, char *err, size_t errlen)
{
	char cmds[sizeof(TABLE_TEXT) + 128];

	snprintf(cmds, sizeof(cmds), TABLE_TEXT, table, table, table);
	return run(nft, cmds, err, errlen);
}

/* A growing command text; overflow makes the whole transaction fail. */
struct text {
	char buf[4096];
	size_t len;
	bool over;
};

__attribute__((format(printf, 2, 3))) static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->over)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(t->buf) - t->len)
		t->over = true;
	else
		t->len += (size_t)n;
}

static const char *ip_of(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	const void *a = ss->ss_family == AF_INET6 ?
				(const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr :
				(const void *)&((const struct sockaddr_in *)ss)->sin_addr;

	return inet_ntop(ss->ss_family, a, out, (socklen_t)cap) ? out : "?";
}

static unsigned port_of(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port :
						 ((const struct sockaddr_in *)ss)->sin_port);
}

/* The addresses of a flow as nft writes them. */
struct flow_text {
	const char *fam, *v, *proto; /* "ip"/"ip6", "4"/"6", "udp"/"tcp" */
	char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN + 2], bnd[INET6_ADDRSTRLEN];
	unsigned sport, dport, bport;
};

static void flow_text(struct flow_text *ft, const struct tp_nft_flow *f)
{
	bool v6 = f->src.ss_family == AF_INET6;
	char d[INET6_ADDRSTRLEN];

	ft->fam = v6 ? "ip6" : "ip";
	ft->v = v6 ? "6" : "4";
	ft->proto = f->ptcl == IPPROTO_TCP ? "tcp" : "udp";
	ip_of(&f->src, ft->src, sizeof(ft->src));
	ip_of(&f->bnd, ft->bnd, sizeof(ft->bnd));
	ip_of(&f->dst, d, sizeof(d));
	/* dnat's "to" needs brackets around an IPv6 address before :port */
	snprintf(ft->dst, sizeof(ft->dst), v6 ? "[%s]" : "%s", d);
	ft->sport = port_of(&f->src);
	ft->dport = port_of(&f->dst);
	ft->bport = port_of(&f->bnd);
}

int tp_nft_flow_add(struct nft_ctx *nft, const char *table, const struct tp_nft_flow *f, char *err,
		    size_t errlen)
{
	struct flow_text ft;
	struct text t = { .len = 0 };
	uint32_t n = f->id;

	flow_text(&ft, f);
	add(&t, "add counter inet %s up_%" PRIu32 "\n", table, n);
	add(&t, "add counter inet %s down_%" PRIu32 "\n", table, n);
	add(&t, "add chain inet %s r%" PRIu32 "_pre\n", table, n);
	add(&t,
	    "add rule inet %s r%" PRIu32 "_pre meta l4proto %s ct mark set %" PRIu32
	    " dnat %s to %s:%u\n",
	    table, n, ft.proto, n, ft.fam, ft.dst, ft.dport);
	add(&t, "add chain inet %s r%" PRIu32 "_fwd\n", table, n);
	/* TCP's FINs and RSTs flag the conntrack entry (before the counting
	 * rules accept); the engine hears each mark change as a conntrack
	 * event and ends the relay on "fin", "closed" or "reset" (tp_nft.c). */
	if (f->ptcl == IPPROTO_TCP) {
		add(&t,
		    "add rule inet %s r%" PRIu32 "_fwd ct direction reply tcp flags & fin == fin"
		    " ct mark set ct mark or 0x%x\n",
		    table, n, TP_NFT_FIN_BIT);
		add(&t,
		    "add rule inet %s r%" PRIu32 "_fwd ct direction original tcp flags & fin == fin"
		    " ct mark set ct mark or 0x%x\n",
		    table, n, TP_NFT_CFIN_BIT);
		add(&t,
		    "add rule inet %s r%" PRIu32 "_fwd tcp flags & rst == rst"
		    " ct mark set ct mark or 0x%x\n",
		    table, n, TP_NFT_RST_BIT);
	}
	add(&t,
	    "add rule inet %s r%" PRIu32 "_fwd ct direction original counter name up_%" PRIu32
	    " accept\n",
	    table, n, n);
	add(&t,
	    "add rule inet %s r%" PRIu32 "_fwd ct direction reply counter name down_%" PRIu32
	    " accept\n",
	    table, n, n);
	add(&t, "add element inet %s pre%s { %s . %s . %u . %s . %u : goto r%" PRIu32 "_pre }\n",
	    table, ft.v, ft.proto, ft.src, ft.sport, ft.bnd, ft.bport, n);
	add(&t, "add element inet %s fwdv { %" PRIu32 " : goto r%" PRIu32 "_fwd }\n", table, n, n);
	add(&t, "add element inet %s marks { %" PRIu32 " }\n", table, n);
	add(&t, "add element inet %s bnd%s { %s . %u }\n", table, ft.v, ft.bnd, ft.bport);
	if (t.over) {
		snprintf(err, errlen, "nft: command too long");
		errno = ENOMEM;
		return -1;
	}
	return run(nft, t.buf, err, errlen);
}

int tp_nft_flow_unhook(struct nft_ctx *nft, const char *table, const struct tp_nft_flow *f,
		       char *err, size_t errlen)
{
	struct flow_text ft;
	struct text t = { .len = 0 };
	uint32_t n = f->id;

	flow_text(&ft, f);
	add(&t, "delete element inet %s pre%s { %s . %s . %u . %s . %u }\n", table, ft.v, ft.proto,
	    ft.src, ft.sport, ft.bnd, ft.bport);
	add(&t, "delete element inet %s fwdv { %" PRIu32 " }\n", table, n);
	add(&t, "delete element inet %s marks { %" PRIu32 " }\n", table, n);
	add(&t, "delete element inet %s bnd%s { %s . %u }\n", table, ft.v, ft.bnd, ft.bport);
	add(&t, "flush chain inet %s r%" PRIu32 "_pre\n", table, n);
	add(&t, "delete chain inet %s r%" PRIu32 "_pre\n", table, n);
	add(&t, "flush chain inet %s r%" PRIu32 "_fwd\n", table, n);
	add(&t, "delete chain inet %s r%" PRIu32 "_fwd\n", table, n);
	if (t.over) {
		snprintf(err, errlen, "nft: command too long");
		errno = ENOMEM;
		return -1;
	}
	return run(nft, t.buf, err, errlen);
}

/* "counter up_N { packets P bytes B }": the two numbers after the name. */
static int counter_parse(const char *out, const char *name, uint64_t *pkts, uint64_t *bytes)
{
	const char *at = out ? strstr(out, name) : NULL;

	if (!at || !(at = strstr(at, "packets ")))
		return -1;
	return sscanf(at, "packets %" SCNu64 " bytes %" SCNu64, pkts, bytes) == 2 ? 0 : -1;
}

int tp_nft_counters_read(struct nft_ctx *nft, const char *table, uint32_t id,
			 struct tp_counters *out)
{
	char cmds[256], up[32], down[32];
	const char *o;

	snprintf(cmds, sizeof(cmds),
		 "list counter inet %s up_%" PRIu32 "; list counter inet %s down_%" PRIu32, table,
		 id, table, id);
	if (run(nft, cmds, NULL, 0) != 0)
		return -1;
	o = nft_ctx_get_output_buffer(nft);
	snprintf(up, sizeof(up), "counter up_%" PRIu32 " ", id);
	snprintf(down, sizeof(down), "counter down_%" PRIu32 " ", id);
	if (counter_parse(o, up, &out->pkts_up, &out->bytes_up) != 0 ||
	    counter_parse(o, down, &out->pkts_down, &out->bytes_down) != 0) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

int tp_nft_counters_del(struct nft_ctx *nft, const char *table, uint32_t id)
{
	char cmds[256];

	snprintf(cmds, sizeof(cmds),
		 "delete counter inet %s up_%" PRIu32 "; delete counter inet %s down_%" PRIu32,
		 table, id, table, id);
	return run(nft, cmds, NULL, 0);
}

size_t tp_nft_marks_list(struct nft_ctx *nft, const char *table, uint32_t *ids, size_t max)
{
	char cmds[128];
	const char *o, *at;
	size_t n = 0;

	snprintf(cmds, sizeof(cmds), "list set inet %s marks", table);
	if (run(nft, cmds, NULL, 0) != 0)
		return 0;
	o = nft_ctx_get_output_buffer(nft);
	at = o ? strstr(o, "elements = {") : NULL;
	if (!at)
		return 0;
	at += strlen("elements = {");
	/* "0x00000001, 0x00000002 }": nft prints marks in hex */
	while (n < max) {
		char *end;
		unsigned long v = strtoul(at, &end, 0);

		if (end == at)
			break;
		ids[n++] = (uint32_t)v & TP_NFT_ID_MASK;
		at = end;
		while (*at == ',' || *at == ' ' || *at == '\n' || *at == '\t')
			at++;
	}
	return n;
}
