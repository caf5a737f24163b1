/* SPDX-License-Identifier: Apache-2.0 */
/* Names of the outcome classes, as stored in the ledger. */
#include "config.h"

#include <string.h>

#include <npufarm/outcome.h>

static const char *const outcome_names[NPUFARM_OUTCOME_MAX] = {
    [NPUFARM_OUTCOME_OK] = "ok",
    [NPUFARM_OUTCOME_TIMEOUT] = "timeout",
    [NPUFARM_OUTCOME_EXCEPTION] = "exception",
    [NPUFARM_OUTCOME_CRASH] = "crash",
    [NPUFARM_OUTCOME_LOST] = "lost",
    [NPUFARM_OUTCOME_CANCELLED] = "cancelled",
    [NPUFARM_OUTCOME_EXPIRED] = "expired",
    [NPUFARM_OUTCOME_REJECTED] = "rejected",
    [NPUFARM_OUTCOME_WRONG] = "wrong",
};

/* See <npufarm/outcome.h>. */
const char *
npufarm_outcome_name(enum npufarm_outcome o)
{
	if ((unsigned)o >= NPUFARM_OUTCOME_MAX)
		return NULL;
	return outcome_names[o];
}

/* See <npufarm/outcome.h>. */
int
npufarm_outcome_from_name(const char *name)
{
	int i;

	for (i = 0; i < NPUFARM_OUTCOME_MAX; i++)
		if (strcmp(outcome_names[i], name) == 0)
			return i;
	return -1;
}
