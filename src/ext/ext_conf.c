/*
 * ext_conf.c - see ext_conf.h. Order matters where the core lists what
 * extensions add: the checks run, and command names are listed in
 * messages, in this order.
 */
#include "ext/ext_conf.h"

#include "ext/mcast/mc_conf.h"
#include "ext/tls/tls_conf.h"
#include "policy/conf_ext.h"

static const struct conf_ext *const ext_confs[] = {
	&tls_conf_ext,
	&mc_conf_ext,
};

int ext_conf_register(char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(ext_confs) / sizeof(ext_confs[0]); i++)
		if (conf_ext_register(ext_confs[i], err, errlen) < 0)
			return -1;
	return 0;
}
