/*
 * acrefresh.c - the served configuration in a long-running program
 * (docs/stpify.md "Auto-configuration"): once the document is older than
 * its `refresh`, the next decision that reads it starts a fetch on a
 * thread of its own and goes on with the document it has; when the fetch
 * succeeds, later decisions read the new one. Nothing waits for the proxy
 * but that thread.
 *
 * What a refresh changes: the routes (route, via, direct, direct-port,
 * default). The proxy, its method and credentials and the DNS handling
 * stay as at launch: connections and fake-DNS addresses already handed
 * out depend on them.
 *
 * Readers load the pointer without a lock and use it for one decision
 * (microseconds); a replaced document is freed only two refreshes later
 * (at least 20 s, refresh being at least 10 s), so none is freed under a
 * reader. The launch document (shim_conf.autoconf) is never freed.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "shim/shim.h"

#define ACR_RETRY_SECS 10 /* after a failed fetch */
#define ACR_TIMEOUT_MS 10000

static struct stp_autoconf *current;  /* atomic */
static struct stp_autoconf *initial;  /* shim_conf.autoconf: never freed */
static struct stp_autoconf *retired[2];
static struct stp_proxy origin;       /* the proxy the launcher asked */
static int64_t due;                   /* monotonic seconds; atomic */
static bool refreshing;               /* atomic: a fetch thread runs */

static int64_t now_secs(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec;
}

/* A fork while a fetch runs leaves the child without that thread. */
static void acr_atfork_child(void)
{
	__atomic_store_n(&refreshing, false, __ATOMIC_SEQ_CST);
}

void shim_ac_init(struct stp_autoconf *ac, const struct stp_proxy *asked)
{
	origin = *asked;
	initial = ac;
	__atomic_store_n(&current, ac, __ATOMIC_RELEASE);
	__atomic_store_n(&due, now_secs() + stp_autoconf_refresh(ac), __ATOMIC_RELAXED);
	pthread_atfork(NULL, NULL, acr_atfork_child);
}

/* The proxy to ask, by address: a name is resolved here (the hooks pass
 * this thread's calls through, so it is the real resolver), keeping the
 * name for TLS. */
static void acr_origin(struct stp_proxy *p)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	unsigned char tmp[16];

	*p = origin;
	if (inet_pton(AF_INET, p->host, tmp) == 1 || inet_pton(AF_INET6, p->host, tmp) == 1)
		return;
	if (getaddrinfo(p->host, NULL, &hints, &res) != 0 || res == NULL)
		return;
	if (p->tls.mode != STP_TLS_NONE && p->tls.sni[0] == '\0')
		snprintf(p->tls.sni, sizeof(p->tls.sni), "%s", p->host);
	const void *a = res->ai_family == AF_INET
				? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
				: (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
	inet_ntop(res->ai_family, a, p->host, sizeof(p->host));
	freeaddrinfo(res);
}

static void *acr_fetch(void *arg)
{
	struct stp_proxy p;
	enum stp_err err = STP_OK;

	(void)arg;
	shim_enter(); /* every call of this thread goes to libc as it is */
	acr_origin(&p);
	/* libstp's caches: a copy another process fetched meanwhile serves. */
	struct stp_autoconf *ac = stp_autoconf_get(&p, ACR_TIMEOUT_MS, &err);
	if (ac != NULL && err == STP_OK) {
		struct stp_autoconf *old = __atomic_exchange_n(&current, ac, __ATOMIC_ACQ_REL);
		stp_autoconf_free(retired[1]);
		retired[1] = retired[0];
		retired[0] = old != initial ? old : NULL;
		__atomic_store_n(&due, now_secs() + stp_autoconf_refresh(ac), __ATOMIC_RELAXED);
		shim_log(SHIM_LOG_INFO, "autoconfig: refreshed, profile %s",
			 stp_autoconf_profile(ac));
	} else {
		stp_autoconf_free(ac); /* a stale copy: keep the one in use */
		__atomic_store_n(&due, now_secs() + ACR_RETRY_SECS, __ATOMIC_RELAXED);
		shim_log(SHIM_LOG_ERROR, "autoconfig: refresh failed: %s", stp_strerror(err));
	}
	__atomic_store_n(&refreshing, false, __ATOMIC_RELEASE);
	shim_leave();
	return NULL;
}

const struct stp_autoconf *shim_ac_current(void)
{
	struct stp_autoconf *ac = __atomic_load_n(&current, __ATOMIC_ACQUIRE);
	bool no = false;

	if (ac == NULL || now_secs() < __atomic_load_n(&due, __ATOMIC_RELAXED))
		return ac;
	if (!__atomic_compare_exchange_n(&refreshing, &no, true, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_RELAXED))
		return ac; /* one fetch at a time */
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	shim_enter();
	if (pthread_create(&t, &attr, acr_fetch, NULL) != 0) {
		__atomic_store_n(&due, now_secs() + ACR_RETRY_SECS, __ATOMIC_RELAXED);
		__atomic_store_n(&refreshing, false, __ATOMIC_RELEASE);
	}
	shim_leave();
	pthread_attr_destroy(&attr);
	return ac;
}
