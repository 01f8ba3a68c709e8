/*
 * stpify.c - the launcher: `stpify [options] PROGRAM [ARGS...]` puts
 * libstpify.so in LD_PRELOAD and execs PROGRAM, whose sockets then go
 * through the SOCKS proxy. See docs/stpify.md.
 *
 * libstpify.so is looked for, in order: $STPIFY_LIB; next to this binary
 * (the build tree: src/shim/); STPIFY_RELLIB relative to this binary
 * (installed: ../lib/<multiarch>/); STPIFY_LIBDIR (the configured libdir).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stp/stp.h"

#ifndef STPIFY_RELLIB
#define STPIFY_RELLIB "../lib/libstpify.so"
#endif
#ifndef STPIFY_LIBDIR
#define STPIFY_LIBDIR "/usr/local/lib"
#endif

static void usage(FILE *f)
{
	fprintf(f, "usage: stpify [--proxy URL] [--config FILE] [-v] [--] PROGRAM [ARGS...]\n"
		   "  --proxy URL    socks5h://[user:pass@]host:port (default: $STP_PROXY,\n"
		   "                 else $ALL_PROXY)\n"
		   "  --config FILE  settings file (proxy, no_proxy, log, bind, proxy_loopback,\n"
		   "                 dns, timeout, fake_net, fake_net6)\n"
		   "  -v             log connections (info); -vv adds debug lines\n"
		   "  --version      print the version\n");
}

/* With only STP_PROXY (or ALL_PROXY) set: the proxy's served configuration
 * (CMD X'F4'; libstp caches it on disk and fetches it again once it is
 * stale), handed to libstpify.so in STPIFY_AUTOCONF. STP_AUTOCONF=0 turns
 * it off; a proxy without it leaves stpify as it was (docs/stpify.md). */
static void autoconfig(const struct stp_proxy *p, int verbose)
{
	const char *env = getenv("STP_AUTOCONF");
	enum stp_err err;
	size_t len;

	if (env != NULL && strcmp(env, "0") == 0)
		return;
	struct stp_autoconf *ac = stp_autoconf_get(p, 10000, &err);
	if (ac == NULL) {
		if (verbose > 0)
			fprintf(stderr, "stpify: autoconfig: %s\n", stp_strerror(err));
		return;
	}
	const char *text = stp_autoconf_text(ac, &len);
	char *copy = strndup(text, len);
	if (copy != NULL)
		setenv("STPIFY_AUTOCONF", copy, 1);
	free(copy);
	stp_autoconf_free(ac);
}

/* Where libstpify.so is, or NULL. */
static const char *find_lib(char *out, size_t cap)
{
	char self[PATH_MAX - 64];
	const char *env = getenv("STPIFY_LIB");
	ssize_t n;

	if (env != NULL && *env != '\0')
		return access(env, R_OK) == 0 ? env : NULL;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash != NULL)
			*slash = '\0';
		const char *rel[] = { "libstpify.so", STPIFY_RELLIB };
		for (size_t i = 0; i < 2; i++) {
			snprintf(out, cap, "%s/%s", self, rel[i]);
			char real[PATH_MAX];
			if (access(out, R_OK) == 0 && realpath(out, real) != NULL) {
				snprintf(out, cap, "%s", real);
				return out;
			}
		}
	}
	snprintf(out, cap, "%s/libstpify.so", STPIFY_LIBDIR);
	return access(out, R_OK) == 0 ? out : NULL;
}

static int set_preload(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char *v;

	if (old == NULL || *old == '\0')
		return setenv("LD_PRELOAD", lib, 1);
	if (asprintf(&v, "%s:%s", lib, old) < 0)
		return -1;
	int rc = setenv("LD_PRELOAD", v, 1);
	free(v);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "proxy", required_argument, NULL, 'p' },
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *proxy = NULL, *config = NULL;
	char lib[PATH_MAX], conf_abs[PATH_MAX];
	int verbose = 0, c;

	while ((c = getopt_long(argc, argv, "+p:c:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'p': proxy = optarg; break;
		case 'c': config = optarg; break;
		case 'v': verbose++; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("stpify %s\n", STP_VERSION); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 1;
	}
	if (proxy != NULL) {
		struct stp_proxy p;
		enum stp_err err;
		if (stp_proxy_parse(&p, proxy, &err) < 0) {
			fprintf(stderr, "stpify: %s ('%s')\n", stp_strerror(err), proxy);
			return 2;
		}
		setenv("STPIFY_PROXY", proxy, 1);
	}
	if (config != NULL) {
		if (realpath(config, conf_abs) == NULL || access(conf_abs, R_OK) != 0) {
			fprintf(stderr, "stpify: %s: %s\n", config, strerror(errno));
			return 2;
		}
		setenv("STPIFY_CONFIG", conf_abs, 1);
	}
	if (proxy == NULL && config == NULL) {
		struct stp_proxy p;
		enum stp_err err;
		if (stp_proxy_from_env(&p, &err) < 0) {
			fprintf(stderr, "stpify: %s\n", stp_strerror(err));
			return 2;
		}
		autoconfig(&p, verbose);
	}
	if (verbose > 0)
		setenv("STPIFY_LOG", verbose > 1 ? "debug" : "info", 1);
	if (find_lib(lib, sizeof(lib)) == NULL) {
		fprintf(stderr, "stpify: libstpify.so not found (set STPIFY_LIB)\n");
		return 2;
	}
	if (set_preload(lib) < 0) {
		fprintf(stderr, "stpify: LD_PRELOAD: %s\n", strerror(errno));
		return 2;
	}
	execvp(argv[optind], argv + optind);
	fprintf(stderr, "stpify: %s: %s\n", argv[optind], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
