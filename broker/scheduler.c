/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Scheduler data structures.
 *
 *   sched            tsearch tree of queues by key + a list in first-seen order
 *   sched_queue      FIFO of free slots; levels sorted by ascending priority
 *   sched_level      one priority value: round-robin list of users, and a
 *                    tsearch tree of the same users by name
 *   sched_user       FIFO of one user's requests at one level
 *
 * A level exists only while it has waiting requests, a user only while it
 * has requests at that level, so the best request is always
 * levels[nlevels-1] -> first user -> first request.  Levels are few (one per
 * distinct priority in use); insertion is a binary search plus a memmove.
 */
#include "config.h"

#include "scheduler.h"

#include <assert.h>
#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

#include "tags.h"

/* A user name this long or longer is allocated; shorter ones are kept in
 * the user itself (an IPv6 address fits). */
#define SCHED_USER_INLINE 64
/* Levels and users kept for reuse once empty, at most (each kind). */
#define SCHED_SPARE_MAX   32

struct sched_user {
	char *name;                /* name_buf, or owned when too long for it */
	struct sched_level *level; /* borrowed: the level that owns us */
	TAILQ_HEAD(, sched_request) reqs;
	TAILQ_ENTRY(sched_user) link;
	struct sched_user *next_spare; /* in sched.spare_users */
	char name_buf[SCHED_USER_INLINE];
};

struct sched_level {
	double priority;
	TAILQ_HEAD(, sched_user) users; /* service rotation */
	void *by_name;                  /* tsearch root of the same users */
	struct sched_level *next_spare; /* in sched.spare_levels */
};

struct sched_queue {
	struct sched *sched; /* borrowed: owner */
	char *key;
	TAILQ_HEAD(, sched_slot) free;
	size_t nfree;
	struct sched_level **levels; /* ascending priority */
	size_t nlevels, levels_cap;
	size_t nwaiting;
	uint64_t seq;
	size_t nboards; /* live boards of this key (maintained by callers) */
	size_t nleased; /* boards of this key currently leased */
	TAILQ_ENTRY(sched_queue) link;
};

struct sched {
	void *by_key;                     /* tsearch root */
	TAILQ_HEAD(, sched_queue) queues; /* first-seen order */
	size_t nqueues;
	/* Emptied levels and users, for the next request to reuse: a
	 * request that is granted at once then costs no allocation here
	 * but tsearch's node (issue 15).  At most SCHED_SPARE_MAX each. */
	struct sched_level *spare_levels;
	struct sched_user *spare_users;
	size_t nspare_levels, nspare_users;
};

static int
queue_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sched_queue *)a)->key,
	    ((const struct sched_queue *)b)->key);
}

static int
user_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sched_user *)a)->name,
	    ((const struct sched_user *)b)->name);
}

/* A new, empty scheduler, or NULL when out of memory. */
struct sched *
sched_new(void)
{
	struct sched *s;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	TAILQ_INIT(&s->queues);
	return s;
}

/* A zeroed user, a spare one if there is one; NULL when out of memory. */
static struct sched_user *
user_alloc(struct sched *s)
{
	struct sched_user *u = s->spare_users;

	if (u == NULL)
		return calloc(1, sizeof(*u));
	s->spare_users = u->next_spare;
	s->nspare_users--;
	memset(u, 0, sizeof(*u));
	return u;
}

/* Free @u's name and keep @u as a spare, or free it. */
static void
user_release(struct sched *s, struct sched_user *u)
{
	if (u->name != u->name_buf)
		free(u->name);
	if (s->nspare_users >= SCHED_SPARE_MAX) {
		free(u);
		return;
	}
	u->next_spare = s->spare_users;
	s->spare_users = u;
	s->nspare_users++;
}

/* A zeroed level, a spare one if there is one; NULL when out of memory. */
static struct sched_level *
level_alloc(struct sched *s)
{
	struct sched_level *l = s->spare_levels;

	if (l == NULL)
		return calloc(1, sizeof(*l));
	s->spare_levels = l->next_spare;
	s->nspare_levels--;
	memset(l, 0, sizeof(*l));
	return l;
}

static void
level_free(struct sched *s, struct sched_level *l)
{
	struct sched_user *u;

	while ((u = TAILQ_FIRST(&l->users)) != NULL) {
		TAILQ_REMOVE(&l->users, u, link);
		(void)tdelete(u, &l->by_name, user_cmp);
		user_release(s, u);
	}
	if (s->nspare_levels >= SCHED_SPARE_MAX) {
		free(l);
		return;
	}
	l->next_spare = s->spare_levels;
	s->spare_levels = l;
	s->nspare_levels++;
}

static void
queue_free(struct sched_queue *q)
{
	size_t i;

	for (i = 0; i < q->nlevels; i++)
		level_free(q->sched, q->levels[i]);
	free(q->levels);
	free(q->key);
	free(q);
}

/*
 * Free the scheduler and every queue.  Slots and requests still queued
 * belong to callers and are only forgotten.  Accepts NULL; returns NULL.
 */
struct sched *
sched_free(struct sched *s)
{
	struct sched_queue *q;

	if (s == NULL)
		return NULL;
	while ((q = TAILQ_FIRST(&s->queues)) != NULL) {
		TAILQ_REMOVE(&s->queues, q, link);
		(void)tdelete(q, &s->by_key, queue_cmp);
		queue_free(q);
	}
	while (s->spare_levels != NULL) {
		struct sched_level *l = s->spare_levels;

		s->spare_levels = l->next_spare;
		free(l);
	}
	while (s->spare_users != NULL) {
		struct sched_user *u = s->spare_users;

		s->spare_users = u->next_spare;
		free(u);
	}
	free(s);
	return NULL;
}

/*
 * Find the queue of @key, creating it when @create is set.  Returns 0,
 * -ENOENT (absent and not created) or -ENOMEM.  The queue is borrowed; it
 * lives until sched_queue_gc() finds it empty or the scheduler is freed.
 */
int
sched_queue_get(struct sched *s, const char *key, bool create,
    struct sched_queue **ret_queue)
{
	struct sched_queue probe = {.key = (char *)key}, *q, **found;

	found = tfind(&probe, &s->by_key, queue_cmp);
	if (found != NULL) {
		*ret_queue = *found;
		return 0;
	}
	if (!create)
		return -ENOENT;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->key = strdup(key);
	if (q->key == NULL) {
		free(q);
		return -ENOMEM;
	}
	q->sched = s;
	TAILQ_INIT(&q->free);
	found = tsearch(q, &s->by_key, queue_cmp);
	if (found == NULL) {
		queue_free(q);
		return -ENOMEM;
	}
	TAILQ_INSERT_TAIL(&s->queues, q, link);
	s->nqueues++;
	*ret_queue = q;
	return 0;
}

/*
 * Drop @q if nothing refers to it any more: no boards, no free slots, no
 * waiting requests.  Callers must not use @q afterwards.
 */
void
sched_queue_gc(struct sched_queue *q)
{
	struct sched *s = q->sched;

	if (q->nboards > 0 || q->nfree > 0 || q->nwaiting > 0 || q->nleased > 0)
		return;
	TAILQ_REMOVE(&s->queues, q, link);
	(void)tdelete(q, &s->by_key, queue_cmp);
	s->nqueues--;
	queue_free(q);
}

/* The key of @q (borrowed, lives as long as the queue). */
const char *
sched_queue_key(const struct sched_queue *q)
{
	return q->key;
}

/* Number of queues. */
size_t
sched_queue_count(const struct sched *s)
{
	return s->nqueues;
}

/* First queue in first-seen order, or NULL. */
struct sched_queue *
sched_queue_first(const struct sched *s)
{
	return TAILQ_FIRST(&s->queues);
}

/* The queue seen after @q, or NULL. */
struct sched_queue *
sched_queue_next(const struct sched_queue *q)
{
	return TAILQ_NEXT(q, link);
}

/* Count a board of this key appearing (+1) or going away (-1). */
void
sched_queue_add_board(struct sched_queue *q, int delta)
{
	assert(delta > 0 || q->nboards >= (size_t)-delta);
	q->nboards += (size_t)(ssize_t)delta;
}

/* Live boards of this key. */
size_t
sched_queue_boards(const struct sched_queue *q)
{
	return q->nboards;
}

/* Count a board of this key being leased (+1) or released (-1). */
void
sched_queue_add_leased(struct sched_queue *q, int delta)
{
	assert(delta > 0 || q->nleased >= (size_t)-delta);
	q->nleased += (size_t)(ssize_t)delta;
}

/* Boards of this key currently leased. */
size_t
sched_queue_leased(const struct sched_queue *q)
{
	return q->nleased;
}

/* Free slots waiting for a request. */
size_t
sched_queue_free(const struct sched_queue *q)
{
	return q->nfree;
}

/* Requests waiting for a slot. */
size_t
sched_queue_waiting(const struct sched_queue *q)
{
	return q->nwaiting;
}

/* Append a free slot at the tail of @q's free list. */
void
sched_slot_push(struct sched_queue *q, struct sched_slot *slot)
{
	assert(slot->queue == NULL);
	slot->queue = q;
	TAILQ_INSERT_TAIL(&q->free, slot, link);
	q->nfree++;
}

/* Take a free slot out of its queue; a no-op if it is not queued. */
void
sched_slot_remove(struct sched_slot *slot)
{
	struct sched_queue *q = slot->queue;

	if (q == NULL)
		return;
	TAILQ_REMOVE(&q->free, slot, link);
	q->nfree--;
	slot->queue = NULL;
}

/* Index of the level with @priority, or where it would be inserted. */
static size_t
level_search(const struct sched_queue *q, double priority, bool *ret_found)
{
	size_t lo = 0, hi = q->nlevels;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (q->levels[mid]->priority < priority)
			lo = mid + 1;
		else
			hi = mid;
	}
	*ret_found = lo < q->nlevels && q->levels[lo]->priority == priority;
	return lo;
}

static int
level_get(struct sched_queue *q, double priority, struct sched_level **ret)
{
	struct sched_level *l;
	bool found;
	size_t i;

	i = level_search(q, priority, &found);
	if (found) {
		*ret = q->levels[i];
		return 0;
	}
	if (q->nlevels == q->levels_cap) {
		size_t cap = q->levels_cap ? q->levels_cap * 2 : 4;
		struct sched_level **v;

		v = reallocarray(q->levels, cap, sizeof(*v));
		if (v == NULL)
			return -ENOMEM;
		q->levels = v;
		q->levels_cap = cap;
	}
	l = level_alloc(q->sched);
	if (l == NULL)
		return -ENOMEM;
	l->priority = priority;
	TAILQ_INIT(&l->users);
	memmove(&q->levels[i + 1], &q->levels[i],
	    (q->nlevels - i) * sizeof(*q->levels));
	q->levels[i] = l;
	q->nlevels++;
	*ret = l;
	return 0;
}

static void
level_drop(struct sched_queue *q, struct sched_level *l)
{
	bool found;
	size_t i;

	i = level_search(q, l->priority, &found);
	assert(found && q->levels[i] == l);
	memmove(&q->levels[i], &q->levels[i + 1],
	    (q->nlevels - i - 1) * sizeof(*q->levels));
	q->nlevels--;
	level_free(q->sched, l);
}

static int
user_get(struct sched *s, struct sched_level *l, const char *name,
    struct sched_user **ret)
{
	struct sched_user probe = {.name = (char *)name}, *u, **found;
	size_t n = strlen(name) + 1;

	found = tfind(&probe, &l->by_name, user_cmp);
	if (found != NULL) {
		*ret = *found;
		return 0;
	}
	u = user_alloc(s);
	if (u == NULL)
		return -ENOMEM;
	u->name = n <= sizeof(u->name_buf) ? u->name_buf : malloc(n);
	if (u->name != NULL)
		memcpy(u->name, name, n);
	if (u->name == NULL || tsearch(u, &l->by_name, user_cmp) == NULL) {
		if (u->name == NULL)
			u->name = u->name_buf; /* nothing to free */
		user_release(s, u);
		return -ENOMEM;
	}
	u->level = l;
	TAILQ_INIT(&u->reqs);
	TAILQ_INSERT_TAIL(&l->users, u, link);
	*ret = u;
	return 0;
}

/* Remove a user with no requests left; drop its level if that empties. */
static void
user_drop(struct sched_queue *q, struct sched_user *u)
{
	struct sched_level *l = u->level;

	assert(TAILQ_EMPTY(&u->reqs));
	TAILQ_REMOVE(&l->users, u, link);
	(void)tdelete(u, &l->by_name, user_cmp);
	user_release(q->sched, u);
	if (TAILQ_EMPTY(&l->users))
		level_drop(q, l);
}

/*
 * Queue request @r of @user at @priority (larger first).  @user is copied.
 * Returns 0 or -ENOMEM (then @r is not queued).
 */
int
sched_enqueue(struct sched_queue *q, struct sched_request *r, const char *user,
    double priority)
{
	struct sched_level *l;
	struct sched_user *u;
	int ret;

	assert(r->queue == NULL);
	ret = level_get(q, priority, &l);
	if (ret < 0)
		return ret;
	ret = user_get(q->sched, l, user, &u);
	if (ret < 0) {
		if (TAILQ_EMPTY(&l->users))
			level_drop(q, l);
		return ret;
	}
	r->queue = q;
	r->user = u;
	r->priority = priority;
	r->seq = q->seq++;
	TAILQ_INSERT_TAIL(&u->reqs, r, link);
	q->nwaiting++;
	return 0;
}

/* Withdraw a waiting request; a no-op if it is not waiting. */
void
sched_dequeue(struct sched_request *r)
{
	struct sched_queue *q = r->queue;
	struct sched_user *u = r->user;

	if (q == NULL)
		return;
	TAILQ_REMOVE(&u->reqs, r, link);
	q->nwaiting--;
	r->queue = NULL;
	r->user = NULL;
	if (TAILQ_EMPTY(&u->reqs))
		user_drop(q, u);
}

/* The user a waiting request was queued under (borrowed), or "". */
const char *
sched_request_user(const struct sched_request *r)
{
	return r->user != NULL ? r->user->name : "";
}

/* The request that would be served next, without removing it, or NULL. */
struct sched_request *
sched_peek(const struct sched_queue *q)
{
	struct sched_level *l;

	if (q->nlevels == 0)
		return NULL;
	l = q->levels[q->nlevels - 1];
	return TAILQ_FIRST(&TAILQ_FIRST(&l->users)->reqs);
}

static bool
fits(const struct sched_slot *slot, const struct sched_request *r)
{
	return (slot->caps & r->needs) == r->needs &&
	       tags_match(slot->tags, r->tags);
}

/*
 * The best request that some free slot fits, and the oldest such slot:
 * levels from the highest, users in rotation order, each user's requests
 * oldest first.  Only when the best request and the oldest slot do not
 * fit, i.e. on a key whose boards differ in what they can do; O(requests
 * x free slots) then.
 */
static bool
match_scan(const struct sched_queue *q, struct sched_slot **ret_slot,
    struct sched_request **ret_req)
{
	struct sched_request *r;
	struct sched_slot *slot;
	struct sched_user *u;
	size_t i;

	for (i = q->nlevels; i-- > 0;)
		TAILQ_FOREACH(u, &q->levels[i]->users, link)
			TAILQ_FOREACH(r, &u->reqs, link)
				TAILQ_FOREACH(slot, &q->free, link)
					if (fits(slot, r)) {
						*ret_slot = slot;
						*ret_req = r;
						return true;
					}
	return false;
}

/*
 * Pair the oldest free slot with the best waiting request and remove both.
 * A request goes only to a slot with the capabilities it needs; when the
 * best request and the oldest slot do not fit, the best pair that does is
 * taken.  The served user moves to the back of its level's rotation.
 * Returns false (outputs untouched) when no pair fits.
 */
bool
sched_match(struct sched_queue *q, struct sched_slot **ret_slot,
    struct sched_request **ret_req)
{
	struct sched_request *r;
	struct sched_slot *slot;
	struct sched_user *u;
	bool more;

	slot = TAILQ_FIRST(&q->free);
	r = sched_peek(q);
	if (slot == NULL || r == NULL)
		return false;
	if (!fits(slot, r) && !match_scan(q, &slot, &r))
		return false;
	sched_slot_remove(slot);
	u = r->user;
	more = TAILQ_FIRST(&u->reqs) != r || TAILQ_NEXT(r, link) != NULL;
	sched_dequeue(r);
	if (more) {
		/* u still has requests, so it survived: it had its turn. */
		TAILQ_REMOVE(&u->level->users, u, link);
		TAILQ_INSERT_TAIL(&u->level->users, u, link);
	}
	*ret_slot = slot;
	*ret_req = r;
	return true;
}

/*
 * Call @fn for every waiting request in the order they would be served if
 * nothing else arrived.  For introspection (API, SUMMARY), not the hot path.
 */
void
sched_foreach_waiting(
    const struct sched_queue *q, sched_request_fn *fn, void *arg)
{
	size_t i;

	for (i = q->nlevels; i-- > 0;) {
		struct sched_level *l = q->levels[i];
		struct sched_request **cur;
		struct sched_user *u;
		size_t n = 0, k, left;

		TAILQ_FOREACH(u, &l->users, link)
			n++;
		cur = calloc(n, sizeof(*cur));
		if (cur == NULL)
			return;
		k = 0;
		TAILQ_FOREACH(u, &l->users, link)
			cur[k++] = TAILQ_FIRST(&u->reqs);
		do {
			left = 0;
			for (k = 0; k < n; k++) {
				if (cur[k] == NULL)
					continue;
				fn(cur[k], arg);
				cur[k] = TAILQ_NEXT(cur[k], link);
				left += cur[k] != NULL;
			}
		} while (left > 0);
		free(cur);
	}
}
