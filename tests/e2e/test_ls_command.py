"""`ami-publisher ls`: a directory of an AMI's root file system, read by the
binary through the EBS direct APIs, against the emulator. The image is a
real ext4 volume (tests/images/build.py), uploaded as coldsnap uploads
(tests/emulator/ebs_upload.py), an AMI registered over it.

Run: `cargo build` (or `cargo test --all-targets --no-run`) first; `make test`
does both.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lambda_harness import BINARY, HOME, ROOT, base_env, function_binary
from harness import Emulator
from ebs_upload import upload_disk_image


def disk_images() -> Path:
    """The images' directory (built by tests/images/build.py when missing),
    the same one the Rust tests read."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    out = Path(os.environ.get("DISK_IMAGES_DIR") or target / "disk-images")
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "images" / "build.py"), str(out)])
    assert done.returncode == 0, "tests/images/build.py failed; `make images-tools` installs the tools"
    return out / "v3"


@pytest.fixture(scope="module")
def emu():
    function_binary()  # fails with the reason when cargo has not built it
    with Emulator.start() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def ami(emu):
    snapshot = upload_disk_image(emu.client("ebs", HOME), disk_images() / "plain-ext4.img")
    return emu.seed_image(region=HOME, name="ls", snapshots=[{"snapshot_id": snapshot}])


def ls(emu: Emulator, *args: str) -> subprocess.CompletedProcess:
    env = base_env()
    env.update(AWS_ENDPOINT_URL=emu.url)
    return subprocess.run([str(BINARY), "ls", *args], env=env, capture_output=True, text=True, timeout=120)


def test_ls_lists_a_directory_of_the_root_through_the_ebs_direct_apis(emu, ami):
    emu.clear_calls()
    done = ls(emu, "--region", HOME, ami, "/etc/ssh")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == sorted(
        [f"ssh_host_{k}_key{p}" for k in ("ecdsa", "ed25519", "rsa") for p in ("", ".pub")] + ["sshd_config"])
    calls = emu.control("GET", "/_emulator/calls?service=ebs")["calls"]
    assert {c["action"] for c in calls} == {"ListSnapshotBlocks", "GetSnapshotBlock"}
    blocks = [(c["snapshot_id"], c["block_index"]) for c in calls if c["action"] == "GetSnapshotBlock"]
    assert len(blocks) == len(set(blocks)), "no block fetched twice"

    home = ls(emu, "--region", HOME, ami, "/home/user05")
    assert home.returncode == 0, home.stderr
    assert home.stdout.splitlines() == [".bash_history", ".bashrc", ".profile", ".ssh/"]

    root = ls(emu, "--region", HOME, ami, "/")
    assert root.returncode == 0, root.stderr
    assert {"bin@", "etc/", "home/", "usr/", "root/"} <= set(root.stdout.splitlines())


def test_what_cant_be_read_is_one_line_for_a_person(emu, ami):
    missing = ls(emu, "--region", HOME, ami, "/etc/nothing-here")
    assert missing.returncode == 1
    assert missing.stderr == "ami-publisher: could not read: /etc/nothing-here: no such file or directory\n"

    a_file = ls(emu, "--region", HOME, ami, "/etc/passwd")
    assert a_file.returncode == 1
    assert a_file.stderr == "ami-publisher: could not read: /etc/passwd: not a directory\n"

    # The first block read is refused (a refusal is not retried).
    emu.fault("GetSnapshotBlock", "AccessDeniedException", count=1)
    denied = ls(emu, "--region", HOME, ami, "/etc")
    assert denied.returncode == 1
    lines = denied.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ami-publisher: could not read: GetSnapshotBlock of snap-"), \
        denied.stderr
    assert "AccessDeniedException" in lines[0]

    unknown = ls(emu, "--region", HOME, "ami-0123456789abcdef0", "/")
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("ami-publisher: could not read: ami-0123456789abcdef0 is not an AMI"), unknown.stderr

    usage = ls(emu, "--region", HOME, ami)
    assert usage.returncode == 2
    assert "name the path to list" in usage.stderr
