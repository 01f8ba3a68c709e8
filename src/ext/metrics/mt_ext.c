/*
 * mt_ext.c - the metrics extension as seen by stpd's registry: no command
 * or method, only the listener as a process-wide part. What it reports is
 * counted by the core (server/stats.h) and by modules' gauges.
 */
#include "ext/metrics/mt.h"

const struct stp_ext ext_metrics = {
	.name = "metrics",
	.server_start = mt_http_start,
	.server_stop = mt_http_stop,
};
