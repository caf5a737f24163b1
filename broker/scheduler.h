/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-key queues of free board slots and waiting requests.
 *
 * Policy: the oldest free slot goes to the best request; the best request is
 * in the highest priority level; inside a level, users take turns
 * (round-robin among users with waiting requests) and each user's requests
 * are served FIFO.  Every operation is O(1) or O(log n); nothing scans.
 *
 * The scheduler does no I/O and owns only its own bookkeeping (queues,
 * levels, users).  Slots and requests are embedded in the caller's structs.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct sched;
struct sched_queue;
struct sched_user;

/*
 * What a slot's board can do, and what a request needs: a request goes
 * only to a slot with every capability it needs and every tag it names.
 */
#define SCHED_CAP_TVM    (1u << 0) /* TVM RPC sessions */
#define SCHED_CAP_KERNEL (1u << 1) /* native tasks, kernel runner */
#define SCHED_CAP_EXEC   (1u << 2) /* native tasks, exec runner */

struct sched_slot {
	struct sched_queue *queue; /* borrowed; NULL when not queued */
	unsigned caps;             /* SCHED_CAP_* */
	const char *tags;          /* its board's, canonical (tags.h);
				    * borrowed; NULL: none */
	TAILQ_ENTRY(sched_slot) link;
};

/* What a waiting request is, for its owner's dispatch. */
enum sched_kind {
	SCHED_KIND_TVM,  /* a TVM REQUEST or RPC client:KEY */
	SCHED_KIND_TASK, /* a native task of a job */
};

struct sched_request {
	struct sched_queue *queue; /* borrowed; NULL when not waiting */
	enum sched_kind kind;
	unsigned needs;          /* SCHED_CAP_* */
	const char *tags;        /* tags the slot must carry, canonical;
				  * borrowed; NULL: any */
	struct sched_user *user; /* owned by the queue's level */
	double priority;
	uint64_t seq; /* arrival order inside the queue */
	TAILQ_ENTRY(sched_request) link;
};

typedef void sched_request_fn(struct sched_request *r, void *arg);

struct sched *sched_new(void);
struct sched *sched_free(struct sched *s);
int sched_queue_get(struct sched *s, const char *key, bool create,
    struct sched_queue **ret_queue);
void sched_queue_gc(struct sched_queue *q);
const char *sched_queue_key(const struct sched_queue *q);
size_t sched_queue_count(const struct sched *s);
struct sched_queue *sched_queue_first(const struct sched *s);
struct sched_queue *sched_queue_next(const struct sched_queue *q);

void sched_queue_add_board(struct sched_queue *q, int delta);
size_t sched_queue_boards(const struct sched_queue *q);
void sched_queue_add_leased(struct sched_queue *q, int delta);
size_t sched_queue_leased(const struct sched_queue *q);
size_t sched_queue_free(const struct sched_queue *q);
size_t sched_queue_waiting(const struct sched_queue *q);

void sched_slot_push(struct sched_queue *q, struct sched_slot *slot);
void sched_slot_remove(struct sched_slot *slot);
int sched_enqueue(struct sched_queue *q, struct sched_request *r,
    const char *user, double priority);
void sched_dequeue(struct sched_request *r);
const char *sched_request_user(const struct sched_request *r);
struct sched_request *sched_peek(const struct sched_queue *q);
bool sched_match(struct sched_queue *q, struct sched_slot **ret_slot,
    struct sched_request **ret_req);
void sched_foreach_waiting(
    const struct sched_queue *q, sched_request_fn *fn, void *arg);
