/*
 * authset.h - what the pool needs of a backend set (internal to src/auth;
 * the public half is in auth.h).
 */
#ifndef STP_AUTH_AUTHSET_H
#define STP_AUTH_AUTHSET_H

#include "auth/auth.h"

size_t authset_chain_len(const struct authset *s);
enum auth_backend_kind authset_kind(const struct authset *s, size_t step);
/* Runs the chain's backend number job->step (blocking). True when it
 * accepted: job->ok and groups set, the result cached. Else job->why grows. */
bool authset_check_step(struct authset *s, struct auth_job *job);
/* From the loop thread at submit: computes job->key and, on a hit, fills
 * the groups and returns true. */
bool authset_cache_lookup(struct authset *s, struct auth_job *job);

/* authpool.c: the user's system groups into job (PAM users). */
void authpool_system_groups(struct auth_job *job);

#endif
