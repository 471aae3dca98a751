"""`ami-publisher check`: the content check of an AMI, run by the binary
through the EBS direct APIs, against the emulator. The images are real file
systems (tests/images/build.py) with a secret of every kind planted, or
none, uploaded as coldsnap uploads (tests/emulator/ebs_upload.py), AMIs
registered over them.

Exit status: 0 clean, 1 findings, 2 bad usage, 3 could not read. The
planted secret must never show, in stdout or stderr, as a table or JSON.

Run: `cargo build` (or `cargo test --all-targets --no-run`) first; `make test`
does both.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from lambda_harness import BINARY, HOME, base_env, function_binary
from harness import Emulator
from ebs_upload import upload_disk_image
from test_ls_command import disk_images

PLANTED = ("PLANTED-SECRET-7f3a", "PLANTED000000000")
KINDS = {"authorized-keys", "host-keys", "histories", "credentials", "password-login", "instance-data"}


@pytest.fixture(scope="module")
def emu():
    function_binary()  # fails with the reason when cargo has not built it
    with Emulator.start() as emulator:
        yield emulator


@pytest.fixture(scope="module")
def snapshots(emu, tmp_path_factory):
    ebs = emu.client("ebs", HOME)
    images = disk_images()
    luks = tmp_path_factory.mktemp("luks") / "luks.img"
    luks.write_bytes(b"LUKS\xba\xbe" + bytes(1024 * 1024 - 6))
    return {
        name: upload_disk_image(ebs, path)
        for name, path in [
            ("planted", images / "planted-xfs.img"),
            ("clean", images / "clean-ext4-plain.img"),
            ("clean-xfs", images / "clean-xfs.img"),
            ("home", images / "planted-home.img"),
            ("luks", luks),
        ]
    }


def ami(emu, name, *snapshot_ids):
    return emu.seed_image(region=HOME, name=name, snapshots=[{"snapshot_id": s} for s in snapshot_ids])


def check(emu: Emulator, *args: str) -> subprocess.CompletedProcess:
    env = base_env()
    env.update(AWS_ENDPOINT_URL=emu.url)
    done = subprocess.run([str(BINARY), "check", *args], env=env, capture_output=True, text=True, timeout=120)
    for secret in PLANTED:
        assert secret not in done.stdout and secret not in done.stderr, f"{secret} shown"
    return done


def test_a_planted_image_exits_1_naming_every_kind_and_never_the_secret(emu, snapshots):
    image = ami(emu, "planted", snapshots["planted"])
    emu.clear_calls()
    table = check(emu, "--region", HOME, image)
    assert table.returncode == 1, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"{image} in {HOME}: 25 finding(s), not to be made public as it is"
    assert lines[1].split() == ["kind", "account", "path"]
    assert {line.split()[0] for line in lines[2:27]} == KINDS
    assert "authorized-keys  root    /root/.ssh/authorized_keys" in lines
    assert any(line.startswith("  /dev/xvda (snap-") and line.endswith("partition 1 (Linux file system): XFS")
               for line in lines), table.stdout
    calls = emu.control("GET", "/_emulator/calls?service=ebs")["calls"]
    blocks = [(c["snapshot_id"], c["block_index"]) for c in calls if c["action"] == "GetSnapshotBlock"]
    assert blocks and len(blocks) == len(set(blocks)), "no block fetched twice"

    as_json = check(emu, "--region", HOME, image, "--json")
    assert as_json.returncode == 1, as_json.stderr
    report = json.loads(as_json.stdout)
    assert (report["image_id"], report["region"], report["result"]) == (image, HOME, "read")
    assert {f["kind"] for f in report["findings"]} == KINDS
    assert {"kind": "password-login", "path": "/etc/shadow", "account": "ann"} in report["findings"]
    assert all(set(f) == {"kind", "path", "account"} for f in report["findings"])


def test_a_clean_image_exits_0(emu, snapshots):
    image = ami(emu, "clean", snapshots["clean"])
    done = check(emu, "--region", HOME, image)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{image} in {HOME}: clean"), done.stdout
    report = json.loads(check(emu, "--region", HOME, image, "--json").stdout)
    assert (report["result"], report["findings"]) == ("read", [])


def test_every_volume_is_read_not_only_the_root(emu, snapshots):
    # A clean root, and a second volume (as if mounted at /home) with a key.
    image = ami(emu, "two-volumes", snapshots["clean-xfs"], snapshots["home"])
    done = check(emu, "--region", HOME, image, "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["findings"] == [
        {"kind": "authorized-keys", "path": "/dev/sdb:/carol/.ssh/authorized_keys", "account": None}]
    assert len(report["file_systems"]) == 2


def test_what_cant_be_read_exits_3_saying_why(emu, snapshots):
    image = ami(emu, "luks", snapshots["luks"])
    done = check(emu, "--region", HOME, image)
    assert done.returncode == 3
    assert done.stdout == ""
    assert done.stderr.startswith("ami-publisher: could not read: /dev/xvda (snap-"), done.stderr
    assert "LUKS" in done.stderr
    report = json.loads(check(emu, "--region", HOME, image, "--json").stdout)
    assert report["result"] == "unreadable" and "LUKS" in report["reason"]

    # The EBS APIs refusing is no clean image either (a refusal is not retried).
    planted = ami(emu, "refused", snapshots["planted"])
    emu.fault("GetSnapshotBlock", "AccessDeniedException", count=1)
    denied = check(emu, "--region", HOME, planted)
    assert denied.returncode == 3
    assert denied.stderr.startswith("ami-publisher: could not read: GetSnapshotBlock of snap-"), denied.stderr

    unknown = check(emu, "--region", HOME, "ami-0123456789abcdef0")
    assert unknown.returncode == 3
    assert "ami-0123456789abcdef0 is not an AMI" in unknown.stderr


def test_bad_usage_exits_2(emu):
    for args in (["--region", HOME], ["ami-0123456789abcdef0"], ["--region", HOME, "--deep", "ami-0123456789abcdef0"]):
        done = check(emu, *args)
        assert done.returncode == 2, args
        assert done.stderr.startswith("ami-publisher: "), done.stderr


def test_the_functions_preview_runs_the_check_shows_the_findings_and_writes_nothing(emu, snapshots):
    """`ami-publisher plan` (the function's dry run) with CONTENT_CHECK=enforce:
    the planted AMI would stay private, the reason naming the kinds; the
    clean one would be made public; nothing is written; no secret shown."""
    planted = emu.seed_image(region=HOME, name="planted-tagged", tags={"publish": "public"},
                             snapshots=[{"snapshot_id": snapshots["planted"]}])
    clean = emu.seed_image(region=HOME, name="clean-tagged", tags={"publish": "public"},
                           snapshots=[{"snapshot_id": snapshots["clean"]}])
    env = base_env()
    env.update(AWS_ENDPOINT_URL=emu.url, CONTENT_CHECK="enforce")
    emu.clear_calls()
    for image, expected in [(planted, "rejected"), (clean, "make public")]:
        done = subprocess.run([str(BINARY), "plan", "--region", HOME, image, "--json"], env=env,
                              capture_output=True, text=True, timeout=120)
        for secret in PLANTED:
            assert secret not in done.stdout and secret not in done.stderr, f"{secret} shown"
        assert done.returncode == 0, done.stderr
        [outcome] = json.loads(done.stdout)
        (result,) = outcome["images"]
        if expected == "rejected":
            assert result["action"] == "rejected", result
            assert all(kind in result["reasons"][0] for kind in KINDS), result["reasons"]
            assert {f["kind"] for f in result["content"]["findings"]} == KINDS
        else:
            assert {s["step"] for s in outcome["steps"]} >= {"make-public"}, outcome["steps"]
            assert result["content"] == {"result": "read", "findings": [], "file_systems": result["content"]["file_systems"]}
    writes = [c for c in emu.control("GET", "/_emulator/calls")["calls"]
              if c["action"] not in ("DescribeImages", "GetImageBlockPublicAccessState", "ListImagesInRecycleBin",
                                     "GetServiceQuota")]
    assert writes == [], writes
