/*
 * tp_nft.c - TRANSPARENT's kernel engine ("engine kernel"): every relay is
 * a pinhole in an nftables table the process owns (tp_nft_rules.c), so
 * relayed packets never reach user space; teardown removes the rules and
 * then the conntrack entry (tp_nft_ct.c), so nothing passes afterwards.
 *
 * Ending on the relay's side: the target's FIN sets a bit in the flow's
 * conntrack mark (a rule), heard here as a conntrack update event on a
 * netlink socket the loop watches; idleness is seen by reading the
 * counters every `idle` interval.
 *
 * One engine per loop (thread); the table is reset once per process and
 * relay ids (the conntrack marks) are unique in the process.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <ev.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <nftables/libnftables.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/transparent/tp_conf.h"
#include "ext/transparent/tp_nft.h"

struct tp_engine {
	struct ev_loop *loop;
	struct nft_ctx *nft;
	char table[32];
	struct nfct_handle *events; /* conntrack update events (FIN marks) */
	struct nfct_handle *query;  /* look-ups and deletes */
	ev_io events_w;
	struct tp_relay *relays;
};

struct tp_relay {
	struct tp_engine *e;
	struct tp_relay *prev, *next;
	struct tp_nft_flow f;
	int resfd[2]; /* hold BND's port (TCP and UDP) so nothing else binds it */
	struct tp_engine_cb cb;
	void *arg;
	ev_timer opened_w; /* opened() from the loop, after open() returned */
	ev_timer idle_w;
	uint64_t idle_seen;  /* packets both ways at the last idle check */
	const char *end_why; /* set from a conntrack event: end the relay with it */
};

static _Atomic uint32_t next_id = 1;

/* ---- the table: reset once per process and table name ---- */
static pthread_mutex_t reset_lock = PTHREAD_MUTEX_INITIALIZER;
static char reset_done[4][32];

/*
 * Once per process and table: the relays of a run that was killed are
 * read from its table (the `marks` set) before the table is replaced, and
 * their conntrack entries deleted, so no flow they had keeps its address
 * translation. Relay ids then start at a random point, so a new relay is
 * never given the mark of a flow the old run left anywhere.
 */
static int table_once(struct tp_engine *e, char *err, size_t errlen)
{
	uint32_t stale[1024], start;
	size_t i, n;
	int rc = 0;

	pthread_mutex_lock(&reset_lock);
	for (i = 0; i < 4 && reset_done[i][0]; i++)
		if (strcmp(reset_done[i], e->table) == 0)
			goto out;
	n = tp_nft_marks_list(e->nft, e->table, stale, sizeof(stale) / sizeof(stale[0]));
	rc = tp_nft_table_reset(e->nft, e->table, err, errlen);
	if (rc != 0)
		goto out;
	for (size_t k = 0; k < n; k++)
		tp_nft_ct_forget_mark(e->query, stale[k]);
	if (n > 0)
		log_info("transparent: table inet %s reset, %zu relays of a previous run removed",
			 e->table, n);
	if (i < 4)
		snprintf(reset_done[i], sizeof(reset_done[i]), "%s", e->table);
	if (getrandom(&start, sizeof(start), 0) == sizeof(start))
		atomic_store(&next_id, (start & (TP_NFT_ID_MASK >> 1)) + 1);
out:
	pthread_mutex_unlock(&reset_lock);
	return rc;
}

/* 1 when the sysctl file holds a non-zero number, 0 when zero, -1 unreadable. */
static int sysctl_on(const char *path)
{
	char buf[16] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) != 0 : -1;
}

#define FWD4 "/proc/sys/net/ipv4/ip_forward"
#define FWD6 "/proc/sys/net/ipv6/conf/all/forwarding"

/* ---- ending ---- */
static void relay_unlink(struct tp_relay *r)
{
	struct tp_engine *e = r->e;

	if (r->prev)
		r->prev->next = r->next;
	else
		e->relays = r->next;
	if (r->next)
		r->next->prev = r->prev;
}

/* Rules, then conntrack, then counters: the final counters are exact
 * because no packet can be counted once the rules are gone. */
static void relay_teardown(struct tp_relay *r, struct tp_counters *final)
{
	struct tp_engine *e = r->e;
	struct tp_counters c = { 0, 0, 0, 0 };
	char err[256];

	ev_timer_stop(e->loop, &r->opened_w);
	ev_timer_stop(e->loop, &r->idle_w);
	if (tp_nft_flow_unhook(e->nft, e->table, &r->f, err, sizeof(err)) != 0)
		log_warnx("transparent: kernel relay %u: removing rules: %s", r->f.id, err);
	if (tp_nft_ct_forget(e->query, &r->f) != 0)
		log_warn("transparent: kernel relay %u: deleting conntrack entry", r->f.id);
	if (tp_nft_counters_read(e->nft, e->table, r->f.id, &c) != 0)
		log_warnx("transparent: kernel relay %u: counters unreadable", r->f.id);
	tp_nft_counters_del(e->nft, e->table, r->f.id);
	if (final)
		*final = c;
	for (int i = 0; i < 2; i++)
		if (r->resfd[i] >= 0)
			close(r->resfd[i]);
	relay_unlink(r);
}

/* The relay ends on the engine's side: torn down, then ended(why). */
static void relay_end(struct tp_relay *r, const char *why)
{
	struct tp_counters c;
	struct tp_engine_cb cb = r->cb;
	void *arg = r->arg;

	relay_teardown(r, &c);
	free(r);
	cb.ended(arg, why, &c);
}

static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tp_relay *r = w->data;
	struct tp_counters c;

	if (tp_nft_counters_read(r->e->nft, r->e->table, r->f.id, &c) != 0)
		return;
	if (c.pkts_up + c.pkts_down == r->idle_seen) {
		relay_end(r, "idle");
		return;
	}
	r->idle_seen = c.pkts_up + c.pkts_down;
}

static void opened_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct tp_relay *r = w->data;

	r->cb.opened(r->arg, 0, &r->f.bnd);
}

/* ---- conntrack events: TCP flags in the mark end the relay ---- */
/* Why a TCP relay with this mark ends, or NULL while it goes on. */
static const char *end_reason(const struct tp_relay *r, uint32_t mark)
{
	if (mark & TP_NFT_RST_BIT)
		return "reset";
	if ((mark & TP_NFT_FIN_BIT) && r->f.watch_fin)
		return "fin";
	if ((mark & TP_NFT_FIN_BIT) && (mark & TP_NFT_CFIN_BIT))
		return "closed";
	return NULL;
}

static int event_cb(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *arg)
{
	struct tp_engine *e = arg;
	uint32_t mark = nfct_get_attr_u32(ct, ATTR_MARK);

	for (struct tp_relay *r = e->relays; r; r = r->next)
		if (r->f.ptcl == IPPROTO_TCP && r->f.id == (mark & TP_NFT_ID_MASK) && !r->end_why)
			r->end_why = end_reason(r, mark);
	return NFCT_CB_CONTINUE;
}

/* After lost events (ENOBUFS), ask conntrack about every TCP flow. */
static void mark_rescan(struct tp_engine *e)
{
	for (struct tp_relay *r = e->relays; r; r = r->next) {
		uint32_t mark;

		if (r->f.ptcl == IPPROTO_TCP && !r->end_why &&
		    tp_nft_ct_mark(e->query, &r->f, &mark) == 0)
			r->end_why = end_reason(r, mark);
	}
}

static void events_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct tp_engine *e = w->data;
	struct tp_relay *r;

	if (nfct_catch(e->events) < 0 && errno == ENOBUFS) {
		log_warnx("transparent: conntrack events lost; looking the flows up");
		mark_rescan(e);
	}
	/* ended() may close other relays: restart from the head each time. */
	do {
		for (r = e->relays; r && !r->end_why; r = r->next)
			;
		if (r)
			relay_end(r, r->end_why);
	} while (r);
}

/* A socket filter in the kernel passes only events of entries whose mark
 * has one of the TCP bits, so the host's other conntrack traffic never
 * wakes the loop. Without it (an old kernel) event_cb filters the same way. */
static void mark_filter(int fd)
{
	static const uint32_t bits[] = { TP_NFT_FIN_BIT, TP_NFT_CFIN_BIT, TP_NFT_RST_BIT };
	struct nfct_filter *f = nfct_filter_create();

	if (!f)
		return;
	for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
		struct nfct_filter_dump_mark m = { bits[i], bits[i] };

		nfct_filter_add_attr(f, NFCT_FILTER_MARK, &m);
	}
	if (nfct_filter_attach(fd, f) != 0)
		log_debug("transparent: conntrack event filter not attached");
	nfct_filter_destroy(f);
}

/* ---- the ops ---- */
static int events_open(struct tp_engine *e, char *err, size_t errlen)
{
	int fd;

	e->query = nfct_open(CONNTRACK, 0);
	e->events = nfct_open(CONNTRACK, NF_NETLINK_CONNTRACK_UPDATE);
	if (!e->query || !e->events) {
		snprintf(err, errlen, "kernel engine: conntrack netlink: %s", strerror(errno));
		return -1;
	}
	fd = nfct_fd(e->events);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	mark_filter(fd);
	nfct_callback_register(e->events, NFCT_T_UPDATE, event_cb, e);
	ev_io_init(&e->events_w, events_cb, fd, EV_READ);
	e->events_w.data = e;
	ev_io_start(e->loop, &e->events_w);
	return 0;
}

static void engine_free(struct tp_engine *e)
{
	if (e->events) {
		ev_io_stop(e->loop, &e->events_w);
		nfct_close(e->events);
	}
	if (e->query)
		nfct_close(e->query);
	if (e->nft)
		nft_ctx_free(e->nft);
	free(e);
}

struct tp_engine *tp_nft_create_table(struct ev_loop *loop, const struct tp_conf *conf,
				      const char *table, char *err, size_t errlen)
{
	struct tp_engine *e;

	if (sysctl_on(FWD4) != 1 && sysctl_on(FWD6) != 1) {
		snprintf(err, errlen,
			 "kernel engine: this host does not forward (net.ipv4.ip_forward and "
			 "net.ipv6.conf.all.forwarding are 0): turn forwarding on; the engine's "
			 "forward chain still drops every packet but the pinholed flows");
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "kernel engine: out of memory");
		return NULL;
	}
	e->loop = loop;
	snprintf(e->table, sizeof(e->table), "%s", table);
	e->nft = tp_nft_ctx_new();
	if (!e->nft) {
		snprintf(err, errlen, "kernel engine: libnftables context failed");
		engine_free(e);
		return NULL;
	}
	if (events_open(e, err, errlen) != 0 || table_once(e, err, errlen) != 0) {
		engine_free(e);
		return NULL;
	}
	return e;
}

static struct tp_engine *nft_create(struct ev_loop *loop, const struct tp_conf *conf, char *err,
				    size_t errlen)
{
	return tp_nft_create_table(loop, conf, TP_NFT_TABLE, err, errlen);
}

static void nft_destroy(struct tp_engine *e)
{
	while (e->relays) {
		struct tp_relay *r = e->relays;

		relay_teardown(r, NULL);
		free(r);
	}
	engine_free(e);
}

/* A socket of type bound to *at (port 0: the kernel picks one, written
 * back to *at); -1 with errno. */
static int bind_one(int type, struct sockaddr_storage *at)
{
	socklen_t len = sa_len((struct sockaddr *)at);
	int fd = socket(at->ss_family, type | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)at, len) != 0 ||
	    getsockname(fd, (struct sockaddr *)at, &len) != 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/*
 * Reserves BND's port for both TCP and UDP (sockets bound, never listening
 * or read) for the relay's life: nothing else takes it, and the port is the
 * relay's alone whatever the protocol, so the input chain can drop every
 * stray packet to it (non-PTCL ones too) by address and port. With port 0
 * the kernel picks the relay protocol's port; if the other protocol's is
 * taken, another pick.
 */
static int reserve_bnd(struct tp_relay *r)
{
	int mine = r->f.ptcl == IPPROTO_TCP ? SOCK_STREAM : SOCK_DGRAM;
	int other = mine == SOCK_STREAM ? SOCK_DGRAM : SOCK_STREAM;
	bool any = sa_port((struct sockaddr *)&r->f.bnd) == 0;

	for (int tries = 0; tries < 16; tries++) {
		struct sockaddr_storage at = r->f.bnd;
		int fd = bind_one(mine, &at), fd2;

		if (fd < 0)
			return -1;
		fd2 = bind_one(other, &at);
		if (fd2 >= 0) {
			r->f.bnd = at;
			r->resfd[0] = fd;
			r->resfd[1] = fd2;
			return 0;
		}
		close(fd);
		if (!any || errno != EADDRINUSE)
			return -1;
	}
	errno = EADDRINUSE;
	return -1;
}

static bool addr_unspecified(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == 0;
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* errno for an association this engine cannot relay, 0 when it can. */
static int assoc_check(const struct tp_nft_flow *f)
{
	int fam = f->src.ss_family;

	if (f->ptcl != IPPROTO_TCP && f->ptcl != IPPROTO_UDP)
		return EPROTONOSUPPORT;
	if ((fam != AF_INET && fam != AF_INET6) || f->bnd.ss_family != fam)
		return EINVAL;
	/* NAT cannot change the family: no IPv4 client to an IPv6 target */
	if (f->dst.ss_family != fam)
		return EAFNOSUPPORT;
	if (addr_unspecified(&f->bnd))
		return EADDRNOTAVAIL;
	if (sysctl_on(fam == AF_INET6 ? FWD6 : FWD4) != 1)
		return ENETUNREACH;
	return 0;
}

static struct tp_relay *nft_open(struct tp_engine *e, const struct tp_assoc *a,
				 const struct tp_engine_cb *cb, void *arg)
{
	struct tp_relay *r = calloc(1, sizeof(*r));
	char err[256];
	int rc;

	if (!r)
		return NULL;
	r->e = e;
	r->resfd[0] = r->resfd[1] = -1;
	r->cb = *cb;
	r->arg = arg;
	r->f.ptcl = a->ptcl;
	r->f.src = a->src;
	r->f.dst = a->dst;
	r->f.bnd = a->bnd;
	sa_unmap(&r->f.src);
	sa_unmap(&r->f.dst);
	sa_unmap(&r->f.bnd);
	r->f.watch_fin = a->ptcl == IPPROTO_TCP && a->end_on_fin;
	rc = assoc_check(&r->f);
	if (rc != 0 || reserve_bnd(r) != 0) {
		if (rc != 0)
			errno = rc;
		free(r);
		return NULL;
	}
	do
		r->f.id = atomic_fetch_add(&next_id, 1) & TP_NFT_ID_MASK;
	while (r->f.id == 0);
	/* A packet sent before the pinhole existed left an entry with no NAT. */
	tp_nft_ct_forget(e->query, &r->f);
	if (tp_nft_flow_add(e->nft, e->table, &r->f, err, sizeof(err)) != 0) {
		log_warnx("transparent: kernel relay %u: %s", r->f.id, err);
		close(r->resfd[0]);
		close(r->resfd[1]);
		free(r);
		errno = EIO;
		return NULL;
	}
	r->next = e->relays;
	if (e->relays)
		e->relays->prev = r;
	e->relays = r;
	ev_timer_init(&r->opened_w, opened_cb, 0., 0.);
	r->opened_w.data = r;
	ev_timer_start(e->loop, &r->opened_w);
	ev_timer_init(&r->idle_w, idle_cb, a->idle_ms / 1000., a->idle_ms / 1000.);
	r->idle_w.data = r;
	if (a->idle_ms > 0)
		ev_timer_start(e->loop, &r->idle_w);
	return r;
}

static void nft_counters(struct tp_relay *r, struct tp_counters *out)
{
	memset(out, 0, sizeof(*out));
	tp_nft_counters_read(r->e->nft, r->e->table, r->f.id, out);
}

static void nft_close(struct tp_relay *r, struct tp_counters *final)
{
	relay_teardown(r, final);
	free(r);
}

const struct tp_engine_ops tp_engine_kernel = {
	.name = "kernel",
	.create = nft_create,
	.destroy = nft_destroy,
	.open = nft_open,
	.counters = nft_counters,
	.close = nft_close,
};
