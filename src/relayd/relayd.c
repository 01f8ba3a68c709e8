/*
 * relayd.c - stp-relayd: a PTCL relay proxy (seed 003) that runs the
 * kernel engine for a TRANSPARENT control side elsewhere, over N2 on a
 * Unix socket (same host) or TLS with certificates both ways (another
 * host, the draft's "different domains"). Only this daemon needs
 * CAP_NET_ADMIN; the control side's workers need none. Usage: docs/relayd.md.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/err.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/transparent/tp_conf.h"
#include "ext/transparent/tp_nft.h"
#include "relayd/relayd.h"

#define RELAYD_TABLE "stp_relayd"
#define LISTEN_MAX   4

struct listener {
	ev_io io;
	struct relayd *d;
	bool tls;
	ev_timer pause; /* accept stopped for a while after EMFILE/ENFILE */
};

static void resume_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct listener *l = w->data;

	ev_io_start(loop, &l->io);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: stp-relayd [-d] [-e kernel] [-T table] [-u user] -l unix:PATH|HOST:PORT "
		   "...\n"
		   "                  [--cert FILE --key FILE --ca FILE] [--socket-owner USER]\n"
		   "  -l unix:PATH   serve N2 on a Unix socket (created, mode 0600)\n"
		   "  -l HOST:PORT   serve N2 over TLS; --cert/--key/--ca are then required and\n"
		   "                 the control side must show a certificate the CA signed\n"
		   "  -e ENGINE      the relay engine (kernel)\n"
		   "  -T TABLE       the nftables table (inet family) to own, default " RELAYD_TABLE
		   "\n"
		   "  -u USER        after start-up, run as USER keeping only CAP_NET_ADMIN\n"
		   "  --socket-owner USER  the Unix sockets belong to USER and its group (stpd's\n"
		   "                 account after its privilege drop, e.g. stpd or nobody)\n"
		   "  -d             debug log\n");
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	struct listener *l = (struct listener *)w;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char peer[SA_STR_MAX] = "unix";
	SSL *ssl = NULL;
	int fd = accept4(w->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE) {
			/* Out of descriptors: accepting again at once would spin. */
			log_warn("accept: pausing the listener for a second");
			ev_io_stop(loop, &l->io);
			ev_timer_start(loop, &l->pause);
		} else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
			log_warn("accept");
		}
		return;
	}
	if (l->tls) {
		sa_str((struct sockaddr *)&ss, peer, sizeof(peer));
		ssl = SSL_new(l->d->tls);
		if (!ssl || SSL_set_fd(ssl, fd) != 1) {
			log_warnx("TLS: cannot set up a connection from %s", peer);
			SSL_free(ssl);
			close(fd);
			return;
		}
		SSL_set_mode(ssl,
			     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	}
	rd_conn_new(l->d, fd, ssl, peer);
}

/* --socket-owner: stpd's workers connect as the unprivileged user stpd
 * drops to (docs/operations.md §8); the socket stays mode 0600. */
static void give_socket(const char *path, const char *user)
{
	const struct passwd *pw = getpwnam(user);
	if (!pw)
		fatalx("--socket-owner %s: no such user", user);
	if (chown(path, pw->pw_uid, pw->pw_gid) != 0)
		fatal("--socket-owner %s: chown %s", user, path);
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	unlink(path); /* a socket left by a previous run */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));

	umask(old);
	if (rc != 0 || listen(fd, 64) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static int listen_tcp(const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, fd;

	if (sa_parse(&ss, &len, spec, -1) != 0 || sa_port((struct sockaddr *)&ss) == 0) {
		errno = EINVAL;
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 64) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Server certificate and key, and the CA every control side's certificate
 * must chain to: mutual authentication, nothing else is accepted. */
static SSL_CTX *tls_setup(const char *cert, const char *key, const char *ca)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (!ctx)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return ctx;
}

/*
 * Becomes user, keeping CAP_NET_ADMIN alone (nftables, conntrack): what the
 * relay needs once its listeners are bound. The raw capset(2) call, so no
 * libcap is needed for one capability.
 */
static void drop_to(const char *user)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	struct passwd *pw = getpwnam(user);

	if (!pw)
		fatalx("-u %s: no such user", user);
	if (prctl(PR_SET_KEEPCAPS, 1) != 0 || setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0)
		fatal("-u %s", user);
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = 1u << CAP_NET_ADMIN;
	if (syscall(SYS_capset, &hdr, data) != 0)
		fatal("-u %s: keeping CAP_NET_ADMIN", user);
	prctl(PR_SET_KEEPCAPS, 0);
	log_info("running as %s with CAP_NET_ADMIN only", user);
}

static void stop_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	log_info("signal %d: stopping", w->signum);
	ev_break(loop, EVBREAK_ALL);
}

struct opts {
	const char *listen[LISTEN_MAX];
	int nlisten;
	const char *cert, *key, *ca, *engine, *table, *user, *sock_owner;
	bool debug;
};

static void parse_args(struct opts *o, int argc, char **argv)
{
	static const struct option longs[] = {
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "ca", required_argument, NULL, 'A' },
		{ "socket-owner", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	memset(o, 0, sizeof(*o));
	o->engine = "kernel";
	o->table = RELAYD_TABLE;
	while ((ch = getopt_long(argc, argv, "de:hl:T:u:", longs, NULL)) != -1) {
		switch (ch) {
		case 'd':
			o->debug = true;
			break;
		case 'e':
			o->engine = optarg;
			break;
		case 'T':
			o->table = optarg;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'C':
			o->cert = optarg;
			break;
		case 'K':
			o->key = optarg;
			break;
		case 'A':
			o->ca = optarg;
			break;
		case 'O':
			o->sock_owner = optarg;
			break;
		case 'l':
			if (o->nlisten == LISTEN_MAX)
				fatalx("at most %d -l", LISTEN_MAX);
			o->listen[o->nlisten++] = optarg;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (o->nlisten == 0 || optind != argc) {
		usage(stderr);
		exit(2);
	}
}

/* The engines stp-relayd can run (the user-space one joins when it can be
 * linked without stpd's core). */
static const struct tp_engine_ops *const engines[] = { &tp_engine_kernel };

static const struct tp_engine_ops *engine_find(const char *name)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		if (strcmp(engines[i]->name, name) == 0)
			return engines[i];
	return NULL;
}

int main(int argc, char **argv)
{
	static struct listener ls[LISTEN_MAX];
	struct opts o;
	struct relayd d = { 0 };
	struct tp_conf conf = { .engine = TP_ENGINE_KERNEL,
				.engine_name = "kernel",
				.end_on_fin = true,
				.idle_ms = 300000 };
	ev_signal sigterm, sigint;
	char err[512];

	parse_args(&o, argc, argv);
	log_init("stp-relayd", false, false, o.debug ? LOG_DEBUG : LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	d.loop = EV_DEFAULT;
	d.conf = &conf;
	d.ops = engine_find(o.engine);
	if (!d.ops)
		fatalx("unknown engine %s (this build has: kernel)", o.engine);
	conf.engine_name = d.ops->name;
	for (int i = 0; i < o.nlisten; i++) {
		bool unix_sock = strncmp(o.listen[i], "unix:", 5) == 0;
		int fd;

		if (!unix_sock && !d.tls) {
			if (!o.cert || !o.key || !o.ca)
				fatalx("-l %s: TLS needs --cert, --key and --ca", o.listen[i]);
			d.tls = tls_setup(o.cert, o.key, o.ca);
			if (!d.tls)
				fatalx("TLS: cannot load --cert %s, --key %s or --ca %s", o.cert,
				       o.key, o.ca);
		}
		fd = unix_sock ? listen_unix(o.listen[i] + 5) : listen_tcp(o.listen[i]);
		if (fd < 0)
			fatal("-l %s", o.listen[i]);
		if (unix_sock && o.sock_owner)
			give_socket(o.listen[i] + 5, o.sock_owner);
		ls[i].d = &d;
		ls[i].tls = !unix_sock;
		ev_io_init(&ls[i].io, accept_cb, fd, EV_READ);
		ev_timer_init(&ls[i].pause, resume_cb, 1., 0.);
		ls[i].pause.data = &ls[i];
	}
	/* The table is reset here: pinholes a killed predecessor left are gone
	 * before the first control connection is accepted. */
	d.engine = strcmp(d.ops->name, "kernel") == 0 ?
			   tp_nft_create_table(d.loop, &conf, o.table, err, sizeof(err)) :
			   d.ops->create(d.loop, &conf, err, sizeof(err));
	if (!d.engine)
		fatalx("%s", err);
	if (o.user)
		drop_to(o.user);
	for (int i = 0; i < o.nlisten; i++)
		ev_io_start(d.loop, &ls[i].io);
	ev_signal_init(&sigterm, stop_cb, SIGTERM);
	ev_signal_init(&sigint, stop_cb, SIGINT);
	ev_signal_start(d.loop, &sigterm);
	ev_signal_start(d.loop, &sigint);
	log_info("engine %s, table inet %s: ready", d.ops->name, o.table);
	ev_run(d.loop, 0);
	while (d.conns)
		rd_conn_close(d.conns, "stopping");
	d.ops->destroy(d.engine);
	for (int i = 0; i < o.nlisten; i++)
		if (strncmp(o.listen[i], "unix:", 5) == 0)
			unlink(o.listen[i] + 5);
	if (d.tls)
		SSL_CTX_free(d.tls);
	log_info("stopped");
	return 0;
}
