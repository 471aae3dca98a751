"""The server's contract: start-up, injected faults and latency, the call log,
and the control API's own behaviour (input checks, reset).

Rules of one AWS feature are tested beside it (test_<module>.py for
rules/<module>.py); here only what server.py does for every call.

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError

from emu_helpers import OWNER, R1, R2, describe, error_of, make_public
from harness import SERVER, ControlAPIError


# ---------------------------------------------------------------------------
# Start-up contract
# ---------------------------------------------------------------------------

def test_ready_line_names_a_loopback_url(emu):
    assert emu.url.startswith("http://127.0.0.1:")
    assert emu.port > 0
    assert emu.control("GET", "/_emulator/health") == {"ok": True}


def test_start_failure_is_loud_and_non_zero(emu):
    # The port is taken by the running emulator.
    proc = subprocess.run(
        [sys.executable, str(SERVER), "--port", str(emu.port)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "EMULATOR_READY" not in proc.stdout
    assert f"cannot listen on 127.0.0.1:{emu.port}" in proc.stderr

# ---------------------------------------------------------------------------
# Faults, latency, call log
# ---------------------------------------------------------------------------

def test_request_limit_fault_is_503_and_retried_by_sdk(emu):
    emu.fault("DescribeImages", "RequestLimitExceeded", count=2)
    retrying = emu.client("ec2", R1, retries={"total_max_attempts": 3, "mode": "standard"})
    assert retrying.describe_images(Owners=["self"])["Images"] == []
    assert [c["action"] for c in emu.calls()] == ["DescribeImages"] * 3
    emu.clear_calls()
    emu.fault("DescribeImages", "RequestLimitExceeded", count=1)
    single = emu.client("ec2", R1, retries={"total_max_attempts": 1, "mode": "standard"})
    with pytest.raises(ClientError) as exc:
        single.describe_images(Owners=["self"])
    assert error_of(exc)[0::2] == ("RequestLimitExceeded", 503)


def test_resource_limit_fault_is_400_and_not_retried(emu):
    src = emu.seed_image(region=R1, name="src")
    emu.fault("CopyImage", "ResourceLimitExceeded", count=1)
    retrying = emu.client("ec2", R2, retries={"total_max_attempts": 3, "mode": "standard"})
    with pytest.raises(ClientError) as exc:
        retrying.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy")
    assert error_of(exc)[0::2] == ("ResourceLimitExceeded", 400)
    assert emu.calls() == [{"action": "CopyImage", "region": R2}]
    # count exhausted: the next call goes through.
    retrying.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy")


def test_fault_scoped_to_region(emu, ec2, ec2_r2):
    emu.fault("DescribeImages", "InternalError", count=5, region=R2)
    ec2.describe_images(Owners=["self"])
    with pytest.raises(ClientError) as exc:
        ec2_r2.describe_images(Owners=["self"])
    assert error_of(exc)[0::2] == ("InternalError", 500)


def test_not_found_right_after_copy_can_be_injected(emu, ec2_r2):
    # DESIGN.md: right after a copy, tagging or deprecating it can briefly
    # fail with InvalidAMIID.NotFound; the fault API reproduces that.
    src = emu.seed_image(region=R1, name="src")
    copy_id = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy")["ImageId"]
    emu.fault("CreateTags", "InvalidAMIID.NotFound", count=1, region=R2,
              message=f"The image id '[{copy_id}]' does not exist")
    with pytest.raises(ClientError) as exc:
        ec2_r2.create_tags(Resources=[copy_id], Tags=[{"Key": "k", "Value": "v"}])
    assert error_of(exc) == ("InvalidAMIID.NotFound", f"The image id '[{copy_id}]' does not exist", 400)
    ec2_r2.create_tags(Resources=[copy_id], Tags=[{"Key": "k", "Value": "v"}])
    assert emu.image(copy_id)["tags"] == {"k": "v"}


def test_latency_injection(emu, ec2):
    ec2.describe_images(Owners=["self"])  # warm the connection and the client
    emu.config(latency_ms=250)
    started = time.monotonic()
    ec2.describe_images(Owners=["self"])
    assert time.monotonic() - started >= 0.25


def test_call_log_in_arrival_order_with_regions(emu, ec2, ec2_r2):
    emu.seed_image(region=R1, name="img")  # control calls are not logged
    ec2.describe_images(Owners=["self"])
    ec2_r2.get_image_block_public_access_state()
    ec2.describe_images(Owners=["self"])
    assert emu.calls() == [
        {"action": "DescribeImages", "region": R1},
        {"action": "GetImageBlockPublicAccessState", "region": R2},
        {"action": "DescribeImages", "region": R1},
    ]
    emu.clear_calls()
    assert emu.calls() == []


def test_call_log_names_the_image_and_the_launch_permission_change(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    make_public(ec2, image_id)
    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Remove": [{"Group": "all"}]})
    assert emu.calls() == [
        {"action": "ModifyImageAttribute", "region": R1, "image_id": image_id, "launch_permission": "add all"},
        {"action": "ModifyImageAttribute", "region": R1, "image_id": image_id, "launch_permission": "remove all"},
    ]

# ---------------------------------------------------------------------------
# Control API
# ---------------------------------------------------------------------------

def test_seed_image_with_fixed_id_and_listing_shape(emu):
    image_id = emu.seed_image(
        region=R1, image_id="ami-0a1b2c3d4e5f60001", name="fixed", description="desc",
        tags={"publish": "public"}, product_codes=["pc"], creation_date="2026-02-03T04:05:06Z",
        deprecation_time="2027-01-01T00:00:00Z", snapshots=[{"encrypted": True}],
    )
    assert image_id == "ami-0a1b2c3d4e5f60001"
    (image,) = emu.images(R1)
    assert image == {
        **image,
        "image_id": image_id, "region": R1, "owner": OWNER, "name": "fixed", "state": "available",
        "public": False, "tags": {"publish": "public"}, "deprecation_time": "2027-01-01T00:00:00.000Z",
        "creation_date": "2026-02-03T04:05:06.000Z", "encrypted": True, "product_codes": ["pc"],
    }
    assert emu.images(R2) == []
    with pytest.raises(ControlAPIError) as exc:
        emu.seed_image(region=R1, image_id="ami-0a1b2c3d4e5f60001", name="dup")
    assert exc.value.status == 400


def test_control_api_rejects_bad_input(emu):
    with pytest.raises(ControlAPIError) as exc:
        emu.control("POST", "/_emulator/images", {"name": "no-region"})
    assert exc.value.status == 400
    with pytest.raises(ControlAPIError) as exc:
        emu.config(latency_ms=-1)
    assert exc.value.status == 400
    with pytest.raises(ControlAPIError) as exc:
        emu.config(unknown=1)
    assert exc.value.status == 400
    with pytest.raises(ControlAPIError) as exc:
        emu.set_bpa(R1, "blocked")
    assert exc.value.status == 400
    with pytest.raises(ControlAPIError) as exc:
        emu.control("GET", "/_emulator/nope")
    assert exc.value.status == 404


def test_reset_restores_defaults(emu, ec2):
    emu.seed_image(region=R1, name="img")
    emu.set_bpa(R1, "block-new-sharing")
    emu.config(latency_ms=5, copy_delay_seconds=1, public_image_quota=1, concurrent_copy_limit=1,
               deregistration_cooldown_seconds=0, public_image_quota_by_region={R2: 9})
    emu.fault("DescribeImages", "InternalError", count=10)
    emu.control("POST", "/_emulator/throttling", {"enabled": True})
    emu.control("POST", "/_emulator/copy-failures", {"region": R2, "count": 3})
    emu.control("POST", "/_emulator/recycle-bin", {"region": R1, "image_id": emu.seed_image(region=R1, name="b")})
    emu.control("POST", "/_emulator/recycle-bin/rules", {"region": R1, "retention_days": 1})
    ec2.enable_ebs_encryption_by_default()
    ec2.get_image_block_public_access_state()
    emu.reset()
    assert emu.images() == []
    assert emu.calls() == []
    assert emu.control("GET", "/_emulator/config")["config"] == {
        "latency_ms": 0, "copy_delay_seconds": 30, "public_image_quota": 5, "concurrent_copy_limit": 100,
        "deregistration_cooldown_seconds": 86400, "public_image_quota_by_region": {},
    }
    throttle = emu.control("GET", "/_emulator/throttling")
    assert (throttle["enabled"], throttle["buckets"]) == (False, [])
    assert emu.control("GET", "/_emulator/copy-failures")["copy_failures"] == {}
    assert emu.control("GET", "/_emulator/recycle-bin")["images"] == []
    assert emu.control("GET", "/_emulator/recycle-bin/rules")["rules"] == []
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"] == "unblocked"
    assert ec2.describe_images(Owners=["self"])["Images"] == []  # fault gone


def test_seeded_pending_image_completes_on_request(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img", state="pending")
    assert describe(ec2, image_id)["State"] == "pending"
    assert emu.complete_copies()["completed"] == [image_id]
    assert describe(ec2, image_id)["State"] == "available"
