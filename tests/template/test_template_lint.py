"""template.yaml passes cfn-lint and `sam validate` (with and without --lint),
run offline: no process may open a socket or even resolve a host name.

What the tools do, from their source (aws-sam-cli 1.170.0, cfn-lint 1.58.0):
- `sam validate --lint` reads the template and calls cfnlint.api.lint: the
  SAM transform and every rule run locally, no AWS client is created.
- `sam validate` without --lint creates an IAM client, but it is only used
  (iam:ListPolicies) to resolve managed policy names in a function's
  `Policies`; this template gives the function its own role and no
  managed policy, so the client never sends a request.
- Both are wrapped by SAM CLI's telemetry (off: SAM_CLI_TELEMETRY=0) and a
  weekly version check against PyPI (skipped: its last-check time is set).
The offline_env fixture also points every AWS endpoint and proxy at a closed
port and audits sockets, so any call that slipped through would show here.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from template_helpers import REPO, TEMPLATE, tool


def run_offline(cmd: list[str], offline_env) -> subprocess.CompletedProcess:
    env, net_log = offline_env
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start
    output = f"$ {' '.join(cmd)}  ({elapsed:.1f}s, exit {proc.returncode})\n{proc.stdout}{proc.stderr}"
    network = net_log.read_text() if net_log.exists() else ""
    assert not network, f"{cmd[0]} used the network:\n{network}\n{output}"
    assert proc.returncode == 0, output
    return proc


def test_cfn_lint(offline_env):
    """In every region cfn-lint knows: the stack is meant for any of them."""
    cmd = [tool("cfn-lint"), "--format", "parseable", "--regions", "ALL_REGIONS", "--", str(TEMPLATE)]
    run_offline(cmd, offline_env)


@pytest.mark.parametrize("lint", [True, False], ids=["sam-validate-lint", "sam-validate"])
def test_sam_validate(offline_env, lint):
    cmd = [tool("sam"), "validate", "--template-file", str(TEMPLATE), "--region", "us-east-1"]
    if lint:
        cmd.append("--lint")
    proc = run_offline(cmd, offline_env)
    assert "is a valid SAM Template" in proc.stdout + proc.stderr


def test_network_audit_catches_a_connection(offline_env):
    """The audit itself works: a process that does resolve a name is caught."""
    env, net_log = offline_env
    code = "import socket\ntry:\n    socket.getaddrinfo('localhost', 9)\nexcept OSError:\n    pass\n"
    subprocess.run([tool("python"), "-c", code], env=env, check=True, timeout=60)
    assert "socket.getaddrinfo" in net_log.read_text()
