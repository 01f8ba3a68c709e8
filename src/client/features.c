/*
 * features.c - feature discovery, the client side (docs/protocol.md 5.6,
 * docs/client.md): one connection greeting with X'87' alone, the features
 * document parsed by the codec (proto/featdoc.h), and a small per-process
 * cache so a program asks each proxy once, not before every connection.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client/conn.h"
#include "common/log.h"
#include "proto/featdoc.h"
#include "proto/socks.h"

_Static_assert(STP_FEATURES_DOC_MAX == FEAT_HDR_LEN + FEAT_DOC_MAX, "document size");
_Static_assert((int)STP_FEAT_COMMAND == (int)FEAT_SCOPE_COMMAND &&
		       (int)STP_FEAT_FLAG == (int)FEAT_T_FLAG,
	       "codes are the wire's");

/* ---- the document ---- */

static void feat_list(const struct feat_doc *d, const char *name, uint8_t *out, size_t cap,
		      size_t *n)
{
	struct feat_entry e;
	*n = 0;
	if (!feat_find(d, FEAT_SCOPE_SERVER, 0, name, &e) || e.type != FEAT_T_CODES)
		return;
	*n = e.vlen < cap ? e.vlen : cap;
	memcpy(out, e.value, *n);
}

int stp_features_parse(struct stp_features *f, const uint8_t *doc, size_t len)
{
	struct feat_doc d;
	size_t used = 0;

	memset(f, 0, sizeof(*f));
	if (len > sizeof(f->doc) || feat_doc_parse(&d, doc, len, &used, NULL) != SOCKS_DONE ||
	    used != len)
		return -1;
	memcpy(f->doc, doc, len);
	f->doc_len = len;
	f->supported = true;
	if (d.ver != FEAT_VER)
		return 0; /* a later version: framed, but nothing we can read */
	feat_doc_parse(&d, f->doc, len, &used, NULL);
	f->truncated = d.flags & FEAT_FLAG_TRUNCATED;
	feat_list(&d, "versions", f->versions, sizeof(f->versions), &f->n_versions);
	feat_list(&d, "methods", f->methods, sizeof(f->methods), &f->n_methods);
	feat_list(&d, "commands", f->commands, sizeof(f->commands), &f->n_commands);
	return 0;
}

static bool feat_doc_of(const struct stp_features *f, struct feat_doc *d)
{
	size_t used;
	return f->supported && f->doc_len > 0 &&
	       feat_doc_parse(d, f->doc, f->doc_len, &used, NULL) == SOCKS_DONE;
}

bool stp_features_next(const struct stp_features *f, size_t *cursor, struct stp_feature *e)
{
	struct feat_doc d;
	struct feat_entry fe;
	if (!feat_doc_of(f, &d) || !feat_next(&d, cursor, &fe))
		return false;
	e->scope = fe.scope;
	e->code = fe.code;
	e->type = fe.type;
	memcpy(e->name, fe.name, sizeof(e->name));
	e->len = fe.vlen;
	e->value = fe.value;
	e->uint = fe.uint;
	return true;
}

bool stp_features_find(const struct stp_features *f, uint8_t scope, uint8_t code, const char *name,
		       struct stp_feature *e)
{
	size_t cursor = 0;
	while (stp_features_next(f, &cursor, e))
		if (e->scope == scope && e->code == code && strcmp(e->name, name) == 0)
			return true;
	return false;
}

bool stp_features_has_method(const struct stp_features *f, uint8_t method)
{
	return f->n_methods > 0 && memchr(f->methods, method, f->n_methods) != NULL;
}

bool stp_features_has_command(const struct stp_features *f, uint8_t cmd)
{
	return f->n_commands > 0 && memchr(f->commands, cmd, f->n_commands) != NULL;
}

int stp_features_pick(const struct stp_features *f, uint8_t scope, const uint8_t *prefs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((scope == STP_FEAT_METHOD && stp_features_has_method(f, prefs[i])) ||
		    (scope == STP_FEAT_COMMAND && stp_features_has_command(f, prefs[i])))
			return prefs[i];
	return -1;
}

/* ---- asking the proxy ---- */

/* Greeting X'87' alone; the answer is X'87' and the document, or X'FF'
 * (a proxy without discovery), then we close: nothing else happened. */
static int feat_ask(const struct stp_proxy *proxy, struct stp_features *f, int64_t deadline,
		    enum stp_err *err)
{
	static const uint8_t greeting[] = { SOCKS5_VER, 1, SOCKS_METHOD_FEATURES };
	/* X'86' starts after the greeting: discovery is in the clear there. */
	struct stp_proxy p = *proxy;
	if (p.tls.mode == STP_TLS_X86)
		p.tls.mode = STP_TLS_NONE;
	struct stp_conn *c = client_conn_connect(&p, deadline, err);
	uint8_t choice[2], doc[STP_FEATURES_DOC_MAX];
	int rc = -1;

	if (c == NULL)
		return -1;
	if (conn_write_all(c, greeting, sizeof(greeting), deadline, err) < 0 ||
	    conn_read_exact(c, choice, 2, deadline, err) < 0)
		goto out;
	if (choice[0] != SOCKS5_VER ||
	    (choice[1] != SOCKS_METHOD_FEATURES && choice[1] != SOCKS_METHOD_NOACCEPT)) {
		*err = STP_ERR_PROTOCOL;
		goto out;
	}
	memset(f, 0, sizeof(*f));
	if (choice[1] == SOCKS_METHOD_NOACCEPT) {
		rc = 0; /* no discovery here: supported stays false */
		goto out;
	}
	if (conn_read_exact(c, doc, FEAT_HDR_LEN, deadline, err) < 0)
		goto out;
	size_t len = (size_t)doc[2] << 8 | doc[3];
	if (len > FEAT_DOC_MAX) {
		*err = STP_ERR_PROTOCOL;
		goto out;
	}
	if (conn_read_exact(c, doc + FEAT_HDR_LEN, len, deadline, err) < 0)
		goto out;
	if (stp_features_parse(f, doc, FEAT_HDR_LEN + len) < 0) {
		*err = STP_ERR_PROTOCOL;
		goto out;
	}
	rc = 0;
out:
	stp_conn_close(c);
	return rc;
}

/* ---- the cache: a few proxies, least recently asked replaced ---- */

#define FEAT_CACHE_N 8

static struct feat_cache_entry {
	bool used;
	char host[STP_NAME_MAX + 1];
	uint16_t port;
	enum stp_tls_mode mode;
	time_t at;
	struct stp_features f;
} feat_cache[FEAT_CACHE_N];
static pthread_mutex_t feat_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool feat_cache_is(const struct feat_cache_entry *c, const struct stp_proxy *p)
{
	return c->used && c->port == p->port && c->mode == p->tls.mode &&
	       strcmp(c->host, p->host) == 0;
}

static void feat_cache_put(const struct stp_proxy *p, const struct stp_features *f, time_t at);

static bool feat_fresh(time_t at, time_t now)
{
	return at != 0 && now >= at && now - at < STP_FEATURES_TTL;
}

/* The disk copy (featcache.c) when the process has none: another process
 * asked. A fresh "pipelining failed" mark counts even on stale features. */
static bool feat_disk_get(const struct stp_proxy *p, struct stp_features *f)
{
	time_t fetched, off, now = time(NULL);
	struct pipe_x86 x;
	client_debug_on();
	if (!client_featcache_load(p, f, &fetched, &off, &x))
		return false;
	if (feat_fresh(off, now))
		client_pipe_off_since(p, off);
	if (x.sub != 0)
		client_pipe_x86_put(p, &x);
	if (!feat_fresh(fetched, now))
		return false;
	log_debug("features of %s:%u: from the disk cache, %ld s old", p->host, p->port,
		  (long)(now - fetched));
	feat_cache_put(p, f, fetched);
	return true;
}

static bool feat_cache_get(const struct stp_proxy *p, struct stp_features *f)
{
	time_t now = time(NULL);
	bool hit = false;
	pthread_mutex_lock(&feat_cache_lock);
	for (size_t i = 0; i < FEAT_CACHE_N && !hit; i++)
		if (feat_cache_is(&feat_cache[i], p) && now - feat_cache[i].at < STP_FEATURES_TTL &&
		    now >= feat_cache[i].at) {
			*f = feat_cache[i].f;
			hit = true;
		}
	pthread_mutex_unlock(&feat_cache_lock);
	return hit || feat_disk_get(p, f);
}

bool client_features_cached(const struct stp_proxy *proxy, struct stp_features *f)
{
	return feat_cache_get(proxy, f);
}

static void feat_cache_put(const struct stp_proxy *p, const struct stp_features *f, time_t at)
{
	size_t slot = 0;
	pthread_mutex_lock(&feat_cache_lock);
	for (size_t i = 0; i < FEAT_CACHE_N; i++) {
		if (feat_cache_is(&feat_cache[i], p) || !feat_cache[i].used) {
			slot = i;
			break;
		}
		if (feat_cache[i].at < feat_cache[slot].at)
			slot = i;
	}
	struct feat_cache_entry *c = &feat_cache[slot];
	c->used = true;
	snprintf(c->host, sizeof(c->host), "%s", p->host);
	c->port = p->port;
	c->mode = p->tls.mode;
	c->at = at;
	c->f = *f;
	pthread_mutex_unlock(&feat_cache_lock);
}

void stp_features_flush(void)
{
	pthread_mutex_lock(&feat_cache_lock);
	memset(feat_cache, 0, sizeof(feat_cache));
	pthread_mutex_unlock(&feat_cache_lock);
}

int stp_features_get(const struct stp_proxy *proxy, struct stp_features *f, unsigned flags,
		     int timeout_ms, enum stp_err *err)
{
	enum stp_err e = STP_OK;

	if (proxy == NULL || f == NULL) {
		if (err)
			*err = STP_ERR_INVALID;
		return -1;
	}
	client_debug_on();
	if (proxy->kind == STP_SOCKS4 || proxy->kind == STP_SOCKS4A) {
		memset(f, 0, sizeof(*f)); /* SOCKS4 has no greeting to ask in */
		return 0;
	}
	if (!(flags & STP_FEATURES_FRESH) && feat_cache_get(proxy, f)) {
		f->cached = true;
		return 0;
	}
	if (feat_ask(proxy, f, client_deadline(timeout_ms), &e) < 0) {
		if (err)
			*err = e;
		return -1;
	}
	log_debug("features of %s:%u: %s, %zu methods, %zu commands", proxy->host, proxy->port,
		  f->supported ? "discovery" : "no discovery", f->n_methods, f->n_commands);
	time_t now = time(NULL), fetched, off = 0;
	feat_cache_put(proxy, f, now);
	struct stp_features old;
	struct pipe_x86 x = { 0, 0 };
	/* Keep another process's fresh "pipelining failed" mark, and what
	 * X'86' negotiation learned: this process's, else the file's. */
	if (client_featcache_load(proxy, &old, &fetched, &off, &x) && !feat_fresh(off, now))
		off = 0;
	client_pipe_x86_get(proxy, &x);
	client_featcache_save(proxy, f, now, off, &x);
	return 0;
}
