/*
 * lg_util.c - clocks, fd limits, /proc readers and the worker scaffolding
 * every loadgen mode shares.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "loadgen.h"

uint64_t lg_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lg_sleep_s(double secs)
{
	struct timespec ts = { .tv_sec = (time_t)secs,
			       .tv_nsec = (long)((secs - (double)(time_t)secs) * 1e9) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int lg_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Idle mode holds two fds per session in this process: take the hard max. */
void lg_raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int lg_parse_addr(struct sockaddr_in *sin, const char *s)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535)
		return -1;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sin->sin_addr) == 1 ? 0 : -1;
}

bool lg_is_loopback(const struct sockaddr_in *sin)
{
	return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
}

/* Reads the number after the first "KEY:" line of a /proc file (kB);
 * -1 when missing. */
static long proc_field_kb(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
			kb = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return kb;
}

static long proc_fds(pid_t pid)
{
	char path[64];
	struct dirent *de;
	long n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	if (!(d = opendir(path)))
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static pid_t proc_ppid(pid_t pid)
{
	char path[64], buf[512];
	const char *rp;
	int ppid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')))
		sscanf(rp + 1, " %*c %d", &ppid);
	fclose(f);
	return (pid_t)ppid;
}

/* Dante forks helper processes: a server's footprint is its whole tree. */
static bool proc_in_tree(pid_t pid, pid_t root)
{
	for (int depth = 0; depth < 16 && pid > 1; depth++) {
		if (pid == root)
			return true;
		pid = proc_ppid(pid);
	}
	return false;
}

int lg_proc_usage(pid_t root, struct lg_usage *u)
{
	struct dirent *de;
	DIR *d = opendir("/proc");

	memset(u, 0, sizeof(*u));
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid_t pid = (pid_t)atoi(de->d_name);
		if (!proc_in_tree(pid, root))
			continue;
		long r = proc_field_kb(pid, "status", "VmRSS");
		long p = proc_field_kb(pid, "smaps_rollup", "Pss");
		long f = proc_fds(pid);
		if (r < 0 || f < 0)
			continue;
		u->rss_kb += r;
		u->pss_kb += p < 0 ? r : p;
		u->fds += f;
		u->nprocs++;
	}
	closedir(d);
	return u->nprocs > 0 ? 0 : -1;
}

uint32_t lg_percentile(const uint32_t *sorted, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
	return sorted[i < n ? i : n - 1];
}

void lg_run_error(struct lg_run *run, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&run->lock);
	if (!run->first_error[0]) {
		va_start(ap, fmt);
		vsnprintf(run->first_error, sizeof(run->first_error), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&run->lock);
}

bool lg_wait_ready(struct lg_run *run, uint64_t want, double secs)
{
	uint64_t end = lg_now_ns() + (uint64_t)(secs * 1e9);
	while (lg_now_ns() < end) {
		uint64_t done = atomic_load(&run->ready) + atomic_load(&run->failed);
		if (done >= want)
			return atomic_load(&run->ready) >= want;
		lg_sleep_s(0.01);
	}
	return false;
}

int lg_workers_init(struct lg_run *run, struct lg_worker *w, size_t total, char *err,
		    size_t errlen)
{
	int n = run->o->threads;
	for (int i = 0; i < n; i++) {
		size_t share = total / (size_t)n + ((size_t)i < total % (size_t)n);
		memset(&w[i], 0, sizeof(w[i]));
		w[i].run = run;
		w[i].id = i;
		w[i].nconns = share;
		w[i].ep = epoll_create1(EPOLL_CLOEXEC);
		w[i].conns = calloc(share ? share : 1, sizeof(*w[i].conns));
		if (w[i].ep < 0 || !w[i].conns) {
			snprintf(err, errlen, "worker %d: %s", i, strerror(errno));
			return -1;
		}
		for (size_t k = 0; k < share; k++)
			w[i].conns[k].fd = -1;
	}
	return 0;
}

int lg_workers_start(struct lg_run *run, struct lg_worker *w, void *(*fn)(void *))
{
	for (int i = 0; i < run->o->threads; i++)
		if (pthread_create(&w[i].th, NULL, fn, &w[i]) != 0)
			return -1;
	return 0;
}

/* Joins the workers (the caller set STOP) and closes their connections;
 * w->lat stays for the caller to read and free. */
void lg_workers_finish(struct lg_run *run, struct lg_worker *w)
{
	for (int i = 0; i < run->o->threads; i++) {
		pthread_join(w[i].th, NULL);
		for (size_t k = 0; k < w[i].nconns; k++)
			lg_conn_close(&w[i].conns[k]);
		close(w[i].ep);
		free(w[i].conns);
	}
}

bool lg_worker_fail(struct lg_worker *w, struct lg_conn *c, const char *what)
{
	struct lg_run *run = w->run;
	int phase = atomic_load(&run->phase);

	if (phase == LG_STOP)
		return true; /* teardown noise is not a failure */
	if (phase == LG_SETUP)
		atomic_fetch_add(&run->failed, 1);
	else
		atomic_fetch_add(&run->errors, 1);
	lg_run_error(run, "%s: %s", what, c && c->why ? c->why : strerror(errno));
	return ++w->nerrors < LG_ERROR_CAP;
}

double lg_timeline(struct lg_run *run, atomic_uint_fast64_t *counter, uint64_t *delta)
{
	atomic_store(&run->phase, LG_WARMUP);
	lg_sleep_s(run->o->warmup);
	uint64_t c0 = atomic_load(counter), t0 = lg_now_ns();
	atomic_store(&run->phase, LG_MEASURE);
	lg_sleep_s(run->o->duration);
	uint64_t c1 = atomic_load(counter), t1 = lg_now_ns();
	atomic_store(&run->phase, LG_STOP);
	*delta = c1 - c0;
	return (double)(t1 - t0) / 1e9;
}

const struct sockaddr_in *lg_first_hop(const struct lg_run *run, int tidx)
{
	return run->o->direct ? &run->tg->addr[tidx] : &run->o->proxy;
}

int lg_worker_handshake(struct lg_worker *w, struct lg_conn *c, uint32_t events,
			bool count_ready)
{
	switch (lg_conn_step(c, w->ep, events)) {
	case LG_STEP_MORE:
		return 0;
	case LG_STEP_DONE:
		if (count_ready)
			atomic_fetch_add(&w->run->ready, 1);
		return 1;
	case LG_STEP_FAIL:
		break;
	}
	lg_worker_fail(w, c, "handshake");
	lg_conn_close(c);
	return -1;
}

static void worker_deadlines(struct lg_worker *w, uint64_t now, lg_fail_fn fail)
{
	for (size_t k = 0; k < w->nconns; k++) {
		struct lg_conn *c = &w->conns[k];
		if (c->fd < 0 || c->deadline == 0 || now < c->deadline)
			continue;
		c->deadline = 0;
		fail(w, c, c->hs == LG_HS_DONE ? "exchange timed out" : "handshake timed out");
	}
}

void lg_worker_loop(struct lg_worker *w, lg_event_fn fn, lg_fail_fn fail)
{
	struct epoll_event evs[256];
	uint64_t next_scan = lg_now_ns();

	while (atomic_load(&w->run->phase) != LG_STOP && w->nerrors < LG_ERROR_CAP) {
		int n = epoll_wait(w->ep, evs, 256, LG_TICK_MS);
		for (int i = 0; i < n; i++) {
			struct lg_conn *c = evs[i].data.ptr;
			if (c->fd >= 0)
				fn(w, c, evs[i].events);
		}
		uint64_t now = lg_now_ns();
		if (now >= next_scan) {
			worker_deadlines(w, now, fail);
			next_scan = now + 100000000ull;
		}
	}
}
