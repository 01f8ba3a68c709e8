/*
 * cmp_hook.c - the compartments' part of the privileged broker
 * (server/broker.h, docs/compartments.md "The broker"): in the broker
 * process, a SOCKET request is checked against the broker's own copy of
 * the configuration (cmp_conf_allows) and its socket made in the
 * compartment's network namespace (cmp_ns_socket), which needs
 * CAP_SYS_ADMIN; a LISTEN in a compartment gets its socket made there
 * too. The process, its channels and OPEN/LISTEN's checks are the core's.
 */
#include <errno.h>
#include <linux/capability.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "ext/compartment/cmp.h"
#include "ext/compartment/cmp_conf.h"
#include "policy/conf.h"
#include "proto/broker.h"
#include "server/broker.h"

static bool cmp_wanted(const struct stp_conf *c)
{
	return cmp_conf_used(c);
}

static unsigned long long cmp_caps(const struct stp_conf *c, const char **names)
{
	if (!cmp_conf_used(c))
		return 0;
	*names = "CAP_SYS_ADMIN";
	return 1ULL << CAP_SYS_ADMIN;
}

static int cmp_socket(const struct stp_conf *c, const struct broker_request *rq)
{
	if (!cmp_conf_allows(c, rq->in, rq->out)) {
		log_warnx("broker: refused a socket in compartment %s for a session from %s "
			  "(no rule allows it)", rq->out, rq->in);
		errno = EACCES;
		return -1;
	}
	const struct cmp_entry *e = cmp_conf_find(c, rq->out);
	int domain = rq->family == BROKER_FAMILY_INET ? AF_INET : AF_INET6;
	int type = (rq->type == BROKER_TYPE_STREAM ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC;
	int s = e ? cmp_ns_socket(e->netns, domain, type, rq->proto)
		  : socket(domain, type, rq->proto); /* CMP_HOST: the broker's own */
	if (s < 0) {
		int err = errno == EACCES ? EPERM : errno; /* EACCES means refused */
		log_warn("broker: socket in compartment %s", rq->out);
		errno = err;
	}
	return s;
}

/* LISTEN in compartment place (the core checked that c has a listener
 * there on the address asked): a TCP socket in its namespace, which the
 * core binds with the broker's CAP_NET_BIND_SERVICE. */
static int cmp_listen_socket(const struct stp_conf *c, const char *place, int domain)
{
	const struct cmp_entry *e = cmp_conf_find(c, place);
	if (!e) {
		errno = EACCES;
		return -1;
	}
	int s = cmp_ns_socket(e->netns, domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 && errno == EACCES)
		errno = EPERM; /* EACCES means refused */
	return s;
}

const struct broker_hook cmp_broker_hook = {
	.wanted = cmp_wanted,
	.caps = cmp_caps,
	.socket = cmp_socket,
	.listen_socket = cmp_listen_socket,
};
