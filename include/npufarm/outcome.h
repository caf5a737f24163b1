/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The outcome taxonomy: one classification of how a lease, a session or a
 * task ended, used by the agent, the broker, the ledger and the CLI.
 * The names are stored verbatim in the ledger; never renumber or rename.
 */
#ifndef NPUFARM_OUTCOME_H
#define NPUFARM_OUTCOME_H

/** How a lease, session or task ended. */
enum npufarm_outcome {
	NPUFARM_OUTCOME_OK = 0,    /**< finished normally */
	NPUFARM_OUTCOME_TIMEOUT,   /**< deadline passed, board reclaimed */
	NPUFARM_OUTCOME_EXCEPTION, /**< the program reported an error */
	NPUFARM_OUTCOME_CRASH,     /**< the child died abnormally */
	NPUFARM_OUTCOME_LOST,      /**< agent or connection vanished mid-run */
	NPUFARM_OUTCOME_CANCELLED, /**< withdrawn by its owner before it ended
				    */
	NPUFARM_OUTCOME_EXPIRED,   /**< queued past its queue timeout; never ran
				    */
	NPUFARM_OUTCOME_REJECTED,  /**< invalid input; never ran */
	NPUFARM_OUTCOME_WRONG,     /**< ran, but its output disagrees with the
				    * task's reference (AutoTVM's
				    * WRONG_ANSWER) */
	NPUFARM_OUTCOME_MAX,
};

/**
 * The ledger name of an outcome.
 * @param o an outcome below NPUFARM_OUTCOME_MAX
 * @return a static string such as "timeout", or NULL when @p o is invalid
 */
const char *npufarm_outcome_name(enum npufarm_outcome o);

/**
 * Parse a ledger name back into an outcome.
 * @param name a NUL-terminated name such as "crash"
 * @return the outcome, or -1 when @p name names none
 */
int npufarm_outcome_from_name(const char *name);

#endif /* NPUFARM_OUTCOME_H */
