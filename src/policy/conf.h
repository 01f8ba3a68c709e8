/*
 * conf.h - stpd's configuration: an immutable snapshot built by the parser
 * (or by conf_default() for the embedded default), swapped whole on SIGHUP.
 * Sessions keep a reference to the snapshot they started with.
 */
#ifndef STP_POLICY_CONF_H
#define STP_POLICY_CONF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/authconf.h"
#include "rules.h"

#define CONF_NAME_MAX 64
/* `user`'s default when stpd starts as root without the key: the first of
 * these accounts that exists (debian/postinst makes `stpd`). */
#define CONF_USER_DEFAULTS { "stpd", "nobody" }
#define CONF_PATH_MAX 512
#define CONF_FILES_MAX 16
#define CONF_EXT_MAX RULE_EXT_MAX /* registered extensions (conf_ext.h) */

struct conf_listener {
	char name[CONF_NAME_MAX];       /* "listener NAME"; default "ADDR:PORT" text */
	struct sockaddr_storage addr;   /* where to listen */
	socklen_t addrlen;
	bool proxy_protocol;            /* expect a PROXY v1/v2 header first */
	bool no_fastopen;               /* tcp-fastopen off: no TFO on this socket */
	bool has_udp_advertise;         /* BND.ADDR for UDP ASSOCIATE behind NAT */
	struct sockaddr_storage udp_advertise; /* port ignored */
	bool has_external;              /* source address for outgoing sockets */
	struct sockaddr_storage external;      /* port ignored */
	void *ext[CONF_EXT_MAX];        /* extensions' data (conf_ext_listener) */
};

enum conf_log_target { LOG_TO_STDERR = 0, LOG_TO_SYSLOG = 1 };
enum conf_log_format { LOG_FMT_TEXT = 0, LOG_FMT_JSON = 1 };

/* Authentication methods a server may select (a bit each). */
enum conf_auth_bits {
	AUTH_BIT_NONE = 1u << 0,     /* method X'00' */
	AUTH_BIT_USERPASS = 1u << 1, /* method X'02', RFC 1929 */
	AUTH_BIT_SSL = 1u << 2,      /* method X'86' and its IANA code X'06' (an extension's) */
	AUTH_BIT_GSSAPI = 1u << 3,   /* method X'01', RFC 1961 (an extension's) */
};
/* Same values as auth_backend_kind (auth/authconf.h). */
enum conf_userpass_backend {
	USERPASS_FILE = AUTH_KIND_FILE,
	USERPASS_PAM = AUTH_KIND_PAM,
	USERPASS_LDAP = AUTH_KIND_LDAP,
	USERPASS_RADIUS = AUTH_KIND_RADIUS,
};

struct conf_timeouts {            /* seconds; 0 = none */
	unsigned handshake;       /* accept -> request parsed (default 10) */
	unsigned connect;         /* CONNECT to the target, all addresses (default 30) */
	unsigned idle;            /* relay with no byte either way (default 3600) */
	unsigned bind_accept;     /* BIND waiting for the peer (default 120) */
	unsigned udp_idle;        /* UDP association with no datagram (default 300) */
	unsigned dns;             /* one name look-up (default 10) */
	unsigned drain;           /* SIGTERM: sessions get this long to end (default 10) */
	/* Milliseconds, not seconds: how long a CONNECT attempt to one
	 * address runs alone before the next address is tried too (RFC 8305
	 * Connection Attempt Delay; default 250, 10-2000). */
	unsigned connect_attempt_delay;
};

struct conf_limits {
	unsigned max_sessions;            /* whole server (default 10000) */
	unsigned max_sessions_per_client; /* per client IP (default 1000) */
	unsigned max_dns_pending;         /* per worker (default 1024) */
	unsigned relay_buffer;            /* bytes per direction when not splicing (default 65536) */
};

struct stp_conf {
	atomic_int refs;               /* see conf_ref/conf_unref */
	char path[CONF_PATH_MAX];      /* "" for the embedded default */
	/* Files extensions' keys name (conf_ext_file: certificates, keys,
	 * keytabs): with the core's own (users file, secret files) the only
	 * ones the privileged broker opens for a reload (conf_names_file). */
	char files[CONF_FILES_MAX][CONF_PATH_MAX];
	unsigned n_files;

	struct conf_listener *listeners;
	size_t n_listeners;

	unsigned workers;              /* 0 = number of cores */
	bool has_resolver;             /* else /etc/resolv.conf */
	char resolver[CONF_NAME_MAX];  /* "ADDR" or "ADDR:PORT" or "[V6]:PORT", for c-ares */

	unsigned auth_methods;         /* conf_auth_bits, default AUTH_BIT_NONE */
	enum conf_userpass_backend userpass_backend; /* the chain's first */
	/* `backend A B ...`: tried in order until one accepts (docs/config.md). */
	enum conf_userpass_backend backends[AUTH_CHAIN_MAX];
	size_t n_backends;             /* default 1: file */
	char users_file[CONF_PATH_MAX];
	int users_file_line;           /* where the config set it; 0 = command line */
	char pam_service[CONF_NAME_MAX]; /* default "stpd" */
	struct auth_cache_conf auth_cache; /* positive results; ttl 0 = off */
	unsigned auth_down_time;       /* seconds a failing directory is skipped (10) */
	struct auth_ldap_conf ldap;    /* the ldap { } block; ldap.line 0 = none */
	struct auth_radius_conf radius; /* the radius { } block; radius.line 0 = none */

	struct conf_timeouts timeouts;
	struct conf_limits limits;

	enum conf_log_target log_target;
	enum conf_log_format log_format;
	int log_level;                 /* LOG_ERR..LOG_DEBUG from syslog.h, default LOG_INFO */

	/* `user`: the account stpd drops to after binding. "" = the key is
	 * absent: started as root, stpd drops to the first of CONF_USER_DEFAULTS
	 * that exists (privs_choose_user); an account with uid 0 (`user root`)
	 * keeps root. At start stpd replaces it with the account it drops to,
	 * "" when it keeps its uid (docs/operations.md §8). */
	char run_as_user[CONF_NAME_MAX];
	bool no_seccomp;                 /* `seccomp off`: no filter (debugging) */

	/* Two levels, as in Dante: client rules when a connection is accepted,
	 * request rules for each request (and each UDP datagram). First match
	 * wins; no match blocks. */
	struct rule *client_rules;
	size_t n_client_rules;
	struct rule *request_rules;
	size_t n_request_rules;

	/* Each registered extension's settings, by registry slot (conf_ext.h:
	 * conf_ext_get); freed with the snapshot through its free hook. */
	void *ext[CONF_EXT_MAX];
};

/* Parses path into a new snapshot (refs = 1). On errors, writes every error
 * as "file:line: message\n" into err (truncated to errlen) and returns NULL. */
struct stp_conf *conf_load(const char *path, char *err, size_t errlen);
/* The same for text[0..len) held in memory (NUL bytes are errors, not the
 * end); name stands for the file in messages and in path. conf_load and
 * the fuzz target both go through here. */
struct stp_conf *conf_parse_string(const char *name, const char *text, size_t len, char *err,
				   size_t errlen);

/* The embedded default: listen 127.0.0.1:1080, method X'00' only, clients
 * from 127.0.0.0/8 and ::1 only, every request passed. refs = 1. */
struct stp_conf *conf_default(void);

/* Command-line overrides, applied to a fresh snapshot before it is used.
 * Each returns 0, or -1 with a message in err. */
int conf_set_listeners(struct stp_conf *c, const char *const *addrs, size_t n, char *err,
		       size_t errlen);             /* "ADDR:PORT", "[V6]:PORT"; replaces all */
int conf_set_users_file(struct stp_conf *c, const char *path, char *err, size_t errlen);
						   /* require RFC 1929 against that file */
int conf_set_allow(struct stp_conf *c, const char *const *cidrs, size_t n, char *err,
		   size_t errlen);                 /* replaces the client rules with pass rules */

/* True when the userpass backend chain lists b. */
bool conf_backend_used(const struct stp_conf *c, enum conf_userpass_backend b);
/* True when c names path (exactly) as a file stpd reads: c's own file, the users file,
 * RADIUS/LDAP secret files, or a file an extension key noted with
 * conf_ext_file. What the broker checks before opening a file for stpd. */
bool conf_names_file(const struct stp_conf *c, const char *path);

struct stp_conf *conf_ref(struct stp_conf *c);
void conf_unref(struct stp_conf *c);               /* frees at zero */

/* Human-readable summary for "stpd -t -v" and the start-up log. */
void conf_describe(const struct stp_conf *c, char *out, size_t outlen);

#endif
