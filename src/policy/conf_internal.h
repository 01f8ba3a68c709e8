/*
 * conf_internal.h - helpers shared by the parser, the embedded default and
 * the command-line overrides (internal to src/policy; unit tests use them).
 */
#ifndef STP_POLICY_CONF_INTERNAL_H
#define STP_POLICY_CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/conf.h"

/* ---- storage (conf.c) ---- */

/* A snapshot with every scalar at its default and no listeners or rules;
 * refs = 1. NULL when out of memory. */
struct stp_conf *conf_new(void);
/* Appends a zeroed listener / rule; NULL when out of memory. The arrays may
 * move: do not keep pointers across two calls. */
struct conf_listener *conf_listener_add(struct stp_conf *c);
struct rule *conf_rule_add(struct rule **rules, size_t *n, const char *file, int line,
			   enum rule_action action);
/* Fills whatever the file left out from the embedded default: the listener
 * 127.0.0.1:1080 "default", the loopback-only client rules and the
 * pass-everything request rule. 0, or -1 when out of memory. */
int conf_fill_defaults(struct stp_conf *c);
/* Copies a file name into a rule's file[] (keeps the tail if too long). */
void conf_rule_set_file(struct rule *r, const char *file);

/* ---- values (conf_value.c): pure, 0 on success, -1 on bad input ---- */

int cv_uint(const char *s, unsigned min, unsigned max, unsigned *out);
/* "80" or "8000-8999"; 1-65535, lo <= hi. */
int cv_port_range(const char *s, struct rule_ports *out);
/* "HH:MM-HH:MM", 00:00-23:59 each; from > to wraps past midnight. */
int cv_time_range(const char *s, uint16_t *from, uint16_t *to);
/* "mon", "mon-fri", "fri-mon" (wraps): ORs bits (0 = Sunday) into *mask. */
int cv_days(const char *s, uint8_t *mask);
/* "error" "warning" "notice" "info" "debug" -> LOG_*. */
int cv_log_level(const char *s, int *out);
const char *cv_log_level_name(int level);
/* "on"/"off". */
int cv_bool(const char *s, bool *out);
/* A command name, the core's or registered -> one rule_cmd_bits value. */
int cv_command(const char *s, uint32_t *bit);
/* Every command name, the core's then registered: "a, b, c". */
void cv_command_list(char *out, size_t cap);
/* True when s looks like an address rather than a name: it holds ':' or
 * '/', or only digits and dots (one digit at least). */
bool cv_looks_like_addr(const char *s);
/* A host name "host.example" or suffix ".example"; writes it lower-cased
 * without a trailing dot into out (cap RULE_STR_MAX). */
int cv_domain(const char *s, char *out, size_t cap);
/* A name for a listener or a group: [A-Za-z0-9._-], 1-63 characters. */
int cv_ident(const char *s);

/* ---- extensions (conf_ext.c) ---- */

/* Gives c every registered extension's settings at their defaults. 0, or
 * -1 when out of memory (conf_ext_settings_free cleans up). */
int conf_ext_settings_init(struct stp_conf *c);
void conf_ext_settings_free(struct stp_conf *c);
/* Frees a listener's or a rule's extension data. */
void conf_ext_slots_free(void **slots);
/* Registered command names: bit by name (0 or -1), name by bit (NULL when
 * none), the i-th (NULL past the end). */
int conf_ext_command_bit(const char *name, uint32_t *bit);
const char *conf_ext_command_name(uint32_t bit);
const char *conf_ext_command_at(size_t i);

#endif
