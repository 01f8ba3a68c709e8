#pragma once

#include <stdbool.h>
#include <stdint.h>

enum tp_engine_kind { TP_ENGINE_USER, TP_ENGINE_KERNEL, TP_ENGINE_REMOTE };
struct tp_conf {
	enum tp_engine_kind engine; /* `engine user|kernel|remote`, default user */
	const char *engine_name;    /* "user", "kernel", "remote" */
	char *relay;                /* `relay unix:PATH` or `relay HOST:PORT` (TLS) for engine remote */
	char *relay_ca, *relay_cert, *relay_key; /* `relay-tls-ca/-cert/-key FILE` */
	bool end_on_fin;            /* `end-on-fin yes|no`, default yes */
	uint32_t idle_ms;           /* `idle SECONDS`, default 300 */
};
