/*
 * featcache.c - feature discovery answers on disk (docs/client.md,
 * "Feature discovery"), so a short-lived program (`stp connect`, a
 * program under stpify) knows from its first connection what an earlier
 * process learned: whether the proxy pipelines, and which method it picks.
 *
 * One file per proxy host, port and TLS mode in the directory of the
 * auto-configuration cache ($XDG_CACHE_HOME/stp, else ~/.cache/stp):
 * a header line "stp-features 2 FETCHED OFF SUPPORTED WHO SUB LEN\n" then
 * LEN bytes, the document as the proxy sent it (it holds the methods in
 * the proxy's preference order and the "pipelining" flag). FETCHED is when
 * discovery was asked, OFF when a pipelined handshake last failed (0:
 * never). WHO SUB: for an X'86' proxy, whether sub-authentication ran in
 * the last step-by-step negotiation and with which credentials (struct
 * pipe_x86; 0 0: not known), which X'86' pipelining needs and discovery
 * does not say. Another process (or user) may have written the file: one that
 * is not a regular file of ours with mode 0600 or stricter, or that does
 * not parse exactly, is ignored. STP_FEATURES_CACHE=0 turns the disk copy
 * off (the process's own cache stays).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "client/featcache.h"
#include "common/log.h"

static bool fc_enabled(void)
{
	const char *v = getenv("STP_FEATURES_CACHE");
	return v == NULL || strcmp(v, "0") != 0;
}

static int fc_dir(char *out, size_t cap)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	int n;
	if (xdg && xdg[0] == '/')
		n = snprintf(out, cap, "%s/stp", xdg);
	else if (home && *home)
		n = snprintf(out, cap, "%s/.cache/stp", home);
	else
		return -1;
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* The file of p; -1 when the cache is off or has no directory. */
static int fc_path(const struct stp_proxy *p, char *out, size_t cap)
{
	char dir[STP_PATH_MAX], key[STP_NAME_MAX + 16];
	if (!fc_enabled() || fc_dir(dir, sizeof(dir)) < 0)
		return -1;
	snprintf(key, sizeof(key), "%s_%u_%d", p->host, p->port, (int)p->tls.mode);
	for (char *k = key; *k; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') ||
		      (*k >= '0' && *k <= '9') || *k == '.' || *k == '_' || *k == '-'))
			*k = '_';
	int n = snprintf(out, cap, "%s/features-%s.bin", dir, key);
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

bool client_featcache_load(const struct stp_proxy *p, struct stp_features *f, time_t *fetched,
			   time_t *off, struct pipe_x86 *x)
{
	char path[STP_PATH_MAX];
	uint8_t buf[FC_HDR_MAX + STP_FEATURES_DOC_MAX + 1];
	struct stat st;

	if (fc_path(p, path, sizeof(path)) < 0)
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return false;
	/* Ours alone: a file others could write may say anything. */
	bool mine = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
		    (st.st_mode & 077) == 0;
	ssize_t n = mine ? read(fd, buf, sizeof(buf)) : -1;
	close(fd);
	if (!mine) {
		log_debug("features: ignoring %s (not a mode 0600 file of this user)", path);
		return false;
	}
	if (n <= 0 || (size_t)n >= sizeof(buf)) {
		log_debug("features: ignoring %s (malformed)", path);
		return false;
	}
	struct featcache_hdr h;
	if (featcache_parse(buf, (size_t)n, &h) < 0)
		goto bad;
	if (h.supported) {
		if (stp_features_parse(f, h.doc, h.len) < 0)
			goto bad;
	} else {
		memset(f, 0, sizeof(*f));
	}
	*fetched = (time_t)h.fetched;
	*off = (time_t)h.off;
	if (x)
		*x = (struct pipe_x86){ .who = h.x86_who, .sub = h.x86_sub };
	return true;
bad:
	log_debug("features: ignoring %s (malformed)", path);
	return false;
}

/* ~/.cache (or $XDG_CACHE_HOME), then .../stp, both 0700 when made here. */
static void fc_mkdirs(const char *path)
{
	char dir[STP_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = '\0';
	char *parent = strrchr(dir, '/');
	if (parent) {
		*parent = '\0';
		mkdir(dir, 0700);
		*parent = '/';
	}
	mkdir(dir, 0700);
}

/* Written whole or not at all: a temporary file renamed over the old. */
void client_featcache_save(const struct stp_proxy *p, const struct stp_features *f, time_t fetched,
			   time_t off, const struct pipe_x86 *x)
{
	char path[STP_PATH_MAX], tmp[STP_PATH_MAX + 24], hdr[FC_HDR_MAX];
	if (fc_path(p, path, sizeof(path)) < 0)
		return;
	fc_mkdirs(path);
	size_t len = f->supported ? f->doc_len : 0;
	/* Only what featcache_parse takes back: the rest is "not known". */
	bool x86 = x && x->who <= 7 && (x->sub == 1 || x->sub == 4);
	int h = snprintf(hdr, sizeof(hdr), "stp-features 2 %" PRId64 " %" PRId64 " %d %u %u %zu\n",
			 (int64_t)fetched, (int64_t)off, f->supported ? 1 : 0, x86 ? x->who : 0u,
			 x86 ? x->sub : 0u, len);
	/* A name of its own (mode 0600): two threads or processes may save
	 * at once, and each rename is then whole. */
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return;
	bool ok = write(fd, hdr, (size_t)h) == h &&
		  (len == 0 || write(fd, f->doc, len) == (ssize_t)len);
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) < 0)
		unlink(tmp);
}

void client_featcache_off(const struct stp_proxy *p)
{
	struct stp_features f;
	struct pipe_x86 x;
	time_t fetched, off;
	/* Only a copy that exists is marked: without one, nobody pipelines. */
	if (client_featcache_load(p, &f, &fetched, &off, &x))
		client_featcache_save(p, &f, fetched, time(NULL), &x);
}

void client_featcache_x86(const struct stp_proxy *p, const struct pipe_x86 *x)
{
	struct stp_features f;
	struct pipe_x86 was;
	time_t fetched, off;
	/* A file that exists and says otherwise: the next process's first
	 * X'86' connection pipelines what this one saw. */
	if (client_featcache_load(p, &f, &fetched, &off, &was) &&
	    (was.who != x->who || was.sub != x->sub))
		client_featcache_save(p, &f, fetched, off, x);
}
