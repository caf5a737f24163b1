# SPDX-License-Identifier: Apache-2.0
"""One real TVM client measuring one session: set-up, bulk transfers, calls.

Run with a TVM peer's environment (. PEER/ENV.sh).  Prints one JSON object:
setup_s (REQUEST or connect -> first call answered), up_mib_s / down_mib_s
(upload / download of --mib MiB through the session), calls_per_s (small
calls to addone) and the client's CPU time.  Used by bench/tvm_sessions.sh.

  python3 tvm_session_client.py tracker HOST PORT KEY KERNEL.so [--mib N]
  python3 tvm_session_client.py direct HOST PORT KEY KERNEL.so [--mib N]
"""
import argparse
import json
import os
import resource
import time

from tvm import rpc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["tracker", "direct"])
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("key")
    ap.add_argument("kernel")
    ap.add_argument("--mib", type=int, default=32)
    ap.add_argument("--calls", type=int, default=500)
    args = ap.parse_args()

    t0 = time.perf_counter()
    if args.mode == "tracker":
        sess = rpc.connect_tracker(args.host, args.port).request(
            args.key, session_timeout=120)
    else:
        sess = rpc.connect(args.host, args.port, key=args.key,
                           session_timeout=120)
    sess.upload(args.kernel, "k.so")
    mod = sess.load_module("k.so")
    addone = mod["addone"]
    assert addone(41) == 42
    setup = time.perf_counter() - t0

    blob = os.urandom(args.mib << 20)
    t0 = time.perf_counter()
    sess.upload(bytearray(blob), "blob.bin")
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = sess.download("blob.bin")
    down = time.perf_counter() - t0
    assert bytes(back) == blob, "download differs from upload"

    t0 = time.perf_counter()
    for i in range(args.calls):
        addone(i)
    calls = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "setup_s": setup,
        "up_mib_s": args.mib / up,
        "down_mib_s": args.mib / down,
        "calls_per_s": args.calls / calls,
        "client_cpu_s": ru.ru_utime + ru.ru_stime,
    }))


if __name__ == "__main__":
    main()
