"""EC2 request throttling (throttling.py, applied by server.py): token
buckets per account, Region and action, sized as EC2 documents them.

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from botocore.exceptions import ClientError

from emu_helpers import OTHER, OWNER, R1, R2, ec2_as, error_of, make_public, utcnow
from harness import ControlAPIError


# ---------------------------------------------------------------------------
# Request throttling
# ---------------------------------------------------------------------------

def throttling(emu, **body):
    return emu.control("POST", "/_emulator/throttling", body)


def bucket(emu, action: str, region: str = R1, account: str = OWNER, category: str | None = None) -> dict:
    for b in emu.control("GET", "/_emulator/throttling")["buckets"]:
        if (b["action"], b["region"], b["account"]) == (action, region, account) and category in (None, b["category"]):
            return b
    raise KeyError(action)


def test_throttling_is_off_by_default(emu, ec2):
    state = emu.control("GET", "/_emulator/throttling")
    assert state["enabled"] is False and state["buckets"] == []
    # Limits set but not enabled: nothing is throttled.
    throttling(emu, overrides={"DescribeImages": {"capacity": 1, "refill_rate": 0}})
    for _ in range(3):
        ec2.describe_images(Owners=["self"])
    assert all("throttled" not in c for c in emu.calls())


def test_empty_bucket_answers_request_limit_exceeded_503_per_account_region_and_action(emu, ec2, ec2_r2):
    throttling(emu, enabled=True, overrides={"DescribeImages": {"capacity": 2, "refill_rate": 0}})
    ec2.describe_images(Owners=["self"])
    ec2.describe_images(Owners=["self"])
    with pytest.raises(ClientError) as exc:
        ec2.describe_images(Owners=["self"])
    assert error_of(exc)[0::2] == ("RequestLimitExceeded", 503)
    # Refused calls stay in the call log, marked.
    assert emu.calls() == [{"action": "DescribeImages", "region": R1}] * 2 + [
        {"action": "DescribeImages", "region": R1, "throttled": True}
    ]
    # Another action, another region, another account: their own buckets.
    ec2.get_image_block_public_access_state()
    ec2_r2.describe_images(Owners=["self"])
    ec2_as(emu, OTHER).describe_images(Owners=["self"])
    assert bucket(emu, "DescribeImages")["tokens"] == 0


def test_throttled_calls_are_retried_by_the_sdk(emu):
    throttling(emu, enabled=True, overrides={"DescribeImages": {"capacity": 0, "refill_rate": 0}})
    retrying = emu.client("ec2", R1, retries={"total_max_attempts": 3, "mode": "standard"})
    with pytest.raises(ClientError) as exc:
        retrying.describe_images(Owners=["self"])
    assert error_of(exc)[0] == "RequestLimitExceeded"
    assert emu.calls() == [{"action": "DescribeImages", "region": R1, "throttled": True}] * 3


def test_throttling_bucket_sizes_are_ec2s(emu, ec2, ec2_r2):
    # EC2 "Request throttling" tables: (category, capacity, refill rate).
    throttling(emu, enabled=True)
    image_id = emu.seed_image(region=R1, name="img")
    src = emu.seed_image(region=R1, name="src")
    ec2.describe_images(Owners=["self"])
    ec2.get_image_block_public_access_state()
    make_public(ec2, image_id)
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": "k", "Value": "v"}])
    ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=utcnow() + dt.timedelta(days=30))
    ec2.enable_image_block_public_access(ImageBlockPublicAccessState="block-new-sharing")
    ec2.deregister_image(ImageId=src)
    ec2_r2.copy_image(SourceImageId=image_id, SourceRegion=R1, Name="copy")
    expected = {
        ("DescribeImages", R1): ("non-mutating", 100, 20),
        ("GetImageBlockPublicAccessState", R1): ("non-mutating", 100, 20),
        ("ModifyImageAttribute", R1): ("uncategorized", 100, 5),
        ("CreateTags", R1): ("uncategorized", 100, 10),
        ("EnableImageDeprecation", R1): ("mutating", 50, 5),
        ("EnableImageBlockPublicAccess", R1): ("uncategorized", 1, 0.1),
        ("DeregisterImage", R1): ("uncategorized", 100, 5),
        ("CopyImage", R2): ("uncategorized", 100, 1),
    }
    for (action, region), (category, capacity, refill) in expected.items():
        b = bucket(emu, action, region)
        assert (b["category"], b["capacity"], b["refill_rate"]) == (category, capacity, refill), action
        assert capacity - 1 <= b["tokens"] <= capacity


def test_unfiltered_unpaginated_describes_use_the_smaller_bucket(emu, ec2):
    # capacity_scale 0.02: non-mutating 100 -> 2, unfiltered/unpaginated 50 -> 1.
    throttling(emu, enabled=True, capacity_scale=0.02, refill_scale=0)
    ec2.describe_snapshots()
    with pytest.raises(ClientError) as exc:
        ec2.describe_snapshots()
    assert error_of(exc)[0] == "RequestLimitExceeded"
    assert bucket(emu, "DescribeSnapshots", category="unfiltered-unpaginated")["capacity"] == 1
    # Filtered: the standard bucket.
    owner_filter = [{"Name": "owner-id", "Values": [OWNER]}]
    ec2.describe_snapshots(Filters=owner_filter)
    ec2.describe_snapshots(Filters=owner_filter)
    assert bucket(emu, "DescribeSnapshots", category="non-mutating")["capacity"] == 2
    # DescribeImages is not in the unfiltered/unpaginated list: 2 tokens.
    ec2.describe_images()
    ec2.describe_images()
    with pytest.raises(ClientError):
        ec2.describe_images()
    assert bucket(emu, "DescribeImages")["category"] == "non-mutating"


def test_throttling_buckets_refill(emu, ec2):
    throttling(emu, enabled=True, overrides={"DescribeImages": {"capacity": 10, "refill_rate": 0}})
    for _ in range(3):
        ec2.describe_images(Owners=["self"])
    time.sleep(0.05)
    assert bucket(emu, "DescribeImages")["tokens"] == 7  # refill rate 0: no refill
    throttling(emu, enabled=True, overrides={"DescribeImages": {"capacity": 10, "refill_rate": 1000}})
    for _ in range(3):
        ec2.describe_images(Owners=["self"])
    time.sleep(0.05)  # >= 50 tokens' worth of refill, capped at the capacity
    assert bucket(emu, "DescribeImages")["tokens"] == 10


def test_throttling_control_api(emu, ec2):
    state = throttling(emu, enabled=True, capacity_scale=0.5, refill_scale=0.1)
    assert (state["enabled"], state["capacity_scale"], state["refill_scale"]) == (True, 0.5, 0.1)
    ec2.describe_images(Owners=["self"])
    assert bucket(emu, "DescribeImages")["capacity"] == 50
    for bad in ({"enabled": "yes"}, {"capacity_scale": -1}, {"overrides": {"X": {"capacity": 1}}}, {"nope": 1}):
        with pytest.raises(ControlAPIError) as exc:
            throttling(emu, **bad)
        assert exc.value.status == 400
    throttling(emu, enabled=False)
    assert emu.control("GET", "/_emulator/throttling")["enabled"] is False
