/*
 * mt_conf.h - the metrics extension's part of stpd.conf (docs/config.md
 * "metrics { }", docs/operations.md):
 *
 *   metrics {
 *       http 127.0.0.1:9180      # the listener(s): /metrics, /, /status.txt
 *       allow 127.0.0.0/8 ::1    # who may connect (default: loopback only)
 *   }
 *
 * The addresses are bound at start and keep until restart; `allow` is read
 * per connection from the current snapshot, so a reload changes it.
 * Registered by ext_conf_register(); links with the policy library alone.
 */
#ifndef STP_EXT_METRICS_MT_CONF_H
#define STP_EXT_METRICS_MT_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "policy/conf_ext.h"
#include "policy/rules.h"

#define MT_HTTP_MAX  4
#define MT_ALLOW_MAX 32

struct mt_conf {
	struct sockaddr_storage http[MT_HTTP_MAX];
	size_t n_http;
	struct rule_cidr allow[MT_ALLOW_MAX];
	size_t n_allow; /* 0: loopback only */
};

extern const struct conf_ext mt_conf_ext;

/* The section in c; NULL when the extension was not registered. */
const struct mt_conf *mt_conf_get(const struct stp_conf *c);
/* May a client at sa read the metrics under m? */
bool mt_conf_allowed(const struct mt_conf *m, const struct sockaddr *sa);

#endif
