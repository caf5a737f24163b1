/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cells are appended left to right, top to bottom; a row is complete after
 * ncols cells.  Cells are copied on the way in with control characters
 * escaped as \xNN, since much of what is shown (user names, details) comes
 * from peers and must not move the terminal's cursor.  Widths count UTF-8
 * code points, which jansson has already validated.
 */
#include "config.h"

#include "table.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "format.h"
#include "xmalloc.h"

/* Spaces between two columns. */
#define TABLE_GAP 2

struct table {
	const struct table_column *cols; /* borrowed, ncols entries */
	size_t ncols;
	char **cells; /* owned, ncells strings, row-major */
	size_t ncells;
	size_t alloc; /* slots allocated in cells */
};

/*
 * A table with @ncols columns described by @cols, which must outlive it.
 * Never returns NULL (exits on OOM).
 */
struct table *
table_new(const struct table_column *cols, size_t ncols)
{
	struct table *t = xcalloc(1, sizeof(*t));

	assert(ncols > 0);
	t->cols = cols;
	t->ncols = ncols;
	return t;
}

/* Free @t and its cells; accepts NULL and returns NULL. */
struct table *
table_free(struct table *t)
{
	size_t i;

	if (t == NULL)
		return NULL;
	for (i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	return NULL;
}

static void
table_push(struct table *t, char *cell)
{
	if (t->ncells == t->alloc) {
		t->alloc = t->alloc != 0 ? t->alloc * 2 : 4 * t->ncols;
		t->cells = xreallocarray(t->cells, t->alloc, sizeof(*t->cells));
	}
	t->cells[t->ncells++] = cell;
}

/*
 * Append a copy of @cell to the current row, starting a new row when the
 * last one is full.  NULL stands for a JSON null and is shown as "-".
 */
void
table_add(struct table *t, const char *cell)
{
	table_push(t, format_escape(cell != NULL ? cell : "-"));
}

/* table_add() of a formatted string. */
void
table_addf(struct table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	table_add(t, s);
	free(s);
}

/* Rows added so far, counting an incomplete last row. */
size_t
table_rows(const struct table *t)
{
	return (t->ncells + t->ncols - 1) / t->ncols;
}

/* Display width of UTF-8 @s: its code points (continuation bytes skipped). */
size_t
table_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void
table_pad(FILE *f, size_t n)
{
	for (; n > 0; n--)
		(void)fputc(' ', f);
}

/* Print one row of @t's layout; @row NULL prints the header. */
static void
table_print_row(const struct table *t, const size_t *widths,
    const char *const *row, FILE *f)
{
	size_t c, w, pending = 0;

	for (c = 0; c < t->ncols; c++) {
		const char *s = row != NULL ? row[c] : t->cols[c].name;

		w = table_width(s);
		if (c > 0)
			pending += TABLE_GAP;
		if (t->cols[c].align == TABLE_RIGHT) {
			table_pad(f, pending + widths[c] - w);
			pending = 0;
		}
		if (*s != '\0') {
			table_pad(f, pending);
			pending = 0;
		}
		(void)fputs(s, f);
		/* Trailing padding is deferred so that lines never end in a
		 * blank. */
		if (t->cols[c].align == TABLE_LEFT)
			pending += widths[c] - w;
	}
	(void)fputc('\n', f);
}

/*
 * Print @t to @f: the header, then every row, each column as wide as its
 * widest cell.  An incomplete last row is padded with "-".  Lines carry no
 * trailing blanks.
 */
void
table_print(const struct table *t, FILE *f)
{
	size_t *widths = xcalloc(t->ncols, sizeof(*widths));
	size_t r, c, nrows = table_rows(t);
	const char **row = xcalloc(t->ncols, sizeof(*row));

	for (c = 0; c < t->ncols; c++)
		widths[c] = table_width(t->cols[c].name);
	for (r = 0; r < t->ncells; r++) {
		size_t w = table_width(t->cells[r]);

		if (w > widths[r % t->ncols])
			widths[r % t->ncols] = w;
	}
	table_print_row(t, widths, NULL, f);
	for (r = 0; r < nrows; r++) {
		for (c = 0; c < t->ncols; c++) {
			size_t i = r * t->ncols + c;

			row[c] = i < t->ncells ? t->cells[i] : "-";
		}
		table_print_row(t, widths, row, f);
	}
	free(row);
	free(widths);
}
