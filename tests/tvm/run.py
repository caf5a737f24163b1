#!/usr/bin/env python3
"""npufarm against real Apache TVM: the broker and agent with TVM's own client and servers.

    run.py --version 0.14|0.26 [--only A,B,C-py,C-cpp,T,U] [--cases ok,timeout,...]
           [--keep] [--baseline] [-v]

Reads NPUFARM_TVM_PEER, a colon-separated list of built TVM peers (directories with the
ENV.sh that ../shared/tvm-peer/build.sh writes), and uses the one whose ENV.sh says
TVM_PEER_VERSION=<version>.*; without one it prints why and exits 77 (meson: SKIP).
NPUFARM_BROKER_BIN and NPUFARM_AGENT_BIN name the binaries under test (meson sets them).

Topologies (each with its own broker, ledger and temp dir, everything on 127.0.0.1 with
ports the kernel picks or that were free a moment before):
  A      npufarm-agent --tvm-runtime $TVM_LIBRARY_PATH/libtvm_runtime.so
  B      TVM's Python rpc_server --through-proxy, dialling in to the broker's farm port
  C-py   TVM's Python rpc_server --tracker (registered by PUT), broker --relay-boards all
  C-cpp  TVM's C++ tvm_rpc server --tracker=..., broker --relay-boards all
  T      TVM's own flags: the broker with rpc_tracker's --host/--port/--port-end, the agent
         with rpc_server's --tracker H:P (cases listed, ok, exit only)
  U      as C-py, but the server reports --custom-addr 127.0.0.2, where nothing listens
         (cases listed, unreachable, exit only)
Cases, in this order, on the one board of each topology, each one real TVM client process
(client.py, in the peer's environment, with a hard timeout):
  listed     GET /v1/boards shows the board, its kind and who relays it (agent/proxy/broker)
  ok         upload the kernels, load_module, addone(41) == 42
  exception  fail() -> RPCError carrying the kernel's message
  big        32 MiB upload and download, content compared
  no-deadline  session_timeout=0 (TVM's default: no deadline), a 3 s call returns
  timeout    hang() with session_timeout=2 -> RPCSessionTimeoutError (a TimeoutError);
             the clean-up call after it fails cleanly too; the client process lives on
  second     right after the timeout, a new session on the same board works (as ok)
  crash      crash() (SIGSEGV on the board) -> RPCError, not kShutdown
  after      after the crash, a new session on the board works (as ok)
  float-timeout  hang() with session_timeout=2.5 (sent as "-timeout=2.5", which tvm_rpc
             cannot parse): RPCSessionTimeoutError, the board free again
  upload-timeout  64 MiB uploads one after the other with session_timeout=2: the deadline
             (most likely mid-upload) gives RPCSessionTimeoutError, the board is free again
  connect    (B) rpc.connect(BROKER, PORT, key=KEY), TVM's standalone-proxy use, works
  vanish     (A) the client is killed while hang() runs: the lease is 'lost', the board
             free again (TVM's servers hold it until their own deadline: not tested there)
  unreachable  (U) the tuner's request fails at once, /v1/boards marks the board with the
             reason, the lease is 'lost' with it, a board_unreachable event is in the ledger
  exit       SIGTERM: the agent and the broker exit 0 (a sanitizer report would not)
After each session case: the client exited 0 with the expected result or exception class;
exactly one new row in the ledger's `leases` table, with the expected outcome (for
exception, the kernel's message in `detail`), relayed (session_start_us, requests), its
exception count (0 for ok) and, for big, 32 MiB counted each way, on the same board as the
case before; and the board idle with a free slot again in GET /v1/boards.

run.py --mixed: one broker with boards of both versions at once (see mixed()); needs both.

Exit status: 0 every check passed, 1 some failed, 77 no peer of this version.  Timings are
never pass/fail criteria; the hard timeouts are only there against hangs.
"""
import argparse
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_MSG = "npu operator library: invalid descriptor 0x2a"
SKIP = 77
CLIENT_TIMEOUT = 90  # seconds; a hung client is a failure, never a wait
KEYS = {"A": "tvmt-agent", "B": "tvmt-proxy", "C-py": "tvmt-relaypy", "C-cpp": "tvmt-relaycpp",
        "T": "tvmt-tvmflags", "U": "tvmt-unreachable"}
TOPOLOGIES = ["A", "B", "C-py", "C-cpp", "T", "U"]
# the ledger outcome each case must end with
OUTCOME = {"ok": "ok", "exception": "exception", "big": "ok", "timeout": "timeout",
           "second": "ok", "crash": "crash", "after": "ok", "upload-timeout": "timeout",
           "vanish": "lost", "unreachable": "lost", "no-deadline": "ok",
           "float-timeout": "timeout", "connect": "ok"}
CASES = ["listed", "ok", "exception", "big", "no-deadline", "timeout", "second", "crash", "after",
         "float-timeout", "upload-timeout", "connect", "vanish", "unreachable", "exit"]
# what GET /v1/boards says of each topology's board: kind, and who relays its sessions
LISTED = {"A": ("agent", "agent"), "B": ("proxy", "proxy"), "C-py": ("tvm", "broker"),
          "C-cpp": ("tvm", "broker"), "T": ("agent", "agent"), "U": ("tvm", "broker")}
# T is about the flags, U about a board the broker cannot reach, not the sessions
ONLY_CASES = {"T": ("listed", "ok", "exit"), "U": ("listed", "unreachable", "exit")}
# the case that shows the board is leasable, unaided, after the one before it
DEPENDS = {"timeout": "second", "crash": "after"}
VERBOSE = False
BASELINE = False  # --baseline: C-* without --relay-boards all (what tuners get without the relay)


def skipped(topo, case):
    """Whether @case is not one of @topo's."""
    return (case not in ONLY_CASES.get(topo, CASES) or (case == "unreachable" and topo != "U")
            or (case == "vanish" and topo != "A") or (case == "connect" and topo != "B"))


def log(*a):
    print(*a, flush=True)


def debug(*a):
    if VERBOSE:
        print("   .", *a, flush=True)


# ---------------------------------------------------------------------------- the peer

def find_peer(version):
    """The peer dir in NPUFARM_TVM_PEER whose ENV.sh has TVM_PEER_VERSION=<version>.*"""
    seen = []
    for d in filter(None, os.environ.get("NPUFARM_TVM_PEER", "").split(":")):
        env_sh = os.path.join(d, "ENV.sh")
        try:
            with open(env_sh) as f:
                m = re.search(r"^export TVM_PEER_VERSION=(\S+)", f.read(), re.M)
        except OSError:
            seen.append(f"{d}: no ENV.sh")
            continue
        have = m.group(1) if m else "?"
        seen.append(f"{d}: {have}")
        if have == version or have.startswith(version + "."):
            return os.path.abspath(d), seen
    return None, seen


def peer_environment(peer):
    """The environment `. ENV.sh` gives (from bash, as a user would have it)."""
    out = subprocess.run(["bash", "-c", '. "$1/ENV.sh" >/dev/null && env -0', "bash", peer],
                         check=True, stdout=subprocess.PIPE, timeout=30).stdout
    env = {}
    for item in out.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode()] = v.decode()
    return env


def free_port():
    """A port free now (for TVM's servers, which need a --port/--port-end range)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---------------------------------------------------------------------------- processes

class Procs:
    """Every process this run starts, each the leader of its own process group, so that
    TVM's popen_worker children and session children go with it."""

    every = []  # all instances: what a signal to the runner must clean up

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        Procs.every.append(self)

    def start(self, name, argv, env, cwd=None):
        path, n = os.path.join(self.tmp, name + ".log"), 1
        while os.path.exists(path):  # a restart: a log of its own
            n += 1
            path = os.path.join(self.tmp, f"{name}-{n}.log")
        f = open(path, "ab")
        debug("start", name, " ".join(argv))
        p = subprocess.Popen(argv, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             cwd=cwd or self.tmp, start_new_session=True)
        f.close()
        p.name, p.logpath = name, path
        self.procs.append(p)
        return p

    def stop(self, p, grace=5.0):
        """SIGTERM the group, SIGKILL what is left; the leader's exit status (or -signal)."""
        if p not in self.procs:
            return p.returncode
        self.procs.remove(p)
        if p.poll() is not None:  # died already: say so, and take its group with it
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return p.returncode
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # the group may outlive its leader (children of a TVM server): finish it
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return p.returncode

    def stop_all(self):
        for p in reversed(list(self.procs)):
            self.stop(p)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("      | " + l for l in lines[-n:])


def head(path, n=2):
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("      | " + l for l in lines[:n])


def sanitizer_env(env):
    """The binaries may be an ASan/UBSan build: make any report end the process."""
    env = dict(env)
    env.setdefault("ASAN_OPTIONS", "halt_on_error=1:abort_on_error=1:detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    return env


class Broker:
    def __init__(self, procs, tmp, extra):
        self.procs, self.tmp = procs, tmp
        self.db = os.path.join(tmp, "npufarm.db")
        ready = os.path.join(tmp, "ready.json")
        if os.path.exists(ready):
            os.unlink(ready)  # a restart: never read the last broker's ports
        listen = [] if "--port" in extra else ["--listen", "127.0.0.1:0"]
        argv = [os.environ["NPUFARM_BROKER_BIN"]] + listen + ["--http", "127.0.0.1:0",
                "--db", self.db, "--ready-file", ready, "--data-dir", os.path.join(tmp, "data"), "-v"] + extra
        self.p = procs.start("broker", argv, sanitizer_env(os.environ))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise Failure(f"broker exited with status {self.p.returncode} at start-up "
                              f"(flags {' '.join(extra) or 'none'}):\n{head(self.p.logpath, 2)}")
            try:
                with open(ready) as f:
                    r = json.load(f)
                self.farm = r["farm"][0]
                self.http = r["http"]
                break
            except (OSError, ValueError, KeyError, IndexError):
                time.sleep(0.05)
        else:
            raise Failure("broker did not write its ready file in 20 s")
        self.host, port = self.farm.rsplit(":", 1)
        self.port = int(port)

    def alive(self):
        return self.p.poll() is None

    def get(self, path):
        h, p = self.http.rsplit(":", 1)
        c = http.client.HTTPConnection(h, int(p), timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return json.loads(r.read())
        finally:
            c.close()

    def boards(self, key):
        return [b for b in self.get("/v1/boards")["boards"] if b.get("key") == key]

    def leases(self, after_id=0):
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            con.row_factory = sqlite3.Row
            return [dict(r) for r in con.execute(
                "SELECT id, key, board_id, outcome, detail, granted_us, released_us, session_start_us,"
                " requests, exceptions, bytes_to_board, bytes_to_client FROM leases"
                " WHERE id > ? ORDER BY id", (after_id,))]
        finally:
            con.close()

    def last_lease_id(self):
        try:
            rows = self.leases()
        except sqlite3.Error:
            return 0
        return rows[-1]["id"] if rows else 0


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------- a topology

class Topology:
    def __init__(self, name, peer, penv, kernel, tmp, procs, key=None):
        self.name, self.peer, self.penv, self.kernel = name, peer, penv, kernel
        self.tmp, self.procs = tmp, procs
        self.key = key or KEYS[name]
        self.server = None
        self.board_id = None
        self.version = penv["TVM_PEER_VERSION"]

    # -- set-up
    def start(self):
        extra = ["--relay-boards", "all"] if self.name[0] in "CU" and not BASELINE else []
        if self.name == "T":  # TVM rpc_tracker's own flags
            p = free_port()
            extra = ["--host", "127.0.0.1", "--port", str(p), "--port-end", str(p + 10)]
        self.broker = Broker(self.procs, self.tmp, extra)
        debug(f"broker farm {self.broker.farm} http {self.broker.http}")
        self.start_server()
        self.wait_free("after start-up", 60)

    def start_server(self):
        b, pe, key = self.broker, self.penv, self.key
        if self.name in ("A", "T"):
            runtime = os.path.join(pe["TVM_LIBRARY_PATH"], "libtvm_runtime.so")
            wd = os.path.join(self.tmp, f"agent-work-{key}")
            os.makedirs(wd, exist_ok=True)
            # T: rpc_server's own --tracker H:P --key K
            where = ["--tracker" if self.name == "T" else "--broker", b.farm]
            argv = [os.environ["NPUFARM_AGENT_BIN"]] + where + ["--key", key, "--name", f"board-{key}",
                    "--tvm-runtime", runtime, "--workdir", wd, "-v"]
            # a board with only the agent: no TVM Python, no LD_LIBRARY_PATH
            self.server = self.procs.start("agent", argv, sanitizer_env(os.environ))
        elif self.name == "B":
            argv = ["python3", "-m", "tvm.exec.rpc_server", "--through-proxy", "--host", b.host,
                    "--port", str(b.port), "--key", key]
            self.server = self.procs.start("rpc_server", argv, pe)
        elif self.name in ("C-py", "U"):
            p = free_port()
            argv = ["python3", "-m", "tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(p),
                    "--port-end", str(p + 1), "--tracker", b.farm, "--key", key]
            if self.name == "U":  # it listens on 127.0.0.1 only: the broker's dial is refused
                argv += ["--custom-addr", "127.0.0.2"]
            self.server = self.procs.start("rpc_server", argv, pe)
        elif self.name == "C-cpp":
            p = free_port()
            wd = os.path.join(self.tmp, f"cpp-work-{key}")
            os.makedirs(wd, exist_ok=True)
            argv = [pe["TVM_RPC_BIN"], "server", "--host=127.0.0.1", f"--port={p}", f"--port-end={p + 1}",
                    f"--tracker={b.farm}", f"--key={key}", f"--work-dir={wd}"]
            self.server = self.procs.start("tvm_rpc", argv, pe, cwd=wd)

    def restart_server(self):
        self.procs.stop(self.server)
        self.start_server()

    def python_server_v026(self):
        return self.name in ("B", "C-py") and not self.version.startswith("0.14")

    # -- checks
    def wait_free(self, when, timeout=20):
        """The board is leasable: live in /v1/boards, idle, with a free slot."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.broker.alive():
                raise Failure(f"broker died (status {self.broker.p.returncode}):\n{tail(self.broker.p.logpath)}")
            if self.server.poll() is not None:
                raise Failure(f"{self.server.name} exited with status {self.server.returncode} {when}:\n"
                              f"{tail(self.server.logpath)}")
            try:
                bs = self.broker.boards(self.key)
            except (OSError, ValueError) as e:
                bs, last = [], f"GET /v1/boards: {e}"
            for bd in bs:
                if bd.get("state") == "idle" and (bd.get("free") or 0) >= 1:
                    return bd
            if bs:
                last = [{k: bd.get(k) for k in ("id", "kind", "state", "free", "detail")} for bd in bs]
            time.sleep(0.2)
        raise Failure(f"board not leasable {when} within {timeout} s; /v1/boards for {self.key}: {last}")

    def run_client(self, case):
        ccase = {"second": "ok", "after": "ok", "unreachable": "ok", "no-deadline": "slow",
                 "float-timeout": "timeout"}.get(case, case)
        case = "listed" if case == "summary" else case
        st = {"timeout": 2, "upload-timeout": 2, "no-deadline": 0, "float-timeout": 2.5}.get(case, 60)
        argv = ["python3", os.path.join(HERE, "client.py"), self.broker.host, str(self.broker.port),
                self.key, ccase, self.kernel, str(st)]
        t0 = time.monotonic()
        try:
            r = subprocess.run(argv, env=self.penv, cwd=self.tmp, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=CLIENT_TIMEOUT, start_new_session=True)
        except subprocess.TimeoutExpired as e:
            raise Failure(f"client hung: killed after {CLIENT_TIMEOUT} s; stderr:\n"
                          + "\n".join("      | " + l for l in (e.stderr or b"").decode(errors="replace")
                                      .splitlines()[-10:]))
        took = time.monotonic() - t0
        out = r.stdout.decode(errors="replace")
        err = r.stderr.decode(errors="replace")
        with open(os.path.join(self.tmp, f"client-{case}.log"), "w") as f:
            f.write(f"$ {' '.join(argv)}\nexit {r.returncode} after {took:.2f} s\n--- stdout\n{out}\n--- stderr\n{err}")
        res = None
        for line in out.splitlines():
            if line.startswith("RESULT "):
                res = json.loads(line[7:])
        if r.returncode != 0 or res is None:
            raise Failure(f"client process died: exit status {r.returncode}"
                          f"{' (255: the v0.26 client aborted)' if r.returncode == 255 else ''}, "
                          f"stage {res and res.get('stage')}; stderr:\n"
                          + "\n".join("      | " + l for l in err.splitlines()[-8:]))
        debug(f"client {case}: {took:.2f} s {json.dumps(res)[:400]}")
        return res

    def check_result(self, case, res):
        err = res.get("error")
        if res["stage"] == "request":
            raise Failure(f"request failed: {err['type']}: {last_line(err['message'])}")
        if case in ("ok", "second", "after", "connect"):
            if err or res.get("value") != 42:
                raise Failure(f"addone(41) = {res.get('value')!r}, error {short(err)} at {res['stage']}")
        elif case == "no-deadline":
            if err or res.get("value") != 3000:
                raise Failure(f"sleep_ms(3000) with session_timeout=0 (no deadline) = {res.get('value')!r}, "
                              f"error {short(err)} at {res['stage']}")
        elif case == "big":
            if err or not res.get("same"):
                raise Failure(f"32 MiB round trip: stage {res['stage']}, sizes {res.get('sizes')}, "
                              f"same {res.get('same')}, error {short(err)}")
        elif case == "exception":
            if not err or res["stage"] != "calling fail":
                raise Failure(f"fail() did not raise at the call: stage {res['stage']}, error {short(err)}")
            if not err["is_rpc_error"] or err["kshutdown"] or KERNEL_MSG not in err["message"]:
                raise Failure(f"fail() raised {short(err)}; want RPCError with {KERNEL_MSG!r}")
        elif case in ("timeout", "float-timeout"):
            if not err or res["stage"] != "calling hang":
                raise Failure(f"hang() did not raise at the call: stage {res['stage']}, error {short(err)}")
            if not (err["is_session_timeout"] and err["is_timeout_error"]):
                raise Failure(f"hang() raised {short(err)}; want RPCSessionTimeoutError (a TimeoutError)")
            fu = res.get("followup") or {}
            if fu.get("type") is not None and (fu.get("kshutdown") or not fu.get("is_rpc_error")):
                raise Failure(f"hang() gave RPCSessionTimeoutError, but the clean-up call after it raised "
                              f"{short(fu)}")
        elif case == "upload-timeout":
            if not err or res["stage"] != "uploading":
                raise Failure(f"64 MiB uploads with session_timeout=2: stage {res['stage']} after "
                              f"{res.get('uploads')} uploads, error {short(err)}")
            if not (err["is_session_timeout"] and err["is_timeout_error"]) or err["kshutdown"]:
                raise Failure(f"the deadline during 64 MiB uploads raised {short(err)} after "
                              f"{res.get('uploads')} uploads; want RPCSessionTimeoutError")
        elif case == "crash":
            if not err or res["stage"] != "calling crash":
                raise Failure(f"crash() did not raise at the call: stage {res['stage']}, error {short(err)}")
            if not err["is_rpc_error"] or err["kshutdown"]:
                raise Failure(f"crash() raised {short(err)}; want RPCError, not kShutdown")
            fu = res.get("followup") or {}
            if fu.get("type") is not None and (fu.get("kshutdown") or not fu.get("is_rpc_error")):
                raise Failure(f"crash() gave RPCError, but the clean-up call after it raised {short(fu)}")

    def check_ledger(self, case, before):
        """Exactly one new lease, ended with the case's outcome, on this topology's board."""
        want = OUTCOME[case]
        deadline = time.monotonic() + 15
        rows = []
        while time.monotonic() < deadline:
            rows = self.broker.leases(before)
            if rows and all(r["released_us"] is not None and r["outcome"] is not None for r in rows):
                break
            time.sleep(0.2)
        desc = [(r["id"], r["outcome"], (r["detail"] or "")[:160]) for r in rows]
        if len(rows) != 1:
            raise Failure(f"ledger: {len(rows)} new lease rows, want 1: {desc}")
        r = rows[0]
        if r["outcome"] != want:
            raise Failure(f"ledger: outcome {r['outcome']!r}, want {want!r}; detail {r['detail']!r:.300}")
        if case == "exception" and KERNEL_MSG not in (r["detail"] or ""):
            raise Failure(f"ledger: exception detail lacks the kernel's message: {r['detail']!r:.300}")
        # every topology's sessions are relayed (by the broker, or the agent's): the counters
        if r["session_start_us"] is None or not r["requests"]:
            raise Failure(f"ledger: not a relayed session: session_start_us {r['session_start_us']}, "
                          f"requests {r['requests']}")
        want_exc = 0 if want in ("ok", "lost") else 1
        if (r["exceptions"] or 0) < want_exc or (want_exc == 0 and r["exceptions"]):
            raise Failure(f"ledger: exceptions {r['exceptions']}, want {'0' if want_exc == 0 else '>= 1'}")
        if case == "big" and min(r["bytes_to_board"] or 0, r["bytes_to_client"] or 0) < 32 << 20:
            raise Failure(f"ledger: a 32 MiB round trip counted bytes_to_board {r['bytes_to_board']}, "
                          f"bytes_to_client {r['bytes_to_client']}")
        if self.board_id is not None and r["board_id"] != self.board_id:
            raise Failure(f"ledger: board {r['board_id']}, but the earlier sessions had board {self.board_id}")
        self.board_id = r["board_id"]
        return r

    def check_listed(self):
        want_kind, want_relay = LISTED[self.name]
        if BASELINE and self.name.startswith("C"):
            want_relay = "none"
        bs = self.broker.boards(self.key)
        got = [(b.get("kind"), b.get("relay"), b.get("state")) for b in bs]
        if len(bs) != 1 or got[0][:2] != (want_kind, want_relay):
            raise Failure(f"/v1/boards for {self.key}: (kind, relay, state) {got}, "
                          f"want one board ({want_kind!r}, {want_relay!r})")
        # and TVM's own view (query_rpc_tracker): the key with its free board
        res = self.run_client("summary")
        qi = res.get("queue_info") or {}
        if qi.get("free") != 1 or self.key not in res.get("text", ""):
            raise Failure(f"TVM's SUMMARY for {self.key}: queue_info {qi}, text_summary:\n"
                          + "\n".join("      | " + l for l in res.get("text", "").splitlines()))
        return f"kind {want_kind}, relay {want_relay}; SUMMARY free {qi.get('free')}"

    def check_exit(self):
        """SIGTERM ends the board's side and the broker cleanly (status 0): a sanitizer
        report at exit, or a crash on the way out, is a failure."""
        bad = []
        if self.name in ("A", "T"):
            st = self.procs.stop(self.server)
            if st != 0:
                bad.append(f"agent exited with status {st} on SIGTERM:\n{tail(self.server.logpath, 8)}")
        else:
            self.procs.stop(self.server)
        st = self.procs.stop(self.broker.p)
        if st != 0:
            bad.append(f"broker exited with status {st} on SIGTERM:\n{tail(self.broker.p.logpath, 8)}")
        if bad:
            raise Failure("\n".join(bad))
        return "agent and broker exited 0" if self.name in ("A", "T") else "broker exited 0"

    def check_unreachable(self):
        """A registered board the broker cannot reach: the tuner gets an error at once (TVM's
        MISMATCH, on which a tuner's request() asks again), the lease is lost with the reason,
        and the ledger's events say the board was unreachable."""
        before = self.broker.last_lease_id()
        res = self.run_client("unreachable")
        if res["stage"] != "request" or not res.get("error"):
            raise Failure(f"a session with an unreachable board got to stage {res['stage']}: {short(res.get('error'))}")
        # marked as such (until it registers again, some 8 s later): not idle, with the reason
        marks = [(b.get("state"), b.get("detail")) for b in self.broker.boards(self.key)]
        if not any(st != "idle" and "127.0.0.2" in (d or "") for st, d in marks):
            raise Failure(f"/v1/boards right after the failed dial: (state, detail) {marks}; want the board "
                          f"marked with the reason")
        deadline, rows = time.monotonic() + 15, []
        while time.monotonic() < deadline:
            rows = self.broker.leases(before)
            if rows and rows[0]["outcome"] is not None:
                break
            time.sleep(0.2)
        desc = [(r["id"], r["outcome"], r["detail"]) for r in rows]
        if len(rows) != 1 or rows[0]["outcome"] != "lost" or "127.0.0.2" not in (rows[0]["detail"] or ""):
            raise Failure(f"ledger: new leases {desc}, want one 'lost' naming the board's address 127.0.0.2")
        con = sqlite3.connect(f"file:{self.broker.db}?mode=ro", uri=True, timeout=10)
        try:
            ev = con.execute("SELECT detail FROM events WHERE kind = 'board_unreachable'").fetchall()
        finally:
            con.close()
        if len(ev) != 1:
            raise Failure(f"ledger: {len(ev)} board_unreachable events, want 1: {ev}")
        return (f"client: {short(res['error'])}; board {marks[0][0]}; ledger lost: {rows[0]['detail']}")

    def check_vanish(self):
        """The tuner dies (SIGKILL) while hang() runs on the board: the lease ends 'lost' and
        the agent has the board free again long before the session's 60 s deadline."""
        before = self.broker.last_lease_id()
        argv = ["python3", os.path.join(HERE, "client.py"), self.broker.host, str(self.broker.port),
                self.key, "vanish", self.kernel, "60"]
        p = subprocess.Popen(argv, env=self.penv, cwd=self.tmp, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline = time.monotonic() + CLIENT_TIMEOUT
            line = b""
            while time.monotonic() < deadline and not line.startswith(b"CALLING"):
                line = p.stdout.readline()
                if not line:
                    break
            if not line.startswith(b"CALLING"):
                raise Failure(f"the client never got to call hang(): {line!r}")
            time.sleep(0.5)  # let the call reach the board
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
            p.stdout.close()
        row = self.check_ledger("vanish", before)
        self.wait_free("after the client vanished", 20)
        return f"ledger {row['outcome']}: {(row['detail'] or '')[:120]}"

    def run_case(self, case):
        if case == "vanish":
            return self.check_vanish()
        if case == "unreachable":
            return self.check_unreachable()
        if case == "listed":
            return self.check_listed()
        if case == "exit":
            return self.check_exit()
        before = self.broker.last_lease_id()
        res = self.run_client(case)
        self.check_result(case, res)
        row = self.check_ledger(case, before)
        if case == "crash" and self.python_server_v026():
            # TVM v0.26's rpc_server stops serving after a session child that exits
            # non-zero (tvm-ffi-era.md 5.2): its own behaviour, which a farm answers by
            # restarting it.  The next case checks the board is leasable again.
            try:
                self.wait_free("after the crash", 8)
                return f"v0.26 rpc_server kept serving after the crash; ledger {row['outcome']}"
            except Failure:
                pass
            note = "v0.26 rpc_server stopped serving after the crash (TVM's own, 5.2): restarted"
            self.restart_server()
            self.board_id = None  # a restarted proxy/registered server may be a new board row
            self.wait_free("after the restart", 60)
            return f"{note}; ledger {row['outcome']}"
        self.wait_free(f"after {case}")
        if case == "upload-timeout":
            return (f"{res.get('uploads')} uploads before the deadline; ledger {row['outcome']}: "
                    f"{(row['detail'] or '')[:90]}")
        return f"ledger {row['outcome']}"


def last_line(s):
    s = (s or "").strip().splitlines()
    return s[-1][:300] if s else ""


def short(e):
    """An exception in one line: its class and the line of its text that says most."""
    if not e or e.get("type") is None:
        return "nothing"
    lines = [l.strip() for l in e["message"].strip().splitlines() if l.strip()]
    pick = next((l for l in lines if "kShutdown" in l or "kReturn) is false: code=1" in l), None)
    if pick is None:
        useful = [l for l in lines if not l.startswith(("Traceback", "[bt]", "File ", "at "))]
        pick = (useful[0] if useful and not lines[0].startswith("Traceback") else
                useful[-1] if useful else lines[0] if lines else "")
    if pick.endswith("Traceback (most recent call last):") and lines[-1] != pick:
        pick = pick[: -len("Traceback (most recent call last):")] + "... " + lines[-1]
    return f"{e['module']}.{e['type']}: {pick[:300]!r}"


# ---------------------------------------------------------------------------- main

def recover(t, procs, topo, case):
    """After a failed case, give the next case a leasable board: the board as it is if
    it is free, else a restarted board server, else a restarted broker and board."""
    try:
        if t.broker.alive() and t.server.poll() is None:
            t.wait_free("(recovering)", 10)
            return "as-is"
    except Failure:
        pass
    try:
        if t.broker.alive():
            log(f"   (restarting {topo}'s board server for the next case)")
            t.restart_server()
            t.board_id = None
            t.wait_free("after its restart", 60)
            return "restarted"
    except Failure as e:
        log(f"   board restart did not help: {e}")
    try:
        log(f"   (restarting {topo}'s broker and board for the next case)")
        procs.stop_all()
        t.board_id = None
        t.start()
        return "restarted"
    except Failure as e:
        log(f"   restart failed: {e}")
        return False


def mixed(args):
    """One broker (--relay-boards all), six boards: an agent, a proxy rpc_server and a
    registered tvm_rpc for each of v0.14 and v0.26, under keys of their own.  Every board
    gets a timeout at the same moment, from clients of its own version, then a crash, then
    a working session: each session is answered in its own dialect (a v0.14-form exception
    would end a v0.26 client with status 255), whatever the others speak."""
    peers = {}
    for v in ("0.14", "0.26"):
        peer, seen = find_peer(v)
        if peer is None:
            log(f"SKIP: the mixed farm needs peers of 0.14 and 0.26 in NPUFARM_TVM_PEER "
                f"({'; '.join(seen) or 'unset'})")
            return SKIP
        peers[v] = peer
    tmp = tempfile.mkdtemp(prefix="npufarm-tvm-mixed-")
    log(f"mixed farm: TVM {peers['0.14']} and {peers['0.26']}; logs in {tmp}")
    procs = Procs(tmp)
    results = []
    try:
        boards = []
        broker = Broker(procs, tmp, ["--relay-boards", "all"])
        for v, peer in peers.items():
            penv = peer_environment(peer)
            kernel = os.path.join(tmp, f"kernels-{v}.so")
            src = "kernels_v014.c" if v == "0.14" else "kernels_ffi.c"
            subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", kernel, os.path.join(HERE, src)],
                           check=True)
            for name in ("A", "B", "C-cpp"):
                t = Topology(name, peer, penv, kernel, tmp, procs, key=f"mix-{name}-{v}")
                t.broker = broker
                t.start_server()
                boards.append(t)
        for t in boards:
            t.wait_free("after start-up", 60)
        import threading

        for case in ("timeout", "crash", "ok"):
            before = broker.last_lease_id()
            out = {}

            def one(t):
                try:
                    res = t.run_client(case)
                    t.check_result(case, res)
                    out[t.key] = None
                except Failure as e:
                    out[t.key] = str(e)
                except Exception as e:  # noqa: BLE001
                    out[t.key] = f"runner error: {type(e).__name__}: {e}"

            th = [threading.Thread(target=one, args=(t,)) for t in boards]
            for x in th:
                x.start()
            for x in th:
                x.join()
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                rows = broker.leases(before)
                if len(rows) >= len(boards) and all(r["outcome"] for r in rows):
                    break
                time.sleep(0.2)
            for t in boards:
                err = out.get(t.key)
                mine = [r for r in rows if r["key"] == t.key]
                if err is None and [r["outcome"] for r in mine] != [OUTCOME[case]]:
                    err = f"ledger: {[(r['outcome'], r['detail']) for r in mine]}, want one {OUTCOME[case]!r}"
                if err is None:
                    try:
                        if case == "crash" and t.python_server_v026():
                            try:  # TVM's own behaviour (tvm-ffi-era.md 5.2): restart it
                                t.wait_free("after the crash", 8)
                            except Failure:
                                t.restart_server()
                        t.wait_free(f"after {case}")
                    except Failure as e:
                        err = str(e)
                results.append((t.key, case, err is None))
                log(f"{'ok' if err is None else 'not ok'} - mixed {t.key} {case} (all {len(boards)} at once)"
                    + ("" if err is None else ":\n   " + err.replace("\n", "\n   ")))
        for t in boards:
            if t.name == "A":
                st = procs.stop(t.server)
                results.append((t.key, "exit", st == 0))
                log(f"{'ok' if st == 0 else 'not ok'} - mixed {t.key} agent exit status {st}")
        st = procs.stop(broker.p)
        results.append(("broker", "exit", st == 0))
        log(f"{'ok' if st == 0 else 'not ok'} - mixed broker exit status {st}")
    except Failure as e:
        log(f"not ok - mixed farm set-up: {e}")
        results.append(("setup", "setup", False))
    finally:
        procs.stop_all()
    npass = sum(1 for r in results if r[2])
    log(f"mixed farm: {npass}/{len(results)} checks passed")
    failed = npass != len(results)
    if failed or args.keep:
        log(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", help="0.14 or 0.26")
    ap.add_argument("--mixed", action="store_true",
                    help="one broker with boards of both versions, sessions at once (needs both peers)")
    ap.add_argument("--only", help="comma-separated topologies (A,B,C-py,C-cpp)")
    ap.add_argument("--cases", help="comma-separated cases (default: all, in order)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, ledgers)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--baseline", action="store_true",
                    help="C-py, C-cpp without --relay-boards all: today's direct connection, for comparison")
    args = ap.parse_args()
    VERBOSE = args.verbose
    global BASELINE
    BASELINE = args.baseline
    if args.mixed or not args.version:
        if not args.mixed:
            ap.error("--version or --mixed is required")
        for var in ("NPUFARM_BROKER_BIN", "NPUFARM_AGENT_BIN"):
            if not os.access(os.environ.get(var, ""), os.X_OK):
                log(f"FAIL: {var} is not set to an executable (meson sets it)")
                return 1
        return mixed(args)

    peer, seen = find_peer(args.version)
    if peer is None:
        log(f"SKIP: no TVM peer of version {args.version} in NPUFARM_TVM_PEER "
            f"({'; '.join(seen) or 'unset'}): set NPUFARM_TVM_PEER=DIR[:DIR] to built peers "
            f"(../shared/tvm-peer/build.sh)")
        return SKIP
    for var in ("NPUFARM_BROKER_BIN", "NPUFARM_AGENT_BIN"):
        if not os.access(os.environ.get(var, ""), os.X_OK):
            log(f"FAIL: {var} is not set to an executable (meson sets it)")
            return 1
    penv = peer_environment(peer)
    version = penv.get("TVM_PEER_VERSION", "?")
    topologies = args.only.split(",") if args.only else TOPOLOGIES
    for x in topologies:
        if x not in TOPOLOGIES:
            ap.error(f"unknown topology {x!r} (known: {', '.join(TOPOLOGIES)})")
    cases = args.cases.split(",") if args.cases else CASES
    for x in cases:
        if x not in CASES:
            ap.error(f"unknown case {x!r} (known: {', '.join(CASES)})")
    tmp_root = tempfile.mkdtemp(prefix=f"npufarm-tvm-{args.version}-")
    log(f"TVM peer {version} at {peer}; broker {os.environ['NPUFARM_BROKER_BIN']}; logs in {tmp_root}")

    src = "kernels_v014.c" if version.startswith("0.14") else "kernels_ffi.c"
    kernel = os.path.join(tmp_root, "kernels.so")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", kernel, os.path.join(HERE, src)], check=True)

    results = []  # (topology, case, ok, text)
    t_all = time.monotonic()
    for topo in topologies:
        tmp = os.path.join(tmp_root, topo)
        os.makedirs(tmp)
        procs = Procs(tmp)
        t = Topology(topo, peer, penv, kernel, tmp, procs)
        try:
            try:
                t.start()
            except Failure as e:
                for c in cases:
                    if skipped(topo, c):
                        continue
                    results.append((topo, c, False, f"set-up failed: {e}"))
                    log(f"not ok - v{version} {topo} {c}: set-up failed")
                log(f"   {e}")
                continue
            restarted_before = None
            for c in cases:
                if skipped(topo, c):
                    continue
                t0 = time.monotonic()
                try:
                    text = t.run_case(c)
                    ok = True
                except Failure as e:
                    ok, text = False, str(e)
                except Exception as e:  # noqa: BLE001 -- a runner bug is a failure too, named
                    ok, text = False, f"runner error: {type(e).__name__}: {e}"
                if ok and restarted_before == c:
                    ok, text = False, (f"passed, but only after the board had to be restarted "
                                       f"following {cases[cases.index(c) - 1]}")
                restarted_before = None
                results.append((topo, c, ok, text))
                log(f"{'ok' if ok else 'not ok'} - v{version} {topo} {c} ({time.monotonic() - t0:.1f} s)"
                    + (f" # {text}" if ok else ":"))
                if not ok:
                    log("   " + text.replace("\n", "\n   "))
                if not ok and c != cases[-1] and c != "exit":
                    how = recover(t, procs, topo, c)
                    if how == "restarted" and DEPENDS.get(c) is not None:
                        restarted_before = DEPENDS[c]
                    if not how:
                        for c2 in cases[cases.index(c) + 1:]:
                            if skipped(topo, c2):
                                continue
                            results.append((topo, c2, False, "not run: could not recover the board"))
                            log(f"not ok - v{version} {topo} {c2}: not run")
                        break
        finally:
            procs.stop_all()

    npass = sum(1 for r in results if r[2])
    log("")
    log(f"TVM v{version}: {npass}/{len(results)} checks passed in {time.monotonic() - t_all:.0f} s")
    hdr = "case".ljust(15) + "".join(t.ljust(8) for t in topologies)
    log(hdr)
    for c in cases:
        row = c.ljust(15)
        for topo in topologies:
            r = [x for x in results if x[0] == topo and x[1] == c]
            row += ("PASS" if r and r[0][2] else "FAIL" if r else "-").ljust(8)
        log(row)
    failed = npass != len(results)
    if failed or args.keep:
        log(f"logs kept in {tmp_root}")
    else:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return 1 if failed else 0


def on_signal(signum, frame):
    # meson's timeout (SIGTERM) or ^C: leave through the finally clauses, which stop every
    # process this run started (they are in process groups of their own, which a signal to
    # the runner's group does not reach)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        sys.exit(main())
    finally:
        for ps in Procs.every:
            ps.stop_all()
