#!/usr/bin/env python3
"""One real TVM client session, run by tests/tvm/run.py in the peer's environment
(ENV.sh sourced), so `import tvm` is that peer's Python package.

    client.py HOST PORT KEY CASE KERNEL_SO [SESSION_TIMEOUT]

CASE is one of ok, exception, timeout, crash, big, upload-timeout, summary (the tracker's SUMMARY), slow (sleep_ms(3000)), connect (ok, but
with rpc.connect(HOST, PORT, key=KEY): TVM's standalone-proxy use), vanish
(hang() with a 60 s deadline, after printing `CALLING hang`: the runner then kills the client).  The session is requested from
the tracker at HOST:PORT (the broker's farm port) exactly as a tuner does
(`connect_tracker(...).request(key, priority, session_timeout)`), with one attempt
only, so that a failed connect is seen rather than retried away.

The script prints one line `RESULT {json}` and exits 0 when it got through its
case, whatever the remote side did; the runner judges the JSON.  An exit status
other than 0 (for instance 255: a v0.26 client fed a v0.14-form exception ends its
process) or a missing RESULT line is a dead client, which the runner reports.
"""
import hashlib
import json
import os
import sys
import time


def describe(exc):
    """What the runner needs to know about an exception the TVM client raised."""
    import tvm

    err = getattr(tvm, "error", None)
    rpc_error = getattr(err, "RPCError", None)
    timeout_error = getattr(err, "RPCSessionTimeoutError", None)
    text = str(exc)
    return {
        "type": type(exc).__name__,
        "module": type(exc).__module__,
        "mro": [c.__name__ for c in type(exc).__mro__],
        "is_rpc_error": bool(rpc_error and isinstance(exc, rpc_error)),
        "is_session_timeout": bool(timeout_error and isinstance(exc, timeout_error)),
        "is_timeout_error": isinstance(exc, TimeoutError),
        # v0.26 prints the code as a name or as its number: "code=kShutdown" / "code=1"
        "kshutdown": "kShutdown" in text or "RPCCode::kReturn) is false: code=1" in text,
        "message": text[-2000:],
    }


def main():
    host, port, key, case, kernel = sys.argv[1:6]
    t = sys.argv[6] if len(sys.argv) > 6 else "60"
    session_timeout = float(t) if "." in t else int(t)  # a float is sent as "-timeout=2.5"
    from tvm import rpc

    out = {"case": case, "tvm_version": getattr(__import__("tvm"), "__version__", "?")}
    if case == "upload-timeout":  # made before the session starts: its deadline is for the uploads
        blob = bytearray(os.urandom(1 << 20)) * 64
    t0 = time.monotonic()
    if case == "connect":
        # TVM's standalone-proxy use: rpc.connect to the proxy with the board's key
        try:
            sess = rpc.connect(host, int(port), key=key, session_timeout=session_timeout)
        except Exception as e:  # noqa: BLE001
            out["stage"] = "request"
            out["error"] = describe(e)
            return out
        case = "ok"
    else:
        tracker = rpc.connect_tracker(host, int(port))
    if case == "summary":
        # what query_rpc_tracker shows: the same SUMMARY, as data and as its text
        out["queue_info"] = tracker.summary()["queue_info"].get(key)
        out["text"] = tracker.text_summary()
        out["stage"] = "done"
        return out
    try:
        if out["case"] != "connect":
            sess = tracker.request(key, priority=1, session_timeout=session_timeout, max_retry=1)
    except Exception as e:  # noqa: BLE001 -- the runner judges it
        out["stage"] = "request"
        out["error"] = describe(e)
        return out
    out["connect_s"] = round(time.monotonic() - t0, 3)
    out["stage"] = "connected"

    if case == "upload-timeout":
        # 64 MiB uploads, one after the other, until the deadline ends the session (most
        # likely in the middle of one): the clean timeout error, not a hang or kShutdown.
        out["stage"] = "uploading"
        out["uploads"] = 0
        try:
            for _ in range(200):
                sess.upload(blob, "big.bin")
                out["uploads"] += 1
            out["stage"] = "200 uploads done"
        except Exception as e:  # noqa: BLE001
            out["error"] = describe(e)
        return out

    if case == "big":
        # 32 MiB of data that is not all alike, up and back down, content compared.
        n = 32 << 20
        blob = bytearray(os.urandom(1 << 20)) * 32
        blob[n // 2 : n // 2 + 16] = b"npufarm-bigfile!"
        want = hashlib.sha256(blob).hexdigest()
        try:
            sess.upload(blob, "big.bin")
            out["stage"] = "uploaded"
            got = bytes(sess.download("big.bin"))
            out["stage"] = "downloaded"
            out["sizes"] = [len(blob), len(got)]
            out["same"] = hashlib.sha256(got).hexdigest() == want
            sess.remove("big.bin")
            out["stage"] = "done"
        except Exception as e:  # noqa: BLE001
            out["error"] = describe(e)
        return out

    t1 = None
    try:
        sess.upload(kernel, "kernels.so")
        out["stage"] = "uploaded"
        mod = sess.load_module("kernels.so")
        out["stage"] = "loaded"
        if case == "ok":
            out["value"] = mod["addone"](41)
            out["stage"] = "done"
            return out
        if case == "slow":  # a 3 s call, in a session with the deadline the runner gave
            out["stage"] = "calling sleep_ms"
            out["value"] = mod["sleep_ms"](3000)
            out["stage"] = "done"
            return out
        fname = {"exception": "fail", "timeout": "hang", "crash": "crash", "vanish": "hang"}[case]
        func = mod[fname]
        out["stage"] = "calling " + fname
        if case == "vanish":  # the runner kills this process once it reads the line
            sys.stdout.write("CALLING hang\n")
            sys.stdout.flush()
        t1 = time.monotonic()
        func()
        out["stage"] = fname + " returned"
    except Exception as e:  # noqa: BLE001
        out["error"] = describe(e)
        out["error_after_s"] = round(time.monotonic() - t1, 2) if t1 else None
    # What a tuner's clean-up does next (AutoTVM and MetaSchedule remove their
    # artifact): it must fail with the same clean error, or succeed, never
    # leave the process dead.
    if case in ("timeout", "crash"):
        try:
            sess.remove("kernels.so")
            out["followup"] = {"type": None}
        except Exception as e:  # noqa: BLE001
            out["followup"] = describe(e)
    return out


if __name__ == "__main__":
    result = main()
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
    # Let the session's destructor run (kShutdown to the board) as it does in a tuner.
    sys.exit(0)
