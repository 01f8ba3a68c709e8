/*
 * ext_registry.c - the static list of modules compiled into stpd.
 * Order matters for methods: earlier modules' methods are preferred.
 * ext_config.h (generated from the build options ext_tls, ext_mcast,
 * ext_resolve, ext_discovery) says
 * which modules are built: a disabled one is not named here, so its library
 * need not be linked.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <pthread.h>
#include <string.h>

#include "server/ext.h"
#include "ext/ext_config.h"

static const struct stp_ext *const registry[] = {
#if STP_EXT_TLS
	&ext_tls, /* first: X'86' is preferred over weaker methods the client also offers */
#endif
#if STP_EXT_GSSAPI
	&ext_gssapi, /* X'01' before the core's userpass and none: a Kerberos context is stronger */
#endif
	&ext_core,
#if STP_EXT_MCAST
	&ext_mcast,
#endif
#if STP_EXT_RESOLVE
	&ext_resolve,
#endif
#if STP_EXT_AUTOCONF
	&ext_autoconf,
#endif
#if STP_EXT_TRANSPARENT
	&ext_transparent,
#endif
#if STP_EXT_BIND
	&ext_bind,
#endif
#if STP_EXT_COMPARTMENT
	&ext_compartment,
#endif
#if STP_EXT_TUNNEL
	&ext_tunnel,
#endif
#if STP_EXT_METRICS
	&ext_metrics, /* no command or method: only its listener */
#endif
#if STP_EXT_MUX
	&ext_mux,
#endif
#if STP_EXT_DISCOVERY
	/* last: X'87' is chosen only when nothing else offered is acceptable,
	 * so a client that offers it among methods it uses gets what it got
	 * from a server without discovery (docs/protocol.md 5.6) */
	&ext_discovery,
#endif
};

const struct stp_ext *const *ext_all(size_t *n)
{
	*n = sizeof(registry) / sizeof(registry[0]);
	return registry;
}

const struct stp_command *ext_find_command(uint8_t code)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_commands; j++)
			if (registry[i]->commands[j].code == code)
				return &registry[i]->commands[j];
	return NULL;
}

const struct stp_method *ext_choose_method(const struct stp_conf *c, const uint8_t *offered,
					   size_t n_offered)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_methods; j++) {
			const struct stp_method *m = &registry[i]->methods[j];
			if (m->enabled && !m->enabled(c))
				continue;
			if (memchr(offered, m->code, n_offered))
				return m;
		}
	return NULL;
}

const struct stp_method *ext_find_method(uint8_t code)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_methods; j++)
			if (registry[i]->methods[j].code == code)
				return &registry[i]->methods[j];
	return NULL;
}

bool ext_method_tls(uint8_t code)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_methods; j++)
			if (registry[i]->methods[j].code == code)
				return registry[i]->methods_tls;
	return false;
}

bool ext_method_informational(uint8_t code)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_methods; j++)
			if (registry[i]->methods[j].code == code)
				return registry[i]->methods_informational;
	return false;
}

bool ext_method_offered(const struct session *s, uint8_t code)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_methods; j++)
			if (registry[i]->methods[j].code == code)
				return !registry[i]->method_offered ||
				       registry[i]->method_offered(s, code);
	return true;
}

int ext_session_open(struct session *s)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i]->session_open && registry[i]->session_open(s) < 0)
			return -1;
	return 0;
}

int ext_server_start(const struct stp_conf *c, char *err, size_t errlen)
{
	sigset_t all, old;
	int rc = 0;

	/* Threads a module starts inherit this mask: signals stay the main
	 * thread's (sigwait), whenever the module is started. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (size_t i = 0; rc == 0 && i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i]->server_start)
			rc = registry[i]->server_start(c, err, errlen);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

uint64_t ext_worker_caps(const struct stp_conf *c, char *buf, size_t cap)
{
	char why[256];
	uint64_t all = 0;
	size_t pos = 0;
	if (cap)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
		uint64_t m;
		if (!registry[i]->worker_caps || !(m = registry[i]->worker_caps(c, why, sizeof(why))))
			continue;
		all |= m;
		if (pos < cap)
			pos += (size_t)snprintf(buf + pos, cap - pos, "%s%s: %s", pos ? "; " : "",
						registry[i]->name, why);
	}
	return all;
}

void ext_server_stop(void)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i]->server_stop)
			registry[i]->server_stop();
}

size_t ext_gauges(struct ext_gauge *out, size_t cap)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i]->gauges && n < cap)
			n += registry[i]->gauges(out + n, cap - n);
	return n;
}

void ext_describe(const struct session *s, struct feat_writer *w)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i]->describe)
			registry[i]->describe(s, w);
}

int ext_open_socket(struct session *s, const struct rule *r, int domain, int type, int protocol)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
		if (!registry[i]->open_socket)
			continue;
		int fd = registry[i]->open_socket(s, r, domain, type, protocol);
		if (fd != EXT_NOT_MINE)
			return fd;
	}
	return socket(domain, type, protocol);
}

int ext_listen_socket(const struct conf_listener *cl, int domain, int type, int protocol)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
		if (!registry[i]->listen_socket)
			continue;
		int fd = registry[i]->listen_socket(cl, domain, type, protocol);
		if (fd != EXT_NOT_MINE)
			return fd;
	}
	return socket(domain, type, protocol);
}

bool ext_socket_place(const struct session *s, const struct rule *r, char *buf, size_t cap)
{
	if (cap)
		buf[0] = '\0';
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i]->socket_place && registry[i]->socket_place(s, r, buf, cap))
			return true;
	return false;
}

const char *ext_listener_place(const struct conf_listener *cl)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
		const char *k = registry[i]->listener_place
					? registry[i]->listener_place(cl)
					: NULL;
		if (k)
			return k;
	}
	return NULL;
}

struct resolver *ext_resolver(struct session *s, const struct rule *r)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
		struct resolver *res = registry[i]->resolver ? registry[i]->resolver(s, r) : NULL;
		if (res)
			return res;
	}
	return NULL;
}

size_t ext_log_fields(const struct session *s, const struct rule *r, bool deny,
		      struct ext_log_field *f, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]) && n < max; i++)
		if (registry[i]->log_fields)
			n += registry[i]->log_fields(s, r, deny, f + n, max - n);
	return n;
}

void ext_reloaded(const struct stp_conf *c)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i]->reloaded)
			registry[i]->reloaded(c);
}

void ext_worker_reloaded(struct worker *w, const struct stp_conf *c)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i]->worker_reloaded)
			registry[i]->worker_reloaded(w, c);
}
