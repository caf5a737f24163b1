/* SPDX-License-Identifier: Apache-2.0 */
/*
 * POST /v1/jobs bodies, differentially: jobs_parse_text() (the API's
 * parser, which splits the text and parses a task at a time) must agree
 * with jobs_parse() on the whole tree, on whether the body is accepted
 * and on every task's spec; a disagreement aborts.  Artifacts "aaaa..."
 * and "bbbb..." exist.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "artifacts.h"
#include "broker_config.h"
#include "err.h"
#include "jobs.h"
#include "json_util.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct broker_config cfg;
static struct artifacts *arts;

static void
setup(void)
{
	static char dir[256];
	struct npufarm_err err;
	char path[400];
	int i;
	FILE *f;

	log_set_level(-1);
	broker_config_defaults(&cfg);
	(void)snprintf(dir, sizeof(dir), "%s/npufarm-fuzz-jobs-XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL ||
	    artifacts_open(dir, 1 << 20, &arts, &err) < 0)
		abort();
	for (i = 0; i < 2; i++) {
		/* Under a name that is not its hash: only the name matters to
		 * a job's check. */
		(void)snprintf(path, sizeof(path), "%s/artifacts/%.64s", dir,
		    i ? "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
			"bbbbbbbbbb"
		      : "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			"aaaaaaaaaa");
		f = fopen(path, "w");
		if (f == NULL)
			abort();
		(void)fclose(f);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jobs_parsed *a = NULL, *w = NULL;
	struct npufarm_err ea, ew;
	json_t *body = NULL;
	int ra, rw;
	size_t i;

	if (arts == NULL)
		setup();
	ra = jobs_parse_text(
	    &cfg, arts, (const char *)data, size, "peer", &a, &ea);
	rw = json_util_load(
	    (const char *)data, size, (int)cfg.max_json_depth, &body, &ew);
	if (rw == 0 && json_is_object(body))
		rw = jobs_parse(&cfg, arts, body, "peer", &w, &ew);
	else
		rw = -EINVAL;
	json_decref(body);
	if ((ra == 0) != (rw == 0)) {
		fprintf(stderr, "split %d (%s), whole %d (%s)\n", ra,
		    ra ? ea.msg : "ok", rw, rw ? ew.msg : "ok");
		abort();
	}
	if (ra == 0) {
		if (jobs_parsed_count(a) != jobs_parsed_count(w))
			abort();
		for (i = 0; i < jobs_parsed_count(a); i++)
			if (strcmp(jobs_parsed_task(a, i),
				jobs_parsed_task(w, i)) != 0)
				abort();
	}
	jobs_parsed_free(a);
	jobs_parsed_free(w);
	return 0;
}
