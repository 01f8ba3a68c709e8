/*
 * broker_chan.h - a worker's channel to the broker's serving side
 * (broker_serve_one on a thread of the test) over a socketpair, and the
 * requests the unit tests send on it (test_broker.c, test_cmp.c).
 */
#ifndef STP_TESTS_BROKER_CHAN_H
#define STP_TESTS_BROKER_CHAN_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct stp_conf;

struct broker_chan {
	int fd;   /* the worker's end */
	int peer; /* the broker's end */
	pthread_t t;
	const struct stp_conf *c;
};

void broker_chan_open(struct broker_chan *ch, const struct stp_conf *c);
/* Closes the worker's end, which ends the broker's side, and joins it. */
void broker_chan_close(struct broker_chan *ch);
/* Sends q; the reply's status, *got the fd it passed or -1. */
int broker_chan_ask(int fd, const void *q, size_t n, int *got);
/* A SOCKET request (INET, type) for a session from in, made in out. */
int broker_chan_ask_socket(int fd, const char *in, const char *out, uint8_t type, int *got);

#endif
