"""AMI copies (rules/copies.py): CopyImage, a copy's life (pending,
available, failed), the concurrent copy limit, encryption of copies
(including the destination's EBS encryption by default).

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from emu_helpers import OTHER, OWNER, R1, R2, describe, ec2_as, error_of, make_public, parse, utcnow
from harness import ControlAPIError


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
