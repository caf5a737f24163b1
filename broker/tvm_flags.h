/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TVM's rpc_tracker flags on npufarm-broker, so that a script that starts
 * `python -m tvm.exec.rpc_tracker --host H --port P --port-end E [--silent]`
 * needs only the program name changed: the farm port binds H and the first
 * free port in [P, E), as TVM's tracker does (docs/tvm.md).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct broker_config;
struct npufarm_err;

/* TVM's defaults: rpc_tracker binds 0.0.0.0 and tries [9190, 9199). */
#define TVM_FLAGS_HOST     "0.0.0.0"
#define TVM_FLAGS_PORT     9190
#define TVM_FLAGS_PORT_END 9199

/* What the command line said; all zero: no TVM flag given. */
struct tvm_flags {
	const char *host; /* borrowed from argv; NULL: not given */
	long port;        /* -1: not given */
	long port_end;    /* -1: not given */
	bool silent;      /* --silent: warnings and errors only */
	bool any;         /* some TVM flag was given */
};

void tvm_flags_init(struct tvm_flags *f);
int tvm_flags_set(struct tvm_flags *f, const char *name, const char *value,
    struct npufarm_err *err);
int tvm_flags_apply(const struct tvm_flags *f, size_t nlisten_flags,
    struct broker_config *cfg, struct npufarm_err *err);
