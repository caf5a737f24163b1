/* SPDX-License-Identifier: Apache-2.0 */
/* Seconds as timevals (see clock.h). */
#include "config.h"

#include "clock.h"

#include <time.h>

#define CLOCK_MAX_S (365.0 * 24 * 3600)

/* See clock.h.  Pure; does not log. */
struct timeval
clock_tv(double seconds)
{
	struct timeval tv;

	if (!(seconds > 0)) /* also NaN */
		seconds = 0;
	if (seconds > CLOCK_MAX_S)
		seconds = CLOCK_MAX_S;
	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	if (tv.tv_usec >= 1000000)
		tv.tv_usec = 999999;
	return tv;
}
