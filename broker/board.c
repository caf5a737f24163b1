/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Board states and their names (see board.h).
 */
#include "config.h"

#include "board.h"

#include <errno.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>

/* One agent board in the registry. */
struct board_entry {
	struct board *board; /* borrowed: it holds us */
	struct agent *agent; /* borrowed: its link's */
	int64_t id;          /* its ledger row */
	const char *name;    /* its agent's name: in buf (a key: borrowed) */
	char buf[];
};

struct board_registry {
	void *by_name; /* tsearch of struct board_entry * */
	void *by_id;   /* ... the same entries, by id */
	size_t n;
};

static int
cmp_name(const void *x, const void *y)
{
	const struct board_entry *a = x, *b = y;

	return strcmp(a->name, b->name);
}

static int
cmp_id(const void *x, const void *y)
{
	const struct board_entry *a = x, *b = y;

	return a->id < b->id ? -1 : a->id > b->id;
}

static const char *const board_state_names[BOARD_STATE_MAX] = {
    [BOARD_IDLE] = "idle",
    [BOARD_LEASED] = "leased",
    [BOARD_OFFLINE] = "offline",
    [BOARD_BUSY] = "busy",
    [BOARD_QUARANTINED] = "quarantined",
};

/* Ledger and API name of board state @s; static. */
const char *
board_state_name(enum board_state s)
{
	return board_state_names[s];
}

/*
 * What the views (API, metrics) show of a board in state @s, @drained by
 * an operator: "draining" while it is idle, else its state's name; static.
 */
const char *
board_view_state(enum board_state s, bool drained)
{
	return drained && s == BOARD_IDLE ? "draining" : board_state_name(s);
}

/* An empty registry; NULL when out of memory. */
struct board_registry *
board_registry_new(void)
{
	return calloc(1, sizeof(struct board_registry));
}

/* Free @reg, whose boards are all gone.  Accepts NULL; returns NULL. */
struct board_registry *
board_registry_free(struct board_registry *reg)
{
	free(reg);
	return NULL;
}

/*
 * Register board @b of agent @a (both borrowed until
 * board_registry_remove()), named @name, ledger row @id.  *@ret_entry is
 * the board's handle for its removal.  0, -EEXIST (that name or id is
 * registered) or -ENOMEM.
 */
int
board_registry_add(struct board_registry *reg, struct board *b, struct agent *a,
    const char *name, int64_t id, struct board_entry **ret_entry)
{
	size_t len = strlen(name) + 1;
	struct board_entry *e = malloc(sizeof(*e) + len), **p;

	if (e == NULL)
		return -ENOMEM;
	e->board = b;
	e->agent = a;
	e->id = id;
	memcpy(e->buf, name, len);
	e->name = e->buf;
	if (tfind(e, &reg->by_name, cmp_name) != NULL ||
	    tfind(e, &reg->by_id, cmp_id) != NULL) {
		free(e);
		return -EEXIST;
	}
	p = tsearch(e, &reg->by_name, cmp_name);
	if (p == NULL) {
		free(e);
		return -ENOMEM;
	}
	if (tsearch(e, &reg->by_id, cmp_id) == NULL) {
		(void)tdelete(e, &reg->by_name, cmp_name);
		free(e);
		return -ENOMEM;
	}
	reg->n++;
	*ret_entry = e;
	return 0;
}

/* Forget the board of @e (NULL: none) and free @e. */
void
board_registry_remove(struct board_registry *reg, struct board_entry *e)
{
	if (e == NULL)
		return;
	(void)tdelete(e, &reg->by_name, cmp_name);
	(void)tdelete(e, &reg->by_id, cmp_id);
	reg->n--;
	free(e);
}

static struct board_entry *
find_name(const struct board_registry *reg, const char *name)
{
	struct board_entry key = {.name = name}, **p;

	p = tfind(&key, &reg->by_name, cmp_name);
	return p != NULL ? *p : NULL;
}

static struct board_entry *
find_id(const struct board_registry *reg, int64_t id)
{
	struct board_entry key = {.id = id}, **p;

	p = tfind(&key, &reg->by_id, cmp_id);
	return p != NULL ? *p : NULL;
}

/* The board of the agent named @name, or NULL; borrowed. */
struct board *
board_by_agent(const struct board_registry *reg, const char *name)
{
	struct board_entry *e = find_name(reg, name);

	return e != NULL ? e->board : NULL;
}

/* The agent board with ledger id @id, or NULL; borrowed. */
struct board *
board_by_id(const struct board_registry *reg, int64_t id)
{
	struct board_entry *e = find_id(reg, id);

	return e != NULL ? e->board : NULL;
}

/* The agent whose board has ledger id @id, or NULL; borrowed. */
struct agent *
board_agent_by_id(const struct board_registry *reg, int64_t id)
{
	struct board_entry *e = find_id(reg, id);

	return e != NULL ? e->agent : NULL;
}

/* The agent named @name, if its board is registered, or NULL; borrowed. */
struct agent *
board_agent_by_name(const struct board_registry *reg, const char *name)
{
	struct board_entry *e = find_name(reg, name);

	return e != NULL ? e->agent : NULL;
}
