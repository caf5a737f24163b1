/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fork hygiene for the agent's children (session children and hooks; spec
 * tvm-c-runtime-api.md §8): what fork() hands down from the agent that a
 * child must not keep, namely its blocked signals, its signal handlers and
 * ignores, and its open fds, and the child's own process group.  Nothing
 * here allocates or logs.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

pid_t child_setup_fork(bool ignore_sigpipe);
int child_setup_fds(int keep_fd, int stderr_fd);
