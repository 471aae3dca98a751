"""Making an AMI public (rules/sharing.py): image block public access,
ModifyImageAttribute's launch permissions and every refusal, the public AMI
quota per Region (public AMIs in the Recycle Bin count).

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations


import pytest
from botocore.exceptions import ClientError

from emu_helpers import OTHER, OWNER, R1, R2, describe, ec2_as, error_of, make_public, recycle, seed_many


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


def test_public_images_in_recycle_bin_count_toward_the_quota(emu, ec2):
    emu.config(public_image_quota=2)
    public, private, new1, new2 = seed_many(emu, 4)
    make_public(ec2, public)
    recycle(emu, public)
    recycle(emu, private)  # a private image in the bin does not count
    make_public(ec2, new1)
    with pytest.raises(ClientError) as exc:
        make_public(ec2, new2)
    assert error_of(exc)[0] == "ResourceLimitExceeded"


def test_sharing_with_an_account_is_not_public(emu, ec2):
    image_id = emu.seed_image(region=R1, name="img", snapshots=[{"encrypted": True}])
    ec2.modify_image_attribute(ImageId=image_id, LaunchPermission={"Add": [{"UserId": OTHER}]})
    assert describe(ec2, image_id)["Public"] is False
    assert emu.image(image_id)["shared_with"] == [OTHER]
