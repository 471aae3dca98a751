"""The end of an AMI (rules/deregistration.py): the Recycle Bin,
ListImagesInRecycleBin, deregistration protection and its cool-down.

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from emu_helpers import OTHER, OWNER, R1, R2, describe, ec2_as, error_of, parse, recycle, seed_many, utcnow
from harness import ControlAPIError


# ---------------------------------------------------------------------------
# Recycle Bin
# ---------------------------------------------------------------------------

def test_image_in_recycle_bin_is_hidden_and_listed(emu, ec2):
    image_id = emu.seed_image(region=R1, name="binned", description="d")
    kept = emu.seed_image(region=R1, name="kept")
    entry = recycle(emu, image_id, retention_days=3)
    assert entry["image_id"] == image_id
    assert {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]} == {kept}
    assert ec2.describe_images(ImageIds=[image_id])["Images"] == []
    (listed,) = ec2.list_images_in_recycle_bin()["Images"]
    assert (listed["ImageId"], listed["Name"], listed["Description"]) == (image_id, "binned", "d")
    assert listed["RecycleBinExitTime"] - listed["RecycleBinEnterTime"] == dt.timedelta(days=3)
    assert ec2_as(emu, OTHER).list_images_in_recycle_bin()["Images"] == []
    assert emu.control("GET", f"/_emulator/recycle-bin?region={R1}")["images"][0]["image_id"] == image_id


def test_deregister_under_a_retention_rule_goes_to_the_recycle_bin(emu, ec2, ec2_r2):
    emu.control("POST", "/_emulator/recycle-bin/rules", {"region": R1, "retention_days": 7})
    binned = emu.seed_image(region=R1, name="a")
    ec2.deregister_image(ImageId=binned)
    assert [i["ImageId"] for i in ec2.list_images_in_recycle_bin()["Images"]] == [binned]
    # No rule in the other region: deleted for good.
    gone = emu.seed_image(region=R2, name="b")
    ec2_r2.deregister_image(ImageId=gone)
    assert ec2_r2.list_images_in_recycle_bin()["Images"] == []
    assert emu.control("GET", "/_emulator/recycle-bin/rules")["rules"] == [
        {"account": OWNER, "region": R1, "retention_days": 7}
    ]
    emu.control("POST", "/_emulator/recycle-bin/rules", {"region": R1, "retention_days": None})
    assert emu.control("GET", "/_emulator/recycle-bin/rules")["rules"] == []


def test_list_images_in_recycle_bin_pages(emu, ec2):
    ids = seed_many(emu, 3)
    for image_id in ids:
        recycle(emu, image_id)
    first = ec2.list_images_in_recycle_bin(MaxResults=2)
    second = ec2.list_images_in_recycle_bin(MaxResults=2, NextToken=first["NextToken"])
    assert "NextToken" not in second
    assert sorted(i["ImageId"] for i in first["Images"] + second["Images"]) == sorted(ids)
    assert [i["ImageId"] for i in ec2.list_images_in_recycle_bin(ImageIds=[ids[1]])["Images"]] == [ids[1]]


def test_recycle_bin_control_api_rejects_bad_input(emu):
    image_id = emu.seed_image(region=R1, name="a")
    for body in ({"region": R1}, {"region": R1, "image_id": image_id, "retention_days": 0}):
        with pytest.raises(ControlAPIError) as exc:
            emu.control("POST", "/_emulator/recycle-bin", body)
        assert exc.value.status == 400
    with pytest.raises(ControlAPIError) as exc:
        recycle(emu, "ami-0123456789abcdef0")
    assert exc.value.status == 404

# ---------------------------------------------------------------------------
# Deregistration protection
# ---------------------------------------------------------------------------

def test_deregistration_protection_without_cooldown(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    assert describe(ec2, image_id)["DeregistrationProtection"] == "disabled"
    out = ec2.enable_image_deregistration_protection(ImageId=image_id)
    assert out["Return"] == "enabled-without-cooldown"
    assert describe(ec2, image_id)["DeregistrationProtection"] == "enabled-without-cooldown"
    with pytest.raises(ClientError) as exc:
        ec2.deregister_image(ImageId=image_id)
    assert error_of(exc)[0::2] == ("OperationNotPermitted", 400)
    assert describe(ec2, image_id)["State"] == "available"
    assert ec2.disable_image_deregistration_protection(ImageId=image_id)["Return"] == "disabled"
    assert describe(ec2, image_id)["DeregistrationProtection"] == "disabled"
    ec2.deregister_image(ImageId=image_id)


def test_deregistration_protection_with_cooldown(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    assert ec2.enable_image_deregistration_protection(ImageId=image_id, WithCooldown=True)["Return"] == \
        "enabled-with-cooldown"
    assert describe(ec2, image_id)["DeregistrationProtection"] == "enabled-with-cooldown"
    before = utcnow()
    ec2.disable_image_deregistration_protection(ImageId=image_id)
    state = describe(ec2, image_id)["DeregistrationProtection"]
    assert state.startswith("disabled-until ")
    until = parse(state.split(" ", 1)[1])
    assert dt.timedelta(hours=23, minutes=59) < until - before < dt.timedelta(hours=24, minutes=1)
    with pytest.raises(ClientError) as exc:  # still protected during the cool-down
        ec2.deregister_image(ImageId=image_id)
    assert error_of(exc)[0] == "OperationNotPermitted"
    # Enabling again ends the cool-down state; without cooldown, disabling frees it.
    ec2.enable_image_deregistration_protection(ImageId=image_id)
    ec2.disable_image_deregistration_protection(ImageId=image_id)
    ec2.deregister_image(ImageId=image_id)


def test_deregistration_cooldown_can_be_shortened_for_tests(emu, ec2):
    emu.config(deregistration_cooldown_seconds=0)
    image_id = emu.seed_image(region=R1, name="img")
    ec2.enable_image_deregistration_protection(ImageId=image_id, WithCooldown=True)
    ec2.disable_image_deregistration_protection(ImageId=image_id)
    assert describe(ec2, image_id)["DeregistrationProtection"] == "disabled"
    ec2.deregister_image(ImageId=image_id)


def test_deregistration_protection_only_by_owner(emu):
    shared = emu.seed_image(region=R1, name="shared", owner=OTHER, shared_with=[OWNER])
    private = emu.seed_image(region=R1, name="private", owner=OTHER)
    ec2 = ec2_as(emu, OWNER)
    with pytest.raises(ClientError) as exc:
        ec2.enable_image_deregistration_protection(ImageId=shared)
    assert error_of(exc)[0] == "AuthFailure"
    with pytest.raises(ClientError) as exc:
        ec2.disable_image_deregistration_protection(ImageId=shared)
    assert error_of(exc)[0] == "AuthFailure"
    with pytest.raises(ClientError) as exc:
        ec2.enable_image_deregistration_protection(ImageId=private)
    assert error_of(exc)[0] == "InvalidAMIID.NotFound"
    assert emu.image(shared)["deregistration_protection"] == "disabled"
