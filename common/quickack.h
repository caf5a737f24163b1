/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Delayed ACK against peers that split their writes.  TVM's Python and C++
 * peers send a frame's 4-byte length (and the RPC hello's magic and key
 * length) in writes of their own, with Nagle on: the next write waits for
 * our ACK of the last one, and Linux delays that ACK (up to 40 ms) because
 * we have nothing to send until the frame is whole.  quickack_rearm() has
 * the kernel send the pending ACK now.  Call it when a read leaves a
 * partial frame buffered: a peer that writes whole frames never costs the
 * system call.
 */
#pragma once

void quickack_rearm(int fd);
