/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seconds as the event loop wants them.  Shared by the broker and the
 * agent, which both keep timers from configured or peer-sent seconds.
 */
#pragma once

#include <sys/time.h>

/*
 * @seconds (>= 0; negative counts as 0) as a timeval for evtimer_add();
 * anything beyond a year is a year, so a peer's huge -timeout cannot
 * overflow time_t.
 */
struct timeval clock_tv(double seconds);
