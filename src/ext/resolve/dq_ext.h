/*
 * dq_ext.h - CMD X'F2' DNS QUERY, part of the resolve module (rs_ext.c
 * registers it).
 */
#ifndef STP_EXT_RESOLVE_DQ_EXT_H
#define STP_EXT_RESOLVE_DQ_EXT_H

struct session;
struct worker;
struct feat_writer;

void dq_start(struct session *s);
/* Feature discovery entries for X'F2' (docs/protocol.md 5.6). */
void dq_describe(const struct session *s, struct feat_writer *w);
/* Frees the worker thread's answer cache. */
void dq_worker_fini(struct worker *w);

#endif
