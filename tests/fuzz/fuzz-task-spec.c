/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Task specs as the broker (a job's tasks) and the agent (one task frame)
 * parse them: task_spec_validate_tasks() on an array, task_spec_parse()
 * on each element, and the arguments built back from what parsed.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"
#include "json_util.h"
#include "task_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct task_spec spec;
	struct npufarm_err err;
	json_t *root, *v, *args;
	size_t i;

	if (json_util_load((const char *)data, size, 16, &root, &err) < 0)
		return 0;
	if (json_is_array(root)) {
		(void)task_spec_validate_tasks(root, &err);
		json_array_foreach(root, i, v) {
			if (task_spec_parse(v, "tasks[]", &spec, &err) == 0) {
				args = task_spec_args_json(&spec);
				json_decref(args);
			}
		}
	} else if (task_spec_parse(root, "task", &spec, &err) == 0) {
		args = task_spec_args_json(&spec);
		json_decref(args);
	}
	json_decref(root);
	return 0;
}
