/*
 * mc_relay.c - one relay per (group, port, source filter): joins the real
 * group on the external interface and re-sends what it receives, sealed
 * with the group's receive key, to an intranet group on the internal
 * interface; takes members' sealed packets and sends those of members
 * allowed to send to the real group (and a copy to the intranet group, as
 * a host on the group would see its peers' packets).
 *
 * Three sockets:
 *   ext_fd  bound to the real group:port, joined on the external interface
 *           (IGMP/MLD by the kernel), also the socket packets go out from;
 *   mem_fd  members' packets, by both paths of docs/mcast.md 4.1: unicast
 *           to port P (dual-stack, ephemeral port, bound to the internal
 *           interface when one is configured) and multicast to the
 *           intranet group I:P, which it joins on the internal interface;
 *   int_fd  sends to the intranet group, port P, without looping back, so
 *           mem_fd never reads the relay's own copies.
 * Opened by a worker under the hub lock; watched only by the hub thread.
 * The worker makes the sockets through its session's socket seam
 * (mc_sockets): ext_fd where the JOIN's rule sends it (to-compartment),
 * mem_fd and int_fd where the members are (the compartment they arrived
 * in). Interface names are looked up on those sockets, so in their own
 * network namespace.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/mcast/mc.h"
#include "mcrypto/mc_crypt.h"

#define RELAY_BATCH 64 /* datagrams per wake-up and socket */
#define RELAY_TICK 1.0 /* seconds between idle checks */
#define DROP_LOG_EVERY 10.0 /* seconds between log lines about dropped packets */

struct relay_counts {
	uint64_t in, out;         /* outside -> intranet, members -> outside */
	uint64_t auth_fail;       /* failed authentication (forged or damaged) */
	uint64_t replay;          /* replayed or too old */
	uint64_t not_sender;      /* from members not allowed to send */
	uint64_t unknown;         /* no such member / wrong source address */
	uint64_t malformed;
	uint64_t send_err;
};

struct mc_relay {
	struct mc_key key;
	struct mc_settings set;
	const struct mc_sockets *sk;    /* only while mc_relay_open runs */
	char name[SA_STR_MAX + 16 + sizeof(((struct mc_key *)0)->place)];
	int ext_fd, mem_fd, int_fd;
	unsigned ext_ifindex, int_ifindex;
	struct sockaddr_storage group_sa, int_sa;
	uint8_t recv_key[MCAST_KEY_LEN];
	uint64_t seq;                   /* last relay frame sequence number */
	struct mc_member *members;
	unsigned n_members;
	uint32_t next_id;
	ev_io ext_io, mem_io;
	ev_timer tick;
	double tokens;
	ev_tstamp last_fill, last_packet;
	struct relay_counts n;
	ev_tstamp drop_said;            /* when a line about drops was logged */
	uint64_t drop_quiet;            /* drops since then, not yet logged */
};

/* ---- socket set-up ---- */

static int level_of(int family)
{
	return family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP;
}

static void key_sockaddr(struct sockaddr_storage *ss, int family, const uint8_t *addr,
			 uint16_t port, unsigned ifindex)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		memcpy(&a->sin_addr, addr, 4);
		a->sin_port = htons(port);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		memcpy(&a->sin6_addr, addr, 16);
		a->sin6_port = htons(port);
		a->sin6_scope_id = ifindex;
	}
}

static int relay_socket(const struct mc_relay *r, bool outside, int family)
{
	int type = SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC;
	if (r->sk && r->sk->open)
		return r->sk->open(r->sk->ctx, outside, family, type);
	return socket(family, type, 0);
}

/* The index of interface name in fd's network namespace (if_nametoindex
 * would look in stpd's own); 0 when there is none. */
static unsigned if_index_on(int fd, const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	return ioctl(fd, SIOCGIFINDEX, &ifr) == 0 ? (unsigned)ifr.ifr_ifindex : 0;
}

/* Outgoing multicast: interface, hop limit, and no copy back to ourselves. */
static int set_mcast_out(int fd, int family, unsigned ifindex, unsigned ttl)
{
	int off = 0, hops = (int)ttl;
	if (family == AF_INET) {
		struct ip_mreqn mr = { .imr_ifindex = (int)ifindex };
		if ((ifindex && setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr)) < 0) ||
		    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &hops, sizeof(hops)) < 0 ||
		    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &off, sizeof(off)) < 0)
			return -1;
		return 0;
	}
	int idx = (int)ifindex;
	if ((ifindex && setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof(idx)) < 0) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof(hops)) < 0 ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &off, sizeof(off)) < 0)
		return -1;
	return 0;
}

/* RFC 3678 protocol-independent API: any-source, INCLUDE (one
 * source-specific join per source) or EXCLUDE (join, then block). */
static int join_group(int fd, const struct mc_key *k, const struct sockaddr_storage *grp,
		      unsigned ifindex)
{
	int lvl = level_of(k->family);
	const struct mcast_filter *f = &k->filter;

	if (f->mode == MCAST_FMODE_INCLUDE) {
		for (unsigned i = 0; i < f->nsrc; i++) {
			struct group_source_req gs = { .gsr_interface = ifindex };
			memcpy(&gs.gsr_group, grp, sizeof(*grp));
			key_sockaddr(&gs.gsr_source, k->family, f->src[i], 0, 0);
			if (setsockopt(fd, lvl, MCAST_JOIN_SOURCE_GROUP, &gs, sizeof(gs)) < 0)
				return -1;
		}
		return 0;
	}
	struct group_req gr = { .gr_interface = ifindex };
	memcpy(&gr.gr_group, grp, sizeof(*grp));
	if (setsockopt(fd, lvl, MCAST_JOIN_GROUP, &gr, sizeof(gr)) < 0)
		return -1;
	for (unsigned i = 0; f->mode == MCAST_FMODE_EXCLUDE && i < f->nsrc; i++) {
		struct group_source_req gs = { .gsr_interface = ifindex };
		memcpy(&gs.gsr_group, grp, sizeof(*grp));
		key_sockaddr(&gs.gsr_source, k->family, f->src[i], 0, 0);
		if (setsockopt(fd, lvl, MCAST_BLOCK_SOURCE, &gs, sizeof(gs)) < 0)
			return -1;
	}
	return 0;
}

static int open_ext(struct mc_relay *r, const char **why)
{
	int one = 1, zero = 0;
	int fam = r->key.family;

	r->ext_fd = relay_socket(r, true, fam);
	if (r->ext_fd < 0) {
		*why = "external socket";
		return -1;
	}
	if (r->set.ext_if[0] && !(r->ext_ifindex = if_index_on(r->ext_fd, r->set.ext_if))) {
		*why = "configured interface not found";
		return -1;
	}
	key_sockaddr(&r->group_sa, fam, r->key.group, r->key.port, r->ext_ifindex);
	setsockopt(r->ext_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Only this socket's own memberships, not every group on the port. */
	if (fam == AF_INET)
		setsockopt(r->ext_fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero));
#ifdef IPV6_MULTICAST_ALL
	else
		setsockopt(r->ext_fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof(zero));
#endif
	if (bind(r->ext_fd, (struct sockaddr *)&r->group_sa,
		 sa_len((struct sockaddr *)&r->group_sa)) < 0) {
		*why = "cannot bind to the group";
		return -1;
	}
	if (join_group(r->ext_fd, &r->key, &r->group_sa, r->ext_ifindex) < 0) {
		*why = "cannot join the group on the external interface";
		return -1;
	}
	if (set_mcast_out(r->ext_fd, fam, r->ext_ifindex, r->set.ttl) < 0) {
		*why = "cannot set up sending to the group";
		return -1;
	}
	return 0;
}

/* Members send to the intranet group I:P too (seed 000 5.2: "The client
 * must use this address and port to send and receive data"), so the member
 * socket joins I on the internal interface (route lookup when none is
 * configured, as for the copies). Of the groups this host joined it hears
 * only I: IP_MULTICAST_ALL off, or it would read every group's traffic to
 * port P (the kernel's default). */
static int join_intranet(struct mc_relay *r)
{
	struct group_req gr = { .gr_interface = r->int_ifindex };
	int zero = 0;

	setsockopt(r->mem_fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero));
#ifdef IPV6_MULTICAST_ALL
	if (r->int_sa.ss_family == AF_INET6)
		setsockopt(r->mem_fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof(zero));
#endif
	memcpy(&gr.gr_group, &r->int_sa, sizeof(r->int_sa));
	/* An IPv4 group on the dual-stack socket is joined at IPPROTO_IP. */
	return setsockopt(r->mem_fd, level_of(r->int_sa.ss_family), MCAST_JOIN_GROUP, &gr,
			  sizeof(gr));
}

/* Members may reach us over IPv4 or IPv6 whatever the group's family:
 * unicast to port P, and to the intranet group I:P. */
static int open_member(struct mc_relay *r, const char **why)
{
	struct sockaddr_in6 any6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT };
	struct sockaddr_in any4 = { .sin_family = AF_INET };
	struct sockaddr_storage me;
	socklen_t len = sizeof(me);
	int zero = 0;

	r->mem_fd = relay_socket(r, false, AF_INET6);
	if (r->mem_fd >= 0) {
		setsockopt(r->mem_fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	} else {
		r->mem_fd = relay_socket(r, false, AF_INET);
		if (r->mem_fd < 0) {
			*why = "member socket";
			return -1;
		}
	}
	if (r->set.int_if[0] && !(r->int_ifindex = if_index_on(r->mem_fd, r->set.int_if))) {
		*why = "configured interface not found";
		return -1;
	}
	if (r->int_sa.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&r->int_sa)->sin6_scope_id = r->int_ifindex;
	if (r->set.int_if[0] && setsockopt(r->mem_fd, SOL_SOCKET, SO_BINDTODEVICE, r->set.int_if,
					   (socklen_t)strlen(r->set.int_if)) < 0) {
		*why = "cannot bind the member socket to the internal interface";
		return -1;
	}
	/* In a compartment the members share the relay's namespace: each binds
	 * I:P with SO_REUSEADDR (docs/mcast.md 3.1), which a wildcard :P held
	 * without it would refuse. */
	int one = 1;
	if (r->key.place[0])
		setsockopt(r->mem_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr *any = (struct sockaddr *)&any6;
	socklen_t anylen = sizeof(any6);
	if (getsockname(r->mem_fd, (struct sockaddr *)&me, &len) == 0 && me.ss_family == AF_INET) {
		any = (struct sockaddr *)&any4;
		anylen = sizeof(any4);
	}
	len = sizeof(me);
	int ok = bind(r->mem_fd, any, anylen) == 0;
	if (!ok || getsockname(r->mem_fd, (struct sockaddr *)&me, &len) < 0) {
		*why = "cannot bind the member socket";
		return -1;
	}
	sa_set_port((struct sockaddr *)&r->int_sa, sa_port((struct sockaddr *)&me));
	if (join_intranet(r) < 0) {
		*why = "cannot join the intranet group on the internal interface";
		return -1;
	}
	return 0;
}

static int open_int(struct mc_relay *r, const char **why)
{
	int fam = r->int_sa.ss_family;
	r->int_fd = relay_socket(r, false, fam);
	if (r->int_fd < 0 || set_mcast_out(r->int_fd, fam, r->int_ifindex, r->set.ttl) < 0) {
		*why = "cannot set up the intranet group";
		return -1;
	}
	return 0;
}

static void close_fds(struct mc_relay *r)
{
	if (r->ext_fd >= 0)
		close(r->ext_fd); /* the kernel leaves the group (IGMP/MLD) */
	if (r->mem_fd >= 0)
		close(r->mem_fd); /* and leaves the intranet group */
	if (r->int_fd >= 0)
		close(r->int_fd);
	r->ext_fd = r->mem_fd = r->int_fd = -1;
}

struct mc_relay *mc_relay_open(const struct mc_key *k, const struct mc_settings *set,
			       const struct mc_sockets *sk, const struct sockaddr_storage *int_sa,
			       const char **why)
{
	struct mc_relay *r = calloc(1, sizeof(*r));
	if (!r) {
		*why = "out of memory";
		return NULL;
	}
	r->key = *k;
	r->set = *set;
	r->ext_fd = r->mem_fd = r->int_fd = -1;
	r->next_id = 1;
	r->sk = sk;
	r->int_sa = *int_sa;
	key_sockaddr(&r->group_sa, k->family, k->group, k->port, 0); /* scope: open_ext */
	sa_str((struct sockaddr *)&r->group_sa, r->name, sizeof(r->name));
	if (k->filter.mode)
		snprintf(r->name + strlen(r->name), sizeof(r->name) - strlen(r->name), "/%s%u",
			 k->filter.mode == MCAST_FMODE_INCLUDE ? "include" : "exclude",
			 k->filter.nsrc);
	if (k->place[0])
		snprintf(r->name + strlen(r->name), sizeof(r->name) - strlen(r->name), " in %s",
			 k->place);
	if (set->suite != MCAST_SUITE_NONE && mc_random(r->recv_key, sizeof(r->recv_key))) {
		*why = "no random bytes";
	} else if (open_ext(r, why) == 0 && open_member(r, why) == 0 && open_int(r, why) == 0) {
		r->tokens = (double)set->burst;
		r->sk = NULL;
		return r;
	}
	static struct log_rate rl = LOG_RATE_INIT("multicast relay start failed");
	log_warn_rl(&rl, "multicast relay %s: %s", r->name, *why);
	close_fds(r);
	free(r);
	return NULL;
}

/* ---- membership ---- */

bool mc_relay_is(const struct mc_relay *r, const struct mc_key *k)
{
	return memcmp(&r->key, k, sizeof(*k)) == 0;
}

const struct sockaddr_storage *mc_relay_intranet(const struct mc_relay *r)
{
	return &r->int_sa;
}

void mc_relay_grant(const struct mc_relay *r, struct mc_grant *g)
{
	g->int_sa = r->int_sa;
	if (g->int_sa.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&g->int_sa)->sin6_scope_id = 0;
	g->suite = r->set.suite;
	memcpy(g->recv_key, r->recv_key, sizeof(g->recv_key));
}

unsigned mc_relay_members(const struct mc_relay *r)
{
	return r->n_members;
}

int mc_relay_add(struct mc_relay *r, struct mc_member *m, uint8_t *rep, const char **why)
{
	if (r->set.max_members && r->n_members >= r->set.max_members) {
		*rep = SOCKS5_REP_NOT_ALLOWED;
		*why = "group member limit reached";
		return -1;
	}
	m->id = r->next_id++;
	if (r->next_id == 0)
		r->next_id = 1;
	m->relay = r;
	memset(&m->win, 0, sizeof(m->win));
	m->next = r->members;
	r->members = m;
	r->n_members++;
	return 0;
}

bool mc_relay_remove(struct mc_relay *r, struct mc_member *m)
{
	for (struct mc_member **pp = &r->members; *pp; pp = &(*pp)->next)
		if (*pp == m) {
			*pp = m->next;
			r->n_members--;
			break;
		}
	m->relay = NULL;
	m->next = NULL;
	return r->n_members == 0;
}

/* ---- forwarding (hub thread, lock held) ---- */

/* Token bucket over both directions. False: the group went over its
 * bandwidth and has been ended (r is freed), or, when it may not be ended
 * here (!may_end), the packet is to be dropped. */
static bool spend(struct mc_relay *r, ev_tstamp now, size_t bytes, bool may_end)
{
	r->last_packet = now;
	if (r->set.rate == 0)
		return true;
	r->tokens += (now - r->last_fill) * (double)r->set.rate;
	if (r->tokens > (double)r->set.burst)
		r->tokens = (double)r->set.burst;
	r->last_fill = now;
	if (r->tokens < (double)bytes) {
		if (!may_end)
			return false;
		static struct log_rate rl = LOG_RATE_INIT("multicast group over its rate");
		log_warnx_rl(&rl, "multicast relay %s: over %llu bytes/s, stopping the group",
			     r->name, (unsigned long long)r->set.rate);
		mc_hub_relay_ended(r, MCAST_NOTE_BANDWIDTH, "bandwidth limit");
		return false;
	}
	r->tokens -= (double)bytes;
	return true;
}

/* Seals payload[0..n) as a relay frame from origin/src into out (cap
 * bytes, not overlapping payload) and sends it to the intranet group. */
static void to_intranet(struct mc_relay *r, uint32_t origin, const struct sockaddr *src,
			const uint8_t *payload, size_t n, uint8_t *out, size_t cap)
{
	struct mcast_frame f = { .kind = MCAST_KIND_RELAY, .id = origin, .seq = ++r->seq };

	if (sa_to_socks(&f.src, src) < 0)
		return;
	size_t len = mc_frame_seal(mc_hub_aead(), r->set.suite, r->recv_key, &f, payload, n, out,
				   cap);
	if (len == 0 || sendto(r->int_fd, out, len, MSG_DONTWAIT, (struct sockaddr *)&r->int_sa,
			       sa_len((struct sockaddr *)&r->int_sa)) < 0)
		r->n.send_err++;
}

static void on_outside(EV_P_ ev_io *w, int revents)
{
	struct mc_relay *r = w->data;
	size_t cap, ocap;
	uint8_t *buf = mc_hub_buf(&cap), *out = mc_hub_out(&ocap);

	mc_hub_lock();
	for (int i = 0; i < RELAY_BATCH; i++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(w->fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&from, &flen);
		if (n < 0)
			break;
		sa_unmap(&from);
		if (!spend(r, ev_now(EV_A), (size_t)n, true))
			break; /* r is gone */
		r->n.in++;
		to_intranet(r, 0, (struct sockaddr *)&from, buf, (size_t)n, out, ocap);
	}
	mc_hub_unlock();
}

static struct mc_member *find_member(struct mc_relay *r, uint32_t id,
				     const struct sockaddr *from)
{
	for (struct mc_member *m = r->members; m; m = m->next) {
		if (!sa_equal_addr((struct sockaddr *)&m->client, from))
			continue;
		/* Without encryption the client has no id: its address is all. */
		if (r->set.suite == MCAST_SUITE_NONE ? (m->perms & MCAST_KEYF_SEND) : m->id == id)
			return m;
	}
	return NULL;
}

/* Counts one dropped member datagram. Anyone on the inside can send to the
 * intranet group (or port P), so a log line per drop would be a log flood
 * on demand: one line names the first drop, then at most one line per
 * DROP_LOG_EVERY counts the rest (drops_tick); the relay's last line has
 * the totals. */
static void drop(struct mc_relay *r, uint64_t *counter, struct mc_member *m, ev_tstamp now,
		 const struct sockaddr *from, const char *why)
{
	char a[SA_STR_MAX];

	(*counter)++;
	if (m)
		m->dropped++;
	if (r->drop_quiet > 0 || now - r->drop_said < DROP_LOG_EVERY) {
		r->drop_quiet++;
		return;
	}
	r->drop_said = now;
	log_warnx("multicast relay %s: dropped a packet from %s (%s); more are counted, "
		  "not logged each", r->name, sa_str(from, a, sizeof(a)), why);
}

static void drops_tick(struct mc_relay *r, ev_tstamp now)
{
	if (r->drop_quiet == 0 || now - r->drop_said < DROP_LOG_EVERY)
		return;
	log_warnx("multicast relay %s: dropped %llu more member packets in %.0f s", r->name,
		  (unsigned long long)r->drop_quiet, now - r->drop_said);
	r->drop_quiet = 0;
	r->drop_said = now;
}

/* One member datagram p[0..n) (in the hub's buf), which came to port P or
 * to the intranet group: authenticate, then send it out. What else shows
 * up there (garbage, the relay frames inside receivers get, frames from a
 * wrong address) is dropped on the header and the member table, before
 * any crypto. False when the relay ended meanwhile (only when may_end). */
static bool from_member(struct mc_relay *r, ev_tstamp now, uint8_t *p, size_t n,
			struct sockaddr_storage *from, bool may_end)
{
	struct mcast_frame f;
	struct socks_err err;
	size_t cap, bcap;
	uint8_t *pt = mc_hub_out(&cap);

	mc_hub_buf(&bcap);
	struct sockaddr *sa = (struct sockaddr *)from;
	enum socks_res pr = mcast_frame_parse(&f, p, n, &err);
	/* In a compartment the members' interface is shared with stpd's own
	 * socket, and a loopback device delivers the relay's intranet copies
	 * to mem_fd whatever IP_MULTICAST_LOOP says: not worth a drop. */
	if (pr == SOCKS_DONE && f.kind == MCAST_KIND_RELAY && r->key.place[0])
		return true;
	if (pr != SOCKS_DONE || f.kind != MCAST_KIND_MEMBER) {
		drop(r, &r->n.malformed, NULL, now, sa, "not a member frame");
		return true;
	}
	struct mc_member *m = find_member(r, f.id, sa);
	if (!m) {
		drop(r, &r->n.unknown, NULL, now, sa, "no such member at that address");
		return true;
	}
	if (!(m->perms & MCAST_KEYF_SEND)) {
		drop(r, &r->n.not_sender, m, now, sa, "member may not send");
		return true;
	}
	if (!mc_replay_check(&m->win, f.seq)) {
		drop(r, &r->n.replay, m, now, sa, "replayed or too old");
		return true;
	}
	long len = mc_frame_open(mc_hub_aead(), r->set.suite, m->send_key, &f, p, n, pt, cap);
	if (len < 0) {
		drop(r, &r->n.auth_fail, m, now, sa, "does not authenticate");
		return true;
	}
	mc_replay_update(&m->win, f.seq);
	if (!spend(r, now, (size_t)len, may_end)) {
		if (may_end)
			return false;
		m->dropped++; /* over the rate while draining: dropped, group kept */
		return true;
	}
	if (sendto(r->ext_fd, pt, (size_t)len, MSG_DONTWAIT, (struct sockaddr *)&r->group_sa,
		   sa_len((struct sockaddr *)&r->group_sa)) < 0) {
		r->n.send_err++;
		return true;
	}
	r->n.out++;
	m->sent++;
	m->sent_bytes += (uint64_t)len;
	/* Inside peers see each other's packets, as on a real group; the
	 * sealed copy goes where the member's frame was (no longer needed). */
	to_intranet(r, m->id, sa, pt, (size_t)len, p, bcap);
	return true;
}

/* Relays up to RELAY_BATCH member datagrams waiting on the member
 * socket. Lock held. */
static void read_members(struct mc_relay *r, ev_tstamp now, bool may_end)
{
	size_t cap;
	uint8_t *buf = mc_hub_buf(&cap);

	for (int i = 0; i < RELAY_BATCH; i++) {
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(r->mem_fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&from,
				     &flen);
		if (n < 0)
			break;
		sa_unmap(&from);
		if (!from_member(r, now, buf, (size_t)n, &from, may_end))
			break;
	}
}

static void on_member(EV_P_ ev_io *w, int revents)
{
	struct mc_relay *r = w->data;

	mc_hub_lock();
	read_members(r, ev_now(EV_A), true);
	mc_hub_unlock();
}

void mc_relay_drain(struct mc_relay *r, ev_tstamp now)
{
	read_members(r, now, false);
}

static void on_tick(EV_P_ ev_timer *w, int revents)
{
	struct mc_relay *r = w->data;

	mc_hub_lock();
	drops_tick(r, ev_now(EV_A));
	if (r->set.idle && ev_now(EV_A) - r->last_packet >= r->set.idle) {
		log_info("multicast relay %s: no packet for %u s", r->name, r->set.idle);
		mc_hub_relay_ended(r, MCAST_NOTE_IDLE, "idle timeout");
	}
	mc_hub_unlock();
}

/* ---- lifetime (hub thread) ---- */

void mc_relay_start(struct mc_relay *r, struct ev_loop *loop)
{
	char in[SA_STR_MAX];
	r->last_packet = r->last_fill = ev_now(loop);
	ev_io_init(&r->ext_io, on_outside, r->ext_fd, EV_READ);
	r->ext_io.data = r;
	ev_io_start(loop, &r->ext_io);
	ev_io_init(&r->mem_io, on_member, r->mem_fd, EV_READ);
	r->mem_io.data = r;
	ev_io_start(loop, &r->mem_io);
	ev_timer_init(&r->tick, on_tick, RELAY_TICK, RELAY_TICK);
	r->tick.data = r;
	ev_timer_start(loop, &r->tick);
	log_info("multicast relay %s: joined on %s, intranet %s", r->name,
		 r->set.ext_if[0] ? r->set.ext_if : "(route)",
		 sa_str((struct sockaddr *)&r->int_sa, in, sizeof(in)));
}

void mc_relay_free(struct mc_relay *r, struct ev_loop *loop, const char *why)
{
	ev_io_stop(loop, &r->ext_io);
	ev_io_stop(loop, &r->mem_io);
	ev_timer_stop(loop, &r->tick);
	close_fds(r);
	log_info("multicast relay %s: ended (%s): in=%llu out=%llu dropped auth=%llu replay=%llu "
		 "not-sender=%llu unknown=%llu malformed=%llu send-errors=%llu",
		 r->name, why, (unsigned long long)r->n.in, (unsigned long long)r->n.out,
		 (unsigned long long)r->n.auth_fail, (unsigned long long)r->n.replay,
		 (unsigned long long)r->n.not_sender, (unsigned long long)r->n.unknown,
		 (unsigned long long)r->n.malformed, (unsigned long long)r->n.send_err);
	explicit_bzero(r->recv_key, sizeof(r->recv_key));
	free(r);
}

struct mc_member *mc_relay_take_members(struct mc_relay *r)
{
	struct mc_member *m = r->members;
	r->members = NULL;
	r->n_members = 0;
	return m;
}

const char *mc_relay_name(const struct mc_relay *r)
{
	return r->name;
}
