/*
 * gssdgram.c - the GSS-API contexts of UDP associations made through a
 * socks5+gssapi:// proxy at integrity or confidentiality (RFC 1961
 * section 5, docs/protocol.md 5.7): every datagram to the relay is sealed
 * into one X'03' frame wrapping the whole RFC 1928 UDP datagram, every
 * datagram from it unsealed.
 *
 * A socket's state is copied out of fdtab by each call, so a pointer kept
 * there could outlive an association another thread ended (close, a new
 * association): the contexts live here instead, found by a number that is
 * never reused, under one lock that also makes gss_wrap/gss_unwrap on one
 * context one at a time (GSS-API contexts are not thread-safe).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "client/client.h"
#include "shim/shim.h"

struct gd_entry {
	unsigned id;
	struct stp_conn *c;
};

static pthread_mutex_t gd_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gd_entry *gd_tab;
static size_t gd_len, gd_cap;
static unsigned gd_next = 1;

unsigned gssdgram_add(struct stp_conn *c)
{
	unsigned id = 0;

	pthread_mutex_lock(&gd_lock);
	if (gd_len == gd_cap) {
		size_t ncap = gd_cap ? gd_cap * 2 : 8;
		struct gd_entry *t = realloc(gd_tab, ncap * sizeof(*t));
		if (t != NULL) {
			gd_tab = t;
			gd_cap = ncap;
		}
	}
	if (gd_len < gd_cap) {
		id = gd_next++;
		if (gd_next == 0)
			gd_next = 1;
		gd_tab[gd_len++] = (struct gd_entry){ id, c };
	}
	pthread_mutex_unlock(&gd_lock);
	if (id == 0)
		client_gss_release(c);
	return id;
}

static struct gd_entry *gd_find(unsigned id)
{
	for (size_t i = 0; i < gd_len; i++)
		if (gd_tab[i].id == id)
			return &gd_tab[i];
	return NULL;
}

void gssdgram_drop(unsigned id)
{
	struct stp_conn *c = NULL;

	if (id == 0)
		return;
	pthread_mutex_lock(&gd_lock);
	struct gd_entry *e = gd_find(id);
	if (e != NULL) {
		c = e->c;
		*e = gd_tab[--gd_len];
	}
	pthread_mutex_unlock(&gd_lock);
	client_gss_release(c);
}

ssize_t gssdgram_seal(unsigned id, bool seal, const uint8_t *p, size_t len, uint8_t *out,
		      size_t cap)
{
	ssize_t n = -1;

	pthread_mutex_lock(&gd_lock);
	struct gd_entry *e = gd_find(id);
	if (e != NULL)
		n = seal ? client_gss_seal(e->c, p, len, out, cap) :
			   client_gss_unseal(e->c, p, len, out, cap);
	pthread_mutex_unlock(&gd_lock);
	if (n < 0)
		errno = e != NULL ? EMSGSIZE : ENOTCONN;
	return n;
}

void gssdgram_atfork_prepare(void)
{
	pthread_mutex_lock(&gd_lock);
}
void gssdgram_atfork_parent(void)
{
	pthread_mutex_unlock(&gd_lock);
}
void gssdgram_atfork_child(void)
{
	pthread_mutex_unlock(&gd_lock);
}
