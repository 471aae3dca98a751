"""Start the EC2 emulator as a subprocess and drive its control API.

Usable from any Python test:

    from harness import Emulator
    with Emulator.start() as emu:
        emu.reset()
        image_id = emu.seed_image(region="us-east-1", name="x")
        ec2 = emu.client("ec2", "us-east-1")

Standard library plus boto3 only. Fails loudly (EmulatorStartError) when the
server does not start: tests built on it must not be skipped silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVER = HERE / "server.py"
DUMMY_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


class EmulatorStartError(RuntimeError):
    pass


class ControlAPIError(RuntimeError):
    def __init__(self, status: int, body: str):
        super().__init__(f"control API answered {status}: {body}")
        self.status = status
        self.body = body


class Emulator:
    def __init__(self, proc: subprocess.Popen, url: str):
        self.proc = proc
        self.url = url
        self._stderr: list[str] = []
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()

    # -- lifecycle -------------------------------------------------------
    @classmethod
    def start(cls, *extra_args: str, python: str | None = None, timeout: float = 30.0) -> "Emulator":
        # Default: the interpreter running the caller (the project's .venv
        # when tests run as `.venv/bin/python -m pytest`).
        python = python or os.environ.get("EMULATOR_PYTHON") or sys.executable
        cmd = [python, str(SERVER), "--port", "0", *extra_args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line_holder: list[str] = []

        def read_first_line() -> None:
            assert proc.stdout is not None
            line_holder.append(proc.stdout.readline())

        reader = threading.Thread(target=read_first_line, daemon=True)
        reader.start()
        reader.join(timeout)
        line = line_holder[0].strip() if line_holder else ""
        if not line.startswith("EMULATOR_READY http://127.0.0.1:"):
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise EmulatorStartError(
                f"emulator did not start ({' '.join(cmd)}): first stdout line {line!r}, "
                f"exit code {proc.returncode}, stderr:\n{err}"
            )
        return cls(proc, line.split(" ", 1)[1])

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    # -- control API -----------------------------------------------------
    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise ControlAPIError(e.code, e.read().decode()) from None

    def reset(self) -> None:
        self.control("POST", "/_emulator/reset", {})

    def seed_image(self, **spec: Any) -> str:
        return self.control("POST", "/_emulator/images", spec)["image_id"]

    def images(self, region: str | None = None) -> list[dict[str, Any]]:
        path = "/_emulator/images" + (f"?region={region}" if region else "")
        return self.control("GET", path)["images"]

    def image(self, image_id: str) -> dict[str, Any]:
        for img in self.images():
            if img["image_id"] == image_id:
                return img
        raise KeyError(image_id)

    def set_bpa(self, region: str, state: str, managed_by: str = "account") -> Any:
        return self.control("POST", "/_emulator/bpa", {"region": region, "state": state, "managed_by": managed_by})

    def fault(self, action: str, error_code: str, count: int = 1, region: str | None = None, **extra: Any) -> Any:
        body = {"action": action, "error_code": error_code, "count": count, **extra}
        if region is not None:
            body["region"] = region
        return self.control("POST", "/_emulator/faults", body)

    def config(self, **values: Any) -> Any:
        return self.control("POST", "/_emulator/config", values)

    def complete_copies(self, region: str | None = None) -> Any:
        return self.control("POST", "/_emulator/complete-copies", {"region": region} if region else {})

    def calls(self) -> list[dict[str, str]]:
        return self.control("GET", "/_emulator/calls")["calls"]

    def clear_calls(self) -> None:
        self.control("POST", "/_emulator/calls/clear", {})

    # -- SDK clients -----------------------------------------------------
    def client(self, service: str, region: str, account: str | None = None, **config: Any) -> Any:
        """A boto3 client against the emulator (dummy credentials).

        account: act as another AWS account (moto's x-moto-account-id header).
        config: botocore Config keyword arguments (e.g. retries=...).
        """
        import boto3
        from botocore.config import Config

        client = boto3.client(
            service, region_name=region, endpoint_url=self.url,
            config=Config(**config) if config else None, **DUMMY_CREDENTIALS,
        )
        if account:
            def add_account(request: Any, **_: Any) -> None:
                request.headers["x-moto-account-id"] = account

            client.meta.events.register("before-sign.*.*", add_account)
        return client
