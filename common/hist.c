/* SPDX-License-Identifier: Apache-2.0 */
/* Fixed-bucket histograms of seconds (hist.h). */
#include "config.h"

#include "hist.h"

#include <math.h>
#include <string.h>

static const double session_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
static const double commit_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* Reset @h to empty histogram with the bucket layout @scale. */
void
hist_init(struct hist *h, enum hist_scale scale)
{
	memset(h, 0, sizeof(*h));
	if (scale == HIST_SCALE_COMMIT) {
		h->bounds = commit_bounds;
		h->nbounds = sizeof(commit_bounds) / sizeof(commit_bounds[0]);
	} else {
		h->bounds = session_bounds;
		h->nbounds = sizeof(session_bounds) / sizeof(session_bounds[0]);
	}
}

/*
 * Count @v (seconds) in @h: in the first bucket whose bound is >= @v
 * (Prometheus "le"), else in +Inf.  A negative value (the wall clock
 * stepped back) counts as 0; NaN is ignored.  Touches only @h, so any
 * thread may call it on a histogram it owns or holds the lock of.
 */
void
hist_observe(struct hist *h, double v)
{
	size_t i;

	if (isnan(v))
		return;
	if (v < 0)
		v = 0;
	for (i = 0; i < h->nbounds && v > h->bounds[i]; i++)
		;
	h->buckets[i]++;
	h->count++;
	h->sum += v;
}
