/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Aligned text tables for the CLI's human output: a header row, then rows
 * filled cell by cell, printed with two spaces between columns.
 */
#pragma once

#include <stddef.h>
#include <stdio.h>

enum table_align {
	TABLE_LEFT,
	TABLE_RIGHT,
};

struct table_column {
	const char *name; /* header text, borrowed for the table's life */
	enum table_align align;
};

struct table;

struct table *table_new(const struct table_column *cols, size_t ncols);
struct table *table_free(struct table *t);
void table_add(struct table *t, const char *cell);
void table_addf(struct table *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
size_t table_rows(const struct table *t);
void table_print(const struct table *t, FILE *f);
size_t table_width(const char *s);
