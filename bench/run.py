#!/usr/bin/env python3
"""ami-publisher benchmark: binary size, cold start, memory, AWS calls per
outcome, sweeps at scale (10,000 listed, a deadline, 1,000 under EC2's
throttling), fan-out and TLS, each checked against its budget.

    .venv/bin/python bench/run.py            # what `make bench` runs
    .venv/bin/python bench/run.py --skip-build --runs 5
    .venv/bin/python bench/run.py --only ebs # only the EBS reads' section
    .venv/bin/python bench/run.py --only calls --binary target/debug/ami-publisher
    .venv/bin/python bench/run.py --only deadline --binary target/release/ami-publisher
                                             # only the AWS call counts (any build)

Builds the release binaries (arm64 with cargo-lambda for the size; x86_64
with cargo for everything that has to run, since this machine cannot run
arm64), starts the local EC2 emulator (tests/emulator) and a stub of the
Lambda runtime API (here, http.server), and for the TLS section a TLS
terminator in front of the emulator (bench/tls_terminator.py), runs the
function against them, prints the tables and writes them to
bench/results.md. Exits 1 when a budget line FAILs, 2 when the benchmark
itself cannot run.

Everything is local: the emulator listens on 127.0.0.1, credentials are
dummies, and instance metadata and shared config files are switched off so
the SDK has nowhere else to go. See bench/README.md for what is measured and
why the minimum call counts are what they are.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import json
import os
import platform
import queue
import select
import signal
import ssl
import statistics
import struct
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "work"
HELLO = BENCH / "hello"
HELLO_TARGET = WORK / "hello-target"
sys.path.insert(0, str(ROOT / "tests" / "emulator"))

from harness import Emulator  # noqa: E402  (tests/emulator/harness.py)

HOME = "us-east-1"
# Copy destinations, in a fixed order: the first 4 for "publish with 4
# target regions", the first 1 / all 16 for the fan-out.
TARGETS = [
    "us-west-2", "eu-west-1", "ap-southeast-2", "sa-east-1",
    "us-east-2", "us-west-1", "ca-central-1", "eu-west-2",
    "eu-west-3", "eu-central-1", "eu-north-1", "ap-south-1",
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1",
]
DEPRECATE_AFTER_DAYS = "365"
# The ledger's table, as the function is deployed (template.yaml sets
# LEDGER_TABLE): the name the emulator creates it under in every region
# (tests/emulator/rules/ledger.py, TABLE_NAME).
LEDGER_TABLE = "ami-publisher-ledger"

# Budgets (the issue's). Sizes in decimal units: 1 MB = 1,000,000 bytes.
MAX_ARM64_BYTES = 8_000_000
MAX_COLD_START_RATIO = 3.0
MAX_PUBLISH_RSS_BYTES = 30_000_000
MAX_FANOUT_RATIO = 2.0
# Listing 10,000 tagged AMIs (10 pages of 1,000): peak RSS.
LISTED_IMAGES = 10_000
MAX_LISTING_RSS_BYTES = 32_000_000
# The deadline: 300 AMIs, 100 ms per call, a 120 s timeout. The function
# starts making an AMI public only with 7 x 15 s left (the calls it may
# need, each at its operation timeout: two writes, the quota's reads and
# `all`, and the ledger's intent and result), so it works for about 15 s
# and answers then. (At 100 s, the timeout before the ledger, no AMI could
# start: 105 s of reserve; nothing was published and the row failed.)
DEADLINE_IMAGES = 300
DEADLINE_LATENCY_MS = 100
DEADLINE_TIMEOUT_S = 120
# A sweep of 1,000 AMIs under EC2's real request throttling.
THROTTLED_IMAGES = 1000
FANOUT_LATENCY_MS = 50
# Over TLS (bench/README.md, "TLS"): a warm publish within 1.3x of the same
# over plain HTTP, a cold invocation within 2x of a warm publish, at most
# one TLS connection per region per process.
MAX_TLS_WARM_RATIO = 1.3
MAX_TLS_COLD_RATIO = 2.0
MAX_TLS_CONNECTIONS_PER_REGION = 1

# Timing needs a quiet machine: before each timed part, wait (bounded) until
# other processes use less than this share of all CPUs.
QUIET_MAX_BUSY = 0.15
QUIET_TIMEOUT_S = 300

# Bounds on every wait.
BUILD_TIMEOUT_S = 3600
START_TIMEOUT_S = 20
INVOKE_TIMEOUT_S = 300
STOP_TIMEOUT_S = 10

RUNTIME_PATH = "/2018-06-01/runtime"
# An event's deadline: Lambda's longest timeout, 15 minutes.
DEFAULT_TIMEOUT_S = 900
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:ami-publisher-bench"


class BenchError(RuntimeError):
    """The benchmark could not measure something (not a budget failure)."""


# ---------------------------------------------------------------------------
# Stub of the Lambda runtime API
# ---------------------------------------------------------------------------

@dataclass
class Result:
    request_id: str
    kind: str  # "response" or "error"
    body: Any
    delivered_ns: int
    received_ns: int

    @property
    def duration_ms(self) -> float:
        return (self.received_ns - self.delivered_ns) / 1e6


class StubRuntime:
    """The parts of the Lambda runtime API a function uses: /next hands out
    queued events (and holds the request while there is none, as Lambda
    does), /response and /error record the outcome, /init/error records a
    failed start. Times are time.perf_counter_ns(), the clock the harness
    uses to start processes."""

    def __init__(self) -> None:
        # (request id, payload, deadline in ms since the epoch)
        self._events: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self.next_ns: list[int] = []
        self.delivered_ns: dict[str, int] = {}
        self.results: dict[str, Result] = {}
        self.init_errors: list[Any] = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the real API
            # TCP_NODELAY: the body goes out in a write after the head's, and
            # with Nagle it waited for the function's delayed ACK (40 ms) on
            # some events, which was counted as handler time.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def do_GET(self) -> None:
                if self.path != f"{RUNTIME_PATH}/invocation/next":
                    self._reply(404, b'{"errorType":"NotFound"}')
                    return
                arrived = time.perf_counter_ns()
                with stub._cond:
                    stub.next_ns.append(arrived)
                    stub._cond.notify_all()
                deadline = time.monotonic() + INVOKE_TIMEOUT_S
                while not stub._closed.is_set() and time.monotonic() < deadline:
                    try:
                        request_id, payload, deadline_ms = stub._events.get(timeout=0.05)
                    except queue.Empty:
                        continue
                    self._reply(200, payload, {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    })
                    with stub._cond:
                        stub.delivered_ns[request_id] = time.perf_counter_ns()
                        stub._cond.notify_all()
                    return
                self.close_connection = True  # closed or timed out: no event

            def do_POST(self) -> None:
                received = time.perf_counter_ns()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                parts = self.path[len(RUNTIME_PATH):].strip("/").split("/")
                # invocation/<id>/response | invocation/<id>/error | init/error
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    request_id = parts[1]
                    with stub._cond:
                        stub.results[request_id] = Result(
                            request_id, parts[2], body,
                            stub.delivered_ns.get(request_id, received), received)
                        stub._cond.notify_all()
                    self._reply(202, b'{"status":"OK"}')
                elif parts == ["init", "error"]:
                    with stub._cond:
                        stub.init_errors.append(body)
                        stub._cond.notify_all()
                    self._reply(202, b'{"status":"OK"}')
                else:
                    self._reply(404, b'{"errorType":"NotFound"}')

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def push(self, payload: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
        """Queues an event whose deadline is `timeout_s` after it is queued
        (Lambda's deadline: the invocation's start plus the function's
        timeout)."""
        request_id = str(uuid.uuid4())
        deadline_ms = int(time.time() * 1000 + timeout_s * 1000)
        self._events.put((request_id, json.dumps(payload).encode(), deadline_ms))
        return request_id

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str,
              alive: Callable[[], bool] = lambda: True) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not ready():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
                if not alive():
                    raise BenchError(f"the function exited while waiting for {what}")
                self._cond.wait(min(left, 0.05))

    def wait_next(self, count: int, timeout: float, alive: Callable[[], bool]) -> None:
        self._wait(lambda: len(self.next_ns) >= count, timeout, f"/next request #{count}", alive)

    def wait_result(self, request_id: str, timeout: float, alive: Callable[[], bool]) -> Result:
        self._wait(lambda: request_id in self.results, timeout, f"the result of {request_id}", alive)
        return self.results[request_id]

    def close(self) -> None:
        self._closed.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=STOP_TIMEOUT_S)


# ---------------------------------------------------------------------------
# The function under test, as a process
# ---------------------------------------------------------------------------

PROCESSES: list[subprocess.Popen] = []


def stop_process(proc: subprocess.Popen) -> float | None:
    """Kills and reaps `proc`; returns its user + system CPU time in ms
    (from wait4's rusage, microsecond resolution) when this call reaped it."""
    cpu_ms = None
    if proc.returncode is None:
        if proc.poll() is None:
            proc.kill()
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while proc.returncode is None and time.monotonic() < deadline:
            try:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere
                proc.poll()
                break
            if pid == 0:
                time.sleep(0.005)
                continue
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu_ms = (usage.ru_utime + usage.ru_stime) * 1000
        if proc.returncode is None:
            print(f"warning: pid {proc.pid} did not exit", file=sys.stderr)
    if proc in PROCESSES:
        PROCESSES.remove(proc)
    return cpu_ms


def function_env(runtime_api: str, endpoint: str, extra: dict[str, str]) -> dict[str, str]:
    """What Lambda gives a function, pointed at the stub and the emulator.
    Built from scratch: nothing of the caller's AWS setup leaks in."""
    home = WORK / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": "ami-publisher-bench",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/ami-publisher-bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
        "AWS_REGION": HOME,
        "AWS_DEFAULT_REGION": HOME,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL": endpoint,
        # Nowhere else to look: no instance metadata; HOME is an empty
        # directory, so no ~/.aws files (as on Lambda).
        "AWS_EC2_METADATA_DISABLED": "true",
        # The ledger, as template.yaml deploys it.
        "LEDGER_TABLE": LEDGER_TABLE,
    }
    env.update(extra)
    return env


class Session:
    """One process of the function on a fresh runtime-API stub."""

    def __init__(self, binary: Path, endpoint: str, extra_env: dict[str, str], log_name: str):
        self.binary = binary
        self.stub = StubRuntime()
        self.env = function_env(self.stub.address, endpoint, extra_env)
        self.log_path = WORK / "logs" / f"{log_name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.init_ms = 0.0
        # User + system CPU time of the whole process life, known once stopped.
        self.cpu_ms: float | None = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> float:
        """Starts the process; returns ms from process start to its first /next."""
        with open(self.log_path, "ab") as log:
            t0 = time.perf_counter_ns()
            self.proc = subprocess.Popen([str(self.binary)], env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, cwd=str(WORK))
        PROCESSES.append(self.proc)
        try:
            self.stub.wait_next(1, START_TIMEOUT_S, self.alive)
        except BenchError as e:
            raise BenchError(f"{self.binary.name} did not start: {e}; init errors "
                             f"{self.stub.init_errors}; log {self.log_path}") from None
        self.init_ms = (self.stub.next_ns[0] - t0) / 1e6
        return self.init_ms

    def invoke(self, payload: Any, timeout_s: float = DEFAULT_TIMEOUT_S) -> Result:
        """Hands one event to the waiting process; returns once it has posted
        the result and is back waiting on /next."""
        waiting = len(self.stub.next_ns)
        request_id = self.stub.push(payload, timeout_s)
        result = self.stub.wait_result(request_id, INVOKE_TIMEOUT_S, self.alive)
        self.stub.wait_next(waiting + 1, INVOKE_TIMEOUT_S, self.alive)
        return result

    def peak_rss_bytes(self) -> int:
        """VmHWM, the peak resident set size of the process so far."""
        assert self.proc is not None
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise BenchError("no VmHWM in /proc/<pid>/status")

    def stop(self) -> None:
        if self.proc is not None:
            self.cpu_ms = stop_process(self.proc)
        self.stub.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class TlsTerminator:
    """bench/tls_terminator.py in front of the emulator: an HTTPS listener
    and a plain one, both keep-alive, and the connections each accepted."""

    def __init__(self, emulator_url: str):
        directory = WORK / "tls"
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "tls_terminator.py"), "--backend", emulator_url.removeprefix("http://"),
             "--dir", str(directory)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        PROCESSES.append(self.proc)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("TERMINATOR_READY "):
            stop_process(self.proc)
            raise BenchError(f"the TLS terminator did not start: {line!r}")
        self.tls_url, self.plain_url, self.stats_url = line.split()[1:4]
        # What the function trusts over TLS: the system's roots, as on
        # Lambda, plus the benchmark's CA.
        self.cert_file = directory / "roots.pem"
        self.cert_file.write_bytes(system_ca_bundle().read_bytes() + (directory / "ca.pem").read_bytes())

    def connections(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.stats_url, timeout=STOP_TIMEOUT_S) as r:
            stats = json.load(r)
        if stats["errors"]:
            raise BenchError(f"TLS terminator: {stats['errors']}")
        return stats["connections"]

    def reset(self) -> None:
        request = urllib.request.Request(self.stats_url + "/reset", data=b"", method="POST")
        urllib.request.urlopen(request, timeout=STOP_TIMEOUT_S).close()

    def stop(self) -> None:
        stop_process(self.proc)


def system_ca_bundle() -> Path:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt",
                      "/etc/pki/tls/certs/ca-bundle.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise BenchError("no system CA bundle found (the function over TLS should trust it, as on Lambda)")


# ---------------------------------------------------------------------------
# Builds and binaries
# ---------------------------------------------------------------------------

@dataclass
class Binaries:
    arm64: Path
    hello_arm64: Path
    x86: Path
    hello_x86: Path
    build_seconds: dict[str, float] = field(default_factory=dict)


def run_build(name: str, cmd: list[str], cwd: Path, env: dict[str, str], times: dict[str, float]) -> None:
    print(f"build: {name}: {' '.join(cmd)}", flush=True)
    log = WORK / "logs" / f"build-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=out, stderr=subprocess.STDOUT)
        PROCESSES.append(proc)
        try:
            rc = proc.wait(timeout=BUILD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            stop_process(proc)
            raise BenchError(f"build {name} took more than {BUILD_TIMEOUT_S} s; log {log}") from None
        PROCESSES.remove(proc)
    times[name] = time.monotonic() - t0
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise BenchError(f"build {name} failed ({rc}); log {log}:\n" + "\n".join(tail))


def release_profile(manifest: Path) -> dict[str, Any]:
    with open(manifest, "rb") as f:
        return tomllib.load(f).get("profile", {}).get("release", {})


def locked_packages(lock: Path) -> set[str]:
    with open(lock, "rb") as f:
        return {p["name"] for p in tomllib.load(f).get("package", [])}


def applicable_profile(profile: dict[str, Any], packages: set[str]) -> dict[str, Any]:
    """The part of a release profile that can change a build of `packages`:
    the profile's own settings, and the per-package overrides
    ([profile.release.package.NAME], NAME or NAME@VERSION, and "*") of those
    packages only. An override for a package that is not in the build does
    nothing (cargo only warns that it matched no package)."""
    applicable = {k: v for k, v in profile.items() if k != "package"}
    overrides = {spec: v for spec, v in profile.get("package", {}).items()
                 if spec == "*" or spec.split("@", 1)[0] in packages}
    if overrides:
        applicable["package"] = overrides
    return applicable


def build(skip: bool) -> Binaries:
    # bench/hello is the cold start's baseline: the same profile for all
    # the code the two binaries share. The function's overrides for the
    # AWS SDK's crates (opt-level "z") have nothing to act on in hello,
    # which has no SDK: they are left out of the comparison rather than
    # copied there (where cargo would warn that they match no package). An
    # override for a crate hello does build (tokio, lambda_runtime, ...)
    # still has to be the same on both sides, and so does "*".
    hello_packages = locked_packages(HELLO / "Cargo.lock")
    main_profile = applicable_profile(release_profile(ROOT / "Cargo.toml"), hello_packages)
    hello_profile = applicable_profile(release_profile(HELLO / "Cargo.toml"), hello_packages)
    if not main_profile:
        raise BenchError("Cargo.toml has no [profile.release]")
    if main_profile != hello_profile:
        raise BenchError(f"bench/hello must be built like the function: [profile.release] differs:\n"
                         f"  Cargo.toml:            {main_profile}\n  bench/hello/Cargo.toml: {hello_profile}")
    bins = Binaries(
        arm64=ROOT / "target" / "lambda" / "ami-publisher" / "bootstrap",
        hello_arm64=HELLO_TARGET / "lambda" / "hello" / "bootstrap",
        x86=ROOT / "target" / "release" / "ami-publisher",
        hello_x86=HELLO_TARGET / "release" / "hello",
    )
    if not skip:
        env = dict(os.environ)
        env.pop("CARGO_TARGET_DIR", None)
        hello_env = dict(env, CARGO_TARGET_DIR=str(HELLO_TARGET))
        # arm64, as shipped (cargo-lambda cross-compiles with zig)
        run_build("ami-publisher-arm64", ["cargo", "lambda", "build", "--release", "--arm64"],
                  ROOT, env, bins.build_seconds)
        run_build("hello-arm64", ["cargo", "lambda", "build", "--release", "--arm64"],
                  HELLO, hello_env, bins.build_seconds)
        # x86_64, same profile, to run here
        run_build("ami-publisher-x86_64", ["cargo", "build", "--release", "--bin", "ami-publisher"],
                  ROOT, env, bins.build_seconds)
        run_build("hello-x86_64", ["cargo", "build", "--release"], HELLO, hello_env, bins.build_seconds)
    for path in (bins.arm64, bins.hello_arm64, bins.x86, bins.hello_x86):
        if not path.is_file():
            raise BenchError(f"missing binary {path} (run without --skip-build)")
    return bins


def elf_facts(path: Path) -> tuple[str, bool]:
    """(machine, stripped) of a 64-bit little-endian ELF file: stripped means
    no .symtab and no .debug_* sections."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise BenchError(f"{path} is not a 64-bit little-endian ELF file")
    machine = {62: "x86_64", 183: "aarch64"}.get(struct.unpack_from("<H", data, 18)[0], "other")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names_off = sections[shstrndx][4] if shnum else 0

    def name(sh: tuple[int, ...]) -> str:
        start = names_off + sh[0]
        return data[start:data.index(b"\0", start)].decode()

    names = [name(sh) for sh in sections]
    stripped = ".symtab" not in names and not any(n.startswith(".debug") for n in names)
    return machine, stripped


def cpu_busy(interval: float) -> float:
    """Share of all CPUs busy over `interval` seconds (from /proc/stat)."""
    def snapshot() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total1, idle1 = snapshot()
    time.sleep(interval)
    total2, idle2 = snapshot()
    return 1.0 - (idle2 - idle1) / max(1, total2 - total1)


def wait_quiet(what: str, notes: dict[str, Any]) -> None:
    """Waits until the machine is quiet (bounded); notes how busy it was."""
    deadline = time.monotonic() + QUIET_TIMEOUT_S
    busy = cpu_busy(1.0)
    while busy > QUIET_MAX_BUSY and time.monotonic() < deadline:
        print(f"bench: {busy:.0%} of the CPUs busy; waiting for a quiet machine before {what}", flush=True)
        busy = cpu_busy(2.0)
    if busy > QUIET_MAX_BUSY:
        print(f"bench: warning: still {busy:.0%} busy after {QUIET_TIMEOUT_S} s; timing {what} anyway",
              file=sys.stderr, flush=True)
    notes.setdefault("busy", []).append((what, busy))


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------

def function_config(targets: int = 0, concurrency: int | None = None,
                    content_check: str = "off") -> dict[str, str]:
    # CONTENT_CHECK=off: the AMIs these rows seed (emu.seed_image without a
    # disk image) have snapshots with no blocks, so the content check
    # (enforce by default) would find no file system and keep every one
    # private ("rejected: could not read"). These rows measure the rest of
    # the publish path; the EBS section measures the check, and its publish
    # row runs with CONTENT_CHECK=enforce over a real disk image.
    env = {"DEPRECATE_AFTER_DAYS": DEPRECATE_AFTER_DAYS, "CONTENT_CHECK": content_check}
    if targets:
        env["TARGET_REGIONS"] = ",".join(TARGETS[:targets])
    if concurrency is not None:
        env["COPY_CONCURRENCY"] = str(concurrency)
    return env


def direct(image_id: str) -> dict[str, str]:
    return {"image_id": image_id, "region": HOME}


def untag_event(image_id: str) -> dict[str, Any]:
    """The owner removed the publish tag (events/tag-removed.json's shape)."""
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Tag Change on Resource",
        "source": "aws.tag", "account": "123456789012",
        "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": HOME,
        "resources": [f"arn:aws:ec2:{HOME}::image/{image_id}"],
        "detail": {"changed-tag-keys": ["publish"], "tags": {}, "service": "ec2",
                   "resource-type": "image", "version": 2},
    }


def sweep_event() -> dict[str, Any]:
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "123456789012",
        "time": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": HOME, "resources": ["arn:aws:events:us-east-1:123456789012:rule/ami-publisher-sweep"],
        "detail": {},
    }


def fresh(emu: Emulator, **config: Any) -> None:
    emu.reset()
    if config:
        emu.config(**config)


def seed_tagged(emu: Emulator, name: str, **spec: Any) -> str:
    return emu.seed_image(region=HOME, name=name, tags={"publish": "public"}, **spec)


def calls(emu: Emulator) -> Counter:
    """Every AWS call the emulator answered since the last clear, by action:
    EC2's, Service Quotas' (GetServiceQuota, the public AMI quota) and the
    ledger's (DynamoDB, by the operation its X-Amz-Target names, as
    ``dynamodb:UpdateItem``)."""
    return Counter(f"dynamodb:{c['action']}" if c["service"] == "dynamodb" else c["action"]
                   for c in emu.control("GET", "/_emulator/calls?service=all")["calls"])


def throttled(emu: Emulator) -> int:
    """EC2 calls the emulator's throttling refused since the last clear."""
    return sum(1 for c in emu.calls() if c.get("throttled"))


def expect_ok(result: Result, what: str, action: str | None = None, count: int | None = None) -> dict[str, Any]:
    if result.kind != "response":
        raise BenchError(f"{what}: the function returned an error: {result.body}")
    body = result.body
    images = body.get("images", []) if isinstance(body, dict) else []
    if count is not None and len(images) != count:
        raise BenchError(f"{what}: expected {count} image outcome(s), got {body}")
    if action is not None and any(i.get("action") != action for i in images):
        raise BenchError(f"{what}: expected action {action!r}, got {body}")
    return body


# The fewest AWS calls each outcome needs; reasoning in bench/README.md.
def minimum(outcome: str, targets: int = 0, images: int = 1) -> Counter:
    """`publish` and `ineligible`: first run on a tagged private AMI, in a
    new process; `replay`: the same event again; `sweep`: `images` tagged
    private eligible AMIs (0: nothing left to do); `copies-sweep`: the sweep
    after `targets` copies became available (in the process that started
    them); `take-down`: the publish tag
    removed from a source public with its copies; `rotation`: a family's
    second AMI published with KEEP_PUBLIC_PER_FAMILY=1, the first retired
    (second event of the process)."""
    def per(counter: dict[str, int], n: int) -> Counter:
        return Counter({k: v * n for k, v in counter.items()})

    # The public AMI quota of a region, counted before the first AMI made
    # public there: the quota's value (cached for an hour by the process)
    # and what counts against it.
    quota_value = Counter({"GetServiceQuota": 1})
    quota_count = Counter({"DescribeImages": 1,           # the account's public AMIs
                           "ListImagesInRecycleBin": 1})  # deregistered, maybe public
    # The ledger (LEDGER_TABLE, DynamoDB): nothing is made public unless
    # its intent was recorded first, and the result is recorded on the
    # condition of the intent's version, so that a hold or a take-down
    # recorded meanwhile by another run wins (issue #18). Two UpdateItem per
    # AMI made public, and no read: the intent's write returns the version.
    ledger_publish = Counter({"dynamodb:UpdateItem": 2})  # `publishing`, then `public` at its version
    # A take-down or a retirement: one unconditional UpdateItem (it wins
    # over whatever is recorded), after the AMI is private, so that a run
    # cut short leaves the ledger true for what it did.
    ledger_record = Counter({"dynamodb:UpdateItem": 1})
    # A sweep: one Query (paginated) of its region's entries, the only way
    # to find what the function published that lost every tag. Needed also
    # when there is nothing else to do.
    ledger_query = Counter({"dynamodb:Query": 1})
    make_public = Counter({
        "EnableImageDeprecation": 1,               # DEPRECATE_AFTER_DAYS is set
        "ModifyImageAttribute": 1,                 # launch permission: group all
        "EnableImageDeregistrationProtection": 1,  # PROTECT_PUBLIC (the default)
        "CreateTags": 1,                           # publish:status, publish:reason
    }) + ledger_publish
    facts = Counter({"DescribeImages": 1})         # owner, state, devices, codes, tags
    bpa = Counter({"GetImageBlockPublicAccessState": 1})
    start_copy = Counter({"DescribeImages": 1,             # the copy, if one exists
                          "GetEbsEncryptionByDefault": 1,  # would the copy be encrypted?
                          "CopyImage": 1}) + quota_value + quota_count
    if outcome == "publish":
        return facts + bpa + quota_value + quota_count + make_public + per(start_copy, targets)
    if outcome == "replay":
        # No ledger call: a public AMI with status `public` is settled.
        return facts + per(Counter({"DescribeImages": 1}), targets)  # each copy's state
    if outcome == "ineligible":
        # No ledger call: nothing made public, nothing to remember.
        return facts + bpa + Counter({"CreateTags": 1})
    if outcome == "sweep":
        # Tagged AMIs; copies per target; the ledger's entries of the region.
        listing = Counter({"DescribeImages": 1 + targets}) + ledger_query
        if images == 0:
            return listing
        return listing + bpa + quota_value + quota_count + per(make_public, images)
    if outcome == "copies-sweep":
        # Same process as the publish: the quota's value is cached. Each
        # copy's source is read again in its region right before that
        # copy's `all` (issue #18: not a listing up to a minute old), so a
        # source untagged or held meanwhile keeps the copy private: one
        # DescribeImages (in the source's region) per copy, each right
        # before its own `all`; one read shared by the four would be older
        # than that for every copy but the first.
        source_read = Counter({"DescribeImages": 1})
        return (Counter({"DescribeImages": 1 + targets}) + ledger_query
                + per(bpa + quota_count + source_read + make_public, targets)
                + Counter({"CreateTags": 1}))  # the source's status: every copy public
    if outcome == "take-down":
        per_region = Counter({"ModifyImageAttribute": 1,                   # launch permission: remove all
                              "DisableImageDeregistrationProtection": 1,  # as it was before
                              "CreateTags": 1}) + ledger_record           # publish:status=withdrawn
        return facts + per(Counter({"DescribeImages": 1}), targets) + per(per_region, targets + 1)
    if outcome == "rotation":
        retire = Counter({"ModifyImageAttribute": 1, "DisableImageDeregistrationProtection": 1,
                          "CreateTags": 1}) + ledger_record  # `retired`, for the rollback to find
        return (facts + Counter({"DescribeImages": 1})  # the family's AMIs
                + bpa + quota_count + make_public + retire)
    raise ValueError(outcome)


def fmt_calls(c: Counter) -> str:
    short = {"DescribeImages": "Describe", "GetImageBlockPublicAccessState": "BPA",
             "GetServiceQuota": "Quota", "ListImagesInRecycleBin": "RecycleBin",
             "GetEbsEncryptionByDefault": "EbsDefault",
             "EnableImageDeprecation": "Deprecate", "ModifyImageAttribute": "Modify",
             "EnableImageDeregistrationProtection": "Protect",
             "DisableImageDeregistrationProtection": "Unprotect",
             "CreateTags": "Tags", "CopyImage": "Copy",
             # The ledger's DynamoDB calls (calls()).
             "dynamodb:Query": "Ledger.Query", "dynamodb:GetItem": "Ledger.Get",
             "dynamodb:UpdateItem": "Ledger.Update"}
    order = list(short)
    keys = sorted(c, key=lambda k: order.index(k) if k in order else len(order))
    return " ".join(f"{short.get(k, k)}×{c[k]}" for k in keys if c[k]) or "none"


@dataclass
class Row:
    measure: str
    value: str
    budget: str = ""
    ok: bool | None = None  # None: information only

    @property
    def result(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "FAIL")


def mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def measure_cold_start(bins: Binaries, endpoint: str, runs: int) -> tuple[list[float], list[float], list[float]]:
    """Alternating runs of hello, ami-publisher (4 targets) and
    ami-publisher (16 targets), after one discarded warm-up of each."""
    cases = [
        (bins.hello_x86, {}),
        (bins.x86, function_config(targets=4)),
        (bins.x86, function_config(targets=16, concurrency=16)),
    ]
    samples: list[list[float]] = [[], [], []]
    for i in range(runs + 1):
        for k, (binary, env) in enumerate(cases):
            with Session(binary, endpoint, env, f"cold-{binary.name}") as s:
                ms = s.start()
            if i > 0:
                samples[k].append(ms)
    return samples[0], samples[1], samples[2]


@dataclass
class TlsRow:
    measure: str
    plain: str
    tls: str
    budget: str = ""
    ok: bool | None = None  # None: information only

    @property
    def result(self) -> str:
        return "" if self.ok is None else ("PASS" if self.ok else "FAIL")


def spread(values: list[float]) -> str:
    """Median and interquartile range, in ms."""
    if len(values) < 2:
        return f"{values[0]:.1f} ms"
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{statistics.median(values):.1f} ms [{q1:.1f}–{q3:.1f}]"


def tls_session(bins: Binaries, emu: Emulator, front: TlsTerminator, mode: str, label: str,
                targets: int = 0) -> dict[str, Any]:
    """One process of the function behind the terminator, over `mode`
    ("tls" or "plain"), on fresh emulator state. With no target regions:
    publish one AMI (cold), publish another (warm), replay that one (one
    DescribeImages). With targets: publish with copies, then its replay."""
    fresh(emu)
    first, second = seed_tagged(emu, f"bench-{label}-a"), seed_tagged(emu, f"bench-{label}-b")
    events = ([(first, "published"), (first, "already-public")] if targets else
              [(first, "published"), (second, "published"), (second, "already-public")])
    # The same roots both ways: the SDK's connector loads them over plain
    # HTTP too, and the system's default places (a directory of ~290 files
    # here) would cost plain HTTP more than one bundle costs TLS.
    env = dict(function_config(targets=targets), SSL_CERT_FILE=str(front.cert_file))
    front.reset()
    times, opened = [], []
    with Session(bins.x86, front.tls_url if mode == "tls" else front.plain_url, env, f"{label}-{mode}") as s:
        init = s.start()
        for image, action in events:
            result = s.invoke(direct(image))
            expect_ok(result, f"{label} over {mode}", action, 1)
            times.append(result.duration_ms)
            opened.append(len(front.connections()) - sum(opened))
    connections = front.connections()  # the process is gone: every connection it opened
    if sum(c["requests"] for c in connections) != sum(calls(emu).values()):
        raise BenchError(f"{label} over {mode}: the EC2 calls did not all go through the terminator")
    return {"init": init, "times": times, "opened": opened, "connections": connections,
            "regions": len({r for c in connections for r in c["regions"]})}


def measure_tls(bins: Binaries, emu: Emulator, runs: int, notes: dict[str, Any]) -> list[TlsRow]:
    """The function behind the TLS terminator, over plain HTTP and over TLS
    alternately, 2 x `runs` pairs after one discarded pair (the ratios of
    paired samples repeat within a few hundredths at 22 pairs; bench/README.md),
    then with 4 target regions over TLS, for the connections per region."""
    pairs = 2 * runs
    front = TlsTerminator(emu.url)
    try:
        one: dict[str, list[dict[str, Any]]] = {"plain": [], "tls": []}
        for i in range(pairs + 1):
            for mode in ("plain", "tls"):
                session = tls_session(bins, emu, front, mode, f"tls-{i}")
                if i > 0:
                    one[mode].append(session)
        fan_runs = max(3, runs // 4)
        fan = [tls_session(bins, emu, front, "tls", f"tls-fan-{i}", targets=4) for i in range(fan_runs)]
    finally:
        front.stop()

    def col(mode: str, pick: Callable[[dict[str, Any]], float]) -> list[float]:
        return [pick(s) for s in one[mode]]

    median = statistics.median
    cold = {m: col(m, lambda s: s["init"] + s["times"][0]) for m in one}
    warm = {m: col(m, lambda s: s["times"][1]) for m in one}
    call = {m: col(m, lambda s: s["times"][2]) for m in one}
    init = {m: col(m, lambda s: s["init"]) for m in one}
    handshakes = [c["handshake_ms"] for s in one["tls"] + fan for c in s["connections"] if c["handshake_ms"]]
    # Ratios of paired samples: each TLS session ran right after a plain one,
    # and a session's cold and warm publishes ran in the same process, so a
    # slower or faster stretch of the machine affects both sides of a pair.
    warm_ratio = median(t / p for t, p in zip(warm["tls"], warm["plain"]))
    cold_ratio = median(c / w for c, w in zip(cold["tls"], warm["tls"]))
    per_process = {m: max(len(s["connections"]) for s in one[m]) for m in one}
    per_invocation = {m: " / ".join(str(max(s["opened"][k] for s in one[m])) for k in range(3)) for m in one}
    fan_connections = max(len(s["connections"]) for s in fan)
    fan_regions = max(s["regions"] for s in fan)
    notes["tls_samples"] = {f"{what} {m}": values[m] for what, values in
                            (("cold", cold), ("warm", warm), ("call", call)) for m in one}
    label = f"median [IQR] of {pairs}"
    return [
        TlsRow(f"cold invocation, 1 region: spawn to first publish done ({label})", spread(cold["plain"]),
               f"{spread(cold['tls'])}; {cold_ratio:.2f}× warm",
               f"TLS ≤ {MAX_TLS_COLD_RATIO:g}× a warm publish over TLS", cold_ratio <= MAX_TLS_COLD_RATIO),
        TlsRow("of which init: spawn to first /next", spread(init["plain"]), spread(init["tls"])),
        TlsRow(f"warm publish, 1 region: the second event of a process ({WARM_PUBLISH_CALLS} AWS calls)",
               spread(warm["plain"]),
               f"{spread(warm['tls'])}; {warm_ratio:.2f}× plain", f"TLS ≤ {MAX_TLS_WARM_RATIO:g}× plain",
               warm_ratio <= MAX_TLS_WARM_RATIO),
        TlsRow("one EC2 call, warm: a replay (DescribeImages only)", spread(call["plain"]), spread(call["tls"])),
        TlsRow("TLS handshake at the terminator, accept to done", "", spread(handshakes)),
        TlsRow("connections opened, 1 region: cold publish / warm publish / replay (max)",
               per_invocation["plain"], per_invocation["tls"]),
        TlsRow("connections per process, 1 region (max)", str(per_process["plain"]), str(per_process["tls"]),
               f"TLS ≤ {MAX_TLS_CONNECTIONS_PER_REGION} per region",
               per_process["tls"] <= MAX_TLS_CONNECTIONS_PER_REGION),
        TlsRow(f"connections per process, publish with 4 target regions + replay ({fan_regions} regions; "
               f"max of {fan_runs})", "", str(fan_connections),
               f"TLS ≤ {MAX_TLS_CONNECTIONS_PER_REGION} per region",
               fan_connections <= MAX_TLS_CONNECTIONS_PER_REGION * fan_regions),
    ]


# A warm process's publish: the first's calls but the quota's value (cached).
WARM_PUBLISH_CALLS = sum((minimum("publish") - Counter({"GetServiceQuota": 1})).values())


def calls_compared(label: str, got: Counter, want: Counter) -> Row:
    return Row(f"AWS calls: {label}", f"{sum(got.values())} ({fmt_calls(got)})",
               f"= {sum(want.values())} ({fmt_calls(want)})", got == want)


def measure_lifecycle(binary: Path, emu: Emulator, rows: list[Row]) -> None:
    """The calls of the rest of an AMI's life: its copies published by the
    source region's sweep, its take-down, a family's rotation."""
    # One stack: the source region's sweep publishes the copies once
    # available; then the owner removes the publish tag (take-down).
    fresh(emu)
    ami = seed_tagged(emu, "bench-one-stack")
    with Session(binary, emu.url, function_config(targets=4), "one-stack") as s:
        s.start()
        expect_ok(s.invoke(direct(ami)), "publish before the copies sweep", "published")
        emu.complete_copies()
        emu.clear_calls()
        body = expect_ok(s.invoke(sweep_event()), "sweep, copies available", count=1)
        copies = body["images"][0].get("copies", [])
        if sum(1 for c in copies if c.get("action") == "published") != 4:
            raise BenchError(f"sweep, copies available: expected 4 copies published, got {body}")
        rows.append(calls_compared("sweep, 4 copies available (one stack publishes them)", calls(emu),
                                   minimum("copies-sweep", targets=4)))
        emu.clear_calls()
        expect_ok(s.invoke(sweep_event()), "sweep after the copies", count=0)
        rows.append(calls_compared("the same sweep again, 4 target regions (nothing left to do)", calls(emu),
                                   minimum("sweep", targets=4, images=0)))
        emu.client("ec2", HOME).delete_tags(Resources=[ami], Tags=[{"Key": "publish"}])
        emu.clear_calls()
        body = expect_ok(s.invoke(untag_event(ami)), "take-down", "withdrawn", 1)
        if any(i["public"] for i in emu.images() if i["image_id"] == ami or
               (i.get("tags") or {}).get("publish:source", "").endswith(ami)):
            raise BenchError(f"take-down: something is still public: {body}")
        rows.append(calls_compared("take-down: publish tag removed, source + 4 copies made private", calls(emu),
                                   minimum("take-down", targets=4)))
        emu.clear_calls()
        expect_ok(s.invoke(untag_event(ami)), "take-down replay", "skipped", 1)
        rows.append(calls_compared("replay of the take-down event", calls(emu), minimum("replay")))

    # Rotation: a family keeps its newest AMI public; the next one
    # published retires the first.
    fresh(emu)
    family = {"publish": "public", "family": "bench"}
    older = emu.seed_image(region=HOME, name="bench-family-1", tags=family,
                           creation_date="2026-11-01T00:00:00Z")
    with Session(binary, emu.url, dict(function_config(), KEEP_PUBLIC_PER_FAMILY="1"), "rotation") as s:
        s.start()
        expect_ok(s.invoke(direct(older)), "rotation: first of the family", "published")
        # The newer release comes after the first is public, as Image
        # Builder's next build would: seeded together, the newer one (tagged,
        # eligible) already counts as public and the older is never made
        # public at all (a run never publishes what rotation would retire).
        newer = emu.seed_image(region=HOME, name="bench-family-2", tags=family,
                               creation_date="2026-11-02T00:00:00Z")
        emu.clear_calls()
        body = expect_ok(s.invoke(direct(newer)), "rotation: second of the family", "published")
        if sorted(body.get("actions", [])) != ["published", "retired"]:
            raise BenchError(f"rotation: expected one published and one retired, got {body}")
        rows.append(calls_compared("rotation: a family's newer AMI published, the older retired "
                                   "(KEEP_PUBLIC_PER_FAMILY=1)", calls(emu), minimum("rotation")))
        emu.clear_calls()
        expect_ok(s.invoke(direct(newer)), "rotation replay", "already-public")
        rows.append(calls_compared("replay of that event", calls(emu), minimum("replay")))


def measure_scale(bins: Binaries, emu: Emulator, rows: list[Row], notes: dict[str, Any]) -> None:
    """Many AMIs: a listing of 10,000, a sweep stopped by its deadline, a
    sweep of 1,000 under EC2's throttling."""
    # Listing 10,000 tagged AMIs, all settled (public, status public):
    # 10 pages, nothing to do; the process's peak memory.
    fresh(emu)
    for i in range(LISTED_IMAGES):
        emu.seed_image(region=HOME, name=f"bench-listed-{i:05d}", public=True,
                       tags={"publish": "public", "publish:status": "public"})
    emu.clear_calls()
    with Session(bins.x86, emu.url, function_config(), "listing") as s:
        s.start()
        result = s.invoke(sweep_event())
        listing_rss = s.peak_rss_bytes()
    expect_ok(result, "sweep over 10,000 settled AMIs", count=0)
    pages = calls(emu)
    rows.append(Row(f"sweep listing {LISTED_IMAGES:,} tagged AMIs, all settled: AWS calls, handler time "
                    "(emulator-bound)", f"{sum(pages.values())} ({fmt_calls(pages)}), "
                    f"{result.duration_ms / 1000:.1f} s"))
    rows.append(Row(f"sweep listing {LISTED_IMAGES:,} tagged AMIs: peak RSS", mb(listing_rss),
                    f"≤ {mb(MAX_LISTING_RSS_BYTES)}", listing_rss <= MAX_LISTING_RSS_BYTES))

    measure_deadline(bins.x86, emu, rows)

    # 1,000 AMIs under EC2's documented request throttling (the
    # emulator's token buckets at their real sizes and rates).
    wait_quiet("the throttled sweeps", notes)
    for label, extra, budget in (
        ("paced to EC2's buckets (PACE_EC2_CALLS=true, the default)", {}, True),
        ("unpaced, the SDK's adaptive retry (PACE_EC2_CALLS=false, AWS_RETRY_MODE=adaptive)",
         {"PACE_EC2_CALLS": "false", "AWS_RETRY_MODE": "adaptive"}, False),
    ):
        fresh(emu, public_image_quota=2000)
        for i in range(THROTTLED_IMAGES):
            seed_tagged(emu, f"bench-throttled-{i:04d}")
        emu.control("POST", "/_emulator/throttling", {"enabled": True})
        emu.clear_calls()
        with Session(bins.x86, emu.url, dict(function_config(), **extra), "throttled") as s:
            s.start()
            result = s.invoke(sweep_event())
        got = calls(emu)
        refused = throttled(emu)
        published = sum(1 for i in emu.images(HOME) if i["public"])
        failed = THROTTLED_IMAGES - published
        rows.append(Row(f"sweep of {THROTTLED_IMAGES:,} AMIs under EC2 throttling, {label}: AMIs not published",
                        f"{failed} ({result.kind}); {result.duration_ms / 1000:.0f} s; "
                        f"{sum(got.values())} calls, {refused} throttled",
                        "0 not published" if budget else "", failed == 0 if budget else None))


def measure_calls(binary: Path, emu: Emulator, rows: list[Row], publish_calls: Counter | None = None,
                  timing: bool = True) -> None:
    """The AWS calls of each outcome, against their minimum: a publish (the
    calls of a first run given, else one run here), its replay, with 4
    target regions, an ineligible AMI, a sweep of 200 and its repeat, and
    the rest of an AMI's life. `timing`: the sweep's time and memory lines
    too (not for a build other than the release one)."""
    def calls_row(label: str, got: Counter, want: Counter) -> None:
        rows.append(calls_compared(label, got, want))

    if publish_calls is None:
        fresh(emu)
        ami = seed_tagged(emu, "bench-publish")
        with Session(binary, emu.url, function_config(), "publish") as s:
            s.start()
            expect_ok(s.invoke(direct(ami)), "publish", "published", 1)
        publish_calls = calls(emu)
    calls_row("publish, 1 region", publish_calls, minimum("publish"))

    # Replay of the same event (same process: the event came twice).
    fresh(emu)
    ami = seed_tagged(emu, "bench-replay")
    with Session(binary, emu.url, function_config(), "replay") as s:
        s.start()
        expect_ok(s.invoke(direct(ami)), "publish before replay", "published")
        emu.clear_calls()
        expect_ok(s.invoke(direct(ami)), "replay", "already-public")
    calls_row("replay of that event", calls(emu), minimum("replay"))

    # Publish with 4 target regions, then its replay.
    fresh(emu)
    ami = seed_tagged(emu, "bench-copies")
    with Session(binary, emu.url, function_config(targets=4), "publish-4") as s:
        s.start()
        first = s.invoke(direct(ami))
        rss4 = s.peak_rss_bytes()
        body = expect_ok(first, "publish, 4 targets", "published", 1)
        started = [c for c in body["images"][0].get("copies", []) if c.get("started")]
        if len(started) != 4:
            raise BenchError(f"publish, 4 targets: expected 4 copies started, got {body}")
        calls_row("publish, 4 target regions", calls(emu), minimum("publish", targets=4))
        emu.clear_calls()
        expect_ok(s.invoke(direct(ami)), "replay, 4 targets", "already-public")
        calls_row("replay, 4 target regions (copies still pending)", calls(emu), minimum("replay", targets=4))
    if timing:
        rows.append(Row("one publish, 4 target regions: peak RSS", mb(rss4)))

    # Ineligible: tagged, but its snapshot is encrypted.
    fresh(emu)
    ami = seed_tagged(emu, "bench-encrypted", snapshots=[{"encrypted": True}])
    with Session(binary, emu.url, function_config(), "ineligible") as s:
        s.start()
        expect_ok(s.invoke(direct(ami)), "ineligible", "rejected")
    calls_row("ineligible AMI (encrypted)", calls(emu), minimum("ineligible"))

    # Sweep over 200 tagged AMIs (quota raised so all can be public).
    fresh(emu, public_image_quota=1000)
    for i in range(200):
        seed_tagged(emu, f"bench-sweep-{i:03d}")
    emu.clear_calls()
    with Session(binary, emu.url, function_config(), "sweep") as s:
        s.start()
        result = s.invoke(sweep_event())
        sweep_rss = s.peak_rss_bytes()
    expect_ok(result, "sweep", "published", 200)
    if timing:
        rows.append(Row("sweep over 200 tagged AMIs: handler time (paced to EC2's request buckets)",
                        f"{result.duration_ms:.0f} ms"))
        rows.append(Row("sweep over 200 tagged AMIs: CPU time of the process, start + sweep (x86_64)",
                        f"{s.cpu_ms or 0.0:.0f} ms"))
        rows.append(Row("sweep over 200 tagged AMIs: peak RSS", mb(sweep_rss)))
    calls_row("sweep over 200 tagged AMIs", calls(emu), minimum("sweep", images=200))
    emu.clear_calls()
    with Session(binary, emu.url, function_config(), "sweep-again") as s:
        s.start()
        expect_ok(s.invoke(sweep_event()), "second sweep", count=0)
    calls_row("the same sweep again (nothing left to do)", calls(emu), minimum("sweep", images=0))

    measure_lifecycle(binary, emu, rows)


def run_all(bins: Binaries, runs: int) -> tuple[list[Row], list[TlsRow], dict[str, Any]]:
    rows: list[Row] = []
    notes: dict[str, Any] = {}

    # Size of what is shipped.
    for label, path, budget in (("ami-publisher", bins.arm64, True), ("hello", bins.hello_arm64, False)):
        machine, stripped = elf_facts(path)
        if machine != "aarch64":
            raise BenchError(f"{path} is {machine}, not aarch64")
        size = path.stat().st_size
        rows.append(Row(
            f"{label}: arm64 `bootstrap` size ({'stripped' if stripped else 'NOT stripped'})",
            f"{mb(size)} ({size:,} B)",
            f"≤ {mb(MAX_ARM64_BYTES)}, stripped" if budget else "",
            (size <= MAX_ARM64_BYTES and stripped) if budget else None))
    rows.append(Row("ami-publisher: x86_64 binary size (the one measured below)", mb(bins.x86.stat().st_size)))

    with Emulator.start() as emu:
        # Cold start: nothing at start may call EC2.
        fresh(emu)
        wait_quiet("the cold starts", notes)
        hello, main4, main16 = measure_cold_start(bins, emu.url, runs)
        at_start = calls(emu)
        h, m4, m16 = statistics.median(hello), statistics.median(main4), statistics.median(main16)
        ratio = m4 / h
        rows.append(Row(f"cold start, hello (x86_64, median of {runs})", f"{h:.2f} ms"))
        rows.append(Row(f"cold start, ami-publisher, 4 target regions (x86_64, median of {runs})",
                        f"{m4:.2f} ms = {ratio:.2f}× hello", f"≤ {MAX_COLD_START_RATIO:g}× hello",
                        ratio <= MAX_COLD_START_RATIO))
        rows.append(Row(f"cold start, ami-publisher, 16 target regions (x86_64, median of {runs})",
                        f"{m16:.2f} ms = {m16 / h:.2f}× hello"))
        rows.append(Row("AWS calls during start-up (all cold starts)", fmt_calls(at_start), "none",
                        not at_start))
        notes["cold_start_samples"] = {"hello": hello, "ami-publisher-4": main4, "ami-publisher-16": main16}

        # Panic strategy of the shared profile, checked on hello.
        with Session(bins.hello_x86, emu.url, {}, "hello-panic") as s:
            s.start()
            panicked = s.invoke({"panic": True})
            after = s.invoke({"panic": False})
        ok = panicked.kind == "error" and after.kind == "response"
        rows.append(Row("panic in the handler (hello, same profile)",
                        f"{panicked.kind}: {(panicked.body or {}).get('errorMessage', panicked.body)!s:.60}; "
                        f"next event {'served' if after.kind == 'response' else 'lost'}",
                        "invocation error, process lives on", ok))

        # One publish, in a fresh process each run: time, peak RSS, calls.
        wait_quiet("the publishes", notes)
        times, rss_values, cpu_values, publish_calls = [], [], [], []
        for i in range(runs):
            fresh(emu)
            ami = seed_tagged(emu, f"bench-publish-{i}")
            with Session(bins.x86, emu.url, function_config(), "publish") as s:
                s.start()
                result = s.invoke(direct(ami))
                rss_values.append(s.peak_rss_bytes())
            expect_ok(result, "publish", "published", 1)
            cpu_values.append(s.cpu_ms or 0.0)
            times.append(result.duration_ms)
            publish_calls.append(calls(emu))
        rss = max(rss_values)
        rows.append(Row(f"one publish, 1 region: handler time (first event of a process, median of {runs})",
                        f"{statistics.median(times):.1f} ms"))
        rows.append(Row(f"one publish, 1 region: CPU time of the process, start + event (x86_64, median of {runs})",
                        f"{statistics.median(cpu_values):.1f} ms"))
        rows.append(Row(f"one publish, 1 region: peak RSS (VmHWM, x86_64, max of {runs})", mb(rss),
                        f"≤ {mb(MAX_PUBLISH_RSS_BYTES)}", rss <= MAX_PUBLISH_RSS_BYTES))

        if any(c != publish_calls[0] for c in publish_calls):
            raise BenchError(f"publish made different calls on different runs: {publish_calls}")
        measure_calls(bins.x86, emu, rows, publish_calls[0], timing=True)
        measure_scale(bins, emu, rows, notes)

        # Over TLS, behind the terminator, against plain HTTP through it.
        wait_quiet("the TLS runs", notes)
        tls_rows = measure_tls(bins, emu, runs, notes)

        # Fan-out with latency on every EC2 call.
        wait_quiet("the fan-out", notes)
        fan: dict[int, list[float]] = {1: [], 16: []}
        fan_runs = max(3, runs // 2)
        for i in range(fan_runs):
            for n in (1, 16):
                fresh(emu, latency_ms=FANOUT_LATENCY_MS)
                ami = seed_tagged(emu, f"bench-fanout-{n}-{i}")
                with Session(bins.x86, emu.url, function_config(targets=n, concurrency=16), f"fanout-{n}") as s:
                    s.start()
                    result = s.invoke(direct(ami))
                body = expect_ok(result, f"fan-out {n}", "published", 1)
                copies = body["images"][0].get("copies", [])
                if len(copies) != n or any(c.get("error") for c in copies):
                    raise BenchError(f"fan-out {n}: expected {n} copies without error, got {body}")
                fan[n].append(result.duration_ms)
        f1, f16 = statistics.median(fan[1]), statistics.median(fan[16])
        rows.append(Row(f"fan-out, {FANOUT_LATENCY_MS} ms per EC2 call: 1 target region (median of {fan_runs})",
                        f"{f1:.0f} ms"))
        rows.append(Row(f"fan-out, {FANOUT_LATENCY_MS} ms per EC2 call: 16 target regions, COPY_CONCURRENCY=16",
                        f"{f16:.0f} ms = {f16 / f1:.2f}× 1 region", f"≤ {MAX_FANOUT_RATIO:g}× 1 region",
                        f16 / f1 <= MAX_FANOUT_RATIO))
        notes["fanout_samples"] = fan
    return rows, tls_rows, notes


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    out = ["| measure | value | budget | result |", "|---|---|---|---|"]
    out += [f"| {r.measure} | {r.value} | {r.budget} | {r.result} |" for r in rows]
    return "\n".join(out)


def tls_table(rows: list[TlsRow]) -> str:
    out = ["| measure | plain HTTP | TLS | budget | result |", "|---|---|---|---|---|"]
    out += [f"| {r.measure} | {r.plain} | {r.tls} | {r.budget} | {r.result} |" for r in rows]
    return "\n".join(out)


def tool_version(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def write_results(rows: list[Row], tls_rows: list[TlsRow], bins: Binaries, notes: dict[str, Any],
                  runs: int) -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    profile = release_profile(ROOT / "Cargo.toml")
    lines = [
        "# ami-publisher benchmark results",
        "",
        "Written by `make bench` (bench/run.py); see bench/README.md for what each line means.",
        "",
        table(rows),
        "",
        "## TLS",
        "",
        "The function behind a TLS terminator on loopback (bench/tls_terminator.py, keep-alive, in front of "
        "the emulator), over HTTPS with the system's root certificates plus the benchmark's CA "
        "(`SSL_CERT_FILE`), and over plain HTTP through the same terminator. Connections are counted at the "
        "terminator. Times: median [interquartile range]; ratios: median of paired samples (bench/README.md).",
        "",
        tls_table(tls_rows),
        "",
        f"- Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} on {platform.machine()}, {cpu}, "
        f"{os.cpu_count()} CPUs; {tool_version(['rustc', '--version'])}; "
        f"{tool_version(['cargo', 'lambda', '--version']) or 'cargo-lambda ?'}.",
        "- Size: the arm64 `bootstrap` from `cargo lambda build --release --arm64`. This machine cannot run "
        "arm64, so cold start, time and RSS are measured on an x86_64 build (`cargo build --release`) of the "
        "same code with the same profile: "
        + ", ".join(f"`{k} = {json.dumps(v)}`" for k, v in profile.items()) + ".",
        "- Cold start: process start to its first `GET /next` on a stub runtime API; hello is bench/hello. "
        "Where ami-publisher's start-up time goes: bench/README.md.",
        "- Times and calls against the local EC2 emulator (moto) on 127.0.0.1, no injected latency except in "
        f"the deadline line ({DEADLINE_LATENCY_MS} ms per call) and the fan-out lines ({FANOUT_LATENCY_MS} ms "
        "per EC2 call); EC2's request throttling only in the throttled lines. "
        f"DEPRECATE_AFTER_DAYS={DEPRECATE_AFTER_DAYS} throughout.",
    ]
    busy = notes.get("busy", [])
    if busy:
        lines.append("- CPU busy just before each timed part (other processes; the benchmark waits for "
                     f"≤ {QUIET_MAX_BUSY:.0%}, at most {QUIET_TIMEOUT_S} s): "
                     + ", ".join(f"{what} {b:.0%}" for what, b in busy) + ".")
    samples = notes.get("cold_start_samples", {})
    if samples:
        lines.append("- Cold-start samples (ms): " + "; ".join(
            f"{k}: {', '.join(f'{v:.2f}' for v in vs)}" for k, vs in samples.items()) + ".")
    fan = notes.get("fanout_samples", {})
    if fan:
        lines.append("- Fan-out samples (ms): " + "; ".join(
            f"{k} region(s): {', '.join(f'{v:.0f}' for v in vs)}" for k, vs in fan.items()) + ".")
    tls_samples = notes.get("tls_samples", {})
    if tls_samples:
        lines.append("- TLS section samples (ms): " + "; ".join(
            f"{k}: {', '.join(f'{v:.1f}' for v in vs)}" for k, vs in tls_samples.items()) + ".")
    if bins.build_seconds:
        lines.append("- Build wall times this run (cached builds are fast): " + ", ".join(
            f"{k} {v:.0f} s" for k, v in bins.build_seconds.items()) + ".")
    text = "\n".join(lines) + "\n"
    (BENCH / "results.md").write_text(text)
    return text


# ------------------------------------------------------------- EBS reads

EBS_LATENCY_MS = 20
EBS_MAX_WALL_S = 2.0
EBS_MAX_RSS_BYTES = 64 * 10**6
EBS_SECTION = "## EBS reads"


def ebs_bench_binary(skip: bool) -> Path:
    """examples/ebs_read.rs, release profile (the shipped profile)."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    binary = target / "release" / "examples" / "ebs_read"
    if not skip:
        run_build("ebs_read-x86_64", ["cargo", "build", "--release", "--example", "ebs_read"], ROOT,
                  dict(os.environ), {})
    if not binary.exists():
        raise BenchError(f"{binary} is missing: build it (without --skip-build)")
    return binary


def ebs_fixtures() -> Path:
    """The 8 GiB AL2023-like and Ubuntu-like images with >= 20,000 files
    (tests/images/build.py --bench), built once and kept."""
    out = Path(os.environ.get("BENCH_IMAGES_DIR") or WORK / "disk-images")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "images" / "build.py"), "--bench", str(out)])
    if done.returncode != 0:
        raise BenchError("tests/images/build.py --bench failed (see above; `make images-tools` installs the tools)")
    dirs = sorted(out.glob("bench-v*"))
    if not dirs:
        raise BenchError(f"no bench images under {out}")
    return dirs[-1]


def count_files(image_dir: Path) -> int:
    facts = json.loads((image_dir / "tree.json").read_text())
    # root_tree: /usr/share/doc, 5 files a home (6 every 3rd, 7 every 5th),
    # /etc's ~270, /root's 3, /usr/bin's 5: the doc files dominate.
    homes = len(facts["homes"])
    return facts["usr_files"] + homes * 5 + facts["etc_entries_min"] + 10


def run_ebs_read(binary: Path, endpoint: str, image_id: str) -> tuple[dict[str, Any], int, float]:
    """One process of ebs_read; its JSON line, peak RSS (bytes, wait4's
    ru_maxrss) and process wall time (ms)."""
    env = function_env("127.0.0.1:9", endpoint, {})
    env.pop("AWS_LAMBDA_RUNTIME_API")
    start = time.monotonic()
    proc = subprocess.Popen([str(binary), HOME, image_id], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    PROCESSES.append(proc)
    try:
        out, err = proc.communicate(timeout=DEFAULT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise BenchError("ebs_read did not finish")
    wall = (time.monotonic() - start) * 1000
    # communicate() reaped it, so the peak RSS is the process's own report
    # (VmHWM from /proc/self/status, read as it finishes).
    PROCESSES.remove(proc)
    if proc.returncode != 0:
        raise BenchError(f"ebs_read failed ({proc.returncode}): {err.decode(errors='replace')}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    return result, int(result.get("peak_rss_bytes", 0)), wall


CHECK_PUBLISH_PAIRS = 3


def release_function() -> Path:
    """The function's x86_64 release build, as build() makes it."""
    return ROOT / "target" / "release" / "ami-publisher"


def ebs_calls(emu: Emulator) -> list[dict[str, Any]]:
    return emu.control("GET", "/_emulator/calls?service=ebs")["calls"]


def measure_check_publish(function: Path, emu: Emulator, snapshot_id: str, name: str, head: str,
                          read: dict[str, Any]) -> list[Row]:
    """The publish path with the content check on: AMIs over the fixture's
    snapshot, tagged publish=public, published by the function at
    EBS_LATENCY_MS per call (the emulator's latency is one setting for every
    AWS call, EC2's and the ledger's too: the time the check adds is the
    difference with CONTENT_CHECK=off, same latency, same fixture). Pairs of
    fresh processes, off and enforce alternating. The fixtures hold
    builders' leftovers, so under enforce each AMI carries its owner's
    acknowledgement of the kinds the check finds there (`publish-allow`,
    what an owner would write; the role can't): the AMI is read, judged
    and published, and its verdict is `acknowledged`. `read`: ebs_read's
    JSON for the same fixture (the minimum calls)."""
    kinds = sorted(set(read["finding_kinds"]))
    tags = {"publish": "public", **({"publish-allow": ",".join(kinds)} if kinds else {})}
    emu.config(latency_ms=EBS_LATENCY_MS, public_image_quota=1000)
    minimum_gets = read["blocks_touched"] - read["zero_blocks"]
    times: dict[str, list[float]] = {"off": [], "enforce": []}
    rss: list[int] = []
    first: dict[str, Any] = {}
    calls_ok = replays_ok = True
    for i in range(CHECK_PUBLISH_PAIRS):
        wait_quiet(f"the publishes with the content check ({name}, pair {i + 1})", {})
        for mode in ("off", "enforce"):
            ami = emu.seed_image(region=HOME, name=f"bench-check-{name}-{mode}-{i}", tags=tags,
                                 snapshots=[{"snapshot_id": snapshot_id}])
            emu.clear_calls()
            with Session(function, emu.url, function_config(content_check=mode), f"check-{name}-{mode}") as s:
                s.start()
                result = s.invoke(direct(ami))
                body = expect_ok(result, f"publish, CONTENT_CHECK={mode}", "published", 1)
                times[mode].append(result.duration_ms)
                log = ebs_calls(emu)
                others = Counter({k: v for k, v in calls(emu).items()
                                  if k not in ("GetSnapshotBlock", "ListSnapshotBlocks")})
                if mode == "off":
                    if log:
                        raise BenchError(f"CONTENT_CHECK=off made {len(log)} EBS call(s)")
                    continue
                rss.append(s.peak_rss_bytes())
                content = emu.image(ami).get("tags", {}).get("publish:content")
                gets = [c for c in log if c["action"] == "GetSnapshotBlock"]
                lists = [c for c in log if c["action"] == "ListSnapshotBlocks"]
                distinct = {(c["snapshot_id"], c["block_index"]) for c in gets}
                emu.clear_calls()
                replay = s.invoke(direct(ami))
                expect_ok(replay, "replay, CONTENT_CHECK=enforce", "already-public", 1)
                replay_ebs = len(ebs_calls(emu))
                calls_ok = (calls_ok and len(gets) == len(distinct) == minimum_gets
                            and len(lists) == read["list_calls"])
                replays_ok = replays_ok and replay_ebs == 0
                if not first:
                    first = {"gets": len(gets), "distinct": len(distinct), "lists": len(lists), "others": others,
                             "replay_ebs": replay_ebs, "content": content, "body": body}
    if first["content"] != "acknowledged":
        raise BenchError(f"publish:content is {first['content']!r}, expected 'acknowledged' "
                         f"(allowed: {tags.get('publish-allow')}): {first['body']}")
    off, enforce = statistics.median(times["off"]), statistics.median(times["enforce"])
    added = enforce - off
    what = (f"{head}: publish by the function, CONTENT_CHECK=enforce "
            f"(publish-allow={tags.get('publish-allow', '')}, verdict {first['content']})")
    return [
        Row(f"{what}: EBS calls of the publish (first run; every run checked)",
            f"{first['gets']} GetSnapshotBlock ({first['distinct']} distinct) + {first['lists']} ListSnapshotBlocks",
            f"= {minimum_gets} + {read['list_calls']} (blocks touched − zeros + listing pages)",
            calls_ok),
        calls_compared(f"{what}: the publish's other calls (EC2, quotas, ledger)", first["others"],
                       minimum("publish")),
        Row(f"{what}: EBS calls of its replay (same process; first run, every run checked)",
            f"{first['replay_ebs']}", "0", replays_ok),
        Row(f"{what}: handler time added vs. CONTENT_CHECK=off at {EBS_LATENCY_MS} ms per AWS call "
            f"(medians of {CHECK_PUBLISH_PAIRS} fresh processes each)",
            f"{added:.0f} ms ({enforce:.0f} vs. {off:.0f} ms)",
            f"≤ {EBS_MAX_WALL_S:.0f} s", added <= EBS_MAX_WALL_S * 1000),
        Row(f"{what}: peak RSS of the function (VmHWM, start + publish)",
            mb(max(rss)), f"≤ {mb(EBS_MAX_RSS_BYTES)}", 0 < max(rss) <= EBS_MAX_RSS_BYTES),
    ]


def run_ebs(skip_build: bool) -> list[Row]:
    """The EBS reads: each fixture uploaded to the emulator as coldsnap
    would, an AMI over it, then ebs_read at 20 ms per AWS call; then the
    function publishes AMIs over it with the content check on and off."""
    from ebs_upload import upload_disk_image  # tests/emulator/ebs_upload.py

    binary = ebs_bench_binary(skip_build)
    function = release_function()
    if not function.is_file():
        raise BenchError(f"missing binary {function} (run without --skip-build)")
    images = ebs_fixtures()
    files = count_files(images)
    rows: list[Row] = []
    with Emulator.start() as emu:
        for name, label in (("al2023", "AL2023-like, XFS root"), ("ubuntu", "Ubuntu-like, ext4 root")):
            fresh(emu)
            snapshot_id = upload_disk_image(emu.client("ebs", HOME), str(images / f"{name}.img"))
            image_id = emu.seed_image(region=HOME, name=f"bench-{name}", snapshots=[{"snapshot_id": snapshot_id}])
            emu.config(latency_ms=EBS_LATENCY_MS)
            emu.clear_calls()
            wait_quiet(f"the EBS reads ({name})", {})
            result, rss, _ = run_ebs_read(binary, emu.url, image_id)
            log = emu.control("GET", "/_emulator/calls?service=ebs")["calls"]
            gets = [c for c in log if c["action"] == "GetSnapshotBlock"]
            lists = [c for c in log if c["action"] == "ListSnapshotBlocks"]
            distinct = {(c["snapshot_id"], c["block_index"]) for c in gets}
            minimum = result["blocks_touched"] - result["zero_blocks"]
            # The check fails closed: an unreadable fixture is a failure of
            # the measure, not a cheap run.
            if result["outcome"] != "read":
                raise BenchError(f"the content check could not read {name}.img: {result['unreadable_reason']}")
            kinds = sorted(set(result["finding_kinds"]))
            head = (f"EBS reads, {label}, 8 GiB, ≥ {files:,} files (the check: {result['findings']} findings "
                    f"of {len(kinds)} kinds, the fixture's leftovers)")
            rows.append(Row(
                f"{head}: 512 KiB blocks touched (of which zeros, no call) / GetSnapshotBlock calls",
                f"{result['blocks_touched']} ({result['zero_blocks']}) / {len(gets)} calls, "
                f"{len(distinct)} distinct blocks",
                "calls = blocks touched − zeros (no block fetched twice)",
                len(gets) == minimum == len(distinct)))
            rows.append(Row(
                f"{head}: bytes transferred (block data), ListSnapshotBlocks calls (pages)",
                f"{result['bytes_transferred'] / 2**20:.1f} MiB, {len(lists)} list call(s)",
                "list calls = the listing's pages", len(lists) == result["list_calls"] >= 1))
            rows.append(Row(
                f"{head}: wall time at {EBS_LATENCY_MS} ms per EBS call, concurrency {result['concurrency']}",
                f"{result['wall_ms']:.0f} ms",
                f"≤ {EBS_MAX_WALL_S:.0f} s", result["wall_ms"] <= EBS_MAX_WALL_S * 1000))
            rows.append(Row(
                f"{head}: peak RSS of the reading process (VmHWM; cache bound {result['cache_bytes'] >> 20} MiB)",
                mb(rss), f"≤ {mb(EBS_MAX_RSS_BYTES)}", 0 < rss <= EBS_MAX_RSS_BYTES))
            rows.extend(measure_check_publish(function, emu, snapshot_id, name, f"{label}", result))
    return rows


def write_ebs_section(rows: list[Row]) -> str:
    """Puts the EBS section into bench/results.md in place of the last one
    (the other sections as the last full run wrote them)."""
    section = "\n".join([
        EBS_SECTION,
        "",
        "Written by `make bench` after the tables above, or alone by `bench/run.py --only ebs`. "
        "examples/ebs_read.rs (release profile) runs the function's content check, "
        "`content::check_ami(&client, &snapshots, ReadOptions::default())`, over an AMI "
        "uploaded to the emulator through the EBS direct APIs (tests/emulator/ebs_upload.py), "
        f"{EBS_LATENCY_MS} ms of latency on every call. Wall time: listing, every fetch and the check's reading. "
        "The fixtures are builders' leftovers on purpose (tests/images/build.py root_tree): the findings "
        "are the check working, not a failure.",
        "",
        table(rows),
        "",
        f"- Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M UTC} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs.",
        "",
    ])
    path = BENCH / "results.md"
    text = path.read_text() if path.exists() else ""
    if EBS_SECTION in text:
        before, _, after = text.partition(EBS_SECTION)
        rest = after.split("\n## ", 1)
        text = before + section + (("\n## " + rest[1]) if len(rest) > 1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    return section


def measured(measure: Callable[[], Any], what: str = "") -> Any:
    """What `measure` returns, or None when it can't measure (said why);
    every process it started is stopped either way."""
    try:
        return measure()
    except BenchError as e:
        print(f"bench: cannot measure{what}: {e}", file=sys.stderr)
        return None
    finally:
        for proc in list(PROCESSES):
            stop_process(proc)


def verdict(rows: list[Row]) -> int:
    """The exit status: 1 when a row FAILs."""
    failed = [r.measure for r in rows if r.ok is False]
    if failed:
        print(f"bench: FAIL: {'; '.join(failed)}", file=sys.stderr)
        return 1
    print("bench: all budgets PASS")
    return 0


def run_section(measure: Callable[[], list[Row]], report: Callable[[list[Row]], str]) -> int:
    """One section alone (`--only`): its rows measured and reported."""
    rows = measured(measure)
    if rows is None:
        return 2
    print(report(rows))
    return verdict(rows)


def measure_deadline(binary: Path, emu: Emulator, rows: list[Row]) -> None:
    """A sweep that can't finish before its deadline: EC2 slowed down, a
    short timeout. It must answer before the deadline, some AMIs published,
    the rest left for the next sweep."""
    fresh(emu, public_image_quota=1000, latency_ms=DEADLINE_LATENCY_MS)
    for i in range(DEADLINE_IMAGES):
        seed_tagged(emu, f"bench-deadline-{i:03d}")
    with Session(binary, emu.url, function_config(), "deadline") as s:
        s.start()
        queued = time.time()
        result = s.invoke(sweep_event(), timeout_s=DEADLINE_TIMEOUT_S)
        answered = time.time()
    body = expect_ok(result, "sweep against its deadline")
    overrun = answered - (queued + DEADLINE_TIMEOUT_S)
    done = sum(1 for i in body["images"] if i.get("action") == "published")
    rows.append(Row(f"sweep of {DEADLINE_IMAGES} AMIs, {DEADLINE_TIMEOUT_S} s timeout, "
                    f"{DEADLINE_LATENCY_MS} ms per AWS call: overrun (answer - deadline)",
                    f"{overrun:+.1f} s ({done} published, {body.get('deferred', 0)} deferred)",
                    "≤ 0 s", overrun <= 0 and done > 0 and body.get("deferred", 0) > 0))


def measure_deadline_only(binary: Path) -> list[Row]:
    """`--only deadline`: the deadline row alone, with the given build."""
    if not binary.is_file():
        raise BenchError(f"missing binary {binary}")
    rows: list[Row] = []
    with Emulator.start() as emu:
        measure_deadline(binary, emu, rows)
    return rows


def measure_calls_only(binary: Path) -> list[Row]:
    """`--only calls`: the "AWS calls" rows alone, with any build of the
    function (no size, time or memory line)."""
    if not binary.is_file():
        raise BenchError(f"missing binary {binary}")
    rows: list[Row] = []
    with Emulator.start() as emu:
        measure_calls(binary, emu, rows, timing=False)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    p.add_argument("--runs", type=int, default=11, help="runs per cold-start / publish median (default 11)")
    p.add_argument("--only", choices=["ebs", "calls", "deadline"],
                   help="run only this section (ebs: the EBS reads; calls: the AWS calls per outcome, "
                        "printed, not written to results.md)")
    p.add_argument("--binary", type=Path,
                   help="with --only calls: the function's x86_64 binary to run (any profile: the calls do "
                        "not depend on it; default: the release build, target/release/ami-publisher)")
    args = p.parse_args()
    if args.binary is not None and args.only not in ("calls", "deadline"):
        p.error("--binary goes with --only calls or --only deadline")
    if not 1 <= args.runs <= 100:
        p.error("--runs must be 1..100")
    WORK.mkdir(parents=True, exist_ok=True)

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    if args.only == "calls":
        binary = args.binary or release_function()
        return run_section(lambda: measure_calls_only(binary),
                           lambda rows: f"AWS calls per outcome, {binary}:\n\n{table(rows)}")
    if args.only == "deadline":
        binary = args.binary or release_function()
        return run_section(lambda: measure_deadline_only(binary),
                           lambda rows: f"The deadline, {binary}:\n\n{table(rows)}")
    if args.only == "ebs":
        return run_section(lambda: run_ebs(args.skip_build), write_ebs_section)
    bins = measured(lambda: build(args.skip_build))
    results = bins and measured(lambda: run_all(bins, args.runs))
    if results is None:
        return 2
    rows, tls_rows, notes = results
    print(write_results(rows, tls_rows, bins, notes, args.runs))
    ebs_rows = measured(lambda: run_ebs(args.skip_build), " the EBS reads")
    if ebs_rows is None:
        return 2
    print(write_ebs_section(ebs_rows))
    return verdict([*rows, *tls_rows, *ebs_rows])


if __name__ == "__main__":
    sys.exit(main())
