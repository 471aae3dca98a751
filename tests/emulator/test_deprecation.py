"""AMI deprecation (rules/deprecation.py): Enable/DisableImageDeprecation,
their limits, the default date of a public AMI.

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

from emu_helpers import OTHER, R1, describe, error_of, make_public, parse, utcnow


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
