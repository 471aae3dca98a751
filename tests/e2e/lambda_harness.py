"""Run ami-publisher end to end: the real Lambda runtime API, the real binary,
the local EC2 emulator. Shared by the end-to-end test (test_lambda_e2e.py)
and `make demo` (demo.py).

What runs, each a process of its own:

* the EC2 emulator (tests/emulator/server.py, started by tests/emulator/harness.py);
* `cargo lambda watch --only-lambda-apis`: cargo-lambda's emulation of the
  Lambda control plane and runtime API, on a free port of 127.0.0.1;
* the function, `target/debug/ami-publisher` as cargo built it (under
  $CARGO_TARGET_DIR when that is set, as cargo does), with
  `AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:PORT/.rt` and
  `AWS_LAMBDA_FUNCTION_NAME=_`. With --only-lambda-apis, cargo-lambda serves
  the runtime API under `/.rt`; the routes without a function name
  (`/.rt/2018-06-01/runtime/invocation/next`, which is what lambda_runtime
  calls under that base) belong to its default function `_`
  (DEFAULT_PACKAGE_FUNCTION in cargo-lambda-watch), which is also the default
  name `cargo lambda invoke` invokes;
  cargo-lambda 1.9.2 sends `Lambda-Runtime-Deadline-Ms: 600000`, a
  duration, where AWS sends milliseconds since the Unix epoch; the function
  treats a deadline that is not in the future as none (src/main.rs), so
  sweeps run in full here;
* `cargo lambda invoke --data-file EVENT --invoke-port PORT _` per event.

Nothing is built here: a second `cargo build` with other features would
compile aws-sdk-ec2 again. `make test` runs `cargo test --all-targets` first
(which builds the binary), `make demo` runs `cargo build` first.

Every process is started in a session of its own (so a Ctrl-C in the
terminal does not kill it half way through a request) and is stopped,
with its whole process group, by `stop()`; on Linux each also gets SIGTERM
if the Python process dies without cleaning up.

Nothing talks to AWS: dummy credentials, no config or credentials file, no
instance metadata, and the SDK's endpoint is the emulator on 127.0.0.1.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = ROOT / "events"
# Where cargo builds: $CARGO_TARGET_DIR when set (as cargo reads it, a
# relative one from the current directory), else target/ of the repository.
BINARY = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target").absolute() / "debug" / "ami-publisher"


def shown(path: Path) -> str:
    """A path as printed: from the repository's root when under it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


sys.path.insert(0, str(ROOT / "tests" / "emulator"))
from harness import Emulator, EmulatorStartError  # noqa: E402  (tests/emulator/harness.py)

# cargo-lambda's default function name: the bare runtime routes serve it.
FUNCTION_NAME = "_"
ACCOUNT = "123456789012"
HOME = "us-east-1"
TARGETS = ("us-west-2", "eu-west-1")
STATUS = "publish:status"
REASON = "publish:reason"
SOURCE = "publish:source"

# The function's configuration in the test and the demo.
FUNCTION_CONFIG = {
    "AWS_REGION": HOME,
    "TARGET_REGIONS": ",".join(TARGETS),
    "DEPRECATE_AFTER_DAYS": "365",
    "COPY_CONCURRENCY": "4",
    "KEEP_PUBLIC_PER_FAMILY": "2",
    # The table the emulator creates as template.yaml defines it.
    "LEDGER_TABLE": "ami-publisher-ledger",
    # The sample AMIs have no disk image behind them; the content check's
    # own end-to-end tests turn it on over real images.
    "CONTENT_CHECK": "off",
}
FAMILY = "example-base"

# The AMIs the sample events in events/ refer to.
ELIGIBLE = "ami-0a1b2c3d4e5f60001"  # ami-available.json, direct.json, unpublish.json
ENCRYPTED = "ami-0a1b2c3d4e5f60002"  # tag-added.json, tag-status-changed.json
PRODUCT_CODE = "ami-0a1b2c3d4e5f60003"  # tag-added-product-code.json
UNTAGGED = "ami-0a1b2c3d4e5f60004"  # tag-removed.json
FAILED = "ami-0a1b2c3d4e5f60005"  # ami-failed.json
MARKETPLACE_CODE = "8fv3oz0xsmuppotbnmxg8k6c"

SAMPLE_AMIS: list[dict[str, Any]] = [
    {"image_id": ELIGIBLE, "region": HOME, "name": "example-base-2024.01.01",
     "description": "eligible: owned, available, unencrypted, no product code",
     "tags": {"publish": "public", "Name": "example-base-2024.01.01", "team": "images", "family": "example-base"}},
    {"image_id": ENCRYPTED, "region": HOME, "name": "example-linux-2024.01.01",
     "description": "tagged, but its root snapshot is encrypted",
     "tags": {"publish": "public", "Name": "example-linux-2024.01.01"},
     "snapshots": [{"encrypted": True}]},
    {"image_id": PRODUCT_CODE, "region": HOME, "name": "example-marketplace-2024.01.01",
     "description": "tagged, but it carries an AWS Marketplace product code",
     "tags": {"publish": "public", "Name": "example-marketplace-2024.01.01"},
     "product_codes": [MARKETPLACE_CODE]},
    {"image_id": UNTAGGED, "region": HOME, "name": "example-linux-2023.12.01",
     "description": "its publish tag was removed",
     "tags": {"Name": "example-linux-2023.12.01"}},
    {"image_id": FAILED, "region": HOME, "name": "example-broken-2024.01.01",
     "description": "the build failed", "state": "failed",
     "tags": {"publish": "public", "Name": "example-broken-2024.01.01"}},
]

# Every sample event, in the order a day of the function's life might bring
# them, and the errorType of those that must fail.
SAMPLE_EVENTS = [
    "ami-available.json",
    "tag-added.json",
    "tag-added-product-code.json",
    "tag-removed.json",
    "ami-failed.json",
    "tag-status-changed.json",
    "tag-change-instance.json",
    "malformed.json",
    "direct.json",
    "scheduled-sweep.json",
]
EXPECTED_ERRORS = {
    "tag-change-instance.json": "InvalidEvent",
    "malformed.json": "InvalidEvent",
}


def is_read_only(action: str) -> bool:
    """Whether an EC2 action (as the emulator's call log names it) only reads."""
    return action.startswith(("Describe", "Get"))


class HarnessError(RuntimeError):
    """A service of the harness could not start or did not answer."""


# ---------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------

_PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


def base_env() -> dict[str, str]:
    """The caller's environment without anything that could reach AWS.

    No AWS_* variable of the caller (profiles, endpoints, real credentials),
    no proxy; dummy credentials; config and credentials files and instance
    metadata switched off.
    """
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("AWS_") and k.lower() not in _PROXY_VARS
    }
    env.update(
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        NO_PROXY="127.0.0.1,localhost,::1",
        no_proxy="127.0.0.1,localhost,::1",
    )
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cargo_lambda() -> str:
    """The cargo-lambda executable: the project's venv first, then PATH."""
    venv = ROOT / ".venv" / "bin" / "cargo-lambda"
    if venv.is_file() and os.access(venv, os.X_OK):
        return str(venv)
    found = shutil.which("cargo-lambda")
    if found:
        return found
    raise HarnessError(
        "cargo-lambda not found (neither .venv/bin/cargo-lambda nor on PATH): run `make venv`"
    )


def function_binary() -> Path:
    if not (BINARY.is_file() and os.access(BINARY, os.X_OK)):
        raise HarnessError(
            f"the function binary {shown(BINARY)} does not exist. The end-to-end "
            "run uses what cargo built and does not build it itself: run "
            "`cargo test --all-targets` (as `make test` does) or `cargo build` (as `make demo` does) first."
        )
    return BINARY


def stale_binary_note() -> str | None:
    """A warning when a source file is newer than the function binary (a
    test of the old code would pass or fail for nothing), else None."""
    if not BINARY.is_file():
        return None
    built = BINARY.stat().st_mtime
    sources = [ROOT / "Cargo.toml", ROOT / "Cargo.lock", *sorted((ROOT / "src").rglob("*.rs"))]
    newer = [str(f.relative_to(ROOT)) for f in sources if f.is_file() and f.stat().st_mtime > built]
    if not newer:
        return None
    return (
        f"{shown(BINARY)} is older than {', '.join(newer[:5])}"
        f"{' ...' if len(newer) > 5 else ''}: rebuild it (cargo test --all-targets --no-run, or cargo build)"
    )


def _load_prctl() -> Any:
    """libc's prctl, looked up once here: the child must not import after fork."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """A session (and process group) of its own; on Linux, SIGTERM when the
    Python process that started it dies without stopping it."""
    os.setsid()
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


class ManagedProcess:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
                stderr=subprocess.STDOUT,
                preexec_fn=_child_setup,
            )
        except OSError as e:
            self._log.close()
            raise HarnessError(f"cannot start {name} ({' '.join(argv)}): {e}") from e

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log(self, last_lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-last_lines:])

    def describe_exit(self) -> str:
        return (
            f"{self.name} (pid {self.pid}) exited with code {self.proc.returncode}; "
            f"its last output ({self.log_path}):\n{self.log()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the process group, SIGKILL if it lingers."""
        try:
            if self.alive():
                self._signal_group(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    self.proc.wait(timeout=timeout)
            # Whatever the leader left behind in its group.
            self._signal_group(signal.SIGKILL)
        finally:
            self._log.close()

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class RuntimeAPI:
    """`cargo lambda watch --only-lambda-apis` on 127.0.0.1:PORT."""

    def __init__(self, process: ManagedProcess, port: int):
        self.process = process
        self.port = port

    @property
    def runtime_api(self) -> str:
        """The AWS_LAMBDA_RUNTIME_API value the function must use."""
        return f"http://127.0.0.1:{self.port}/.rt"

    @classmethod
    def start(cls, log_dir: Path, timeout: float = 30.0, invoke_timeout: int = 60) -> "RuntimeAPI":
        exe = cargo_lambda()
        last_error = ""
        for attempt in range(3):
            port = free_port()
            argv = [
                exe, "lambda", "watch", "--only-lambda-apis", "--ignore-changes",
                "--invoke-address", "127.0.0.1", "--invoke-port", str(port),
                "--timeout", str(invoke_timeout),
            ]
            process = ManagedProcess(
                "cargo lambda watch", argv, base_env(), log_dir / f"cargo-lambda-watch-{port}.log"
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not process.alive():
                    break
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        return cls(process, port)
                except OSError:
                    time.sleep(0.05)
            if process.alive():
                process.stop()
                raise HarnessError(
                    f"cargo lambda watch did not listen on 127.0.0.1:{port} within {timeout:.0f} s "
                    f"({' '.join(argv)}); its output:\n{process.log()}"
                )
            last_error = process.describe_exit()
            process.stop()
            if "in use" not in last_error.lower():
                break  # not a port race: no point in trying again
        raise HarnessError(f"cargo lambda watch did not start: {last_error}")

    def stop(self) -> None:
        self.process.stop()


class FunctionProcess:
    """target/debug/ami-publisher polling the runtime API."""

    def __init__(self, process: ManagedProcess, config: dict[str, str]):
        self.process = process
        self.config = config

    @classmethod
    def start(
        cls, runtime_api: str, endpoint_url: str, log_dir: Path,
        config: dict[str, str] | None = None,
    ) -> "FunctionProcess":
        binary = function_binary()
        config = dict(FUNCTION_CONFIG if config is None else config)
        env = base_env()
        env.update(
            AWS_LAMBDA_RUNTIME_API=runtime_api,
            AWS_LAMBDA_FUNCTION_NAME=FUNCTION_NAME,
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
            AWS_LAMBDA_LOG_LEVEL="info",
            AWS_ENDPOINT_URL=endpoint_url,
            RUST_BACKTRACE="1",
        )
        env.update(config)
        process = ManagedProcess("ami-publisher", [str(binary)], env, log_dir / "ami-publisher.log")
        # It reads its configuration and builds its clients at once; a bad
        # configuration ends it within moments.
        time.sleep(0.3)
        if not process.alive():
            message = process.describe_exit()
            process.stop()
            raise HarnessError(f"the function did not start: {message}")
        return cls(process, config)

    def stop(self) -> None:
        self.process.stop()


# ---------------------------------------------------------------------------
# Invocations
# ---------------------------------------------------------------------------


@dataclass
class Invocation:
    """What one `cargo lambda invoke` returned."""

    label: str
    ok: bool
    result: dict[str, Any] | None = None
    error_type: str | None = None
    error_message: str | None = None
    seconds: float = 0.0

    @property
    def images(self) -> list[dict[str, Any]]:
        return list((self.result or {}).get("images") or [])

    def image(self, image_id: str) -> dict[str, Any]:
        for image in self.images:
            if image["image_id"] == image_id:
                return image
        raise AssertionError(f"{self.label}: no outcome for {image_id} in {self.result}")

    def summary_lines(self) -> list[str]:
        """What the function answered, one line per AMI."""
        if not self.ok:
            return [f"error {self.error_type}: {self.error_message}"]
        result = self.result or {}
        if result.get("trigger") == "ignored":
            return [f"ignored: {result.get('ignored')}"]
        prefix = f"sweep of {result.get('region')}: " if result.get("trigger") == "sweep" else ""
        if not self.images:
            deferred = result.get("deferred")
            rest = f", {deferred} AMI(s) left for the next sweep" if deferred else ""
            return [f"{prefix}nothing to do{rest}"]
        lines = []
        for image in self.images:
            text = f"{image['image_id']} {image['region']}: {image['action']}"
            if image.get("status"):
                text += f" (status {image['status']})"
            started = [c["region"] for c in image.get("copies") or [] if c.get("started")]
            if started:
                text += f", copies started in {', '.join(started)}"
            reasons = image.get("reasons") or image.get("errors")
            if reasons:
                text += f": {'; '.join(reasons)}"
            lines.append(text)
            # What the run did to other releases of the family: rotation's
            # retirements, and the release restored after a pull.
            for field_name in ("retired", "restored"):
                for other in image.get(field_name) or []:
                    status = f" (status {other['status']})" if other.get("status") else ""
                    copies = [f"{c['region']} {c['image_id']} {c['action']}"
                              for c in other.get("copies") or [] if c.get("image_id") and c.get("action")]
                    lines.append(f"  {field_name} {other['image_id']} {other['region']}: {other['action']}{status}"
                                 + (f"; copies: {', '.join(copies)}" if copies else ""))
        if result.get("deferred"):
            lines.append(f"{result['deferred']} AMI(s) left for the next sweep")
        return [prefix + lines[0], *lines[1:]]

    def summary(self) -> str:
        return " | ".join(self.summary_lines())


def parse_cli_error(stderr: str) -> tuple[str | None, str]:
    """errorType and errorMessage from what `cargo lambda invoke` prints.

    It prints the function's error as a miette report: `Error: TYPE`, then
    the message after `×`, wrapped, continued after `│`. The lines are
    joined back (a line ending in `-` was wrapped at a hyphen).
    """
    lines = stderr.splitlines()
    error_type = None
    for line in lines:
        m = re.match(r"\s*Error:\s*([A-Za-z][A-Za-z0-9_.]*)\s*$", line)
        if m:
            error_type = m.group(1)
            break
    parts: list[str] = []
    in_message = False
    for line in lines:
        stripped = line.strip()
        if not in_message:
            if stripped.startswith(("×", "x ")):
                in_message = True
                parts.append(stripped[1:].strip())
            continue
        if stripped.startswith(("│", "|")):
            parts.append(stripped[1:].strip())
        else:
            break
    message = ""
    for part in parts:
        if message and not message.endswith("-"):
            message += " "
        message += part
    return error_type, message


def squash(text: str) -> str:
    """Text without whitespace: compares a wrapped message with the original."""
    return "".join(text.split())


class Lambda:
    """Invokes the function through `cargo lambda invoke`."""

    def __init__(self, runtime: RuntimeAPI, function: FunctionProcess, work_dir: Path):
        self.runtime = runtime
        self.function = function
        self.work_dir = work_dir
        self._count = 0

    def invoke(self, event: str | Path | dict[str, Any], label: str | None = None,
               timeout: float = 60.0) -> Invocation:
        """`event`: a file name in events/, a path, or a payload (written to a file)."""
        if isinstance(event, dict):
            self._count += 1
            path = self.work_dir / f"event-{self._count:03d}.json"
            path.write_text(json.dumps(event, indent=2))
            label = label or path.name
        else:
            path = Path(event)
            if not path.is_absolute() and not path.exists():
                path = EVENTS_DIR / path
            label = label or path.name
        if not path.is_file():
            raise HarnessError(f"no event file {path}")
        if not self.function.process.alive():
            raise HarnessError(
                f"cannot invoke with {label}: {self.function.process.describe_exit()}"
            )
        argv = [
            cargo_lambda(), "lambda", "invoke",
            "--invoke-address", "127.0.0.1", "--invoke-port", str(self.runtime.port),
            "--data-file", str(path), "--output-format", "json", "--color", "never",
            FUNCTION_NAME,
        ]
        started = time.monotonic()
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=base_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            while True:
                try:
                    stdout, stderr = proc.communicate(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    if not self.function.process.alive():
                        raise HarnessError(
                            f"the function died while handling {label}: "
                            f"{self.function.process.describe_exit()}"
                        ) from None
                    if not self.runtime.process.alive():
                        raise HarnessError(
                            f"the runtime API died while handling {label}: "
                            f"{self.runtime.process.describe_exit()}"
                        ) from None
                    if time.monotonic() - started > timeout:
                        raise HarnessError(
                            f"no answer to {label} within {timeout:.0f} s; function log:\n"
                            f"{self.function.process.log()}"
                        ) from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = time.monotonic() - started
        if proc.returncode == 0:
            try:
                result = json.loads(stdout)
            except json.JSONDecodeError as e:
                raise HarnessError(f"{label}: the answer is not JSON ({e}): {stdout!r}") from None
            return Invocation(label, True, result=result, seconds=seconds)
        error_type, message = parse_cli_error(stderr)
        if error_type is None:
            raise HarnessError(
                f"cargo lambda invoke failed for {label} without a function error "
                f"(exit code {proc.returncode}):\n{stderr}\nfunction log:\n{self.function.process.log()}"
            )
        return Invocation(label, False, error_type=error_type, error_message=message, seconds=seconds)


# ---------------------------------------------------------------------------
# Everything together
# ---------------------------------------------------------------------------


class Stack:
    """The emulator, the runtime API and the function, started in that order
    and stopped in the reverse order. A failure to start anything stops what
    had started and raises."""

    def __init__(self, log_dir: Path, config: dict[str, str] | None = None,
                 progress: Callable[[str], None] | None = None):
        self.log_dir = log_dir
        self.config = config
        self.progress = progress or (lambda _msg: None)
        self.emu: Emulator | None = None
        self.runtime: RuntimeAPI | None = None
        self.function: FunctionProcess | None = None
        self.lam: Lambda | None = None

    def start(self) -> "Stack":
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.progress("starting the EC2 emulator (tests/emulator/server.py)")
            try:
                self.emu = Emulator.start(python=os.environ.get("EMULATOR_PYTHON") or _venv_python())
            except EmulatorStartError as e:
                raise HarnessError(str(e)) from e
            self.progress(f"EC2 emulator ready at {self.emu.url} (pid {self.emu.proc.pid})")
            self.progress("starting the Lambda runtime API: cargo lambda watch --only-lambda-apis")
            self.runtime = RuntimeAPI.start(self.log_dir)
            self.progress(
                f"runtime API (cargo lambda watch) ready on 127.0.0.1:{self.runtime.port} "
                f"(pid {self.runtime.process.pid})"
            )
            config = FUNCTION_CONFIG if self.config is None else self.config
            self.progress(
                f"starting {shown(BINARY)} with "
                + " ".join(f"{k}={v}" for k, v in config.items())
                + f" AWS_ENDPOINT_URL={self.emu.url}"
            )
            self.function = FunctionProcess.start(
                self.runtime.runtime_api, self.emu.url, self.log_dir, config=self.config
            )
            self.progress(f"function polling the runtime API (pid {self.function.process.pid})")
            self.lam = Lambda(self.runtime, self.function, self.log_dir)
            return self
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        errors = []
        parts = (("function", self.function), ("runtime API", self.runtime), ("emulator", self.emu))
        for name, part in parts:
            if part is None:
                continue
            try:
                part.stop()
            except Exception as e:  # keep stopping the others
                errors.append(f"{name}: {e}")
        self.function = self.runtime = self.emu = None
        if errors:
            raise HarnessError("could not stop everything: " + "; ".join(errors))

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _venv_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.is_file() else sys.executable


# ---------------------------------------------------------------------------
# Scenario helpers
# ---------------------------------------------------------------------------


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text())


def seed_sample_amis(emu: Emulator) -> None:
    for spec in SAMPLE_AMIS:
        emu.seed_image(**spec)


def ami_available_event(image_id: str, region: str) -> dict[str, Any]:
    """events/ami-available.json for another AMI and region (a copy's own event)."""
    event = copy.deepcopy(load_event("ami-available.json"))
    event["id"] = f"e2e-available-{image_id}"
    event["region"] = region
    event["resources"] = [f"arn:aws:ec2:{region}::image/{image_id}"]
    event["detail"]["ImageId"] = image_id
    return event


def sweep_event(region: str) -> dict[str, Any]:
    """events/scheduled-sweep.json as the scheduled rule of `region` sends it."""
    event = copy.deepcopy(load_event("scheduled-sweep.json"))
    event["id"] = f"e2e-sweep-{region}"
    event["region"] = region
    event["resources"] = [f"arn:aws:events:{region}:{ACCOUNT}:rule/ami-publisher-sweep"]
    return event


def tag_removed_event(image_id: str, region: str = HOME) -> dict[str, Any]:
    """events/tag-removed.json for another AMI: its owner deleted the publish tag."""
    event = copy.deepcopy(load_event("tag-removed.json"))
    event["id"] = f"e2e-untagged-{image_id}"
    event["region"] = region
    event["resources"] = [f"arn:aws:ec2:{region}::image/{image_id}"]
    return event


def copies_of(emu: Emulator, source_id: str, source_region: str = HOME) -> list[dict[str, Any]]:
    """The copies of a source, found by their provenance tag."""
    ref = f"{source_region}/{source_id}"
    return [i for i in emu.images() if i["tags"].get(SOURCE) == ref]


def home_sweep(lam: Lambda) -> Invocation:
    """The scheduled sweep of the one stack, in the source region."""
    return lam.invoke(sweep_event(HOME), label=f"scheduled sweep in {HOME}")


def run_sample_scenario(lam: Lambda, emu: Emulator, say: Callable[[str], None] = lambda _m: None
                        ) -> list[Invocation]:
    """Every sample event, then what EC2 and EventBridge would do next in a
    single-stack deployment (the function runs in the source region only):
    the copies complete, and the scheduled sweep publishes them."""
    done = []
    for name in SAMPLE_EVENTS:
        inv = lam.invoke(name, label=f"events/{name}")
        say(f"{inv.label:<45} -> {inv.summary()}")
        done.append(inv)
    completed = emu.complete_copies()["completed"]
    say(f"{'(emulator) copies complete':<45} -> available now: {', '.join(completed) or 'none'}")
    inv = home_sweep(lam)
    say(f"{inv.label:<45} -> {inv.summary()}")
    done.append(inv)
    return done


def replay_events(emu: Emulator) -> list[tuple[str, str | dict[str, Any]]]:
    """Every event the scenario sent, with its label: the samples, then the
    sweep."""
    events: list[tuple[str, str | dict[str, Any]]] = [(f"events/{n}", n) for n in SAMPLE_EVENTS]
    events.append((f"scheduled sweep in {HOME}", sweep_event(HOME)))
    return events


def unexpected_invocations(invocations: Iterable[Invocation]) -> list[str]:
    """Invocations that failed when they should not, or the other way round."""
    problems = []
    for inv in invocations:
        name = inv.label.removeprefix("events/")
        expected = EXPECTED_ERRORS.get(name)
        if expected and inv.ok:
            problems.append(f"{inv.label}: expected error {expected}, got {inv.result}")
        elif expected and inv.error_type != expected:
            problems.append(f"{inv.label}: expected error {expected}, got {inv.error_type}: {inv.error_message}")
        elif not expected and not inv.ok:
            problems.append(f"{inv.label}: unexpected error {inv.error_type}: {inv.error_message}")
        elif inv.ok:
            for image in inv.images:
                if image["action"] == "failed" or image.get("errors"):
                    problems.append(f"{inv.label}: {image['image_id']} failed: {image.get('errors')}")
    return problems


@dataclass
class Expectation:
    public: bool
    status: str | None | set[str]  # None: no status tag at all
    reason_contains: str = ""
    state: str = "available"


def final_state_problems(emu: Emulator, rejected_copy_regions: Iterable[str] = (),
                         eligible: str = "public") -> list[str]:
    """What differs from the expected end state of the sample scenario.

    rejected_copy_regions: target regions where image block public access
    keeps the copy private. eligible: the status the eligible AMI should
    end with: "public", or "withdrawn" (its owner removed the publish tag)
    or "held" (an unpublish request), both private with private copies.
    """
    rejected = set(rejected_copy_regions)
    images = emu.images()
    by_id = {i["image_id"]: i for i in images}
    problems: list[str] = []
    taken_down = eligible != "public"
    if eligible == "retired":
        source_expectation = Expectation(False, "retired", "a newer public AMI of family")
    elif taken_down:
        source_expectation = Expectation(False, eligible, "so it is private")
    else:
        source_expectation = Expectation(True, "copying" if rejected else "public")
    expected: dict[str, Expectation] = {
        ELIGIBLE: source_expectation,
        ENCRYPTED: Expectation(False, "rejected", "encrypted"),
        PRODUCT_CODE: Expectation(False, "rejected", "product code"),
        UNTAGGED: Expectation(False, None),
        FAILED: Expectation(False, None, state="failed"),
    }
    copies = copies_of(emu, ELIGIBLE)
    copy_regions = sorted(c["region"] for c in copies)
    if copy_regions != sorted(TARGETS):
        problems.append(f"copies of {ELIGIBLE}: expected one in each of {sorted(TARGETS)}, found {copy_regions}")
    for c in copies:
        if eligible == "retired":
            expected[c["image_id"]] = Expectation(False, "retired", "a newer public AMI of family")
        elif taken_down:
            expected[c["image_id"]] = Expectation(False, "withdrawn", f"its source {HOME}/{ELIGIBLE}")
        elif c["region"] in rejected:
            expected[c["image_id"]] = Expectation(False, "rejected", "block public access")
        else:
            expected[c["image_id"]] = Expectation(True, "public")
        if c.get("source") != {"region": HOME, "image_id": ELIGIBLE}:
            problems.append(f"copy {c['image_id']}: the emulator says its source is {c.get('source')}")
    for image_id, exp in expected.items():
        image = by_id.get(image_id)
        if image is None:
            problems.append(f"{image_id}: missing")
            continue
        tags = image["tags"]
        if image["public"] != exp.public:
            problems.append(f"{image_id} ({image['region']}): public={image['public']}, expected {exp.public}")
        if image["state"] != exp.state:
            problems.append(f"{image_id} ({image['region']}): state {image['state']}, expected {exp.state}")
        status = tags.get(STATUS)
        if exp.status is None:
            written = sorted(k for k in tags if k.startswith("publish:"))
            if written:
                problems.append(f"{image_id}: expected no status tags, found {written}")
        elif isinstance(exp.status, set):
            if status not in exp.status:
                problems.append(f"{image_id}: {STATUS}={status!r}, expected one of {sorted(exp.status)}")
        elif status != exp.status:
            problems.append(f"{image_id}: {STATUS}={status!r}, expected {exp.status!r}")
        if exp.reason_contains and exp.reason_contains not in tags.get(REASON, ""):
            problems.append(f"{image_id}: {REASON}={tags.get(REASON)!r} does not mention {exp.reason_contains!r}")
    # Other releases of the family (the demo's) and their copies are checked
    # on their own.
    family = {i["image_id"] for i in images if i["tags"].get("family") == FAMILY}
    unknown = sorted(set(by_id) - set(expected) - family)
    if unknown:
        problems.append(f"images nobody expected (copies of copies?): {unknown}")
    return problems


def state_snapshot(emu: Emulator) -> list[dict[str, Any]]:
    """Every image as the emulator holds it, in a stable order."""
    return sorted(emu.images(), key=lambda i: (i["region"], i["image_id"]))


def diff_snapshots(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[str]:
    a = {i["image_id"]: i for i in before}
    b = {i["image_id"]: i for i in after}
    out = [f"new image {k} in {b[k]['region']}" for k in sorted(set(b) - set(a))]
    out += [f"image {k} gone" for k in sorted(set(a) - set(b))]
    for k in sorted(set(a) & set(b)):
        for field_name in sorted(set(a[k]) | set(b[k])):
            if a[k].get(field_name) != b[k].get(field_name):
                out.append(f"{k} {field_name}: {a[k].get(field_name)!r} -> {b[k].get(field_name)!r}")
    return out


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


@dataclass
class Row:
    image_id: str
    region: str
    kind: str
    action: str
    status: str
    public: str
    reason: str


def last_actions(invocations: Iterable[Invocation]) -> dict[tuple[str, str], str]:
    """The last action the function reported for each (image, region)."""
    actions: dict[tuple[str, str], str] = {}

    def walk(image: dict[str, Any], suffix: str = "") -> None:
        actions[(image["image_id"], image["region"])] = image["action"] + suffix
        # The source's stack reconciles its copies too, rotation retires
        # older AMIs of the family, and a pulled release's run restores the
        # one rotation retired for it (RESTORE_ON_WITHDRAW), copies too.
        retired = list(image.get("retired") or [])
        for c in image.get("copies") or []:
            if c.get("image_id") and c.get("action"):
                actions[(c["image_id"], c["region"])] = c["action"] + suffix
            retired += c.get("retired") or []
        for r in retired:
            walk(r)
        for r in image.get("restored") or []:
            walk(r, " (restored)")

    for inv in invocations:
        for image in inv.images:
            walk(image)
    return actions


def result_rows(emu: Emulator, invocations: Iterable[Invocation]) -> list[Row]:
    actions = last_actions(invocations)
    rows = []
    for image in state_snapshot(emu):
        tags = image["tags"]
        if tags.get(SOURCE):
            kind = f"copy of {tags[SOURCE]}"
        else:
            kind = image["name"] + ("" if image["state"] == "available" else f" [{image['state']}]")
        rows.append(Row(
            image_id=image["image_id"], region=image["region"], kind=kind,
            action=actions.get((image["image_id"], image["region"]), "(never reconciled)"),
            status=tags.get(STATUS, "-"),
            public="PUBLIC" if image["public"] else "private",
            reason=tags.get(REASON, "-"),
        ))
    # Home region first, then the targets in their configured order.
    order = {r: n for n, r in enumerate((HOME, *TARGETS))}
    rows.sort(key=lambda r: (order.get(r.region, 99), r.image_id))
    return rows


def format_table(rows: list[Row], reason_width: int = 70) -> str:
    headers = Row("AMI", "region", "what", "last action", "status tag", "public", "reason tag")
    names = list(Row.__dataclass_fields__)

    def wrap(text: str) -> list[str]:
        words, lines, line = text.split(" "), [], ""
        for w in words:
            if line and len(line) + 1 + len(w) > reason_width:
                lines.append(line)
                line = w
            else:
                line = f"{line} {w}" if line else w
        return lines + [line]

    cells = [[getattr(r, n) for n in names] for r in [headers, *rows]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(names) - 1)]
    widths.append(min(reason_width, max(len(c[-1]) for c in cells)))
    sep = "+".join("-" * (w + (1 if i in (0, len(widths) - 1) else 2)) for i, w in enumerate(widths))
    out = []
    for n, c in enumerate(cells):
        reason_lines = wrap(c[-1])
        for k, reason_line in enumerate(reason_lines):
            fixed = c[:-1] if k == 0 else [""] * (len(c) - 1)
            out.append(" | ".join(v.ljust(w) for v, w in zip([*fixed, reason_line], widths)).rstrip())
        if n == 0:
            out.append(sep)
    return "\n".join(out)
