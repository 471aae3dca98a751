"""Pagination (rules/pagination.py, and DescribeImages' own rules in
rules/describe.py): MaxResults, NextToken, InvalidPaginationToken.

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations


import pytest
from botocore.exceptions import ClientError

from emu_helpers import OTHER, R1, error_of, seed_many


# ---------------------------------------------------------------------------
# DescribeImages pagination
# ---------------------------------------------------------------------------

def test_describe_images_without_max_results_returns_everything_at_once(emu, ec2):
    ids = seed_many(emu, 7)
    out = ec2.describe_images(Owners=["self"])
    assert {i["ImageId"] for i in out["Images"]} == set(ids)
    assert "NextToken" not in out


def test_describe_images_pages_with_max_results(emu, ec2):
    ids = seed_many(emu, 12)
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
    tagged = seed_many(emu, 11, tags={"publish": "public"})
    seed_many(emu, 3, tags={"publish": "no"})
    emu.seed_image(region=R1, name="theirs", owner=OTHER, public=True, tags={"publish": "public"})
    pages = list(ec2.get_paginator("describe_images").paginate(
        Owners=["self"], Filters=[{"Name": "tag:publish", "Values": ["public"]}],
        PaginationConfig={"PageSize": 5},
    ))
    assert [len(p["Images"]) for p in pages] == [5, 5, 1]
    assert sorted(i["ImageId"] for p in pages for i in p["Images"]) == sorted(tagged)


def test_describe_images_pages_survive_deregistration_between_calls(emu, ec2):
    seed_many(emu, 10)
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
    seed_many(emu, 2)
    for bad in (4, 1001):
        with pytest.raises(ClientError) as exc:
            ec2.describe_images(Owners=["self"], MaxResults=bad)
        assert error_of(exc)[0::2] == ("InvalidParameterValue", 400)
    for good in (5, 1000):
        assert len(ec2.describe_images(Owners=["self"], MaxResults=good)["Images"]) == 2


def test_describe_images_bad_next_token(emu, ec2):
    seed_many(emu, 7)
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
