/*
 * broker.c - the privileged broker's process and its serving side
 * (broker.h). It does nothing but answer requests (proto/broker.h): parse,
 * check against the configuration it holds itself, act, pass the result
 * back with SCM_RIGHTS. Its policy comes from the file, never from stpd:
 * RELOAD only makes it read the file again. It dies with stpd
 * (PR_SET_PDEATHSIG) or when every channel is closed.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/log.h"
#include "common/privfile.h"
#include "common/sockaddr.h"
#include "ext/ext_conf.h"
#include "policy/conf.h"
#include "proto/broker.h"
#include "server/broker.h"
#include "server/ext.h"

#define CHAN_MAX 1025

static pid_t broker_pid;

const struct broker_hook *broker_hook_get(void)
{
	size_t n;
	const struct stp_ext *const *all = ext_all(&n);
	for (size_t i = 0; i < n; i++)
		if (all[i]->broker)
			return all[i]->broker;
	return NULL;
}

static void send_reply(int fd, uint8_t status, int err, int sock)
{
	uint8_t buf[BROKER_REPLY_LEN];
	struct broker_reply rep = { status, (uint16_t)err };
	struct iovec iov = { buf, broker_reply_write(buf, sizeof(buf), &rep) };
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (sock >= 0) {
		memset(&cm, 0, sizeof(cm));
		msg.msg_control = cm.space;
		msg.msg_controllen = sizeof(cm.space);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &sock, sizeof(int));
	}
	(void)sendmsg(fd, &msg, MSG_NOSIGNAL);
}

/* Re-reads the configuration file into *c, with the modules' checks of
 * stpd's own reload (ext_conf_check: e.g. the compartments' namespaces
 * are there); false (and *c kept) when it does not load. */
static bool reread(struct stp_conf **c)
{
	char e[4096] = "";
	struct stp_conf *nc = (*c)->path[0] ? conf_load((*c)->path, e, sizeof(e)) : NULL;
	if (nc && ext_conf_check(nc, e, sizeof(e)) < 0) {
		conf_unref(nc);
		nc = NULL;
	}
	if (!nc) {
		log_warnx("broker: reload refused, keeping the running policy%s%s", e[0] ? ": " : "",
			  e);
		return false;
	}
	conf_unref(*c);
	*c = nc;
	log_info("broker: policy reloaded from %s", nc->path);
	return true;
}

/* OPEN: a file stpd reads on reload, opened read-only and passed back,
 * only when the configuration names it (conf_names_file) and it is a
 * regular file. stpd asks while it reloads, before it sends RELOAD: a path
 * the broker's copy does not name makes it read the file itself first (a
 * worker can make it read the administrator's file sooner, never make it
 * open what that file does not name). Only on the main thread's channel. */
static void serve_open(int fd, struct stp_conf **c, const char *path, bool main_chan)
{
	struct stat st;
	if (!main_chan || (!conf_names_file(*c, path) && (!reread(c) || !conf_names_file(*c, path)))) {
		log_warnx("broker: refused to open %s (%s)", path,
			  main_chan ? "not named in the configuration" : "asked by a worker");
		send_reply(fd, BROKER_ST_REFUSED, 0, -1);
		return;
	}
	int f = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (f >= 0 && (fstat(f, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(f);
		f = -1;
		errno = EINVAL;
	}
	if (f < 0) {
		log_warn("broker: open %s", path);
		send_reply(fd, BROKER_ST_FAILED, errno, -1);
		return;
	}
	/* stdio reads it blocking. */
	fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK);
	log_info("broker: opened %s for a reload", path);
	send_reply(fd, BROKER_ST_OK, 0, f);
	close(f);
}

/* rq's address as a sockaddr. */
static socklen_t listen_addr(const struct broker_request *rq, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (rq->family == BROKER_FAMILY_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(rq->port);
		memcpy(&a->sin_addr, rq->addr, 4);
		return sizeof(*a);
	}
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
	a->sin6_family = AF_INET6;
	a->sin6_port = htons(rq->port);
	memcpy(&a->sin6_addr, rq->addr, 16);
	return sizeof(*a);
}

/* True when c has a listen statement for ss in place ("" = stpd's own
 * namespace; else the module's key for where the listener is, a
 * compartment's name). */
static bool listens_on(const struct stp_conf *c, const struct sockaddr_storage *ss,
		       const char *place)
{
	for (size_t i = 0; i < c->n_listeners; i++) {
		const char *p = ext_listener_place(&c->listeners[i]);
		if (sa_equal((const struct sockaddr *)&c->listeners[i].addr,
			     (const struct sockaddr *)ss) &&
		    strcmp(p ? p : "", place) == 0)
			return true;
	}
	return false;
}

/* An unbound TCP socket in place: ours, or the module's (a namespace). */
static int listen_socket_in(const struct stp_conf *c, const char *place, int domain)
{
	const struct broker_hook *h = broker_hook_get();
	if (!place[0])
		return socket(domain, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!h || !h->listen_socket) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	return h->listen_socket(c, place, domain);
}

/* LISTEN: a TCP socket bound to an address a reload added (the workers
 * may not bind ports below 1024), in stpd's namespace or a compartment's,
 * with the options listener.c uses; the worker makes it listen. Only
 * addresses the broker's copy of the configuration lists in that place:
 * the workers ask after stpd's RELOAD made the broker read the new file,
 * and a worker never makes it read the file again. Any channel may ask:
 * every worker opens its own socket of a listener. */
static void serve_listen(int fd, const struct stp_conf *c, const struct broker_request *rq)
{
	struct sockaddr_storage ss;
	socklen_t len = listen_addr(rq, &ss);
	char where[SA_STR_MAX + BROKER_NAME_MAX + 20];
	int one = 1;

	sa_str((const struct sockaddr *)&ss, where, SA_STR_MAX);
	if (rq->out[0])
		snprintf(where + strlen(where), sizeof(where) - strlen(where), " in compartment %s",
			 rq->out);
	if (!listens_on(c, &ss, rq->out)) {
		log_warnx("broker: refused to bind %s (not a listen address of the configuration)",
			  where);
		send_reply(fd, BROKER_ST_REFUSED, 0, -1);
		return;
	}
	int s = listen_socket_in(c, rq->out, ss.ss_family);
	if (s >= 0) {
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (ss.ss_family == AF_INET6)
			setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (s < 0 || bind(s, (const struct sockaddr *)&ss, len) < 0) {
		int e = errno == EACCES ? EPERM : errno; /* EACCES means refused */
		log_warn("broker: bind %s", where);
		if (s >= 0)
			close(s);
		send_reply(fd, BROKER_ST_FAILED, e, -1);
		return;
	}
	log_info("broker: bound %s for a reload", where);
	send_reply(fd, BROKER_ST_OK, 0, s);
	close(s);
}

/* SOCKET: the module's (broker_hook.socket); refused without one. */
static void serve_socket(int fd, const struct stp_conf *c, const struct broker_request *rq)
{
	const struct broker_hook *h = broker_hook_get();
	if (!h || !h->socket) {
		log_warnx("broker: refused a socket for %s -> %s (no module makes them)", rq->in,
			  rq->out);
		send_reply(fd, BROKER_ST_REFUSED, 0, -1);
		return;
	}
	errno = 0;
	int s = h->socket(c, rq);
	if (s < 0) {
		send_reply(fd, errno == EACCES ? BROKER_ST_REFUSED : BROKER_ST_FAILED,
			   errno == EACCES ? 0 : errno, -1);
		return;
	}
	send_reply(fd, BROKER_ST_OK, 0, s);
	close(s);
}

/* One request on fd under c (which *c may replace on RELOAD and OPEN).
 * -1 when the channel has ended (EOF or error). */
static int serve_request(int fd, struct stp_conf **c, bool main_chan)
{
	uint8_t buf[BROKER_REQUEST_MAX + 1];
	struct broker_request rq;
	struct socks_err err;
	size_t used = 0;
	ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return -1;
	if (n < 0)
		return 0;
	/* One message is one request: MORE (cut short) is as bad as BAD. */
	if (broker_request_parse(&rq, buf, (size_t)n, &used, &err) != SOCKS_DONE ||
	    used != (size_t)n) {
		log_warnx("broker: bad request (%zd bytes) refused", n);
		send_reply(fd, BROKER_ST_BAD, 0, -1);
		return 0;
	}
	switch (rq.op) {
	case BROKER_OP_RELOAD:
		/* Only the main thread's channel may ask for a reload. */
		send_reply(fd, main_chan && reread(c) ? BROKER_ST_OK : BROKER_ST_FAILED, 0, -1);
		break;
	case BROKER_OP_OPEN:
		serve_open(fd, c, rq.path, main_chan);
		break;
	case BROKER_OP_LISTEN:
		serve_listen(fd, *c, &rq);
		break;
	default:
		serve_socket(fd, *c, &rq);
	}
	return 0;
}

void broker_serve_one(int fd, const struct stp_conf *c)
{
	struct stp_conf *cur = conf_ref((struct stp_conf *)c);
	struct pollfd p = { fd, POLLIN, 0 };
	while (poll(&p, 1, -1) >= 0 || errno == EINTR) {
		if (p.revents & POLLIN) {
			if (serve_request(fd, &cur, false) < 0)
				break;
		} else if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
			break;
		}
	}
	conf_unref(cur);
}

static void broker_main(int *fds, unsigned n, struct stp_conf *c)
{
	struct pollfd p[CHAN_MAX];
	unsigned open_n = n;
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGHUP, SIG_IGN); /* reloads come over the main thread's channel */
	signal(SIGINT, SIG_IGN); /* a terminal's ^C reaches stpd, which ends us */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	prctl(PR_SET_NAME, "stpd-broker");
	broker_harden(c); /* broker_harden.c */
	for (unsigned i = 0; i < n; i++)
		p[i] = (struct pollfd){ fds[i], POLLIN, 0 };
	log_info("broker: serving %u channels", n);
	while (open_n > 0) {
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (unsigned i = 0; i < n; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			if ((p[i].revents & POLLIN) && serve_request(p[i].fd, &c, i == n - 1) == 0)
				continue;
			close(p[i].fd);
			p[i].fd = -1;
			open_n--;
		}
	}
	_exit(0);
}

/* Closes every fd but 0-2 and keep[0..n): the broker holds nothing of
 * stpd's but its channels. */
static void close_others(const int *keep, unsigned n)
{
	int max = (int)sysconf(_SC_OPEN_MAX);
	for (int fd = 3; fd < max && fd < 65536; fd++) {
		bool k = false;
		for (unsigned i = 0; i < n && !k; i++)
			k = keep[i] == fd;
		if (!k)
			close(fd);
	}
}

/* Whether c needs a broker: stpd drops from root to `user` (the broker
 * then opens root-only files and binds low ports for reloads), or a
 * module's sockets come from it. */
static bool needed(const struct stp_conf *c)
{
	const struct broker_hook *h = broker_hook_get();
	return (c->run_as_user[0] && geteuid() == 0) || (h && h->wanted && h->wanted(c));
}

/* Threads of this process: the fork below must be the only one's. */
static unsigned threads_now(void)
{
	DIR *d = opendir("/proc/self/task");
	unsigned n = 0;
	if (!d)
		return 1;
	for (struct dirent *e; (e = readdir(d));)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

int broker_start(const struct stp_conf *c, unsigned n_workers, char *err, size_t errlen)
{
	int ours[CHAN_MAX], theirs[CHAN_MAX];
	unsigned n = n_workers + 1;

	if (!needed(c))
		return 0;
	if (n > CHAN_MAX) {
		snprintf(err, errlen, "broker: too many workers (%u)", n_workers);
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			snprintf(err, errlen, "broker: socketpair: %s", strerror(errno));
			return -1;
		}
		ours[i] = sv[0];
		theirs[i] = sv[1];
	}
	/* A thread alive here (a module that started one while the file was
	 * read) may hold a lock the child then waits on for ever: ASan's
	 * allocator's did, in the broker's first malloc. The tests fail on
	 * this line. */
	unsigned t = threads_now();
	if (t > 1)
		log_warnx("broker: forked while other threads ran (%u): one started before the broker", t - 1);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "broker: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close_others(theirs, n);
		broker_main(theirs, n, conf_ref((struct stp_conf *)c));
	}
	for (unsigned i = 0; i < n; i++)
		close(theirs[i]);
	broker_ask_init(ours, n);
	broker_pid = pid;
	privfile_set_helper(broker_open);
	log_info("broker started (pid %d)", (int)pid);
	return 0;
}

void broker_stop(void)
{
	if (!broker_pid)
		return;
	privfile_set_helper(NULL);
	broker_ask_fini();
	waitpid(broker_pid, NULL, 0); /* it exits when its channels close */
	broker_pid = 0;
}

bool broker_running(void)
{
	return broker_pid != 0;
}
