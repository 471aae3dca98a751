"""`ami-publisher plan`: the binary run by a person, against the local EC2
emulator, its output read as a person reads it. It must never write.

Run: `cargo build` (or `cargo test --all-targets --no-run`) first; `make test`
does both.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from lambda_harness import BINARY, HOME, base_env, function_binary
from harness import Emulator

READS = {"DescribeImages", "ListImagesInRecycleBin", "GetImageBlockPublicAccessState",
         "GetEbsEncryptionByDefault", "GetServiceQuota"}


@pytest.fixture(scope="module")
def emu():
    function_binary()  # fails with the reason when cargo has not built it
    with Emulator.start() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def clean(emu):
    emu.reset()


def plan(emu: Emulator, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = base_env()
    # The seeded AMIs have no disk image behind them: the content check off,
    # as in the harness's function (its own tests read real images).
    environment.update(AWS_ENDPOINT_URL=emu.url, TARGET_REGIONS="us-west-2,eu-west-1",
                       CONTENT_CHECK="off", **env)
    return subprocess.run([str(BINARY), "plan", *args], env=environment, capture_output=True,
                          text=True, timeout=60)


def writes(emu: Emulator) -> list[dict]:
    return [c for c in emu.control("GET", "/_emulator/calls?service=all")["calls"] if c["action"] not in READS]


def test_plan_for_an_ami_says_what_would_happen_and_changes_nothing(emu):
    eligible = emu.seed_image(region=HOME, name="base-1", tags={"publish": "public", "family": "base"})
    encrypted = emu.seed_image(region=HOME, name="enc", tags={"publish": "public"}, snapshots=[{"encrypted": True}])
    emu.control("POST", "/_emulator/ebs-encryption-by-default", {"region": "eu-west-1", "enabled": True})
    before = emu.images()
    emu.clear_calls()

    done = plan(emu, "--region", HOME, eligible, encrypted)

    assert done.returncode == 0, done.stderr
    # The table's lines, their columns' spacing squashed.
    lines = [" ".join(line.split()) for line in done.stdout.splitlines()]
    out = "\n".join(lines)
    assert lines[0] == "Preview: nothing was changed. Function in us-east-1, TARGET_REGIONS=us-west-2,eu-west-1.", out
    for expected in [
        f"{eligible} us-east-1 make public",
        f"{encrypted} us-east-1 keep private encrypted EBS volume: /dev/xvda",
        "copy in us-west-2 (new) start a copy",
        "copy in eu-west-1 (new) keep private: EBS encryption by default is on in eu-west-1",
        f"us-east-1 make {eligible} public",
        f"us-east-1 protect {eligible} from deregistration",
        f"us-west-2 copy us-east-1/{eligible} to us-west-2",
        f"us-east-1 tag {eligible} copying",
        f"us-east-1 tag {encrypted} rejected",
        "us-east-1 quota 5 (service-quotas), 1 public after these steps, headroom 4, 0 in the Recycle Bin",
    ]:
        assert any(line.startswith(expected) for line in lines), f"{expected!r} not in:\n{out}"
    assert writes(emu) == [], "plan never writes"
    assert emu.images() == before


def test_plan_of_a_sweep_as_json_is_the_functions_preview_outcome(emu):
    first = emu.seed_image(region=HOME, name="a", tags={"publish": "public"})
    second = emu.seed_image(region=HOME, name="b", tags={"publish": "public"})
    emu.clear_calls()

    done = plan(emu, "--region", HOME, "--sweep", "--json")

    assert done.returncode == 0, done.stderr
    [outcome] = json.loads(done.stdout)
    assert (outcome["trigger"], outcome["preview"]) == ("sweep", True)
    assert sorted(i["image_id"] for i in outcome["images"]) == sorted([first, second])
    assert {s["step"] for s in outcome["steps"]} >= {"make-public", "copy", "status"}
    assert writes(emu) == []


def test_plan_with_bad_usage_or_configuration_says_what_is_wrong(emu):
    usage = plan(emu, "--region", HOME)
    assert usage.returncode == 2 and "name AMI ids, or --sweep" in usage.stderr
    config = plan(emu, "--region", HOME, "--sweep", KEEP_PUBLIC_PER_FAMILY="0")
    assert config.returncode == 2 and "KEEP_PUBLIC_PER_FAMILY" in config.stderr
    helped = subprocess.run([str(BINARY), "--help"], env=base_env(), capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0 and "ami-publisher plan --region REGION AMI_ID..." in helped.stdout


def free_closed_port() -> str:
    """A loopback address nothing listens on: the endpoint refuses."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def plan_env(emu: Emulator, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BINARY), "plan", *args], env=env, capture_output=True, text=True, timeout=120)


def assert_claims_nothing(done: subprocess.CompletedProcess) -> list[str]:
    """A preview that could not read: exit 1, one line per failure for a
    person (no SDK debug dump), and no claim about the AMIs."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Nothing to do" not in done.stdout and "Steps: none" not in done.stdout, done.stdout
    assert "Could not read the AMIs" in done.stdout, done.stdout
    lines = done.stderr.strip().splitlines()
    assert lines and all(line.startswith("ami-publisher: could not read: ") for line in lines), done.stderr
    for dump in ("DispatchFailure {", "ConnectorError {", "CredentialsNotLoaded(", "Some("):
        assert dump not in done.stderr, done.stderr
    return lines


@pytest.mark.parametrize("args", [["--sweep"], ["ami-0123456789abcdef0"]], ids=["sweep", "one-ami"])
def test_plan_without_credentials_says_how_to_give_them(emu, args):
    env = base_env()
    del env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]
    env.update(AWS_ENDPOINT_URL=emu.url)
    emu.clear_calls()

    [line] = assert_claims_nothing(plan_env(emu, "--region", HOME, *args, env=env))

    assert "NoCredentials" in line and "us-east-1" in line, line
    assert "AWS_ACCESS_KEY_ID" in line and "--profile" in line, line
    assert emu.control("GET", "/_emulator/calls?service=all")["calls"] == [], "nothing unsigned was sent"


def test_plan_against_an_endpoint_that_refuses_says_ec2_did_not_answer(emu):
    env = base_env()
    env.update(AWS_ENDPOINT_URL=free_closed_port())

    [line] = assert_claims_nothing(plan_env(emu, "--region", HOME, "--sweep", env=env))

    assert "DescribeImages in us-east-1" in line and "Connection refused" in line, line
    assert "EC2 did not answer" in line, line


def test_plan_refused_by_iam_names_the_action_and_the_permissions(emu):
    emu.seed_image(region=HOME, name="a", tags={"publish": "public"})
    emu.control("POST", "/_emulator/faults", {"action": "DescribeImages", "error_code": "UnauthorizedOperation",
                                              "message": "You are not authorized to perform this operation.",
                                              "count": 10, "http_status": 403})

    [line] = assert_claims_nothing(plan(emu, "--region", HOME, "--sweep"))

    assert "DescribeImages in us-east-1 failed: UnauthorizedOperation" in line, line
    assert "ReadImagesAndRegionSettings" in line, line
