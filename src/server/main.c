/*
 * main.c - stpd's command line, start-up, signals and shutdown.
 *
 * The main thread parses the configuration, opens every listening socket
 * (one per worker per address, before dropping privileges), starts the
 * workers, then only waits for signals: SIGHUP reloads the configuration
 * (a bad one is refused and the old one kept), SIGTERM/SIGINT drain.
 */
#include <ares.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/ext_conf.h"
#include "server/ext.h"
#include "sandbox/sandbox.h"
#include "server/broker.h"
#include "server/server.h"

#define STPD_VERSION STP_VERSION /* meson.build: the project version */
#define MAX_CLI_LIST 64

struct options {
	const char *conf_path;
	bool check_only;
	bool debug;
	bool json;
	int log_level; /* -1: from config */
	const char *listen[MAX_CLI_LIST];
	size_t n_listen;
	const char *allow[MAX_CLI_LIST];
	size_t n_allow;
	const char *users;
	const char *resolver;
	long workers; /* -1: from config */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: stpd [-t] [-d] [-c FILE] [--listen ADDR:PORT]... [--allow CIDR]...\n"
		"            [--users FILE] [--workers N] [--resolver ADDR[:PORT]]\n"
		"            [--log-json] [--log-level LEVEL]\n"
		"       stpd passwd [--group G1,G2] FILE USER\n"
		"\n"
		"  -c FILE               configuration file (default: embedded: 127.0.0.1:1080,\n"
		"                        no authentication, loopback clients only)\n"
		"  -t                    check the configuration and exit\n"
		"  -d                    debug logging\n"
		"  --listen ADDR:PORT    listen here instead (repeatable; [V6]:PORT for IPv6)\n"
		"  --allow CIDR          only these client addresses (repeatable)\n"
		"  --users FILE          require username/password (RFC 1929) from FILE\n"
		"  --workers N           event-loop threads (default: one per core)\n"
		"  --resolver ADDR[:PORT]  DNS server instead of /etc/resolv.conf\n"
		"  --log-json            log JSON lines\n"
		"  --log-level LEVEL     error, warning, notice, info or debug\n"
		"  -V, --version         print the version and the modules built in\n");
}

/* The version and the modules this build has (options ext_tls, ext_mcast):
 * "modules: tls core mcast", for users and for tests that need one. */
static void print_version(void)
{
	size_t n;
	const struct stp_ext *const *exts = ext_all(&n);
	printf("stpd %s\nmodules:", STPD_VERSION);
	for (size_t i = 0; i < n; i++)
		printf(" %s", exts[i]->name);
	printf("\n");
}

/* `stpd -t`: what each module says about how it will run. */
static void print_descriptions(const struct stp_conf *c)
{
	size_t n;
	const struct stp_ext *const *exts = ext_all(&n);
	for (size_t i = 0; i < n; i++) {
		char buf[256] = "";
		if (!exts[i]->conf_report)
			continue;
		exts[i]->conf_report(c, buf, sizeof(buf));
		if (buf[0])
			printf("%s: %s\n", exts[i]->name, buf);
	}
}

static int parse_level(const char *s)
{
	static const struct { const char *name; int level; } levels[] = {
		{ "error", LOG_ERR },   { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
		{ "info", LOG_INFO },   { "debug", LOG_DEBUG },
	};
	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
		if (strcmp(s, levels[i].name) == 0)
			return levels[i].level;
	return -1;
}

static void parse_args(struct options *o, int argc, char **argv)
{
	enum { OPT_LISTEN = 256, OPT_ALLOW, OPT_USERS, OPT_WORKERS, OPT_RESOLVER, OPT_JSON,
	       OPT_LEVEL };
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, OPT_LISTEN },
		{ "allow", required_argument, NULL, OPT_ALLOW },
		{ "users", required_argument, NULL, OPT_USERS },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "resolver", required_argument, NULL, OPT_RESOLVER },
		{ "log-json", no_argument, NULL, OPT_JSON },
		{ "log-level", required_argument, NULL, OPT_LEVEL },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char *end;

	memset(o, 0, sizeof(*o));
	o->log_level = -1;
	o->workers = -1;
	while ((ch = getopt_long(argc, argv, "c:tdhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': o->conf_path = optarg; break;
		case 't': o->check_only = true; break;
		case 'd': o->debug = true; break;
		case 'h': usage(stdout); exit(0);
		case 'V': print_version(); exit(0);
		case OPT_LISTEN:
			if (o->n_listen == MAX_CLI_LIST)
				fatalx("too many --listen");
			o->listen[o->n_listen++] = optarg;
			break;
		case OPT_ALLOW:
			if (o->n_allow == MAX_CLI_LIST)
				fatalx("too many --allow");
			o->allow[o->n_allow++] = optarg;
			break;
		case OPT_USERS: o->users = optarg; break;
		case OPT_RESOLVER: o->resolver = optarg; break;
		case OPT_JSON: o->json = true; break;
		case OPT_WORKERS:
			o->workers = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || o->workers < 1 || o->workers > 1024) {
				fprintf(stderr, "stpd: --workers: expected 1..1024, got '%s'\n",
					optarg);
				exit(2);
			}
			break;
		case OPT_LEVEL:
			if ((o->log_level = parse_level(optarg)) < 0) {
				fprintf(stderr, "stpd: --log-level: unknown level '%s'\n", optarg);
				exit(2);
			}
			break;
		default: usage(stderr); exit(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "stpd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		exit(2);
	}
}

/* Loads the file (or the embedded default) and applies the command line.
 * NULL with the errors in err. */
static struct stp_conf *build_conf(const struct options *o, char *err, size_t errlen)
{
	struct stp_conf *c = o->conf_path ? conf_load(o->conf_path, err, errlen) : conf_default();
	if (!c) {
		if (!o->conf_path)
			snprintf(err, errlen, "cannot build the default configuration");
		return NULL;
	}
	if ((o->n_listen && conf_set_listeners(c, o->listen, o->n_listen, err, errlen) < 0) ||
	    (o->n_allow && conf_set_allow(c, o->allow, o->n_allow, err, errlen) < 0) ||
	    (o->users && conf_set_users_file(c, o->users, err, errlen) < 0)) {
		conf_unref(c);
		return NULL;
	}
	if (o->resolver) {
		struct sockaddr_storage ss;
		socklen_t len;
		if (sa_parse(&ss, &len, o->resolver, 53) < 0) {
			snprintf(err, errlen, "--resolver: bad address '%s'", o->resolver);
			conf_unref(c);
			return NULL;
		}
		c->has_resolver = true;
		snprintf(c->resolver, sizeof(c->resolver), "%s", o->resolver);
	}
	if (o->workers > 0)
		c->workers = (unsigned)o->workers;
	if (o->json)
		c->log_format = LOG_FMT_JSON;
	if (o->log_level >= 0)
		c->log_level = o->log_level;
	if (o->debug)
		c->log_level = LOG_DEBUG;
	return c;
}

static struct snapshot *load_snapshot(const struct options *o, char *err, size_t errlen)
{
	struct stp_conf *c = build_conf(o, err, errlen);
	if (!c)
		return NULL;
	struct snapshot *s = snapshot_new(c, err, errlen);
	if (!s)
		conf_unref(c);
	return s;
}

/* Privilege separation (docs/operations.md §8): the account stpd drops to
 * after start (sandbox.h, privs_choose_user: `user`, else stpd or nobody
 * when started as root, none with `user root`) goes into the boot
 * configuration's run_as_user, which serve, drop_privileges and the broker
 * read; line gets the log line saying which and why. */
static void choose_user(struct stp_conf *c, char *line, size_t cap)
{
	static const char *const defaults[] = CONF_USER_DEFAULTS;
	char user[CONF_NAME_MAX];
	bool warn;

	if (privs_choose_user(c->run_as_user, defaults, sizeof(defaults) / sizeof(defaults[0]),
			      user, sizeof(user), line, cap, &warn) < 0)
		fatalx("%s", line);
	if (warn) {
		log_warnx("%s", line);
		line[0] = '\0';
	}
	snprintf(c->run_as_user, sizeof(c->run_as_user), "%s", user);
}

/* What the workers keep after the drop: the capabilities the modules'
 * features need while serving (ext.h worker_caps), decided at start; a
 * reload that needs more is refused. */
static uint64_t kept_caps;

/* Becomes user. setuid clears the permitted and effective sets, but for
 * what PR_SET_KEEPCAPS keeps, which capset then narrows to kept_caps
 * (the bounding set is kept_caps since the start of serve). Threads
 * started after this (the workers) inherit the set; those running now
 * (the authentication pool) lose every capability with the uid. */
static void drop_privileges(const char *user, const char *line, const char *caps_why)
{
	struct passwd *pw;
	char names[128];
	if (!user[0])
		return;
	if (!(pw = getpwnam(user)))
		fatalx("user %s: no such user", user);
	if (kept_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fatal("prctl PR_SET_KEEPCAPS");
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		fatal("cannot drop privileges to %s", user);
	if (kept_caps) {
		if (privs_keep_only(kept_caps) < 0)
			fatal("keeping %s", privs_cap_names(kept_caps, names, sizeof(names)));
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	}
	log_info("%s", line);
	if (kept_caps)
		log_info("workers keep %s only, for %s", privs_cap_names(kept_caps, names, sizeof(names)),
			 caps_why);
}

/* The workers' seccomp filter (src/sandbox), on every thread of this
 * process, unless `seccomp off` or built without it. */
static void sandbox_workers(const struct stp_conf *c)
{
	char err[256];
	if (c->no_seccomp || !sandbox_built()) {
		log_info("seccomp: no filter (%s)", c->no_seccomp ? "seccomp off" :
				"built with -Dseccomp=false");
		return;
	}
	if (sandbox_install(SANDBOX_WORKERS, err, sizeof(err)) < 0)
		fatalx("%s (`seccomp off` runs without the filter)", err);
	log_info("seccomp: workers' filter installed");
}

/* The fd limit caps sessions: take all the hard limit allows. */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The configuration stpd started with (serve() holds it): the listeners
 * that do not follow reloads are its. */
static const struct stp_conf *started_conf;

/* How many workers have not applied reload gen yet. */
static unsigned workers_behind(unsigned gen)
{
	unsigned n = 0;
	for (unsigned i = 0; i < g_server.n_workers; i++)
		n += (int)(atomic_load(&g_server.workers[i].reloaded_gen) - gen) < 0;
	return n;
}

/* Waits until every worker has taken reload gen's snapshot and its
 * listeners follow the file (listener_reload.c), so that "configuration
 * reloaded" means an address the file dropped no longer accepts and an
 * added one does. Workers stuck longer than RELOAD_WAIT_SECS (the
 * broker's timeouts are shorter) are logged and not waited for; their
 * late posts only make a later wait look again. */
#define RELOAD_WAIT_SECS 30
static void wait_reloaded(unsigned gen)
{
	struct timespec until;
	unsigned behind;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += RELOAD_WAIT_SECS;
	while ((behind = workers_behind(gen)) > 0)
		if (sem_timedwait(&g_server.reloaded, &until) < 0 && errno != EINTR) {
			log_warnx("reload: %u of %u workers still busy after %d s; not waiting "
				  "for them", behind, g_server.n_workers, RELOAD_WAIT_SECS);
			return;
		}
}

static void reload(const struct options *o)
{
	char err[4096] = "";
	struct snapshot *s = load_snapshot(o, err, sizeof(err));
	if (!s) {
		log_warnx("reload refused, keeping the running configuration:\n%s", err);
		return;
	}
	uint64_t need = started_conf->run_as_user[0] ? ext_worker_caps(s->conf, err, sizeof(err))
						       : 0;
	if (need & ~kept_caps) {
		char names[128];
		log_warnx("reload refused, keeping the running configuration: %s; stpd runs as %s "
			  "and did not keep %s at start (a restart keeps it)", err,
			  started_conf->run_as_user, privs_cap_names(need & ~kept_caps, names,
							       sizeof(names)));
		snapshot_unref(s);
		return;
	}
	log_setlevel(s->conf->log_level);
	server_set_snapshot(s);
	unsigned gen = atomic_fetch_add(&g_server.reload_gen, 1) + 1; /* after the snapshot */
	/* Before the workers: the listen addresses they open may need the
	 * broker, which allows only what its own copy of the file lists. */
	broker_reload();
	ext_reloaded(s->conf);
	for (unsigned i = 0; i < g_server.n_workers; i++)
		worker_request(&g_server.workers[i], true, false);
	wait_reloaded(gen);
	log_info("configuration reloaded%s%s", o->conf_path ? " from " : "",
		 o->conf_path ? o->conf_path : "");
}

/* Joins the workers; a second SIGTERM or SIGINT meanwhile ends the
 * sessions still draining at once (SIGHUP is ignored by now). */
static void wait_workers(const sigset_t *sigs, unsigned n)
{
	const struct timespec tick = { 0, 200 * 1000 * 1000 };
	bool forced = false;
	for (unsigned done = 0; done < n;) {
		int sig = sigtimedwait(sigs, NULL, &tick);
		if (sig > 0 && sig != SIGHUP && !forced) {
			forced = true;
			log_info("signal %d again: closing %u sessions now", sig,
				 atomic_load(&g_server.sessions));
			for (unsigned i = done; i < n; i++)
				worker_request(&g_server.workers[i], false, true);
		}
		while (done < n && worker_tryjoin(&g_server.workers[done]))
			done++;
	}
}

static int serve(const struct options *o, struct snapshot *boot, const char *user_line)
{
	const struct stp_conf *c = boot->conf;
	char err[1024], where[SA_STR_MAX];
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = c->workers ? c->workers : (unsigned)(cores > 0 ? cores : 1);
	sigset_t sigs;

	/* Block what the loop below waits for before anything else: the
	 * listeners accept (and a supervisor may signal) long before the loop
	 * runs, and a SIGTERM or SIGHUP in between must wait there rather
	 * than kill stpd by the default action. Every thread started from
	 * here on inherits the mask; the broker resets its own. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGHUP);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit();
	/* Going to drop to `user`: narrow the capability bounding set now to
	 * what the workers keep (usually nothing), while this is the only
	 * thread (the set is per thread and threads inherit it; CAP_SETPCAP
	 * is still ours). The permitted set keeps what binding listeners and
	 * the broker need until the drop. */
	char caps_why[512] = "";
	if (c->run_as_user[0] && geteuid() == 0) {
		kept_caps = ext_worker_caps(c, caps_why, sizeof(caps_why));
		privs_bound_only(kept_caps);
	}
	/* The broker first: a fork with threads running copies their locks
	 * (ASan's allocator's among them) held. */
	if (broker_start(c, n, err, sizeof(err)) < 0)
		fatalx("%s", err);
	ares_library_init(ARES_LIB_INIT_ALL);
	g_server.drain_secs = c->timeouts.drain;
	if (sem_init(&g_server.reloaded, 0, 0) < 0)
		fatal("sem_init");
	g_server.track_reloads = true;
	g_server.snap = snapshot_ref(boot);
	started_conf = c;
	g_server.n_workers = n;
	g_server.workers = calloc(n, sizeof(*g_server.workers));
	if (!g_server.workers)
		fatalx("out of memory");
	for (size_t i = 0; i < c->n_listeners; i++)
		if (listener_check_free(&c->listeners[i], err, sizeof(err)) < 0)
			fatalx("%s", err);
	for (unsigned i = 0; i < n; i++)
		if (worker_init(&g_server.workers[i], i, boot, err, sizeof(err)) < 0)
			fatalx("%s", err);
	if (listener_check_alone(g_server.workers, n, err, sizeof(err)) < 0)
		fatalx("%s", err);
	for (size_t i = 0; i < c->n_listeners; i++)
		log_info("listening on %s (%s)",
			 sa_str((const struct sockaddr *)&c->listeners[i].addr, where, sizeof(where)),
			 c->listeners[i].name);
	if (ext_server_start(c, err, sizeof(err)) < 0)
		fatalx("%s", err);
	/* Threads only after the broker's fork (broker_start above). */
	if (authpool_start(n > 1 ? n : 2) < 0)
		fatalx("cannot start the authentication threads");
	drop_privileges(c->run_as_user, user_line, caps_why);
	sandbox_workers(c);

	for (unsigned i = 0; i < n; i++)
		if (worker_spawn(&g_server.workers[i]) < 0)
			fatalx("cannot start worker %u", i);
	log_info("stpd %s ready: %u workers", STPD_VERSION, n);

	for (;;) {
		/* Wakes every second to write the counts of rate-limited lines
		 * once a flood has stopped (log.h). */
		const struct timespec tick = { 1, 0 };
		int sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig < 0) {
			log_rate_flush(false);
			continue;
		}
		if (sig == SIGHUP) {
			reload(o);
			continue;
		}
		g_server.drain_secs = g_server.snap->conf->timeouts.drain;
		log_info("signal %d: draining %u sessions for up to %u s", sig,
			 atomic_load(&g_server.sessions), g_server.drain_secs);
		break;
	}
	for (unsigned i = 0; i < n; i++)
		worker_request(&g_server.workers[i], false, true);
	wait_workers(&sigs, n);
	ext_server_stop();
	broker_stop();
	free(g_server.workers);
	server_set_snapshot(NULL);
	ares_library_cleanup();
	log_rate_flush(true); /* counts of the last interval */
	log_info("stopped");
	return 0;
}

int main(int argc, char **argv)
{
	struct options o;
	char err[8192] = "";

	if (argc >= 2 && strcmp(argv[1], "passwd") == 0)
		return authfile_passwd_main(argc - 1, argv + 1);
	log_init("stpd", false, false, LOG_INFO);
	parse_args(&o, argc, argv);
	/* Before the first snapshot: the extensions' sections and keys. */
	if (ext_conf_register(err, sizeof(err)) < 0) {
		fprintf(stderr, "stpd: %s\n", err);
		return 1;
	}

	struct snapshot *boot = load_snapshot(&o, err, sizeof(err));
	if (!boot) {
		fprintf(stderr, "%s%s", err, err[0] && err[strlen(err) - 1] == '\n' ? "" : "\n");
		return 1;
	}
	if (o.check_only) {
		print_descriptions(boot->conf);
		printf("configuration OK\n");
		snapshot_unref(boot);
		return 0;
	}
	const struct stp_conf *c = boot->conf;
	log_init("stpd", c->log_target == LOG_TO_SYSLOG, c->log_format == LOG_FMT_JSON,
		 c->log_level);
	char user_line[512];
	choose_user(boot->conf, user_line, sizeof(user_line));
	int rc = serve(&o, boot, user_line);
	snapshot_unref(boot);
	return rc;
}
