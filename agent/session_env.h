/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The RPC server environment a TVM server provides around rpc.ServerLoop
 * (spec tvm-c-runtime-api.md §5): tvm.rpc.server.workpath, .load_module and
 * .listdir, registered into the runtime's global registry as packed C
 * callbacks.  The runtime's own upload, download and remove resolve their
 * names through workpath, so every file name a client sends is confined to
 * the session work dir here (workdir_path()).  Runs only in a session
 * child, on the thread that calls rpc.ServerLoop.
 */
#pragma once

#include <limits.h>

#include "tvm_capi.h"

struct npufarm_err;

/* What the callbacks need; lives until the process exits. */
struct session_env {
	const struct tvm_capi *api; /* borrowed, outlives the env */
	char dir[PATH_MAX];         /* canonical absolute session work dir */
	TVMFunctionHandle loadso;   /* runtime.module.loadfile_so, or NULL
				     * when absent; owned, never freed (the
				     * process exits with it in use) */
};

int session_env_register(struct session_env *env, struct npufarm_err *err);
