/*
 * ext_registry.c - the static list of modules compiled into stpd.
 * Order matters for methods: earlier modules' methods are preferred.
 * ext_config.h (generated from the build options ext_tls, ext_mcast,
 * ext_resolve) says
 * which modules are built: a disabled one is not named here, so its library
 * need not be linked.
 */
#include <string.h>

#include "server/ext.h"
#include "ext/ext_config.h"

static const struct stp_ext *const registry[] = {
#if STP_EXT_TLS
	&ext_tls, /* first: X'86' is preferred over weaker methods the client also offers */
#endif
	&ext_core,
#if STP_EXT_MCAST
	&ext_mcast,
#endif
#if STP_EXT_RESOLVE
	&ext_resolve,
#endif
#if STP_EXT_BIND
	&ext_bind,
#endif
};

const struct stp_ext *const *ext_all(size_t *n)
{
	*n = sizeof(registry) / sizeof(registry[0]);
	return registry;
}

const struct stp_command *ext_find_command(uint8_t code)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_commands; j++)
			if (registry[i]->commands[j].code == code)
				return &registry[i]->commands[j];
	return NULL;
}

const struct stp_method *ext_choose_method(const struct stp_conf *c, const uint8_t *offered,
					   size_t n_offered)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_methods; j++) {
			const struct stp_method *m = &registry[i]->methods[j];
			if (m->enabled && !m->enabled(c))
				continue;
			if (memchr(offered, m->code, n_offered))
				return m;
		}
	return NULL;
}

const struct stp_method *ext_find_method(uint8_t code)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_methods; j++)
			if (registry[i]->methods[j].code == code)
				return &registry[i]->methods[j];
	return NULL;
}

bool ext_method_tls(uint8_t code)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		for (size_t j = 0; j < registry[i]->n_methods; j++)
			if (registry[i]->methods[j].code == code)
				return registry[i]->methods_tls;
	return false;
}

int ext_session_open(struct session *s)
{
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i]->session_open && registry[i]->session_open(s) < 0)
			return -1;
	return 0;
}
