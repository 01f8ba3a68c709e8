/*
 * autoconf.c - client auto-configuration (stp.h stp_autoconf_*): CMD X'F4'
 * after authentication, the document read with the codec
 * (proto/autoconf.h), the routing decision, and the two caches: one per
 * process (a few entries under a mutex), one on disk (one file per proxy
 * and user, its mtime the time of the fetch). Keys a reader does not know
 * are skipped, and so are values it does not know (the key keeps its
 * default), so a newer server never breaks an older client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "client/conn.h"
#include "common/log.h"
#include "proto/autoconf.h"

#define AC_PROXIES    4
#define AC_PORTS      16
#define AC_ROUTES     64
#define AC_LIST_CHARS (64 * 260) /* a comma-joined via or direct list */

struct stp_autoconf {
	uint8_t doc[ACDOC_MAX];
	size_t len;
	char profile[ACDOC_VALUE_MAX + 1];
	unsigned refresh;
	char proxies[AC_PROXIES][ACDOC_VALUE_MAX + 1];
	size_t n_proxies;
	bool default_direct;
	enum { AC_NONE, AC_USERPASS, AC_TLS } method;
	bool creds_netrc;
	bool remote_dns;
	struct stp_noproxy *via, *direct, *env;
	struct {
		uint16_t lo, hi;
	} ports[AC_PORTS];
	size_t n_ports;
	struct { /* route PROXY DEST */
		char proxy[ACDOC_VALUE_MAX + 1];
		struct stp_noproxy *dest;
	} routes[AC_ROUTES];
	size_t n_routes;
};

static struct stp_autoconf *ac_fail(enum stp_err *err, enum stp_err e, struct stp_autoconf *ac)
{
	stp_autoconf_free(ac);
	if (err)
		*err = e;
	return NULL;
}

/* "N" or "LO-HI". */
static bool ac_ports(struct stp_autoconf *ac, const char *v)
{
	unsigned lo, hi;
	char tail;
	int k = sscanf(v, "%u-%u%c", &lo, &hi, &tail);
	if (k == 1)
		hi = lo;
	if ((k != 1 && k != 2) || lo == 0 || hi > 65535 || lo > hi || ac->n_ports == AC_PORTS)
		return false;
	ac->ports[ac->n_ports].lo = (uint16_t)lo;
	ac->ports[ac->n_ports++].hi = (uint16_t)hi;
	return true;
}

/* "HOST:PORT DEST": one destination through one proxy. */
static void ac_route(struct stp_autoconf *ac, const char *v)
{
	const char *sp = strchr(v, ' ');
	if (!sp || sp == v || ac->n_routes == AC_ROUTES ||
	    (size_t)(sp - v) >= sizeof(ac->routes[0].proxy))
		return;
	struct stp_noproxy *d = stp_noproxy_new(sp + 1);
	if (!d)
		return;
	memcpy(ac->routes[ac->n_routes].proxy, v, (size_t)(sp - v));
	ac->routes[ac->n_routes].proxy[sp - v] = '\0';
	ac->routes[ac->n_routes++].dest = d;
}

static void ac_append(char *list, const char *v)
{
	size_t n = strlen(list);
	if (n + strlen(v) + 2 < AC_LIST_CHARS)
		snprintf(list + n, AC_LIST_CHARS - n, "%s%s", n ? "," : "", v);
}

/* One line: a known key with a known value, or skipped. */
static void ac_line(struct stp_autoconf *ac, const char *k, const char *v, char *via, char *direct)
{
	if (strcmp(k, "profile") == 0)
		snprintf(ac->profile, sizeof(ac->profile), "%s", v);
	else if (strcmp(k, "refresh") == 0 && atoi(v) > 0)
		ac->refresh = (unsigned)atoi(v);
	else if (strcmp(k, "proxy") == 0 && ac->n_proxies < AC_PROXIES)
		snprintf(ac->proxies[ac->n_proxies++], sizeof(ac->proxies[0]), "%s", v);
	else if (strcmp(k, "default") == 0 && (!strcmp(v, "direct") || !strcmp(v, "proxy")))
		ac->default_direct = strcmp(v, "direct") == 0;
	else if (strcmp(k, "method") == 0 && !strcmp(v, "none"))
		ac->method = AC_NONE;
	else if (strcmp(k, "method") == 0 && !strcmp(v, "userpass"))
		ac->method = AC_USERPASS;
	else if (strcmp(k, "method") == 0 && !strcmp(v, "tls"))
		ac->method = AC_TLS;
	else if (strcmp(k, "credentials") == 0 && (!strcmp(v, "netrc") || !strcmp(v, "none")))
		ac->creds_netrc = strcmp(v, "netrc") == 0;
	else if (strcmp(k, "dns") == 0 && (!strcmp(v, "remote") || !strcmp(v, "local")))
		ac->remote_dns = strcmp(v, "remote") == 0;
	else if (strcmp(k, "via") == 0)
		ac_append(via, v);
	else if (strcmp(k, "direct") == 0)
		ac_append(direct, v);
	else if (strcmp(k, "direct-port") == 0)
		ac_ports(ac, v);
	else if (strcmp(k, "route") == 0)
		ac_route(ac, v);
}

struct stp_autoconf *stp_autoconf_parse(const void *doc, size_t len, enum stp_err *err)
{
	struct socks_err serr;
	struct acdoc_line l;
	size_t off = 0;
	char k[ACDOC_KEY_MAX + 1], v[ACDOC_VALUE_MAX + 1];

	if (doc == NULL || acdoc_check(doc, len, &serr) != SOCKS_DONE)
		return ac_fail(err, STP_ERR_AUTOCONF, NULL);
	struct stp_autoconf *ac = calloc(1, sizeof(*ac));
	char *via = calloc(1, AC_LIST_CHARS), *direct = calloc(1, AC_LIST_CHARS);
	if (!ac || !via || !direct) {
		free(via);
		free(direct);
		return ac_fail(err, STP_ERR_NOMEM, ac);
	}
	memcpy(ac->doc, doc, len);
	ac->len = len;
	ac->refresh = 3600;
	ac->remote_dns = true;
	while (acdoc_next(ac->doc, len, &off, &l)) {
		memcpy(k, l.key, l.key_len);
		k[l.key_len] = '\0';
		memcpy(v, l.value, l.value_len);
		v[l.value_len] = '\0';
		ac_line(ac, k, v, via, direct);
	}
	ac->via = stp_noproxy_new(via);
	ac->direct = stp_noproxy_new(direct);
	ac->env = stp_noproxy_from_env();
	free(via);
	free(direct);
	if (!ac->via || !ac->direct || !ac->env)
		return ac_fail(err, STP_ERR_NOMEM, ac);
	if (err)
		*err = STP_OK;
	return ac;
}

void stp_autoconf_free(struct stp_autoconf *ac)
{
	if (!ac)
		return;
	stp_noproxy_free(ac->via);
	stp_noproxy_free(ac->direct);
	stp_noproxy_free(ac->env);
	for (size_t i = 0; i < ac->n_routes; i++)
		stp_noproxy_free(ac->routes[i].dest);
	free(ac);
}

const char *stp_autoconf_text(const struct stp_autoconf *ac, size_t *len)
{
	*len = ac->len;
	return (const char *)ac->doc;
}

const char *stp_autoconf_profile(const struct stp_autoconf *ac)
{
	return ac->profile;
}

unsigned stp_autoconf_refresh(const struct stp_autoconf *ac)
{
	return ac->refresh;
}

bool stp_autoconf_remote_dns(const struct stp_autoconf *ac)
{
	return ac->remote_dns;
}

static bool ac_port_direct(const struct stp_autoconf *ac, uint16_t port)
{
	for (size_t i = 0; port && i < ac->n_ports; i++)
		if (port >= ac->ports[i].lo && port <= ac->ports[i].hi)
			return true;
	return false;
}

/* The route naming host, or -1. */
static int ac_route_for(const struct stp_autoconf *ac, const char *host, const struct sockaddr *sa)
{
	for (size_t i = 0; i < ac->n_routes; i++)
		if (host ? stp_noproxy_match(ac->routes[i].dest, host) :
			   stp_noproxy_match_addr(ac->routes[i].dest, sa))
			return (int)i;
	return -1;
}

bool stp_autoconf_direct(const struct stp_autoconf *ac, const char *host, uint16_t port)
{
	if (stp_noproxy_match(ac->env, host))
		return true;
	if (ac_route_for(ac, host, NULL) >= 0 || stp_noproxy_match(ac->via, host))
		return false;
	if (ac_port_direct(ac, port) || stp_noproxy_match(ac->direct, host))
		return true;
	return ac->default_direct;
}

bool stp_autoconf_direct_addr(const struct stp_autoconf *ac, const struct sockaddr *sa)
{
	uint16_t port = 0;
	if (sa->sa_family == AF_INET)
		port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
	else if (sa->sa_family == AF_INET6)
		port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	if (stp_noproxy_match_addr(ac->env, sa))
		return true;
	if (ac_route_for(ac, NULL, sa) >= 0 || stp_noproxy_match_addr(ac->via, sa))
		return false;
	if (ac_port_direct(ac, port) || stp_noproxy_match_addr(ac->direct, sa))
		return true;
	return ac->default_direct;
}

/* HOST:PORT from the document into proxy's host and port (through the one
 * URL parser). */
static int ac_set_hostport(struct stp_proxy *proxy, const char *hostport, enum stp_err *err)
{
	char url[ACDOC_VALUE_MAX + 16];
	struct stp_proxy q;
	snprintf(url, sizeof(url), "socks5://%s", hostport);
	if (stp_proxy_parse(&q, url, err) < 0)
		return -1;
	snprintf(proxy->host, sizeof(proxy->host), "%s", q.host);
	proxy->port = q.port;
	return 0;
}

bool stp_autoconf_route(const struct stp_autoconf *ac, const char *host, uint16_t port,
			struct stp_proxy *proxy)
{
	int i = ac_route_for(ac, host, NULL);
	(void)port;
	if (i < 0 || stp_noproxy_match(ac->env, host))
		return false;
	return ac_set_hostport(proxy, ac->routes[i].proxy, NULL) == 0;
}

/* The netrc credentials for the proxy's host, when the URL has none. */
static void ac_netrc(struct stp_proxy *p)
{
	if (p->has_auth)
		return;
	if (client_netrc_lookup(p->host, p->user, sizeof(p->user), p->pass, sizeof(p->pass)) == 0)
		p->has_auth = true;
}

int stp_autoconf_proxy_at(const struct stp_autoconf *ac, size_t i, struct stp_proxy *proxy)
{
	if (i >= ac->n_proxies)
		return -1;
	return ac_set_hostport(proxy, ac->proxies[i], NULL);
}

/* ---- failover: the served proxies after the first, by applied proxy ----
 * stp_autoconf_apply records them here, process-wide, so that every way
 * libstp reaches a proxy (client_proxy_connect_until) can try them in
 * order when the first does not answer, as browsers do with a PAC's
 * "SOCKS5 a; SOCKS5 b", without a change to struct stp_proxy. */
#define FO_ENTRIES 4
static struct {
	char host[STP_NAME_MAX + 1];
	uint16_t port;
	char alts[AC_PROXIES - 1][ACDOC_VALUE_MAX + 1];
	size_t n;
} fo[FO_ENTRIES];
static size_t fo_next;
static pthread_mutex_t fo_lock = PTHREAD_MUTEX_INITIALIZER;

static void fo_record(const struct stp_proxy *p, const struct stp_autoconf *ac)
{
	size_t i;
	pthread_mutex_lock(&fo_lock);
	for (i = 0; i < FO_ENTRIES; i++)
		if (fo[i].port == p->port && strcmp(fo[i].host, p->host) == 0)
			break;
	if (i == FO_ENTRIES)
		i = fo_next++ % FO_ENTRIES;
	snprintf(fo[i].host, sizeof(fo[i].host), "%s", p->host);
	fo[i].port = p->port;
	fo[i].n = 0;
	for (size_t k = 1; k < ac->n_proxies; k++)
		memcpy(fo[i].alts[fo[i].n++], ac->proxies[k], sizeof(fo[i].alts[0]));
	pthread_mutex_unlock(&fo_lock);
}

bool client_autoconf_alternate(const struct stp_proxy *p, size_t i, struct stp_proxy *out)
{
	bool found = false;
	char hostport[ACDOC_VALUE_MAX + 1];
	pthread_mutex_lock(&fo_lock);
	for (size_t k = 0; k < FO_ENTRIES && !found; k++)
		if (fo[k].port == p->port && fo[k].port != 0 && strcmp(fo[k].host, p->host) == 0 &&
		    i < fo[k].n) {
			memcpy(hostport, fo[k].alts[i], sizeof(hostport));
			found = true;
		}
	pthread_mutex_unlock(&fo_lock);
	if (!found)
		return false;
	*out = *p;
	return ac_set_hostport(out, hostport, NULL) == 0;
}

int stp_autoconf_apply(const struct stp_autoconf *ac, struct stp_proxy *proxy, enum stp_err *err)
{
	struct stp_proxy p = *proxy;

	if (ac->n_proxies > 0 && ac_set_hostport(&p, ac->proxies[0], err) < 0)
		return -1;
	if (p.kind == STP_SOCKS5 || p.kind == STP_SOCKS5H)
		p.kind = ac->remote_dns ? STP_SOCKS5H : STP_SOCKS5;
	if (ac->method == AC_TLS && p.tls.mode == STP_TLS_NONE)
		p.tls.mode = STP_TLS_X86;
	if (ac->method == AC_USERPASS && ac->creds_netrc)
		ac_netrc(&p);
	fo_record(&p, ac);
	*proxy = p;
	if (err)
		*err = STP_OK;
	return 0;
}

/* ---- fetching ---- */

struct stp_autoconf *stp_autoconf_fetch(const struct stp_proxy *proxy, int timeout_ms,
					enum stp_err *err)
{
	int64_t deadline = client_deadline(timeout_ms);
	struct stp_proxy p = *proxy;
	struct stp_handshake h;
	uint8_t frame[ACDOC_HDR + ACDOC_MAX];
	enum stp_err e = STP_OK;

	if (p.kind == STP_SOCKS4 || p.kind == STP_SOCKS4A)
		return ac_fail(err, STP_ERR_UNSUPPORTED, NULL);
	ac_netrc(&p); /* the document is per user: log in if we can */
	struct stp_conn *c = client_conn_connect(&p, deadline, &e);
	if (!c)
		return ac_fail(err, e, NULL);
	if (client_conn_hs_init(c, &h, &p, STP_CMD_AUTOCONFIG, "0.0.0.0", 0, NULL, &e) < 0) {
		stp_conn_close(c);
		return ac_fail(err, e, NULL);
	}
	if (client_conn_hs_run(c, &h, deadline) != STP_DONE) {
		stp_conn_close(c);
		return ac_fail(err, h.err ? h.err : STP_ERR_PROTOCOL, NULL);
	}
	/* LEN, then DOC: the frame parser says how much is missing. */
	size_t have = 0, used = 0, doclen = 0;
	const uint8_t *doc = NULL;
	struct socks_err serr;
	enum socks_res r;
	while ((r = acdoc_frame_parse(frame, have, &used, &doc, &doclen, &serr)) == SOCKS_MORE) {
		size_t want = have < ACDOC_HDR ? ACDOC_HDR :
						 ACDOC_HDR + ((size_t)frame[0] << 8 | frame[1]);
		if (conn_read_exact(c, frame + have, want - have, deadline, &e) < 0) {
			stp_conn_close(c);
			return ac_fail(err, e, NULL);
		}
		have = want;
	}
	stp_conn_close(c);
	if (r != SOCKS_DONE)
		return ac_fail(err, STP_ERR_AUTOCONF, NULL);
	log_debug("autoconfig: %zu bytes from %s", doclen, p.host);
	return stp_autoconf_parse(doc, doclen, err);
}

/* ---- caches ---- */

int stp_autoconf_cache_path(const struct stp_proxy *proxy, char *out, size_t cap)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char dir[STP_PATH_MAX], key[STP_NAME_MAX * 2 + 16];
	struct stp_proxy p = *proxy;

	if (xdg && xdg[0] == '/')
		snprintf(dir, sizeof(dir), "%s/stp", xdg);
	else if (home && *home)
		snprintf(dir, sizeof(dir), "%s/.cache/stp", home);
	else
		return -1;
	ac_netrc(&p);
	/* The document is per proxy and user: both name the file. */
	snprintf(key, sizeof(key), "%s%s%s_%u", p.has_auth ? p.user : "", p.has_auth ? "@" : "",
		 p.host, p.port);
	for (char *k = key; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '.' || *k == '_' || *k == '@' || *k == '-'))
			*k = '_';
	return snprintf(out, cap, "%s/autoconfig-%s.txt", dir, key) < (int)cap ? 0 : -1;
}

/* The disk copy and its age in seconds; NULL when there is none. */
static struct stp_autoconf *cache_load(const char *path, time_t *age)
{
	uint8_t buf[ACDOC_MAX + 1];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	ssize_t n = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, buf, sizeof(buf)) : -1;
	close(fd);
	if (n <= 0 || n > ACDOC_MAX)
		return NULL;
	*age = time(NULL) - st.st_mtime;
	return stp_autoconf_parse(buf, (size_t)n, NULL);
}

/* Written whole or not at all: a temporary file renamed over the old. */
static void cache_save(const char *path, const struct stp_autoconf *ac)
{
	char dir[STP_PATH_MAX], tmp[STP_PATH_MAX + 16];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = '\0';
	char *parent = strrchr(dir, '/');
	if (parent) { /* ~/.cache, then ~/.cache/stp */
		*parent = '\0';
		mkdir(dir, 0700);
		*parent = '/';
	}
	mkdir(dir, 0700);
	snprintf(tmp, sizeof(tmp), "%s.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return;
	bool ok = write(fd, ac->doc, ac->len) == (ssize_t)ac->len;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) < 0)
		unlink(tmp);
}

static struct stp_autoconf *ac_copy(const struct stp_autoconf *ac)
{
	return stp_autoconf_parse(ac->doc, ac->len, NULL);
}

#define AC_MEM_SLOTS 4
static struct {
	char key[STP_PATH_MAX];
	struct stp_autoconf *ac;
	time_t fetched;
} mem[AC_MEM_SLOTS];
static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;

/* This process's copy for key: a copy for the caller, fresh or (stale)
 * not; NULL when there is none. */
static struct stp_autoconf *mem_get(const char *key, bool *fresh)
{
	struct stp_autoconf *r = NULL;
	pthread_mutex_lock(&mem_lock);
	for (size_t i = 0; i < AC_MEM_SLOTS && !r; i++)
		if (mem[i].ac && strcmp(mem[i].key, key) == 0) {
			r = ac_copy(mem[i].ac);
			*fresh = time(NULL) - mem[i].fetched < (time_t)mem[i].ac->refresh;
		}
	pthread_mutex_unlock(&mem_lock);
	return r;
}

static void mem_put(const char *key, const struct stp_autoconf *ac, time_t fetched)
{
	struct stp_autoconf *c = ac_copy(ac);
	size_t slot = 0;
	if (!c)
		return;
	pthread_mutex_lock(&mem_lock);
	for (size_t i = 0; i < AC_MEM_SLOTS; i++) {
		if (mem[i].ac && strcmp(mem[i].key, key) == 0) {
			slot = i;
			break;
		}
		if (!mem[i].ac || mem[i].fetched < mem[slot].fetched)
			slot = i; /* a free slot, else the oldest */
	}
	stp_autoconf_free(mem[slot].ac);
	snprintf(mem[slot].key, sizeof(mem[slot].key), "%s", key);
	mem[slot].ac = c;
	mem[slot].fetched = fetched;
	pthread_mutex_unlock(&mem_lock);
}

struct stp_autoconf *stp_autoconf_get(const struct stp_proxy *proxy, int timeout_ms,
				      enum stp_err *err)
{
	char path[STP_PATH_MAX] = "", key[STP_PATH_MAX];
	struct stp_autoconf *stale = NULL, *ac;
	bool fresh = false, have_path = stp_autoconf_cache_path(proxy, path, sizeof(path)) == 0;
	time_t age = 0;

	snprintf(key, sizeof(key), "%s", have_path ? path : proxy->host);
	if ((ac = mem_get(key, &fresh)) != NULL) {
		if (fresh)
			return ac;
		stale = ac;
	}
	if (!stale && have_path && (ac = cache_load(path, &age)) != NULL) {
		mem_put(key, ac, time(NULL) - age);
		if (age >= 0 && age < (time_t)ac->refresh) {
			log_debug("autoconfig: %s is %ld s old", path, (long)age);
			return ac;
		}
		stale = ac;
	}
	ac = stp_autoconf_fetch(proxy, timeout_ms, err);
	if (!ac) {
		if (stale)
			log_debug("autoconfig: fetch failed (%s), using the stale copy",
				  stp_strerror(err ? *err : STP_ERR_IO));
		return stale;
	}
	stp_autoconf_free(stale);
	mem_put(key, ac, time(NULL));
	if (have_path)
		cache_save(path, ac);
	return ac;
}
