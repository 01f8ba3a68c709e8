/*
 * srv_harness.h - a worker without listeners or threads (worker_init_loop)
 * for unit tests of the server core: sessions get one end of a socketpair,
 * the test holds the other and turns the worker's loop itself.
 */
#ifndef STP_TEST_SRV_HARNESS_H
#define STP_TEST_SRV_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "server/server.h"

/* Parses text into a snapshot (a cmocka failure when it does not parse). */
struct snapshot *h_snapshot(const char *text);
/* A worker running snap (the worker takes its own reference). */
void h_worker(struct worker *w, struct snapshot *snap);
/* Closes what is still open on w and frees it. */
void h_worker_free(struct worker *w);

/* One pass of the loop without blocking. */
void h_turn(struct worker *w);
/* Turns the loop until done(arg) or `secs` have passed; done's value. */
bool h_spin(struct worker *w, double secs, bool (*done)(void *arg), void *arg);

/* A socketpair (AF_UNIX stream): sv[0] non-blocking for the server side,
 * sv[1] the test's, blocking with a 10 s receive timeout as a backstop. */
void h_pair(int sv[2]);
/* Writes all n bytes to fd. */
void h_write(int fd, const void *p, size_t n);
/* Reads from fd, turning w's loop meanwhile, until n bytes or EOF or 10 s:
 * the count read. */
size_t h_read(struct worker *w, int fd, uint8_t *buf, size_t n);
/* True when fd reaches EOF (nothing else arriving first) within 10 s. */
bool h_eof(struct worker *w, int fd);
/* Reads until EOF (turning the loop) or 10 s; bytes read, -1 on timeout. */
ssize_t h_read_to_eof(struct worker *w, int fd, uint8_t *buf, size_t cap);

#endif
