/*
 * ac_conf.h - the auto-configuration extension's part of stpd.conf
 * (docs/config.md "autoconfig { }"): the one source of truth for what
 * clients are told, as a PAC file over HTTP and as the X'F4' document.
 *
 *   autoconfig {
 *       http 127.0.0.1:8080          # PAC listener(s), served by libmicrohttpd
 *       profile office               # a profile: the keys below belong to it
 *       proxy 127.0.0.1:1080         # where clients send SOCKS (default: first listener)
 *       route 127.0.0.1:1081 .lab.example  # these through another proxy
 *       via secure.intranet.example  # through the proxy even if direct matches
 *       direct .intranet.example 10.0.0.0/8
 *       direct-port 8443
 *       default proxy                # what matches no list
 *       method userpass              # what the client offers: none, userpass, tls
 *       credentials netrc            # where its user name and password come from
 *       dns remote                   # names resolved by the proxy, or local
 *       refresh 300                  # seconds a client keeps the answer
 *   }
 *   request pass { from 127.0.0.2; command autoconfig; profile office }
 *
 * Which profile a client gets: the first request rule matching it with the
 * command autoconfig (client address, listener, user, groups, time); a
 * pass rule names the profile with `profile NAME`, or gets the first one.
 * Registered by ext_conf_register(); links with the policy library alone.
 */
#ifndef STP_EXT_AUTOCONF_AC_CONF_H
#define STP_EXT_AUTOCONF_AC_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "policy/conf_ext.h"

/* The rule_cmd_bits value of its command (HELPERS.md: auto-config 1<<16). */
#define RULE_CMD_AUTOCONFIG (1u << 16)

#define AC_NAME_MAX    64
#define AC_HTTP_MAX    4   /* http listeners */
#define AC_PROXIES_MAX 4   /* proxies per profile, in order of preference */
#define AC_LIST_MAX    64  /* via entries, direct entries per profile */
#define AC_PORTS_MAX   16  /* direct-port ranges per profile */
#define AC_ENTRY_MAX   256 /* one host, suffix or CIDR */
#define AC_REFRESH_MIN 10
#define AC_REFRESH_MAX 604800

enum ac_route { AC_ROUTE_PROXY = 0, AC_ROUTE_DIRECT = 1 };
enum ac_method { AC_METHOD_NONE = 0, AC_METHOD_USERPASS = 1, AC_METHOD_TLS = 2 };
enum ac_creds { AC_CREDS_NONE = 0, AC_CREDS_NETRC = 1 };
enum ac_dns { AC_DNS_REMOTE = 0, AC_DNS_LOCAL = 1 };

/* route PROXY DEST: that destination through that proxy. */
struct ac_route_entry {
	char proxy[AC_ENTRY_MAX];
	char dest[AC_ENTRY_MAX];
};

struct ac_ports {
	unsigned short lo, hi;
};

struct ac_profile {
	char name[AC_NAME_MAX];
	int line;
	char proxies[AC_PROXIES_MAX][AC_ENTRY_MAX]; /* "HOST:PORT", "[V6]:PORT" */
	size_t n_proxies;                           /* 0: the first listener's address */
	struct ac_route_entry routes[AC_LIST_MAX];  /* first of all: a named proxy */
	size_t n_routes;
	char via[AC_LIST_MAX][AC_ENTRY_MAX]; /* through the proxy, before `direct` */
	size_t n_via;
	char direct[AC_LIST_MAX][AC_ENTRY_MAX]; /* "*", "name", ".suffix", "IP", "CIDR" */
	size_t n_direct;
	struct ac_ports ports[AC_PORTS_MAX]; /* destination ports that go direct */
	size_t n_ports;
	enum ac_route dflt;
	enum ac_method method;
	enum ac_creds creds;
	enum ac_dns dns;
	unsigned refresh; /* seconds, default 3600 */
	unsigned seen;    /* keys set once per profile (bits) */
};

/* autoconfig { } */
struct ac_conf {
	struct sockaddr_storage http[AC_HTTP_MAX];
	socklen_t http_len[AC_HTTP_MAX];
	size_t n_http;
	int http_line;
	struct ac_profile *profiles; /* owned; freed with the snapshot */
	size_t n_profiles;
};

/* request pass { profile NAME } */
struct ac_conf_rule {
	char profile[AC_NAME_MAX];
};

extern const struct conf_ext ac_conf_ext;

/* The settings of c (never NULL once registered). */
const struct ac_conf *ac_conf_get(const struct stp_conf *c);
/* The profile a rule names, or NULL when it names none (r may be NULL). */
const char *ac_conf_rule_profile(const struct rule *r);
const struct ac_profile *ac_conf_profile(const struct ac_conf *ac, const char *name);

/* The profile the first request rule matching ctx (command autoconfig)
 * selects: NULL when a rule blocks, no rule matches or there is no
 * profile; *rule is the deciding rule (NULL: the default). */
const struct ac_profile *ac_conf_select(const struct stp_conf *c, struct rule_ctx *ctx,
					const struct rule **rule);

#endif
