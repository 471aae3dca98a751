"""Images (rules/images.py): RegisterImage, ProductCodes as DescribeImages
shows them, CreateTags on an AMI shared with the caller.

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations


import pytest
from botocore.exceptions import ClientError

from emu_helpers import OTHER, OWNER, R1, describe, error_of


# ---------------------------------------------------------------------------
# RegisterImage
# ---------------------------------------------------------------------------

def _snapshot(ec2, encrypted: bool) -> str:
    vol = ec2.create_volume(AvailabilityZone=f"{R1}a", Size=8, Encrypted=encrypted)
    return ec2.create_snapshot(VolumeId=vol["VolumeId"])["SnapshotId"]


def test_register_image_takes_encryption_from_snapshots_and_tags(ec2):
    plain, secret = _snapshot(ec2, False), _snapshot(ec2, True)
    image_id = ec2.register_image(
        Name="registered", RootDeviceName="/dev/xvda", VirtualizationType="hvm", Architecture="arm64",
        BlockDeviceMappings=[
            {"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": plain, "VolumeType": "gp3"}},
            {"DeviceName": "/dev/sdb", "Ebs": {"SnapshotId": secret}},
        ],
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "publish", "Value": "public"}]}],
    )["ImageId"]
    image = describe(ec2, image_id)
    bdm = {m["DeviceName"]: m["Ebs"] for m in image["BlockDeviceMappings"]}
    assert bdm["/dev/xvda"]["SnapshotId"] == plain and bdm["/dev/xvda"]["Encrypted"] is False
    assert bdm["/dev/sdb"]["SnapshotId"] == secret and bdm["/dev/sdb"]["Encrypted"] is True
    assert image["Tags"] == [{"Key": "publish", "Value": "public"}]
    assert image["RootDeviceName"] == "/dev/xvda"
    assert image["Architecture"] == "arm64"


def test_register_image_with_unknown_snapshot_fails(ec2):
    with pytest.raises(ClientError) as exc:
        ec2.register_image(
            Name="registered", RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": "snap-0123456789abcdef0"}}],
        )
    assert error_of(exc)[0] == "InvalidSnapshot.NotFound"

# ---------------------------------------------------------------------------
# ProductCodes, CreateTags on shared images
# ---------------------------------------------------------------------------

def test_product_codes_visible_in_describe_images(emu, ec2):
    image_id = emu.seed_image(region=R1, name="paid", product_codes=["abcdef1234567890"])
    assert describe(ec2, image_id)["ProductCodes"] == [
        {"ProductCodeId": "abcdef1234567890", "ProductCodeType": "marketplace"}
    ]


def test_shared_image_can_be_tagged_by_the_account_it_is_shared_with(emu, ec2):
    # AWS: "You can tag public or shared AMIs"; moto 5.2.5 answered
    # InvalidAMIID.NotFound because it looked in the caller's own account only.
    shared = emu.seed_image(region=R1, name="shared", owner=OTHER, shared_with=[OWNER])
    ec2.create_tags(Resources=[shared], Tags=[{"Key": "publish:status", "Value": "rejected"}])
    assert {"Key": "publish:status", "Value": "rejected"} in describe(ec2, shared)["Tags"]
    private = emu.seed_image(region=R1, name="private", owner=OTHER)
    with pytest.raises(ClientError) as exc:
        ec2.create_tags(Resources=[private], Tags=[{"Key": "k", "Value": "v"}])
    assert error_of(exc)[0] == "InvalidAMIID.NotFound"


def test_delete_tags_without_a_tag_list_deletes_every_user_tag(emu, ec2):
    # AWS DeleteTags: "If you omit this parameter, we delete all
    # user-defined tags for the specified resources."
    image_id = emu.seed_image(region=R1, name="x", tags={"publish": "public", "publish:status": "public", "team": "x"})
    ec2.delete_tags(Resources=[image_id])
    assert emu.image(image_id)["tags"] == {}


def test_delete_tags_with_a_list_deletes_those_keys_and_only_matching_values(emu, ec2):
    image_id = emu.seed_image(region=R1, name="x", tags={"a": "1", "b": "2", "c": "3"})
    ec2.delete_tags(Resources=[image_id], Tags=[{"Key": "a"}, {"Key": "b", "Value": "other"}, {"Key": "c", "Value": "3"}])
    assert emu.image(image_id)["tags"] == {"b": "2"}
