"""Fixtures for the template.yaml tests (helpers in template_helpers.py).

Nothing here talks to AWS: the lint tests run the tools offline with dummy
credentials and a closed endpoint, and the rule tests use moto in-process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from template_helpers import SITECUSTOMIZE, EVENTS, load_template


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template()


@pytest.fixture(scope="session")
def events() -> dict[str, dict]:
    """events/*.json by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(EVENTS.glob("*.json"))}


@pytest.fixture
def offline_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Environment for running AWS tools with no way to reach AWS.

    Dummy credentials and region; every AWS endpoint points at a closed port
    on 127.0.0.1; no config or credentials file of the machine is read;
    proxies point at the same closed port; SAM CLI's telemetry is off and its
    weekly PyPI version check is marked done. A sitecustomize logs any socket
    activity of the process to the returned file, which must stay absent.
    """
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    sam_dir = tmp_path / "sam-app-dir"
    sam_dir.mkdir()
    (sam_dir / "metadata.json").write_text(
        json.dumps({"telemetryEnabled": False, "lastVersionCheck": time.time()})
    )
    net_log = tmp_path / "network.log"
    closed = "http://127.0.0.1:9"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(hook_dir),
        "NET_AUDIT_LOG": str(net_log),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": closed,
        "HTTP_PROXY": closed,
        "HTTPS_PROXY": closed,
        "http_proxy": closed,
        "https_proxy": closed,
        "NO_PROXY": "",
        "SAM_CLI_TELEMETRY": "0",
        "__SAM_CLI_APP_DIR": str(sam_dir),
        "__SAM_CLI_TELEMETRY_ENDPOINT_URL": closed,
    }
    return env, net_log
