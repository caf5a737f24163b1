/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The benchmark's baseline: a framed echo server in its own process, built
 * the way the broker is (one libevent loop, bufferevents, common/frame.c,
 * TCP_NODELAY, one write per reply) but doing no work besides framing.  It
 * echoes the first four bytes (the tracker magic) and then every frame as
 * soon as it is complete, so "broker time / echo time" is the cost of the
 * broker's own logic over a bare framed loopback round trip.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

int bench_echo_spawn(pid_t *ret_pid, char *addr, size_t addrlen);
void bench_echo_stop(pid_t pid);
