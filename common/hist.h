/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fixed-bucket histogram of seconds, as Prometheus exposes them.  It
 * holds no lock and touches nothing but itself, so any thread may fill one
 * it owns (the ledger's writer keeps its commit times under its own mutex)
 * and a copy can be handed to whoever writes it out (metrics.h).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Finite bucket bounds a histogram may have (+Inf comes on top). */
#define HIST_MAX 24

/* Bucket layouts, in seconds. */
enum hist_scale {
	HIST_SCALE_SESSION, /* 1 ms .. 1 h: waits, sessions, tasks */
	HIST_SCALE_COMMIT,  /* 100 us .. 10 s: ledger transactions */
};

struct hist {
	const double *bounds; /* borrowed, static: ascending upper bounds */
	size_t nbounds;
	uint64_t buckets[HIST_MAX + 1]; /* per bucket, not cumulative;
					 * [nbounds] is +Inf */
	uint64_t count;
	double sum; /* of the observed values, seconds */
};

void hist_init(struct hist *h, enum hist_scale scale);
void hist_observe(struct hist *h, double v);
