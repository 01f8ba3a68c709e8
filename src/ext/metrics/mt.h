/*
 * mt.h - the metrics extension's parts (docs/operations.md):
 *   mt_conf.c   the metrics { } section (config only)
 *   mt_view.c   one scrape: sums the workers' counters (server/stats.h),
 *               asks the workers for their open sessions, the modules for
 *               their gauges
 *   mt_prom.c   the view as Prometheus text (/metrics)
 *   mt_page.c   the view as the status page (/, HTML without external
 *               assets) and as text (/status.txt, what `stp status` prints)
 *   mt_http.c   the listener: libmicrohttpd on its own thread, `allow`
 *               checked per connection against the current snapshot
 */
#ifndef STP_EXT_METRICS_MT_H
#define STP_EXT_METRICS_MT_H

#include <stdio.h>

#include "server/ext.h"
#include "server/stats.h"

#define MT_GAUGES_MAX 32
#define MT_WORKERS_MAX 1024

struct mt_view {
	struct stats sum;
	unsigned n_workers;
	uint64_t w_sessions[MT_WORKERS_MAX], w_loops[MT_WORKERS_MAX];
	struct stats_sessions open; /* open.list: the first `listed` sessions */
	bool open_ok;               /* the workers were asked */
	struct ext_gauge gauges[MT_GAUGES_MAX];
	size_t n_gauges;
	double uptime;              /* seconds since the extension started */
};

/* Fills v (heap: it is large); list at most `listed` open sessions. NULL
 * when out of memory. Free with mt_view_free. */
struct mt_view *mt_view_take(size_t listed);
void mt_view_free(struct mt_view *v);
void mt_view_started(void); /* the uptime's origin */

void mt_prom_write(FILE *f, const struct mt_view *v);
void mt_page_html(FILE *f, const struct mt_view *v);
void mt_page_text(FILE *f, const struct mt_view *v);

int mt_http_start(const struct stp_conf *c, char *err, size_t errlen);
void mt_http_stop(void);

#endif
