/*
 * ext_conf.h - the one list of the extensions' config parts compiled in
 * (ext_conf.c). Every program that parses stpd.conf calls
 * ext_conf_register() first: stpd (also for -t), the unit tests, the
 * config fuzz target. Links with the policy library alone.
 */
#ifndef STP_EXT_EXT_CONF_H
#define STP_EXT_EXT_CONF_H

#include <stddef.h>

/* Registers every extension's sections, keys and command names (again:
 * a no-op). 0, or -1 with a message in err. */
int ext_conf_register(char *err, size_t errlen);

/* Every extension's config, built into this program or not: for tests of
 * the config language, which is the same in every build. */
int ext_conf_register_all(char *err, size_t errlen);

/* What the parser cannot see: -1 with "FILE: ..." in err when c needs an
 * extension this build left out (auth method ssl without TLS). */
struct stp_conf;
int ext_conf_check(const struct stp_conf *c, char *err, size_t errlen);

#endif
