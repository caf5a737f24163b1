# SPDX-License-Identifier: Apache-2.0
"""Session set-up and bulk transfer with the real TVM Python client.

Run with a TVM peer's ENV.sh sourced (../shared/tvm-peer/README.md).

  python3 bench/tvm_setup.py --tracker HOST:PORT --key KEY [--rounds N]
  python3 bench/tvm_setup.py --direct HOST:PORT [--rounds N]
  python3 bench/tvm_setup.py ... --transfer-mib 64 [--cpu-pid PID]

With --tracker it opens one tracker connection (rpc.connect_tracker, not
timed) and then, for each round, times tracker.request(KEY) plus the first
remote call (dev.exist: one kDevGetAttr round trip), closes the session
and waits --gap seconds so a board that dials back in after each session
(rpc_server --through-proxy, npufarm-agent) is free again.  With --direct
it times rpc.connect(HOST, PORT) plus the same first call: the baseline.
The first --warmup rounds are not timed; they also wait (up to 30 s) for
the board to come up.

Prints "setup_ms median=M p10=A p90=B rounds=N".  With --transfer-mib N it
then opens one more session and, three times, uploads N MiB
(tvm.rpc.server.upload) and downloads them again, and prints
"transfer up_mibs=U down_mibs=D up_cpu_ms=X down_cpu_ms=Y" (medians; the
CPU is that of --cpu-pid and its descendants, all threads, per
transfer, from the scheduler's ns account; -1 without one).  Exit 1 on
any failure.  Timings are for reading, never pass/fail.
"""
import argparse
import os
import statistics
import sys
import time

from tvm import rpc


def first_call(sess):
    dev = sess.cpu(0)
    if not dev.exist:
        raise RuntimeError("remote cpu(0) does not exist")


def proc_cpu_ns(pid):
    """CPU time of all of pid's threads, in ns: the scheduler's own
    account (/proc/PID/task/TID/schedstat), where /proc/PID/stat counts
    10 ms ticks, too coarse for a relay's 64 MiB."""
    total = 0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return 0
    for t in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread just ended
    return total


def tree_cpu_s(pid):
    """CPU time of pid and its descendants (all threads), in seconds."""
    if pid is None:
        return -1.0
    parent = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(d)] = int(fields[1])
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += proc_cpu_ns(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return total / 1e9


class Client:
    def __init__(self, a):
        self.a = a
        host, port = (a.tracker or a.direct).rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.tracker = (rpc.connect_tracker(self.host, self.port)
                        if a.tracker else None)

    def session(self):
        if self.tracker is not None:
            return self.tracker.request(
                self.a.key, priority=1,
                session_timeout=self.a.session_timeout)
        return rpc.connect(self.host, self.port,
                           session_timeout=self.a.session_timeout)


def warm_up(cl, a):
    deadline = time.monotonic() + 30
    for _ in range(a.warmup):
        while True:
            try:
                sess = cl.session()
                first_call(sess)
                break
            except Exception:  # not up yet: retry until the deadline
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        del sess
        time.sleep(a.gap)


def transfer(cl, a):
    blob = bytearray(os.urandom(1 << 20)) * a.transfer_mib
    up, down, up_cpu, down_cpu = [], [], [], []
    sess = cl.session()
    for _ in range(3):
        c0, t0 = tree_cpu_s(a.cpu_pid), time.perf_counter()
        sess.upload(blob, "npufarm-bench.bin")
        c1, t1 = tree_cpu_s(a.cpu_pid), time.perf_counter()
        back = sess.download("npufarm-bench.bin")
        c2, t2 = tree_cpu_s(a.cpu_pid), time.perf_counter()
        if len(back) != len(blob):
            raise RuntimeError("downloaded %d bytes of %d"
                               % (len(back), len(blob)))
        up.append(a.transfer_mib / (t1 - t0))
        down.append(a.transfer_mib / (t2 - t1))
        up_cpu.append((c1 - c0) * 1000 if c0 >= 0 else -1)
        down_cpu.append((c2 - c1) * 1000 if c0 >= 0 else -1)
    del sess
    m = statistics.median
    print("transfer up_mibs=%.0f down_mibs=%.0f up_cpu_ms=%.1f "
          "down_cpu_ms=%.1f" % (m(up), m(down), m(up_cpu), m(down_cpu)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracker")
    ap.add_argument("--direct")
    ap.add_argument("--key", default="bench")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--gap", type=float, default=0.3)
    ap.add_argument("--session-timeout", type=float, default=60)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--transfer-mib", type=int, default=0)
    ap.add_argument("--cpu-pid", type=int)
    a = ap.parse_args()
    if (a.tracker is None) == (a.direct is None):
        ap.error("give exactly one of --tracker and --direct")
    cl = Client(a)
    warm_up(cl, a)
    times = []
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        sess = cl.session()
        first_call(sess)
        times.append((time.perf_counter() - t0) * 1000)
        del sess
        time.sleep(a.gap)
    q = statistics.quantiles(times, n=10) if len(times) > 1 else times * 9
    print("setup_ms median=%.2f p10=%.2f p90=%.2f rounds=%d"
          % (statistics.median(times), q[0], q[-1], len(times)))
    if a.transfer_mib > 0:
        time.sleep(a.gap)
        transfer(cl, a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
