"""Constants and small helpers shared by the emulator's tests.

The fixtures (``emu``, ``ec2``, ``ec2_r2``) are in conftest.py; this module
holds what tests import by name.
"""

from __future__ import annotations

import datetime as dt

import pytest

OWNER = "123456789012"
OTHER = "999999999999"
R1 = "us-east-1"
R2 = "eu-west-1"


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


def ec2_as(emu, account: str, region: str = R1):
    return emu.client("ec2", region, account=account, retries={"total_max_attempts": 1, "mode": "standard"})


def seed_many(emu, n: int, region: str = R1, **spec) -> list[str]:
    return [emu.seed_image(region=region, name=f"img-{i:02d}", **spec) for i in range(n)]


def recycle(emu, image_id: str, region: str = R1, **extra):
    return emu.control("POST", "/_emulator/recycle-bin", {"region": region, "image_id": image_id, **extra})
