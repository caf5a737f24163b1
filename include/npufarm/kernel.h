/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel ABI: what a shared object must export for the agent's `kernel`
 * runner to load, call and time it (docs/kernel-abi.md has a worked
 * example).  The agent dlopen()s the artifact in a forked child, checks
 * npufarm_kernel_abi_version, looks up the task's entry point, allocates
 * and fills the DLTensor arguments the task describes, then calls the
 * entry once untimed and number x repeat times timed.
 *
 * Contract of an entry point:
 *  - @p args are the task's arguments in order, as DLPack tensors in host
 *    memory (device kDLCPU, compact row-major: strides NULL, byte_offset 0,
 *    data aligned to 256 bytes).  Scalar arguments arrive as 0-d tensors.
 *    The kernel may write through data (outputs) but must not change the
 *    descriptors, keep pointers past the call, or free anything.
 *  - Return 0 on success.  On failure return non-zero and, optionally, put
 *    a NUL-terminated message of at most @p err_len - 1 bytes into @p err;
 *    the agent records it verbatim as the task's `exception`.  @p err is
 *    an empty string on entry to every call.
 *  - It is called repeatedly with the same tensors and must give the same
 *    result each time: the timed calls are meant to measure the same work.
 *  - A crash (signal, exit()) or a hang only costs the forked child: the
 *    agent records `crash` or `timeout`.
 */
#ifndef NPUFARM_KERNEL_H
#define NPUFARM_KERNEL_H

#include <dlpack/dlpack.h>
#include <stddef.h>

/** The ABI version this header describes; bumped on incompatible change. */
#define NPUFARM_KERNEL_ABI_VERSION 1

/** Entry point name the agent uses when a task names none. */
#define NPUFARM_KERNEL_DEFAULT_ENTRY "npufarm_kernel"

/** Size of the error buffer the agent passes (message + NUL). */
#define NPUFARM_KERNEL_ERR_MAX 1024

/**
 * The type of a kernel entry point.  Declare yours with it so that the
 * compiler checks the signature: `npufarm_kernel_fn my_matmul;`.
 * @param args the task's arguments, @p num_args of them (see above)
 * @param num_args how many entries @p args has (0 to 32)
 * @param err where to write an error message, NUL-terminated
 * @param err_len capacity of @p err (NPUFARM_KERNEL_ERR_MAX)
 * @return 0 on success, non-zero when the kernel failed
 */
typedef int npufarm_kernel_fn(
    const DLTensor *args, int num_args, char *err, size_t err_len);

/**
 * Every kernel library exports this symbol, set to
 * NPUFARM_KERNEL_ABI_VERSION, so that an agent never calls a library
 * built for another ABI.  Define it with NPUFARM_KERNEL_DEFINE_ABI.
 */
extern const int npufarm_kernel_abi_version;

/** Put this once, at file scope, in one source file of a kernel library. */
#define NPUFARM_KERNEL_DEFINE_ABI \
	const int npufarm_kernel_abi_version = NPUFARM_KERNEL_ABI_VERSION

#endif /* NPUFARM_KERNEL_H */
