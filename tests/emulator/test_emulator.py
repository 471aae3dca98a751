"""The EC2 emulator behaves as AWS documents (one test per rule) and its
control API keeps its contract. Run: .venv/bin/python -m pytest tests/emulator -q

The server is started once per session on a free port; when it cannot start
the fixture raises, so every test errors (never skips).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time

import pytest
from botocore.exceptions import ClientError

from harness import SERVER, ControlAPIError, Emulator

OWNER = "123456789012"
OTHER = "999999999999"
R1 = "us-east-1"
R2 = "eu-west-1"


@pytest.fixture(scope="session")
def emu():
    emulator = Emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(autouse=True)
def clean(emu):
    emu.reset()
    yield


@pytest.fixture
def ec2(emu):
    return emu.client("ec2", R1, retries={"total_max_attempts": 1, "mode": "standard"})


@pytest.fixture
def ec2_r2(emu):
    return emu.client("ec2", R2, retries={"total_max_attempts": 1, "mode": "standard"})


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def parse(ts: str) -> dt.datetime:
    return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.000Z")


def error_of(exc: pytest.ExceptionInfo) -> tuple[str, str, int]:
    resp = exc.value.response
    return resp["Error"]["Code"], resp["Error"]["Message"], resp["ResponseMetadata"]["HTTPStatusCode"]


def describe(ec2, image_id: str) -> dict:
    return ec2.describe_images(ImageIds=[image_id])["Images"][0]


def make_public(ec2, image_id: str) -> None:
    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"Group": "all"}]})


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
# Image block public access
# ---------------------------------------------------------------------------


def test_bpa_default_is_unblocked_and_managed_by_account(ec2):
    # Emulator default (documented): unblocked. On AWS new accounts default
    # to block-new-sharing.
    state = ec2.get_image_block_public_access_state()
    assert state["ImageBlockPublicAccessState"] == "unblocked"
    assert state["ManagedBy"] == "account"


def test_bpa_enable_and_disable_per_region(ec2, ec2_r2):
    out = ec2.enable_image_block_public_access(ImageBlockPublicAccessState="block-new-sharing")
    assert out["ImageBlockPublicAccessState"] == "block-new-sharing"
    assert ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"] == "block-new-sharing"
    # Per region: the other region is untouched.
    assert ec2_r2.get_image_block_public_access_state()["ImageBlockPublicAccessState"] == "unblocked"
    out = ec2.disable_image_block_public_access()
    assert out["ImageBlockPublicAccessState"] == "unblocked"
    assert ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"] == "unblocked"


def test_bpa_managed_by_declarative_policy_cannot_be_changed_by_account(emu, ec2):
    emu.set_bpa(R1, "block-new-sharing", managed_by="declarative-policy")
    state = ec2.get_image_block_public_access_state()
    assert state == {**state, "ImageBlockPublicAccessState": "block-new-sharing", "ManagedBy": "declarative-policy"}
    ec2.disable_image_block_public_access()
    state = ec2.get_image_block_public_access_state()
    assert state["ImageBlockPublicAccessState"] == "block-new-sharing"
    assert state["ManagedBy"] == "declarative-policy"


def test_bpa_block_new_sharing_refuses_make_public(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    emu.set_bpa(R1, "block-new-sharing")
    with pytest.raises(ClientError) as exc:
        make_public(ec2, image_id)
    code, message, status = error_of(exc)
    assert (code, status) == ("OperationNotPermitted", 400)
    assert "block public access for AMIs is enabled" in message
    assert describe(ec2, image_id)["Public"] is False


def test_bpa_does_not_affect_images_already_public(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    make_public(ec2, image_id)
    ec2.enable_image_block_public_access(ImageBlockPublicAccessState="block-new-sharing")
    assert describe(ec2, image_id)["Public"] is True
    # Re-adding "all" to an image that is already public shares nothing new.
    make_public(ec2, image_id)
    assert describe(ec2, image_id)["Public"] is True


def test_bpa_enable_rejects_other_values(ec2):
    with pytest.raises(ClientError) as exc:
        ec2.enable_image_block_public_access(ImageBlockPublicAccessState="unblocked")
    assert error_of(exc)[0] == "InvalidParameterValue"


# ---------------------------------------------------------------------------
# Deprecation
# ---------------------------------------------------------------------------


def test_enable_image_deprecation_sets_deprecation_time_rounded_to_minute(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    assert "DeprecationTime" not in describe(ec2, image_id)
    at = (utcnow() + dt.timedelta(days=30)).replace(second=40, microsecond=0)
    assert ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=at)["Return"] is True
    expected = at.replace(second=0) + dt.timedelta(minutes=1)  # 40 s rounds up
    assert describe(ec2, image_id)["DeprecationTime"] == expected.strftime("%Y-%m-%dT%H:%M:00.000Z")


def test_disable_image_deprecation_removes_it(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img", deprecation_time="2030-01-01T00:00:00Z")
    assert describe(ec2, image_id)["DeprecationTime"] == "2030-01-01T00:00:00.000Z"
    assert ec2.disable_image_deprecation(ImageId=image_id)["Return"] is True
    assert "DeprecationTime" not in describe(ec2, image_id)


def test_deprecation_in_the_past_is_refused(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    with pytest.raises(ClientError) as exc:
        ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=utcnow() - dt.timedelta(days=1))
    assert error_of(exc)[:1] == ("InvalidParameterValue",)
    assert "DeprecationTime" not in describe(ec2, image_id)


def test_public_image_deprecation_no_later_than_two_years_after_creation(emu, ec2):
    created = utcnow().replace(microsecond=0) - dt.timedelta(days=10)
    image_id = emu.seed_image(region=R1, name="img", creation_date=created.strftime("%Y-%m-%dT%H:%M:%SZ"))
    make_public(ec2, image_id)
    limit = created.replace(year=created.year + 2)
    with pytest.raises(ClientError) as exc:
        ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=limit + dt.timedelta(days=1))
    assert error_of(exc)[0] == "InvalidParameterValue"
    earlier = (utcnow() + dt.timedelta(days=90)).replace(second=0, microsecond=0)
    ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=earlier)
    assert parse(describe(ec2, image_id)["DeprecationTime"]) == earlier


def test_private_image_deprecation_no_later_than_ten_years_from_now(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=utcnow() + dt.timedelta(days=5 * 365))
    with pytest.raises(ClientError) as exc:
        ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=utcnow() + dt.timedelta(days=11 * 365))
    assert error_of(exc)[0] == "InvalidParameterValue"


def test_making_public_sets_default_deprecation_two_years_after_creation(emu, ec2):
    created = "2026-01-15T10:20:30Z"
    image_id = emu.seed_image(region=R1, name="img", creation_date=created)
    make_public(ec2, image_id)
    assert describe(ec2, image_id)["DeprecationTime"] == "2028-01-15T10:20:30.000Z"
    # An earlier date is kept.
    other = emu.seed_image(region=R1, name="img2", creation_date=created, deprecation_time="2027-03-01T00:00:00Z")
    make_public(ec2, other)
    assert describe(ec2, other)["DeprecationTime"] == "2027-03-01T00:00:00.000Z"


def test_public_image_deprecation_cannot_be_cancelled(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    make_public(ec2, image_id)
    with pytest.raises(ClientError) as exc:
        ec2.disable_image_deprecation(ImageId=image_id)
    assert error_of(exc)[0] == "OperationNotPermitted"
    assert "DeprecationTime" in describe(ec2, image_id)


def test_deprecation_requires_owner(emu, ec2):
    image_id = emu.seed_image(region=R1, name="theirs", owner=OTHER, public=True)
    with pytest.raises(ClientError) as exc:
        ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=utcnow() + dt.timedelta(days=1))
    assert error_of(exc)[0] == "AuthFailure"


def test_deprecated_images_of_others_hidden_from_listings(emu, ec2):
    past = (utcnow() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    theirs = emu.seed_image(region=R1, name="theirs", owner=OTHER, public=True, deprecation_time=past)
    mine = emu.seed_image(region=R1, name="mine", deprecation_time=past)
    listed = {i["ImageId"] for i in ec2.describe_images()["Images"]}
    assert listed == {mine}
    with_deprecated = {i["ImageId"] for i in ec2.describe_images(IncludeDeprecated=True)["Images"]}
    assert with_deprecated == {mine, theirs}
    assert describe(ec2, theirs)["ImageId"] == theirs  # by id: still found


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
# ProductCodes and DescribeImages visibility
# ---------------------------------------------------------------------------


def test_product_codes_visible_in_describe_images(emu, ec2):
    image_id = emu.seed_image(region=R1, name="paid", product_codes=["abcdef1234567890"])
    assert describe(ec2, image_id)["ProductCodes"] == [
        {"ProductCodeId": "abcdef1234567890", "ProductCodeType": "marketplace"}
    ]


def test_owners_self_with_image_ids_excludes_other_accounts_images(emu, ec2):
    # moto 5.2.5 returned the other account's image here; AWS returns nothing.
    theirs = emu.seed_image(region=R1, name="theirs", owner=OTHER, public=True)
    assert ec2.describe_images(ImageIds=[theirs], Owners=["self"])["Images"] == []
    assert ec2.describe_images(ImageIds=[theirs], Owners=[OWNER])["Images"] == []
    # Without the owner scope the public image is visible, owned by OTHER.
    assert describe(ec2, theirs)["OwnerId"] == OTHER


def test_private_images_of_other_accounts_are_invisible(emu, ec2):
    private = emu.seed_image(region=R1, name="private", owner=OTHER)
    shared = emu.seed_image(region=R1, name="shared", owner=OTHER, shared_with=[OWNER])
    public = emu.seed_image(region=R1, name="public", owner=OTHER, public=True)
    mine = emu.seed_image(region=R1, name="mine")
    with pytest.raises(ClientError) as exc:
        ec2.describe_images(ImageIds=[private])
    assert error_of(exc)[0] == "InvalidAMIID.NotFound"
    listed = {i["ImageId"] for i in ec2.describe_images()["Images"]}
    assert listed == {shared, public, mine}
    assert {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]} == {mine}
    assert {i["ImageId"] for i in ec2.describe_images(ExecutableUsers=["self"])["Images"]} == {shared}
    # The owner sees its private image.
    other = ec2_as(emu, OTHER)
    assert describe(other, private)["OwnerId"] == OTHER


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


def ec2_as(emu, account: str, region: str = R1):
    return emu.client("ec2", region, account=account, retries={"total_max_attempts": 1, "mode": "standard"})


def test_describe_images_unknown_id_fails_whole_call(emu, ec2):
    mine = emu.seed_image(region=R1, name="mine")
    with pytest.raises(ClientError) as exc:
        ec2.describe_images(ImageIds=[mine, "ami-0123456789abcdef0"])
    code, message, status = error_of(exc)
    assert (code, status) == ("InvalidAMIID.NotFound", 400)
    assert "ami-0123456789abcdef0" in message and mine not in message
    ec2.deregister_image(ImageId=mine)
    assert ec2.describe_images(ImageIds=[mine])["Images"] == []


def test_describe_images_filters_by_tag_and_public(emu, ec2):
    tagged = emu.seed_image(region=R1, name="tagged", tags={"publish": "public"})
    emu.seed_image(region=R1, name="untagged")
    out = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:publish", "Values": ["public"]}])
    assert [i["ImageId"] for i in out["Images"]] == [tagged]
    make_public(ec2, tagged)
    out = ec2.describe_images(Owners=["self"], Filters=[{"Name": "is-public", "Values": ["true"]}])
    assert [i["ImageId"] for i in out["Images"]] == [tagged]




def test_disabled_images_are_listed_only_with_include_disabled(emu, ec2):
    """AWS DescribeImages, IncludeDisabled: by default no disabled AMIs."""
    disabled = emu.seed_image(region=R1, name="disabled", state="disabled", tags={"k": "v"})
    enabled = emu.seed_image(region=R1, name="enabled", tags={"k": "v"})
    tagged = [{"Name": "tag:k", "Values": ["v"]}]
    out = ec2.describe_images(Owners=["self"], Filters=tagged)
    assert [i["ImageId"] for i in out["Images"]] == [enabled]
    out = ec2.describe_images(Owners=["self"], Filters=tagged, IncludeDisabled=True)
    assert sorted(i["ImageId"] for i in out["Images"]) == sorted([disabled, enabled])
    assert ec2.describe_images(ImageIds=[disabled])["Images"] == []
    assert ec2.describe_images(ImageIds=[disabled], IncludeDisabled=True)["Images"][0]["State"] == "disabled"

def test_describe_images_filter_values_are_ored_for_tag_keys(emu, ec2):
    """AWS: several values of one filter are joined with OR. moto 5.2.5
    wanted the image's tag keys to be a subset or superset of the values."""
    both = emu.seed_image(region=R1, name="copy", tags={"publish": "public", "publish:source": "x"})
    status = emu.seed_image(region=R1, name="status", tags={"publish:status": "withdrawn", "team": "a"})
    emu.seed_image(region=R1, name="other", tags={"team": "a"})
    out = ec2.describe_images(
        Owners=["self"], Filters=[{"Name": "tag-key", "Values": ["publish", "publish:status"]}]
    )
    assert sorted(i["ImageId"] for i in out["Images"]) == sorted([both, status])
    out = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag-key", "Values": ["publish:*"]}])
    assert sorted(i["ImageId"] for i in out["Images"]) == sorted([both, status])

# ---------------------------------------------------------------------------
# CopyImage
# ---------------------------------------------------------------------------


def test_copy_image_is_idempotent_on_client_token(emu, ec2_r2):
    src = emu.seed_image(region=R1, name="src")
    first = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy", ClientToken="tok-1")["ImageId"]
    again = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy", ClientToken="tok-1")["ImageId"]
    assert again == first
    assert [i["image_id"] for i in emu.images(R2)] == [first]
    with pytest.raises(ClientError) as exc:
        ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="other-name", ClientToken="tok-1")
    assert error_of(exc)[:1] == ("IdempotentParameterMismatch",)
    # Another token is another copy.
    third = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy", ClientToken="tok-2")["ImageId"]
    assert third != first


def test_copy_image_tags(emu, ec2_r2):
    src = emu.seed_image(region=R1, name="src", tags={"publish": "public", "team": "a"})
    plain = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="plain")["ImageId"]
    assert describe(ec2_r2, plain).get("Tags", []) == []  # default: tags not copied
    copied = ec2_r2.copy_image(
        SourceImageId=src, SourceRegion=R1, Name="tagged", CopyImageTags=True,
        TagSpecifications=[
            {"ResourceType": "image", "Tags": [{"Key": "team", "Value": "b"}, {"Key": "copy-of", "Value": src}]},
            {"ResourceType": "snapshot", "Tags": [{"Key": "snap", "Value": "yes"}]},
        ],
    )["ImageId"]
    tags = {t["Key"]: t["Value"] for t in describe(ec2_r2, copied)["Tags"]}
    assert tags == {"publish": "public", "team": "b", "copy-of": src}
    snap_id = describe(ec2_r2, copied)["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    snap = ec2_r2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]
    assert {"Key": "snap", "Value": "yes"} in snap["Tags"]
    with pytest.raises(ClientError) as exc:
        ec2_r2.copy_image(
            SourceImageId=src, SourceRegion=R1, Name="bad",
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "k", "Value": "v"}]}],
        )
    assert error_of(exc)[0] == "InvalidParameterValue"


def test_copy_starts_pending_and_stays_pending_by_default(emu, ec2_r2):
    # Default delay (30 s): a copy stays pending for the length of a test.
    src = emu.seed_image(region=R1, name="src")
    copy_id = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy")["ImageId"]
    assert describe(ec2_r2, copy_id)["State"] == "pending"
    time.sleep(0.3)
    assert describe(ec2_r2, copy_id)["State"] == "pending"
    assert emu.complete_copies()["completed"] == [copy_id]
    assert describe(ec2_r2, copy_id)["State"] == "available"


def test_copy_becomes_available_after_configured_delay(emu, ec2_r2):
    emu.config(copy_delay_seconds=1)
    src = emu.seed_image(region=R1, name="src")
    started = time.monotonic()
    copy_id = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy")["ImageId"]
    state = describe(ec2_r2, copy_id)["State"]
    if time.monotonic() - started < 0.9:  # (only meaningful if we were quick)
        assert state == "pending"
    time.sleep(max(0.0, 1.3 - (time.monotonic() - started)))
    assert describe(ec2_r2, copy_id)["State"] == "available"


def test_complete_copies_is_per_region(emu, ec2, ec2_r2):
    src = emu.seed_image(region=R1, name="src")
    c1 = ec2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-1")["ImageId"]
    c2 = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-2")["ImageId"]
    assert emu.complete_copies(R2)["completed"] == [c2]
    assert describe(ec2, c1)["State"] == "pending"
    assert describe(ec2_r2, c2)["State"] == "available"


def test_copy_is_a_new_image(emu, ec2_r2):
    src = emu.seed_image(
        region=R1, name="src", creation_date="2025-01-01T00:00:00Z", public=True, shared_with=[OTHER],
        deprecation_time="2026-12-31T00:00:00Z", snapshots=[{"encrypted": False}, {"encrypted": False}],
    )
    copy_id = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy", Description="d")["ImageId"]
    emu.complete_copies()
    copy = describe(ec2_r2, copy_id)
    source = emu.client("ec2", R1).describe_images(ImageIds=[src])["Images"][0]
    assert parse(copy["CreationDate"]) > parse(source["CreationDate"])  # fresh CreationDate
    assert abs((parse(copy["CreationDate"]) - utcnow()).total_seconds()) < 120
    assert copy["Public"] is False  # launch permissions are not copied
    assert ec2_r2.describe_image_attribute(ImageId=copy_id, Attribute="launchPermission")["LaunchPermissions"] == []
    assert "DeprecationTime" not in copy  # deprecation is not copied
    assert copy["OwnerId"] == OWNER and copy["Name"] == "copy" and copy["Description"] == "d"
    src_snaps = {m["Ebs"]["SnapshotId"] for m in source["BlockDeviceMappings"]}
    copy_snaps = {m["Ebs"]["SnapshotId"] for m in copy["BlockDeviceMappings"]}
    assert len(copy_snaps) == 2 and not (copy_snaps & src_snaps)  # new snapshots
    assert all(m["Ebs"]["Encrypted"] is False for m in copy["BlockDeviceMappings"])  # stay unencrypted
    assert {s["SnapshotId"] for s in ec2_r2.describe_snapshots(OwnerIds=["self"])["Snapshots"]} == copy_snaps


def test_copy_encryption_follows_source_or_encrypted_flag(emu, ec2_r2):
    plain = emu.seed_image(region=R1, name="plain")
    secret = emu.seed_image(region=R1, name="secret", snapshots=[{"encrypted": True}])
    forced = ec2_r2.copy_image(SourceImageId=plain, SourceRegion=R1, Name="forced", Encrypted=True)["ImageId"]
    kept = ec2_r2.copy_image(SourceImageId=secret, SourceRegion=R1, Name="kept")["ImageId"]
    assert describe(ec2_r2, forced)["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True
    assert describe(ec2_r2, kept)["BlockDeviceMappings"][0]["Ebs"]["Encrypted"] is True


def test_copy_keeps_product_codes(emu, ec2_r2):
    src = emu.seed_image(region=R1, name="paid", product_codes=["code1"])
    copy_id = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy")["ImageId"]
    assert [p["ProductCodeId"] for p in describe(ec2_r2, copy_id)["ProductCodes"]] == ["code1"]


def test_copy_source_must_be_visible(emu, ec2_r2):
    private = emu.seed_image(region=R1, name="private", owner=OTHER)
    with pytest.raises(ClientError) as exc:
        ec2_r2.copy_image(SourceImageId=private, SourceRegion=R1, Name="copy")
    assert error_of(exc)[0] == "InvalidAMIID.NotFound"
    shared = emu.seed_image(region=R1, name="shared", owner=OTHER, shared_with=[OWNER], tags={"t": "v"})
    copy_id = ec2_r2.copy_image(SourceImageId=shared, SourceRegion=R1, Name="copy", CopyImageTags=True)["ImageId"]
    copy = describe(ec2_r2, copy_id)
    assert copy["OwnerId"] == OWNER
    assert copy.get("Tags", []) == []  # tags attached by another account are not copied


def test_concurrent_copy_limit_per_destination_region(emu, ec2, ec2_r2):
    emu.config(concurrent_copy_limit=2)
    src = emu.seed_image(region=R1, name="src")
    for n in range(2):
        ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name=f"copy-{n}")
    with pytest.raises(ClientError) as exc:
        ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-3")
    code, _message, status = error_of(exc)
    assert (code, status) == ("ResourceLimitExceeded", 400)
    # Another destination region has its own limit.
    ec2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-r1")
    # Completed copies no longer count.
    emu.complete_copies(R2)
    ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-4")


def test_concurrent_copy_limit_default_is_100(emu, ec2_r2):
    assert emu.control("GET", "/_emulator/config")["config"]["concurrent_copy_limit"] == 100


def test_concurrent_copies_respect_limit_under_parallel_requests(emu):
    emu.config(concurrent_copy_limit=5)
    src = emu.seed_image(region=R1, name="src")
    results: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        client = emu.client("ec2", R2, retries={"total_max_attempts": 1, "mode": "standard"})
        try:
            client.copy_image(SourceImageId=src, SourceRegion=R1, Name=f"copy-{n}", ClientToken=f"t-{n}")
            outcome = "ok"
        except ClientError as e:
            outcome = e.response["Error"]["Code"]
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ResourceLimitExceeded"] * 7 + ["ok"] * 5
    assert len(emu.images(R2)) == 5


# ---------------------------------------------------------------------------
# ModifyImageAttribute (LaunchPermission group "all")
# ---------------------------------------------------------------------------


def test_make_public_and_private_again(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    assert describe(ec2, image_id)["Public"] is False
    make_public(ec2, image_id)
    assert describe(ec2, image_id)["Public"] is True
    assert emu.image(image_id)["public"] is True
    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Remove": [{"Group": "all"}]})
    assert describe(ec2, image_id)["Public"] is False


def test_make_public_with_operation_type_style(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    ec2.modify_image_attribute(ImageId=image_id, Attribute="launchPermission", OperationType="add", UserGroups=["all"])
    assert describe(ec2, image_id)["Public"] is True


def test_make_public_refused_for_non_owner(emu):
    image_id = emu.seed_image(region=R1, name="theirs", owner=OTHER, shared_with=[OWNER])
    ec2 = ec2_as(emu, OWNER)
    with pytest.raises(ClientError) as exc:
        make_public(ec2, image_id)
    assert error_of(exc)[0] == "AuthFailure"
    private = emu.seed_image(region=R1, name="private", owner=OTHER)
    with pytest.raises(ClientError) as exc:
        make_public(ec2, private)
    assert error_of(exc)[0] == "InvalidAMIID.NotFound"
    assert emu.image(image_id)["public"] is False


def test_make_public_refused_for_encrypted_snapshots(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img", snapshots=[{"encrypted": False}, {"encrypted": True}])
    with pytest.raises(ClientError) as exc:
        make_public(ec2, image_id)
    code, message, status = error_of(exc)
    assert (code, status) == ("UnsupportedOperation", 400)
    assert "Encrypted snapshots" in message
    assert describe(ec2, image_id)["Public"] is False


def test_make_public_refused_for_product_codes(emu, ec2):
    image_id = emu.seed_image(region=R1, name="paid", product_codes=["code1"])
    with pytest.raises(ClientError) as exc:
        make_public(ec2, image_id)
    assert error_of(exc)[0] == "UnsupportedOperation"
    assert describe(ec2, image_id)["Public"] is False


def test_make_public_refused_while_pending(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img", state="pending")
    with pytest.raises(ClientError) as exc:
        make_public(ec2, image_id)
    assert error_of(exc)[0] == "InvalidAMIID.Unavailable"


def test_public_image_quota_per_region(emu, ec2, ec2_r2):
    ids = [emu.seed_image(region=R1, name=f"img-{n}") for n in range(6)]
    for image_id in ids[:5]:
        make_public(ec2, image_id)
    with pytest.raises(ClientError) as exc:
        make_public(ec2, ids[5])
    code, message, status = error_of(exc)
    assert (code, status) == ("ResourceLimitExceeded", 400)
    assert message.startswith("You have reached your quota of 5 for the number of public images")
    # Per region.
    make_public(ec2_r2, emu.seed_image(region=R2, name="elsewhere"))
    # Making one private frees a slot.
    ec2.modify_image_attribute(ImageId=ids[0], LaunchPermission={"Remove": [{"Group": "all"}]})
    make_public(ec2, ids[5])


def test_public_image_quota_is_configurable(emu, ec2):
    emu.config(public_image_quota=1)
    a, b = emu.seed_image(region=R1, name="a"), emu.seed_image(region=R1, name="b")
    make_public(ec2, a)
    with pytest.raises(ClientError) as exc:
        make_public(ec2, b)
    assert "quota of 1 " in error_of(exc)[1]


def test_sharing_with_an_account_is_not_public(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img", snapshots=[{"encrypted": True}])
    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": OTHER}]})
    assert describe(ec2, image_id)["Public"] is False
    assert emu.image(image_id)["shared_with"] == [OTHER]


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


# ---------------------------------------------------------------------------
# DescribeImages pagination
# ---------------------------------------------------------------------------


def _seed_many(emu, n: int, region: str = R1, **spec) -> list[str]:
    return [emu.seed_image(region=region, name=f"img-{i:02d}", **spec) for i in range(n)]


def test_describe_images_without_max_results_returns_everything_at_once(emu, ec2):
    ids = _seed_many(emu, 7)
    out = ec2.describe_images(Owners=["self"])
    assert {i["ImageId"] for i in out["Images"]} == set(ids)
    assert "NextToken" not in out


def test_describe_images_pages_with_max_results(emu, ec2):
    ids = _seed_many(emu, 12)
    first = ec2.describe_images(Owners=["self"], MaxResults=5)
    assert len(first["Images"]) == 5 and first["NextToken"]
    second = ec2.describe_images(Owners=["self"], MaxResults=5, NextToken=first["NextToken"])
    assert len(second["Images"]) == 5 and second["NextToken"]
    third = ec2.describe_images(Owners=["self"], MaxResults=5, NextToken=second["NextToken"])
    assert len(third["Images"]) == 2 and "NextToken" not in third
    seen = [i["ImageId"] for p in (first, second, third) for i in p["Images"]]
    assert sorted(seen) == sorted(ids)  # every image once
    # Stable: the same request gives the same page and the same token.
    again = ec2.describe_images(Owners=["self"], MaxResults=5)
    assert again["NextToken"] == first["NextToken"]
    assert [i["ImageId"] for i in again["Images"]] == [i["ImageId"] for i in first["Images"]]
    repeat = ec2.describe_images(Owners=["self"], MaxResults=5, NextToken=first["NextToken"])
    assert [i["ImageId"] for i in repeat["Images"]] == [i["ImageId"] for i in second["Images"]]


def test_describe_images_paginator_with_filters(emu, ec2):
    tagged = _seed_many(emu, 11, tags={"publish": "public"})
    _seed_many(emu, 3, tags={"publish": "no"})
    emu.seed_image(region=R1, name="theirs", owner=OTHER, public=True, tags={"publish": "public"})
    pages = list(ec2.get_paginator("describe_images").paginate(
        Owners=["self"], Filters=[{"Name": "tag:publish", "Values": ["public"]}],
        PaginationConfig={"PageSize": 5},
    ))
    assert [len(p["Images"]) for p in pages] == [5, 5, 1]
    assert sorted(i["ImageId"] for p in pages for i in p["Images"]) == sorted(tagged)


def test_describe_images_pages_survive_deregistration_between_calls(emu, ec2):
    _seed_many(emu, 10)
    first = ec2.describe_images(Owners=["self"], MaxResults=5)
    first_ids = [i["ImageId"] for i in first["Images"]]
    rest = sorted({i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]} - set(first_ids))
    ec2.deregister_image(ImageId=first_ids[-1])  # the page boundary itself
    ec2.deregister_image(ImageId=rest[0])
    second = ec2.describe_images(Owners=["self"], MaxResults=5, NextToken=first["NextToken"])
    assert [i["ImageId"] for i in second["Images"]] == rest[1:]
    assert "NextToken" not in second


def test_describe_images_max_results_cannot_be_combined_with_image_ids(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img")
    with pytest.raises(ClientError) as exc:
        ec2.describe_images(ImageIds=[image_id], MaxResults=5)
    code, message, status = error_of(exc)
    assert (code, status) == ("InvalidParameterCombination", 400)
    assert message == "The parameter imageIdsSet cannot be used with the parameter maxResults"


def test_describe_images_max_results_range(emu, ec2):
    _seed_many(emu, 2)
    for bad in (4, 1001):
        with pytest.raises(ClientError) as exc:
            ec2.describe_images(Owners=["self"], MaxResults=bad)
        assert error_of(exc)[0::2] == ("InvalidParameterValue", 400)
    for good in (5, 1000):
        assert len(ec2.describe_images(Owners=["self"], MaxResults=good)["Images"]) == 2


def test_describe_images_bad_next_token(emu, ec2):
    _seed_many(emu, 7)
    with pytest.raises(ClientError) as exc:
        ec2.describe_images(Owners=["self"], MaxResults=5, NextToken="not-a-token")
    code, message, status = error_of(exc)
    assert (code, status) == ("InvalidPaginationToken", 400)
    assert message == "The specified pagination token is not valid or is expired."
    # A token belongs to its query.
    token = ec2.describe_images(Owners=["self"], MaxResults=5)["NextToken"]
    with pytest.raises(ClientError) as exc:
        ec2.describe_images(Owners=["self"], MaxResults=5, NextToken=token,
                            Filters=[{"Name": "is-public", "Values": ["false"]}])
    assert error_of(exc)[0] == "InvalidPaginationToken"


# ---------------------------------------------------------------------------
# DescribeImages filters the function uses
# ---------------------------------------------------------------------------


def test_describe_images_tag_key_is_public_and_multi_value_tag_filters(emu, ec2):
    pub = emu.seed_image(region=R1, name="a", tags={"publish": "public"})
    yes = emu.seed_image(region=R1, name="b", tags={"publish": "yes"})
    no = emu.seed_image(region=R1, name="c", tags={"publish": "no"})
    emu.seed_image(region=R1, name="d", tags={"team": "x"})
    emu.seed_image(region=R1, name="theirs", owner=OTHER, public=True, tags={"publish": "public"})
    make_public(ec2, yes)

    def ids(*filters):
        out = ec2.describe_images(Owners=["self"], Filters=list(filters))["Images"]
        return {i["ImageId"] for i in out}

    assert ids({"Name": "tag-key", "Values": ["publish"]}) == {pub, yes, no}
    assert ids({"Name": "tag:publish", "Values": ["public", "yes"]}) == {pub, yes}
    assert ids({"Name": "is-public", "Values": ["true"]}) == {yes}
    assert ids({"Name": "is-public", "Values": ["false"]}, {"Name": "tag-key", "Values": ["publish"]}) == {pub, no}
    assert ids({"Name": "tag:publish", "Values": ["public", "yes"]}, {"Name": "is-public", "Values": ["false"]}) == {pub}


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


# ---------------------------------------------------------------------------
# Copies that fail, DeregisterImage on copies, ClientToken afterwards
# ---------------------------------------------------------------------------


def copy_failures(emu, region: str, **body):
    return emu.control("POST", "/_emulator/copy-failures", {"region": region, **body})


def test_marked_copies_end_failed_with_state_reason(emu, ec2_r2):
    src = emu.seed_image(region=R1, name="src")
    copy_failures(emu, R2, count=1)
    failing = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="fails")["ImageId"]
    fine = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="fine")["ImageId"]
    assert describe(ec2_r2, failing)["State"] == "pending"
    assert "StateReason" not in describe(ec2_r2, failing)
    done = emu.complete_copies(R2)
    assert (done["completed"], done["failed"]) == ([fine], [failing])
    image = describe(ec2_r2, failing)
    assert image["State"] == "failed"
    assert image["StateReason"]["Code"] == "Server.InternalError"
    assert image["StateReason"]["Message"]
    assert describe(ec2_r2, fine)["State"] == "available"
    assert emu.image(failing)["state_reason"] == image["StateReason"]


def test_marked_copy_fails_when_its_delay_elapses(emu, ec2, ec2_r2):
    emu.config(copy_delay_seconds=0)
    src = emu.seed_image(region=R1, name="src")
    copy_failures(emu, R2, count=2, code="Client.InvalidSnapshot.NotFound", message="snapshot gone")
    # Another region's copies are not affected.
    assert describe(ec2, ec2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-r1")["ImageId"])["State"] == "available"
    copy_id = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-c")["ImageId"]
    image = describe(ec2_r2, copy_id)
    assert image["State"] == "failed"
    assert image["StateReason"] == {"Code": "Client.InvalidSnapshot.NotFound", "Message": "snapshot gone"}
    assert emu.control("GET", "/_emulator/copy-failures")["copy_failures"][R2][0]["remaining"] == 1


def test_fail_a_pending_image_now(emu, ec2_r2):
    src = emu.seed_image(region=R1, name="src")
    copy_id = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-c")["ImageId"]
    out = emu.control("POST", "/_emulator/fail-image", {"image_id": copy_id, "message": "boom"})
    assert out["state"] == "failed" and out["state_reason"]["Message"] == "boom"
    assert describe(ec2_r2, copy_id)["State"] == "failed"
    with pytest.raises(ControlAPIError) as exc:  # no longer pending
        emu.control("POST", "/_emulator/fail-image", {"image_id": copy_id})
    assert exc.value.status == 400
    with pytest.raises(ControlAPIError) as exc:
        emu.control("POST", "/_emulator/fail-image", {"image_id": "ami-0123456789abcdef0"})
    assert exc.value.status == 404


def test_failed_copy_cannot_be_made_public_and_frees_its_copy_slot(emu, ec2_r2):
    emu.config(concurrent_copy_limit=1)
    src = emu.seed_image(region=R1, name="src")
    copy_id = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-c")["ImageId"]
    emu.control("POST", "/_emulator/fail-image", {"image_id": copy_id})
    with pytest.raises(ClientError) as exc:
        make_public(ec2_r2, copy_id)
    assert error_of(exc)[0] == "InvalidAMIID.Unavailable"
    ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="again")  # limit 1, failed one not pending


def test_copies_report_their_source(emu, ec2_r2):
    src = emu.seed_image(region=R1, name="src")
    copy = describe(ec2_r2, ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-c")["ImageId"])
    assert (copy["SourceImageId"], copy["SourceImageRegion"]) == (src, R1)
    assert "SourceImageId" not in describe(emu.client("ec2", R1), src)


def test_deregister_copies_pending_available_and_failed(emu, ec2_r2):
    src = emu.seed_image(region=R1, name="src")
    pending, available, failed = (
        ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name=f"copy-{n}")["ImageId"] for n in ("p", "a", "f")
    )
    emu.control("POST", "/_emulator/fail-image", {"image_id": failed})
    emu.complete_copies(R2)  # completes "a" and "p"
    pending2 = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-p2")["ImageId"]
    for image_id in (pending, available, failed, pending2):
        assert ec2_r2.deregister_image(ImageId=image_id)["Return"] is True
        assert ec2_r2.describe_images(ImageIds=[image_id])["Images"] == []
    assert ec2_r2.describe_images(Owners=["self"])["Images"] == []
    assert emu.images(R2) == []
    with pytest.raises(ClientError) as exc:
        ec2_r2.deregister_image(ImageId=available)
    assert error_of(exc)[0] == "InvalidAMIID.Unavailable"


def test_client_token_keeps_its_image_after_deregistration_or_failure(emu, ec2_r2):
    # AWS does not document how long a ClientToken is remembered; the
    # emulator remembers it for good (README).
    src = emu.seed_image(region=R1, name="src")
    kept = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-c", ClientToken="t-1")["ImageId"]
    ec2_r2.deregister_image(ImageId=kept)
    again = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-c", ClientToken="t-1")["ImageId"]
    assert again == kept
    assert ec2_r2.describe_images(ImageIds=[kept])["Images"] == []  # still deregistered, no new copy
    failed = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-d", ClientToken="t-2")["ImageId"]
    emu.control("POST", "/_emulator/fail-image", {"image_id": failed})
    assert ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-d", ClientToken="t-2")["ImageId"] == failed
    assert describe(ec2_r2, failed)["State"] == "failed"
    assert len(emu.images(R2)) == 1


# ---------------------------------------------------------------------------
# EBS encryption by default
# ---------------------------------------------------------------------------


def test_ebs_encryption_by_default_per_account_and_region(emu, ec2, ec2_r2):
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert ec2_r2.enable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert ec2_r2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert ec2_as(emu, OTHER, R2).get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert emu.control("GET", f"/_emulator/ebs-encryption-by-default?region={R2}")["enabled"] is True
    # The control API sets the same flag.
    out = emu.control("POST", "/_emulator/ebs-encryption-by-default", {"region": R1, "enabled": True})
    assert out == {"account": OWNER, "region": R1, "enabled": True}
    assert ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True
    assert ec2_r2.disable_ebs_encryption_by_default()["EbsEncryptionByDefault"] is False
    assert emu.control("GET", f"/_emulator/ebs-encryption-by-default?region={R2}")["enabled"] is False


def test_copy_follows_destination_encryption_by_default(emu, ec2, ec2_r2):
    src = emu.seed_image(region=R1, name="src", snapshots=[{"encrypted": False}, {"encrypted": False}])
    emu.control("POST", "/_emulator/ebs-encryption-by-default", {"region": R2, "enabled": True})
    encrypted = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="enc")["ImageId"]
    explicit_false = ec2_r2.copy_image(SourceImageId=src, SourceRegion=R1, Name="copy-f", Encrypted=False)["ImageId"]
    plain = ec2.copy_image(SourceImageId=src, SourceRegion=R1, Name="plain")["ImageId"]
    for image_id in (encrypted, explicit_false):
        mappings = describe(ec2_r2, image_id)["BlockDeviceMappings"]
        assert [m["Ebs"]["Encrypted"] for m in mappings] == [True, True]
        snaps = ec2_r2.describe_snapshots(SnapshotIds=[m["Ebs"]["SnapshotId"] for m in mappings])["Snapshots"]
        assert all(s["Encrypted"] for s in snaps)
    assert all(m["Ebs"]["Encrypted"] is False for m in describe(ec2, plain)["BlockDeviceMappings"])
    # An encrypted copy can never be made public.
    emu.complete_copies()
    with pytest.raises(ClientError) as exc:
        make_public(ec2_r2, encrypted)
    assert error_of(exc)[0] == "UnsupportedOperation"
    make_public(ec2, plain)


# ---------------------------------------------------------------------------
# Service Quotas: the public AMI quota
# ---------------------------------------------------------------------------


def quotas(emu, region: str = R1):
    return emu.client("service-quotas", region, retries={"total_max_attempts": 1, "mode": "standard"})


def test_get_service_quota_public_amis_default(emu):
    quota = quotas(emu, R2).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]
    assert quota == {**quota, "ServiceCode": "ec2", "QuotaCode": "L-0E3CBAB9", "QuotaName": "Public AMIs",
                     "Value": 5.0, "Adjustable": True, "GlobalQuota": False}
    assert quota["QuotaArn"] == f"arn:aws:servicequotas:{R2}:{OWNER}:ec2/L-0E3CBAB9"
    # Routed by the SigV4 credential scope (service "servicequotas").
    assert emu.control("GET", "/_emulator/calls?service=servicequotas")["calls"] == [
        {"action": "GetServiceQuota", "region": R2}
    ]
    assert emu.calls() == []  # the default call log is EC2's


def test_service_quota_is_the_quota_modify_image_attribute_enforces(emu, ec2, ec2_r2):
    emu.config(public_image_quota=2, public_image_quota_by_region={R2: 3})
    assert quotas(emu, R1).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]["Value"] == 2
    assert quotas(emu, R2).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]["Value"] == 3
    r1 = _seed_many(emu, 3, region=R1)
    r2 = _seed_many(emu, 4, region=R2)
    for image_id in r1[:2]:
        make_public(ec2, image_id)
    with pytest.raises(ClientError) as exc:
        make_public(ec2, r1[2])
    assert "quota of 2 " in error_of(exc)[1]
    for image_id in r2[:3]:
        make_public(ec2_r2, image_id)
    with pytest.raises(ClientError) as exc:
        make_public(ec2_r2, r2[3])
    assert "quota of 3 " in error_of(exc)[1]
    assert emu.control("GET", "/_emulator/config")["config"]["public_image_quota_by_region"] == {R2: 3}
    # The default quota for AWS stays 5.
    default = quotas(emu).get_aws_default_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]
    assert default["Value"] == 5.0


def test_unknown_service_quota_is_no_such_resource(emu):
    with pytest.raises(ClientError) as exc:
        quotas(emu).get_service_quota(ServiceCode="ec2", QuotaCode="L-00000000")
    assert error_of(exc)[0::2] == ("NoSuchResourceException", 400)


def test_service_quotas_faults_are_json_errors(emu):
    emu.fault("GetServiceQuota", "AccessDeniedException", count=1, message="not allowed")
    with pytest.raises(ClientError) as exc:
        quotas(emu).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")
    assert error_of(exc) == ("AccessDeniedException", "not allowed", 400)
    assert quotas(emu).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]["Value"] == 5.0


def test_public_image_quota_by_region_rejects_bad_input(emu):
    for bad in ({"public_image_quota_by_region": [1]}, {"public_image_quota_by_region": {R1: -1}},
                {"public_image_quota_by_region": {R1: 1.5}}):
        with pytest.raises(ControlAPIError) as exc:
            emu.config(**bad)
        assert exc.value.status == 400


# ---------------------------------------------------------------------------
# Recycle Bin
# ---------------------------------------------------------------------------


def recycle(emu, image_id: str, region: str = R1, **extra):
    return emu.control("POST", "/_emulator/recycle-bin", {"region": region, "image_id": image_id, **extra})


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


def test_public_images_in_recycle_bin_count_toward_the_quota(emu, ec2):
    emu.config(public_image_quota=2)
    public, private, new1, new2 = _seed_many(emu, 4)
    make_public(ec2, public)
    recycle(emu, public)
    recycle(emu, private)  # a private image in the bin does not count
    make_public(ec2, new1)
    with pytest.raises(ClientError) as exc:
        make_public(ec2, new2)
    assert error_of(exc)[0] == "ResourceLimitExceeded"


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
    ids = _seed_many(emu, 3)
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
