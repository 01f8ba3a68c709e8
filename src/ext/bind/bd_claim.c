/*
 * bd_claim.c - ACCEPT X'11' and the table of arrivals it searches.
 *
 * An arrival's id is 8 random bytes announced on its control connection
 * only. ACCEPT names it together with the peer's address; it is granted
 * to the control's client only: the same user (or both without one) from
 * the same IP address. The data connection's session then ends (its line
 * says where the connection went) and its connection moves, under the
 * table's lock, to the control's claimed queue; the control's worker
 * picks it up (ev_async) and relays it as the arrival's flow.
 *
 * The lock guards the table, every control's claimed queue, and the
 * states PENDING -> CLAIMED; the owner takes an arrival out of the table
 * under it before dropping it, so a claim and a drop never both win.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sockaddr.h"
#include "ext/bind/bd.h"
#include "server/session.h"

#define TABLE_SIZE 1024 /* chains; ids are random, so the first byte spreads them */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct bd_arrival *table[TABLE_SIZE];

static unsigned slot(const uint8_t id[MBIND_ID_LEN])
{
	return ((unsigned)id[0] << 8 | id[1]) % TABLE_SIZE;
}

void bd_table_add(struct bd_arrival *a)
{
	pthread_mutex_lock(&lock);
	unsigned i = slot(a->id);
	a->hnext = table[i];
	table[i] = a;
	pthread_mutex_unlock(&lock);
}

/* Under the lock. */
static bool unchain(struct bd_arrival *a)
{
	for (struct bd_arrival **p = &table[slot(a->id)]; *p; p = &(*p)->hnext) {
		if (*p == a) {
			*p = a->hnext;
			a->hnext = NULL;
			return true;
		}
	}
	return false;
}

bool bd_table_remove(struct bd_arrival *a)
{
	pthread_mutex_lock(&lock);
	bool was = a->state == BD_PENDING && unchain(a);
	pthread_mutex_unlock(&lock);
	return was;
}

struct bd_arrival *bd_table_detach(struct bd_ctl *c)
{
	pthread_mutex_lock(&lock);
	for (struct bd_arrival *a = c->arrivals; a; a = a->next)
		if (a->state == BD_PENDING)
			unchain(a);
	struct bd_arrival *q = c->claimed;
	c->claimed = NULL;
	pthread_mutex_unlock(&lock);
	return q;
}

struct bd_arrival *bd_table_take_claimed(struct bd_ctl *c)
{
	pthread_mutex_lock(&lock);
	struct bd_arrival *a = c->claimed;
	if (a)
		c->claimed = a->cnext;
	pthread_mutex_unlock(&lock);
	return a;
}

static bool same_peer(const struct socks_addr *a, const struct socks_addr *b)
{
	if (a->atyp != b->atyp || a->port != b->port)
		return false;
	size_t n = a->atyp == SOCKS_ATYP_IPV4 ? 4 : a->atyp == SOCKS_ATYP_IPV6 ? 16 : 0;
	return n && memcmp(a->u.v6, b->u.v6, n) == 0;
}

/* Under the lock: the arrival for this ACCEPT, or NULL. */
static struct bd_arrival *find(struct session *s, const struct mbind_accept *acc)
{
	for (struct bd_arrival *a = table[slot(acc->id)]; a; a = a->hnext) {
		if (memcmp(a->id, acc->id, MBIND_ID_LEN) != 0)
			continue;
		struct bd_ctl *c = a->ctl;
		if (!same_peer(&a->peer, &acc->peer) || strcmp(c->user, session_user(s)) != 0 ||
		    !sa_equal_addr((const struct sockaddr *)&c->client,
				   (const struct sockaddr *)session_client(s)))
			return NULL;
		return a;
	}
	return NULL;
}

static void claim(struct session *s, const struct mbind_accept *acc)
{
	char why[64];
	pthread_mutex_lock(&lock);
	struct bd_arrival *a = find(s, acc);
	if (!a) {
		pthread_mutex_unlock(&lock);
		session_warnx(s, "ACCEPT: no such arrival");
		session_finish(s, MBIND_REP_NO_ARRIVAL, "no such arrival");
		return;
	}
	struct bd_ctl *c = a->ctl;
	struct conn conn;
	/* The session line names the control session that carries the data
	 * from here (its flow line has the bytes). */
	snprintf(why, sizeof(why), "accepted: data in a flow of the LISTEN session");
	session_note_reply(s, SOCKS5_REP_SUCCEEDED);
	bool counted = false;
	if (session_take_conn(s, &conn, &counted, why) < 0) {
		pthread_mutex_unlock(&lock);
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "data connection busy");
		return;
	}
	unchain(a);
	a->state = BD_CLAIMED;
	a->conn = conn;
	a->counted = counted;
	a->cnext = NULL;
	struct bd_arrival **q = &c->claimed;
	while (*q)
		q = &(*q)->cnext;
	*q = a;
	ev_async_send(c->loop, &c->wake);
	pthread_mutex_unlock(&lock);
}

/* ---- the ACCEPT command ---- */

static enum socks_res parse_accept(struct session *s, struct mbind_accept *acc, size_t *body,
				   struct socks_err *err)
{
	uint8_t buf[MBIND_ACCEPT_MAX];
	size_t len, cap, used;
	const uint8_t *in = session_input(s, &len, &cap);
	size_t h = socks5_request_write(buf, sizeof(buf), MBIND_CMD_ACCEPT, session_target(s));
	size_t take = len < sizeof(buf) - h ? len : sizeof(buf) - h;
	memcpy(buf + h, in, take);
	enum socks_res r = mbind_accept_parse(acc, buf, h + take, &used, err);
	if (r == SOCKS_DONE)
		*body = used - h;
	return r;
}

static void on_accept_input(struct session *s)
{
	struct mbind_accept acc;
	struct socks_err err = { 0, NULL };
	size_t body = 0, len, cap;
	enum socks_res r = parse_accept(s, &acc, &body, &err);
	if (r == SOCKS_MORE)
		return;
	if (r == SOCKS_BAD) {
		session_finish(s, err.rep, err.why);
		return;
	}
	session_consume(s, body);
	session_input(s, &len, &cap);
	if (len > 0) {
		/* The data starts after the reply (docs/protocol.md). */
		session_warnx(s, "ACCEPT: bytes before the reply");
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "data before the ACCEPT reply");
		return;
	}
	session_watch_control(s, NULL);
	claim(s, &acc);
}

/* The ID behind the header is late: timeouts { handshake }. */
struct accept_wait {
	struct session *s;
	ev_timer timer;
};

static void on_accept_timeout(EV_P_ ev_timer *t, int revents)
{
	struct accept_wait *w = t->data;
	session_finish(w->s, SOCKS5_REP_GENERAL_FAILURE, "ACCEPT request incomplete");
}

static void accept_destroy(struct session *s)
{
	struct accept_wait *w = session_handler_data(s);
	if (w) {
		ev_timer_stop(session_loop(s), &w->timer);
		free(w);
	}
}

static const struct session_cmd_ops accept_ops = { "accept", accept_destroy };

void bd_accept_start(struct session *s)
{
	struct accept_wait *w = calloc(1, sizeof(*w));
	if (!w) {
		session_finish(s, SOCKS5_REP_GENERAL_FAILURE, "out of memory");
		return;
	}
	w->s = s;
	ev_timer_init(&w->timer, on_accept_timeout, (ev_tstamp)session_conf(s)->timeouts.handshake,
		      0.);
	w->timer.data = w;
	if (session_conf(s)->timeouts.handshake) /* 0: none */
		ev_timer_start(session_loop(s), &w->timer);
	session_set_handler(s, &accept_ops, w);
	session_watch_control(s, on_accept_input);
	on_accept_input(s); /* the id may be here already */
}
