/*
 * tp_engines.c - the relay engines this stpd has, by the name `engine`
 * takes in the `transparent { }` section (tp_engine.h).
 */
#include <string.h>

#include "ext/transparent/tp_engine.h"

extern const struct tp_engine_ops tp_engine_user;   /* tp_user.c */
extern const struct tp_engine_ops tp_engine_kernel; /* tp_nft.c */
extern const struct tp_engine_ops tp_engine_remote; /* tp_remote.c */

static const struct tp_engine_ops *const engines[] = {
	&tp_engine_user,
	&tp_engine_kernel,
	&tp_engine_remote,
};

const struct tp_engine_ops *tp_engine_find(const char *name)
{
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++)
		if (strcmp(engines[i]->name, name) == 0)
			return engines[i];
	return NULL;
}
