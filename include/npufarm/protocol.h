/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wire constants shared by every npufarm process and by TVM peers.
 *
 * The farm port multiplexes three protocols, chosen by the first four bytes
 * a peer sends (a little-endian int32 "magic"): TVM's tracker protocol, TVM's
 * RPC handshake (proxy), and the npufarm agent link.  Every framed protocol
 * here uses an int32 little-endian length prefix followed by the body.
 */
#ifndef NPUFARM_PROTOCOL_H
#define NPUFARM_PROTOCOL_H

/** TVM tracker handshake magic (RPC_TRACKER_MAGIC), bytes 71 f2 02 00. */
#define NPUFARM_TVM_TRACKER_MAGIC      0x2F271
/** TVM RPC handshake magic (RPC_MAGIC), bytes 71 f2 0f 00. */
#define NPUFARM_TVM_RPC_MAGIC          0xFF271
/** TVM RPC handshake reply: the other side's key follows. */
#define NPUFARM_TVM_RPC_CODE_SUCCESS   0xFF271
/** TVM RPC handshake reply: the key is already waiting (proxy only). */
#define NPUFARM_TVM_RPC_CODE_DUPLICATE 0xFF272
/** TVM RPC handshake reply: no server matches the key. */
#define NPUFARM_TVM_RPC_CODE_MISMATCH  0xFF273
/** npufarm agent link magic: ASCII "NPUF" read as a little-endian int32. */
#define NPUFARM_AGENT_MAGIC            0x4655504E

/** Version of the npufarm agent link protocol carried in the hello. */
#define NPUFARM_PROTOCOL_VERSION 1

/** Default and hard upper bound of one frame body, in bytes. */
#define NPUFARM_MAX_FRAME (1024 * 1024)

/** TVM tracker codes (TrackerCode in TVM's rpc/base.py). */
enum npufarm_tvm_tracker_code {
	NPUFARM_TVM_FAIL = -1,
	NPUFARM_TVM_SUCCESS = 0,
	NPUFARM_TVM_PING = 1,
	NPUFARM_TVM_STOP = 2,
	NPUFARM_TVM_PUT = 3,
	NPUFARM_TVM_REQUEST = 4,
	NPUFARM_TVM_UPDATE_INFO = 5,
	NPUFARM_TVM_SUMMARY = 6,
	NPUFARM_TVM_GET_PENDING_MATCHKEYS = 7,
};

#endif /* NPUFARM_PROTOCOL_H */
