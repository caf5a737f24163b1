/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The broker's configuration: the input as a --config JSON file
 * (broker_config_load_file()), and the same input's lines as NAME=VALUE
 * flags (broker_config_set()), each followed by broker_config_check() and,
 * when it passes, the access rules built from it (auth_new()).
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "broker_config.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A configuration that checks also builds its access rules, as main.c does. */
static void
check(struct broker_config *c, struct npufarm_err *err)
{
	struct auth_config view;
	struct auth *a = NULL;

	if (broker_config_check(c, err) < 0)
		return;
	broker_config_auth(c, &view);
	if (auth_new(&view, &a, err) == 0)
		auth_free(a);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[300];
	struct broker_config c;
	struct npufarm_err err;
	char *copy, *line, *save = NULL;
	FILE *f;

	if (path[0] == '\0')
		(void)snprintf(path, sizeof(path), "%s/npufarm-fuzz-cfg-%ld",
		    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp",
		    (long)getpid());
	f = fopen(path, "w");
	if (f == NULL)
		return 0;
	(void)fwrite(data, 1, size, f);
	(void)fclose(f);
	broker_config_defaults(&c);
	if (broker_config_load_file(&c, path, &err) == 0)
		check(&c, &err);
	broker_config_deinit(&c);
	(void)unlink(path);

	copy = malloc(size + 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	broker_config_defaults(&c);
	for (line = strtok_r(copy, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (eq == NULL)
			continue;
		*eq = '\0';
		if (strcmp(line, "listen") == 0)
			(void)broker_config_add_listen(&c, eq + 1, &err);
		else if (strcmp(line, "allow") == 0)
			(void)broker_config_add_allow(&c, eq + 1, &err);
		else
			(void)broker_config_set(&c, line, eq + 1, &err);
	}
	check(&c, &err);
	broker_config_deinit(&c);
	free(copy);
	return 0;
}
