/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The RPC server environment a TVM server provides around rpc.ServerLoop
 * (spec tvm-c-runtime-api.md §5, tvm-ffi-era.md §4.4):
 * tvm.rpc.server.workpath, .load_module and .listdir, registered into the
 * runtime's global registry through tvm_runtime.h, so the same functions
 * serve either C ABI.  The runtime's own upload, download and remove
 * resolve their names through workpath, so every file name a client sends
 * is confined to the session work dir here (workdir_path()).  Runs only in
 * a session child, on the thread that calls rpc.ServerLoop.
 */
#pragma once

#include <limits.h>

struct npufarm_err;
struct tvm_runtime;

/* What the callbacks need; lives until the process exits. */
struct session_env {
	char dir[PATH_MAX]; /* canonical absolute session work dir */
};

int session_env_register(
    struct session_env *env, struct tvm_runtime *rt, struct npufarm_err *err);
