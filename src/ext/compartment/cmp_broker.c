/*
 * cmp_broker.c - the privileged broker (docs/compartments.md): the one
 * process that may enter compartments after stpd drops its privileges.
 *
 * stpd forks it from server_start, as root, before the drop; it keeps
 * root (setns needs CAP_SYS_ADMIN) and does nothing but answer requests
 * (proto/broker.h) on one SOCK_SEQPACKET channel per worker: parse, check
 * against the configuration it holds itself (cmp_conf_allows), make the
 * socket in the namespace, pass it back with SCM_RIGHTS. Its policy comes
 * from the file, never from a worker: RELOAD only makes it read the file
 * again. It dies with stpd (PR_SET_PDEATHSIG) or when every channel is
 * closed.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/compartment/cmp.h"
#include "ext/compartment/cmp_conf.h"
#include "policy/conf.h"
#include "proto/broker.h"

#define BROKER_TIMEOUT_MS 2000
/* The main thread's requests may wait for the broker to start (a module
 * opening its certificate as a worker starts) or to re-read the file. */
#define BROKER_MAIN_TIMEOUT_MS 10000
#define CHAN_MAX 1025

static int cmp_chan[CHAN_MAX]; /* stpd's ends, by worker id; main thread last */
/* The main thread's channel is also used by privfile_open (any thread that
 * reads a file for a reload): one request at a time on it. */
static pthread_mutex_t main_chan_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned cmp_n_chan;
static pid_t cmp_pid;

/* ---- the broker's side ---- */

static int map_family(uint8_t f)
{
	return f == BROKER_FAMILY_INET ? AF_INET : AF_INET6;
}

static int map_type(uint8_t t)
{
	return t == BROKER_TYPE_STREAM ? SOCK_STREAM : SOCK_DGRAM;
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

/* Re-reads the configuration file into *c; false (and *c kept) when it
 * does not load. */
static bool reread(struct stp_conf **c)
{
	char e[4096] = "";
	struct stp_conf *nc = (*c)->path[0] ? conf_load((*c)->path, e, sizeof(e)) : NULL;
	if (nc && cmp_conf_check_netns(nc, e, sizeof(e)) < 0) {
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

/* True when c has a listen statement for ss in stpd's own namespace
 * (compartments' listeners are made in their namespace, not here). */
static bool listens_on(const struct stp_conf *c, const struct sockaddr_storage *ss)
{
	for (size_t i = 0; i < c->n_listeners; i++)
		if (sa_equal((const struct sockaddr *)&c->listeners[i].addr,
			     (const struct sockaddr *)ss) &&
		    strcmp(cmp_listener_name(&c->listeners[i]), CMP_HOST) == 0)
			return true;
	return false;
}

/* LISTEN: a TCP socket bound to an address a reload added (the workers
 * may not bind ports below 1024), with the options listener.c uses; stpd
 * makes it listen. Only addresses the configuration lists, re-read as for
 * OPEN; only on the main thread's channel. */
static void serve_listen(int fd, struct stp_conf **c, const struct broker_request *rq,
			 bool main_chan)
{
	struct sockaddr_storage ss;
	socklen_t len = listen_addr(rq, &ss);
	char where[SA_STR_MAX];
	int one = 1;

	sa_str((const struct sockaddr *)&ss, where, sizeof(where));
	if (!main_chan || (!listens_on(*c, &ss) && (!reread(c) || !listens_on(*c, &ss)))) {
		log_warnx("broker: refused to bind %s (%s)", where,
			  main_chan ? "not a listen address of the configuration" : "asked by a worker");
		send_reply(fd, BROKER_ST_REFUSED, 0, -1);
		return;
	}
	int s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
		if (ss.ss_family == AF_INET6)
			setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	}
	if (s < 0 || bind(s, (const struct sockaddr *)&ss, len) < 0) {
		int e = errno;
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

/* One request on fd under c (which *c may replace on RELOAD). -1 when
 * the channel has ended (EOF or error). */
static int serve_request(int fd, struct stp_conf **c, bool may_reload)
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
	if (rq.op == BROKER_OP_RELOAD) {
		bool ok = may_reload && reread(c);
		send_reply(fd, ok ? BROKER_ST_OK : BROKER_ST_FAILED, 0, -1);
		return 0;
	}
	if (rq.op == BROKER_OP_OPEN) {
		serve_open(fd, c, rq.path, may_reload);
		return 0;
	}
	if (rq.op == BROKER_OP_LISTEN) {
		serve_listen(fd, c, &rq, may_reload);
		return 0;
	}
	if (!cmp_conf_allows(*c, rq.in, rq.out)) {
		log_warnx("broker: refused a socket in compartment %s for a session from %s "
			  "(no rule allows it)", rq.out, rq.in);
		send_reply(fd, BROKER_ST_REFUSED, 0, -1);
		return 0;
	}
	const struct cmp_entry *e = cmp_conf_find(*c, rq.out);
	int type = map_type(rq.type) | SOCK_CLOEXEC;
	int s = e ? cmp_ns_socket(e->netns, map_family(rq.family), type, rq.proto)
		  : socket(map_family(rq.family), type, rq.proto); /* CMP_HOST: ours */
	if (s < 0) {
		log_warn("broker: socket in compartment %s", rq.out);
		send_reply(fd, BROKER_ST_FAILED, errno, -1);
		return 0;
	}
	send_reply(fd, BROKER_ST_OK, 0, s);
	close(s);
	return 0;
}

void cmp_broker_serve_one(int fd, const struct stp_conf *c)
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
	cmp_broker_harden(c); /* cmp_harden.c */
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
			/* Only the main thread's channel may ask for a reload. */
			if ((p[i].revents & POLLIN) && serve_request(p[i].fd, &c, i == n - 1) == 0)
				continue;
			{
				close(p[i].fd);
				p[i].fd = -1;
				open_n--;
			}
		}
	}
	_exit(0);
}

/* Closes every fd but 0-2 and keep[0..n): the broker must not hold stpd's
 * listeners, or client connections of a later fork. */
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

int cmp_broker_start(const struct stp_conf *c, unsigned n_workers, char *err, size_t errlen)
{
	int theirs[CHAN_MAX];
	unsigned n = n_workers + 1;

	if (n > CHAN_MAX) {
		snprintf(err, errlen, "compartments: too many workers for the broker");
		return -1;
	}
	for (unsigned i = 0; i < n; i++) {
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
			snprintf(err, errlen, "compartments: socketpair: %s", strerror(errno));
			return -1;
		}
		cmp_chan[i] = sv[0];
		theirs[i] = sv[1];
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "compartments: fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		close_others(theirs, n);
		broker_main(theirs, n, conf_ref((struct stp_conf *)c));
	}
	for (unsigned i = 0; i < n; i++)
		close(theirs[i]);
	cmp_n_chan = n;
	cmp_pid = pid;
	log_info("compartments: broker started (pid %d)", (int)pid);
	return 0;
}

void cmp_broker_stop(void)
{
	if (!cmp_pid)
		return;
	for (unsigned i = 0; i < cmp_n_chan; i++)
		if (cmp_chan[i] >= 0)
			close(cmp_chan[i]);
	waitpid(cmp_pid, NULL, 0); /* it exits when its channels close */
	cmp_pid = 0;
	cmp_n_chan = 0;
}

bool cmp_broker_running(void)
{
	return cmp_pid != 0;
}

/* ---- stpd's side ---- */

/* Sends a request and waits for its reply (and fd). Runs on the channel's
 * own thread only. */
static int ask(int fd, const uint8_t *q, size_t qlen, struct broker_reply *rep, int timeout_ms)
{
	uint8_t buf[BROKER_REPLY_LEN + 1];
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.space,
			      .msg_controllen = sizeof(cm.space) };
	struct pollfd p = { fd, POLLIN, 0 };
	struct socks_err err;
	size_t used;
	int got = -1;

	rep->status = 0xFF; /* none yet */
	rep->err = 0;
	if (send(fd, q, qlen, MSG_NOSIGNAL) != (ssize_t)qlen)
		return -1;
	int pr = poll(&p, 1, timeout_ms);
	if (pr <= 0) {
		errno = pr == 0 ? ETIMEDOUT : errno;
		return -1;
	}
	ssize_t n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
	if (n <= 0) {
		errno = n == 0 ? EPIPE : errno;
		return -1;
	}
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&got, CMSG_DATA(c), sizeof(int));
	if (broker_reply_parse(rep, buf, (size_t)n, &used, &err) != SOCKS_DONE) {
		if (got >= 0)
			close(got);
		errno = EPROTO;
		return -1;
	}
	if (rep->status != BROKER_ST_OK && got >= 0) {
		close(got);
		got = -1;
	}
	return got;
}

int cmp_broker_socket(unsigned chan, const char *in, const char *out, int domain, int type,
		      int protocol)
{
	struct broker_request rq = { .op = BROKER_OP_SOCKET };
	struct broker_reply rep;
	uint8_t q[BROKER_REQUEST_MAX];
	int base = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (chan >= cmp_n_chan) {
		errno = ENETUNREACH;
		return -1;
	}
	rq.family = domain == AF_INET ? BROKER_FAMILY_INET : BROKER_FAMILY_INET6;
	rq.type = base == SOCK_STREAM ? BROKER_TYPE_STREAM : BROKER_TYPE_DGRAM;
	rq.proto = (uint8_t)protocol;
	snprintf(rq.in, sizeof(rq.in), "%s", in);
	snprintf(rq.out, sizeof(rq.out), "%s", out);
	size_t qlen = broker_request_write(q, sizeof(q), &rq);
	if (qlen == 0) {
		errno = EINVAL;
		return -1;
	}
	if (cmp_chan[chan] < 0) {
		errno = ENETUNREACH;
		return -1;
	}
	int fd = ask(cmp_chan[chan], q, qlen, &rep, BROKER_TIMEOUT_MS);
	if (fd < 0 && rep.status == 0xFF) {
		/* No reply in time (or the broker is gone): a late reply would
		 * be taken for the next request's, with another compartment's
		 * socket. The channel is dropped; this worker gets no more
		 * sockets from the broker. */
		int e = errno;
		log_warnx("compartments: no answer from the broker on channel %u (%s); "
			  "channel closed", chan, strerror(e));
		close(cmp_chan[chan]);
		cmp_chan[chan] = -1;
		errno = e;
		return -1;
	}
	if (fd < 0 && rep.status == BROKER_ST_REFUSED)
		errno = EACCES;
	else if (fd < 0 && rep.status == BROKER_ST_FAILED)
		errno = rep.err ? rep.err : EIO;
	if (fd >= 0 && (type & SOCK_NONBLOCK))
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int ask_locked_main(const uint8_t *q, size_t qlen, struct broker_reply *rep);

void cmp_broker_reload(void)
{
	struct broker_request rq = { .op = BROKER_OP_RELOAD };
	struct broker_reply rep = { .status = 0xFF };
	uint8_t q[4];
	size_t qlen = broker_request_write(q, sizeof(q), &rq);
	if (!cmp_n_chan || cmp_chan[cmp_n_chan - 1] < 0)
		return;
	pthread_mutex_lock(&main_chan_lock);
	(void)ask_locked_main(q, qlen, &rep);
	pthread_mutex_unlock(&main_chan_lock);
	if (rep.status != BROKER_ST_OK)
		log_warnx("compartments: the broker did not take the new configuration; it "
			  "keeps allowing what the old one did");
}

/* ask() on the main thread's channel, main_chan_lock held. Without a reply
 * in time the channel is closed for good, as a worker's is: a late reply
 * would be taken for the next request's (a file for a socket). */
static int ask_locked_main(const uint8_t *q, size_t qlen, struct broker_reply *rep)
{
	int *ch = &cmp_chan[cmp_n_chan - 1];
	if (*ch < 0) {
		errno = EPIPE;
		return -1;
	}
	int fd = ask(*ch, q, qlen, rep, BROKER_MAIN_TIMEOUT_MS);
	if (fd < 0 && rep->status == 0xFF) {
		log_warnx("broker: no answer on the main thread's channel (%s); channel closed, "
			  "reloads read files as stpd's user from now on", strerror(errno));
		close(*ch);
		*ch = -1;
	}
	return fd;
}

/* rq over the main thread's channel: the fd the broker passed, or -1 with
 * errno (EACCES when refused), what logged as `what`. */
static int ask_main(const struct broker_request *rq, const char *what)
{
	struct broker_reply rep = { .status = 0xFF };
	uint8_t q[BROKER_REQUEST_MAX];
	size_t qlen;

	if (!cmp_n_chan || (qlen = broker_request_write(q, sizeof(q), rq)) == 0) {
		errno = EACCES;
		return -1;
	}
	pthread_mutex_lock(&main_chan_lock);
	int fd = ask_locked_main(q, qlen, &rep);
	pthread_mutex_unlock(&main_chan_lock);
	if (fd >= 0)
		return fd;
	errno = rep.status == BROKER_ST_FAILED && rep.err ? rep.err : EACCES;
	log_warnx("broker: did not %s for stpd (%s)", what,
		  rep.status == BROKER_ST_REFUSED ? "not in its configuration" : strerror(errno));
	return -1;
}

int cmp_broker_open(const char *path)
{
	struct broker_request rq = { .op = BROKER_OP_OPEN };
	char what[BROKER_PATH_MAX + 16];

	snprintf(rq.path, sizeof(rq.path), "%s", path);
	snprintf(what, sizeof(what), "open %s", path);
	return ask_main(&rq, what);
}

int cmp_broker_bind(const struct sockaddr *addr, socklen_t len)
{
	struct broker_request rq = { .op = BROKER_OP_LISTEN };
	char what[SA_STR_MAX + 8] = "bind ";

	if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
		rq.family = BROKER_FAMILY_INET;
		rq.port = ntohs(a->sin_port);
		memcpy(rq.addr, &a->sin_addr, 4);
	} else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
		rq.family = BROKER_FAMILY_INET6;
		rq.port = ntohs(a->sin6_port);
		memcpy(rq.addr, &a->sin6_addr, 16);
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	sa_str(addr, what + 5, sizeof(what) - 5);
	return ask_main(&rq, what);
}
