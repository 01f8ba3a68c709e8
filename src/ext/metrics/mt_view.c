/*
 * mt_view.c - see mt.h: one scrape's numbers, taken on the metrics thread.
 * The counters are read without locks (relaxed loads of the workers'
 * blocks); only the open-session walk waits, for at most MT_WALK_MS, on
 * the workers' loops.
 */
#include <stdlib.h>
#include <time.h>

#include "ext/metrics/mt.h"

#define MT_WALK_MS 1000

static struct timespec started;

void mt_view_started(void)
{
	clock_gettime(CLOCK_MONOTONIC, &started);
}

struct mt_view *mt_view_take(size_t listed)
{
	struct mt_view *v = calloc(1, sizeof(*v));
	struct timespec now;

	if (!v)
		return NULL;
	stats_sum(&v->sum);
	v->n_workers = stats_workers();
	if (v->n_workers > MT_WORKERS_MAX)
		v->n_workers = MT_WORKERS_MAX;
	for (unsigned i = 0; i < v->n_workers; i++)
		stats_worker_load(i, &v->w_sessions[i], &v->w_loops[i]);
	v->open_ok = stats_sessions(&v->open, listed, MT_WALK_MS) == 0;
	v->n_gauges = ext_gauges(v->gauges, MT_GAUGES_MAX);
	clock_gettime(CLOCK_MONOTONIC, &now);
	v->uptime = (double)(now.tv_sec - started.tv_sec) +
		    (double)(now.tv_nsec - started.tv_nsec) / 1e9;
	return v;
}

void mt_view_free(struct mt_view *v)
{
	if (v) {
		stats_sessions_free(&v->open);
		free(v);
	}
}
