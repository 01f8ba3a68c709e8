/*
 * tp_drive.c - drives one TRANSPARENT relay engine (tp_engine_ops) from
 * stdin, for the netns tests and the bench, until the X'04' module that
 * uses the engines in stpd is merged. Usage:
 *   tp_drive kernel
 *   tp_drive remote RELAY [CA CERT KEY]
 * Commands, one per line:     Answers:
 *   open ID PTCL SRC DST BND FIN IDLE_MS   opened ID REP BND | refused ID ERRNO
 *   counters ID                            counters ID PU BU PD BD
 *   close ID                               closed ID PU BU PD BD
 *   quit
 * and, when the engine ends a relay:       ended ID WHY PU BU PD BD
 * Addresses are ADDR:PORT or [V6]:PORT.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>

#include "common/log.h"
#include "common/sockaddr.h"
#include "ext/transparent/tp_conf.h"
#include "ext/transparent/tp_engine.h"

extern const struct tp_engine_ops tp_engine_kernel, tp_engine_remote;

#define SLOTS 64

static const struct tp_engine_ops *ops;
static struct tp_engine *engine;
static struct tp_relay *relays[SLOTS];
static unsigned ids[SLOTS];
static char line[1024];
static size_t linelen;

static void print_counters(const char *what, unsigned id, const struct tp_counters *k)
{
	printf("%s %u %llu %llu %llu %llu\n", what, id, (unsigned long long)k->pkts_up,
	       (unsigned long long)k->bytes_up, (unsigned long long)k->pkts_down,
	       (unsigned long long)k->bytes_down);
}

static void cb_opened(void *arg, uint8_t rep, const struct sockaddr_storage *bnd)
{
	size_t slot = (size_t)arg;
	char b[SA_STR_MAX] = "-";

	if (bnd)
		sa_str((const struct sockaddr *)bnd, b, sizeof(b));
	printf("opened %u %u %s\n", ids[slot], rep, b);
	if (rep != 0)
		relays[slot] = NULL;
}

static void cb_ended(void *arg, const char *why, const struct tp_counters *k)
{
	size_t slot = (size_t)arg;

	printf("ended %u %s %llu %llu %llu %llu\n", ids[slot], why, (unsigned long long)k->pkts_up,
	       (unsigned long long)k->bytes_up, (unsigned long long)k->pkts_down,
	       (unsigned long long)k->bytes_down);
	relays[slot] = NULL;
}

static const struct tp_engine_cb cb = { cb_opened, cb_ended };

static int slot_of(unsigned id)
{
	for (int i = 0; i < SLOTS; i++)
		if (relays[i] && ids[i] == id)
			return i;
	return -1;
}

static void do_open(char *args)
{
	unsigned id, ptcl, fin, idle;
	char src[128], dst[128], bnd[128];
	struct tp_assoc a;
	socklen_t len;
	int slot = 0;

	if (sscanf(args, "%u %u %127s %127s %127s %u %u", &id, &ptcl, src, dst, bnd, &fin, &idle) !=
	    7) {
		printf("error bad open\n");
		return;
	}
	memset(&a, 0, sizeof(a));
	a.ptcl = (uint8_t)ptcl;
	a.end_on_fin = fin != 0;
	a.idle_ms = idle;
	if (sa_parse(&a.src, &len, src, -1) != 0 || sa_parse(&a.dst, &len, dst, -1) != 0 ||
	    sa_parse(&a.bnd, &len, bnd, 0) != 0) {
		printf("error bad address\n");
		return;
	}
	while (slot < SLOTS && relays[slot])
		slot++;
	if (slot == SLOTS) {
		printf("error full\n");
		return;
	}
	ids[slot] = id;
	relays[slot] = ops->open(engine, &a, &cb, (void *)(size_t)slot);
	if (!relays[slot])
		printf("refused %u %s\n", id, strerrorname_np(errno));
}

static void command(char *l)
{
	unsigned id = 0;
	int slot;
	struct tp_counters k;

	if (strncmp(l, "open ", 5) == 0) {
		do_open(l + 5);
		return;
	}
	if (strcmp(l, "quit") == 0) {
		ev_break(EV_DEFAULT, EVBREAK_ALL);
		return;
	}
	sscanf(strchr(l, ' ') ? strchr(l, ' ') : "", "%u", &id);
	slot = slot_of(id);
	if (slot < 0) {
		printf("error no relay %u\n", id);
		return;
	}
	if (strncmp(l, "counters ", 9) == 0) {
		ops->counters(relays[slot], &k);
		print_counters("counters", id, &k);
	} else if (strncmp(l, "close ", 6) == 0) {
		ops->close(relays[slot], &k);
		relays[slot] = NULL;
		print_counters("closed", id, &k);
	} else {
		printf("error unknown command\n");
	}
}

static void stdin_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	ssize_t n = read(0, line + linelen, sizeof(line) - 1 - linelen);
	char *nl;

	if (n <= 0) {
		if (n < 0 && errno == EAGAIN)
			return;
		ev_break(loop, EVBREAK_ALL);
		return;
	}
	linelen += (size_t)n;
	line[linelen] = '\0';
	while ((nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		command(line);
		linelen -= (size_t)(nl + 1 - line);
		memmove(line, nl + 1, linelen + 1);
	}
	if (linelen == sizeof(line) - 1)
		linelen = 0;
}

int main(int argc, char **argv)
{
	struct tp_conf conf = { .end_on_fin = true, .idle_ms = 0 };
	char err[512];
	ev_io in;

	setvbuf(stdout, NULL, _IOLBF, 0);
	log_init("tp_drive", false, false, LOG_INFO);
	if (argc >= 2 && strcmp(argv[1], "kernel") == 0) {
		ops = &tp_engine_kernel;
		conf.engine = TP_ENGINE_KERNEL;
	} else if ((argc == 3 || argc == 6) && strcmp(argv[1], "remote") == 0) {
		ops = &tp_engine_remote;
		conf.engine = TP_ENGINE_REMOTE;
		conf.relay = argv[2];
		if (argc == 6) {
			conf.relay_ca = argv[3];
			conf.relay_cert = argv[4];
			conf.relay_key = argv[5];
		}
	} else {
		fprintf(stderr, "usage: tp_drive kernel | remote RELAY [CA CERT KEY]\n");
		return 2;
	}
	conf.engine_name = ops->name;
	engine = ops->create(EV_DEFAULT, &conf, err, sizeof(err));
	if (!engine) {
		printf("error %s\n", err);
		return 1;
	}
	printf("ready\n");
	fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
	ev_io_init(&in, stdin_cb, 0, EV_READ);
	ev_io_start(EV_DEFAULT, &in);
	ev_run(EV_DEFAULT, 0);
	ops->destroy(engine);
	return 0;
}
