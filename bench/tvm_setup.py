# SPDX-License-Identifier: Apache-2.0
"""Session set-up with the real TVM Python client: REQUEST -> first call.

Run with a TVM peer's ENV.sh sourced (../shared/tvm-peer/README.md).

  python3 bench/tvm_setup.py --tracker HOST:PORT --key KEY [--rounds N]
  python3 bench/tvm_setup.py --direct HOST:PORT [--rounds N]

With --tracker it opens one tracker connection (rpc.connect_tracker, not
timed) and then, for each round, times tracker.request(KEY) plus the first
remote call (dev.exist: one kDevGetAttr round trip), closes the session
and waits --gap seconds so a board that dials back in after each session
(rpc_server --through-proxy, npufarm-agent) is free again.  With --direct
it times rpc.connect(HOST, PORT) plus the same first call: the baseline.

Prints one line: "setup_ms median=M p10=A p90=B rounds=N".  Exit 1 on any
failure.  Timings are for reading, never for pass/fail.
"""
import argparse
import statistics
import sys
import time

from tvm import rpc


def first_call(sess):
    dev = sess.cpu(0)
    if not dev.exist:
        raise RuntimeError("remote cpu(0) does not exist")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracker")
    ap.add_argument("--direct")
    ap.add_argument("--key", default="bench")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--gap", type=float, default=0.3)
    ap.add_argument("--session-timeout", type=float, default=60)
    ap.add_argument("--warmup", type=int, default=1,
                    help="untimed rounds first (they also wait for the "
                    "board to come up: up to 30 s)")
    a = ap.parse_args()
    if (a.tracker is None) == (a.direct is None):
        ap.error("give exactly one of --tracker and --direct")
    host, port = (a.tracker or a.direct).rsplit(":", 1)
    port = int(port)
    tracker = rpc.connect_tracker(host, port) if a.tracker else None
    times = []
    deadline = time.monotonic() + 30
    for _ in range(a.warmup):
        while True:
            try:
                sess = (tracker.request(a.key, priority=1,
                                        session_timeout=a.session_timeout)
                        if tracker is not None else
                        rpc.connect(host, port,
                                    session_timeout=a.session_timeout))
                first_call(sess)
                break
            except Exception:  # not up yet: retry until the deadline
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        del sess
        time.sleep(a.gap)
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        if tracker is not None:
            sess = tracker.request(a.key, priority=1,
                                   session_timeout=a.session_timeout)
        else:
            sess = rpc.connect(host, port,
                               session_timeout=a.session_timeout)
        first_call(sess)
        times.append((time.perf_counter() - t0) * 1000)
        del sess
        time.sleep(a.gap)
    times.sort()
    q = statistics.quantiles(times, n=10) if len(times) > 1 else times * 9
    print("setup_ms median=%.2f p10=%.2f p90=%.2f rounds=%d"
          % (statistics.median(times), q[0], q[-1], len(times)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
