/*
 * dq_ext.h - CMD X'F2' DNS QUERY, part of the resolve module (rs_ext.c
 * registers it).
 */
#ifndef STP_EXT_RESOLVE_DQ_EXT_H
#define STP_EXT_RESOLVE_DQ_EXT_H

struct session;
struct worker;

void dq_start(struct session *s);
/* Frees the worker thread's answer cache. */
void dq_worker_fini(struct worker *w);

#endif
