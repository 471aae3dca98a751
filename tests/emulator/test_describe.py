"""Listing images (rules/describe.py): DescribeImages visibility across
accounts, ImageIds, Owners, ExecutableUsers, filters, IncludeDisabled and
IncludeDeprecated.

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from emu_helpers import OTHER, OWNER, R1, describe, ec2_as, error_of, make_public, utcnow


# ---------------------------------------------------------------------------
# DescribeImages visibility
# ---------------------------------------------------------------------------

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


def test_describe_images_unknown_id_fails_whole_call(emu, ec2):
    mine = emu.seed_image(region=R1, name="mine")
    with pytest.raises(ClientError) as exc:
        ec2.describe_images(ImageIds=[mine, "ami-0123456789abcdef0"])
    code, message, status = error_of(exc)
    assert (code, status) == ("InvalidAMIID.NotFound", 400)
    assert "ami-0123456789abcdef0" in message and mine not in message
    ec2.deregister_image(ImageId=mine)
    assert ec2.describe_images(ImageIds=[mine])["Images"] == []


def test_deprecated_images_of_others_hidden_from_listings(emu, ec2):
    past = (utcnow() - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    theirs = emu.seed_image(region=R1, name="theirs", owner=OTHER, public=True, deprecation_time=past)
    mine = emu.seed_image(region=R1, name="mine", deprecation_time=past)
    listed = {i["ImageId"] for i in ec2.describe_images()["Images"]}
    assert listed == {mine}
    with_deprecated = {i["ImageId"] for i in ec2.describe_images(IncludeDeprecated=True)["Images"]}
    assert with_deprecated == {mine, theirs}
    assert describe(ec2, theirs)["ImageId"] == theirs  # by id: still found


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

# ---------------------------------------------------------------------------
# DescribeImages filters
# ---------------------------------------------------------------------------

def test_describe_images_filters_by_tag_and_public(emu, ec2):
    tagged = emu.seed_image(region=R1, name="tagged", tags={"publish": "public"})
    emu.seed_image(region=R1, name="untagged")
    out = ec2.describe_images(Owners=["self"], Filters=[{"Name": "tag:publish", "Values": ["public"]}])
    assert [i["ImageId"] for i in out["Images"]] == [tagged]
    make_public(ec2, tagged)
    out = ec2.describe_images(Owners=["self"], Filters=[{"Name": "is-public", "Values": ["true"]}])
    assert [i["ImageId"] for i in out["Images"]] == [tagged]


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
