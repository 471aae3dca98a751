"""The end of an AMI: deregistration protection, DeregisterImage, the Recycle Bin.

Owns: Enable/DisableImageDeregistrationProtection (with the cool-down after
disabling protection enabled WithCooldown; DescribeImages'
``DeregistrationProtection``), DeregisterImage (refused while protected;
into the Recycle Bin under a retention rule, else gone), the Recycle Bin
(``put_in_recycle_bin`` for POST /_emulator/recycle-bin, retention, expiry
in ``tick_recycle_bin``) and ListImagesInRecycleBin (MaxResults 1..1000).

Leaves to others: how public images in the bin count toward the public AMI
quota (sharing.py), the page and token machinery (pagination.py).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError, UnvailableAMIIdError
from moto.ec2.models.amis import Ami
from moto.ec2.responses import EC2Response

from .common import bool_param, fmt_time, int_param
from .images import find_owned_image, region_backend
from .pagination import paginate, query_digest
from .state import STATE

# Deregistration protection: "disabled", "enabled-without-cooldown" or
# "enabled-with-cooldown"; emu_dp_cooldown_until is set (naive UTC) when
# protection enabled with cooldown was disabled.
Ami.emu_dp = "disabled"  # type: ignore[attr-defined]
Ami.emu_dp_cooldown_until = None  # type: ignore[attr-defined]


def in_deregistration_cooldown(ami: Ami, now: _dt.datetime | None = None) -> bool:
    return ami.emu_dp_cooldown_until is not None and (now or utcnow()) < ami.emu_dp_cooldown_until


def _deregistration_protection(self: Ami) -> str:
    # DescribeImages DeregistrationProtection. "disabled" and
    # "enabled-without-cooldown" / "enabled-with-cooldown" as EC2 returns them
    # (AWS CLI examples for enable-/disable-image-deregistration-protection;
    # DescribeImages output quoted in public READMEs). During the cool-down
    # the value is "disabled-until <end>": the exact wording EC2 uses then was
    # not found in AWS documentation; emulator's choice (see README).
    if self.emu_dp == "disabled" and in_deregistration_cooldown(self):
        return f"disabled-until {fmt_time(self.emu_dp_cooldown_until)}"
    return self.emu_dp


Ami.deregistration_protection = property(_deregistration_protection)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------
# Deregistration protection and DeregisterImage
# --------------------------------------------------------------------------


def enable_image_deregistration_protection(self: EC2Response) -> ActionResult:
    image_id = self._get_param("ImageId")
    with_cooldown = bool_param(self._get_param("WithCooldown"))
    self.error_on_dryrun()
    with STATE.lock:
        # Only the owner may change an AMI's attributes (as for deprecation).
        ami = find_owned_image(self.region, self.current_account, image_id)
        # AWS EnableImageDeregistrationProtection: "When deregistration
        # protection is enabled, the AMI can't be deregistered."
        # WithCooldown: "If true, enforces deregistration protection for 24
        # hours after deregistration protection is disabled." Return value as
        # in the AWS CLI example ("Return": "enabled-without-cooldown").
        ami.emu_dp = "enabled-with-cooldown" if with_cooldown else "enabled-without-cooldown"
        ami.emu_dp_cooldown_until = None
    return ActionResult({"Return": ami.emu_dp})


def disable_image_deregistration_protection(self: EC2Response) -> ActionResult:
    image_id = self._get_param("ImageId")
    self.error_on_dryrun()
    with STATE.lock:
        ami = find_owned_image(self.region, self.current_account, image_id)
        # AWS DisableImageDeregistrationProtection: "If you chose to include
        # a 24-hour cooldown period when you enabled deregistration
        # protection for the AMI, then, when you disable deregistration
        # protection, you won't immediately be able to deregister the AMI."
        if ami.emu_dp == "enabled-with-cooldown":
            seconds = float(STATE.config["deregistration_cooldown_seconds"])
            ami.emu_dp_cooldown_until = utcnow() + _dt.timedelta(seconds=seconds)
        ami.emu_dp = "disabled"
    # AWS CLI example: "Return": "disabled".
    return ActionResult({"Return": "disabled"})


def deregister_image(self: EC2Response) -> ActionResult:
    image_id = self._get_param("ImageId")
    self.error_on_dryrun()
    caller = self.current_account
    region = self.region
    with STATE.lock:
        backend = region_backend(caller, region)
        ami = backend.amis.get(image_id)
        if ami is None:
            # moto's answers: a deregistered ID is InvalidAMIID.Unavailable,
            # any other (including another account's image) NotFound.
            if image_id in backend.deleted_amis:
                raise UnvailableAMIIdError(image_id)
            raise InvalidAMIIdError(image_id)
        if ami.emu_dp != "disabled" or in_deregistration_cooldown(ami):
            # AWS: "When deregistration protection is enabled, the AMI can't
            # be deregistered", also during the cool-down after disabling
            # protection enabled WithCooldown. The error code is not
            # documented; emulator's choice: OperationNotPermitted ("The
            # specified operation is not allowed").
            raise EC2ClientError(
                "OperationNotPermitted",
                f"The image {image_id} can't be deregistered because deregistration protection is enabled "
                f"({ami.deregistration_protection}). Disable deregistration protection first.",
            )
        days = STATE.recycle_rules.get((caller, region))
        if days is not None:
            # AWS DeregisterImage: "If a deregistered EBS-backed AMI matches a
            # Recycle Bin retention rule, it moves to the Recycle Bin for the
            # specified retention period."
            put_in_recycle_bin(caller, region, image_id, days)
        else:
            # "If the deregistered AMI doesn't match a retention rule, it is
            # permanently deleted immediately."
            backend.deregister_image(image_id)
    return ActionResult({"Return": True})


# --------------------------------------------------------------------------
# Recycle Bin
# --------------------------------------------------------------------------


def tick_recycle_bin() -> None:
    """Recycle Bin entries whose retention period has ended are deleted."""
    with STATE.lock:
        # Recycle Bin: "It can be restored before its retention period
        # expires, after which it is permanently deleted." (DeregisterImage)
        current = utcnow()
        for key, entry in list(STATE.recycle_bin.items()):
            if entry["exit"] <= current:
                del STATE.recycle_bin[key]


def put_in_recycle_bin(account: str, region: str, image_id: str, retention_days: float) -> dict[str, Any]:
    """The image leaves the account's listing and waits in the Recycle Bin.

    It keeps its launch permissions: a public AMI in the Recycle Bin still
    counts toward the public AMI quota (EC2 User Guide, "Amazon EC2 AMI
    quotas").
    """
    with STATE.lock:
        backend = region_backend(account, region)
        ami = backend.amis.get(image_id)
        if ami is None:
            raise KeyError(image_id)
        backend.amis.pop(image_id)
        backend.deleted_amis.append(image_id)
        enter = utcnow().replace(microsecond=0)
        entry = {
            "ami": ami,
            "enter": enter,
            "exit": enter + _dt.timedelta(days=retention_days),
        }
        STATE.recycle_bin[(account, region, image_id)] = entry
        return entry


def recycle_bin_view(key: tuple[str, str, str], entry: dict[str, Any]) -> dict[str, Any]:
    account, region, image_id = key
    ami = entry["ami"]
    return {
        "image_id": image_id, "region": region, "owner": account, "name": ami.name,
        "public": bool(ami.is_public), "enter_time": fmt_time(entry["enter"]), "exit_time": fmt_time(entry["exit"]),
    }


def list_images_in_recycle_bin(self: EC2Response) -> ActionResult:
    # AWS ListImagesInRecycleBin: "Lists one or more AMIs that are currently
    # in the Recycle Bin." Images: ImageId, Name, Description,
    # RecycleBinEnterTime, RecycleBinExitTime. MaxResults 1..1000.
    image_ids = self._get_param("ImageIds", []) or []
    max_results = int_param(self, "MaxResults")
    next_token = self._get_param("NextToken") or None
    self.error_on_dryrun()
    if max_results is not None and not 1 <= max_results <= 1000:
        raise EC2ClientError(
            "InvalidParameterValue",
            f"Value ( {max_results} ) for parameter MaxResults is invalid. Expecting a value between 1 and 1000.",
        )
    caller = self.current_account
    region = self.region
    query = query_digest("ListImagesInRecycleBin", caller, region, sorted(image_ids))
    with STATE.lock:
        entries = [
            (key[2], entry) for key, entry in STATE.recycle_bin.items()
            if key[0] == caller and key[1] == region and (not image_ids or key[2] in image_ids)
        ]
        page, token = paginate(entries, lambda e: e[0], max_results, next_token, query)
        images = [
            {
                "ImageId": image_id, "Name": entry["ami"].name, "Description": entry["ami"].description,
                "RecycleBinEnterTime": entry["enter"].replace(tzinfo=_dt.timezone.utc),
                "RecycleBinExitTime": entry["exit"].replace(tzinfo=_dt.timezone.utc),
            }
            for image_id, entry in page
        ]
    result: dict[str, Any] = {"Images": images}
    if token:
        result["NextToken"] = token
    return ActionResult(result)


HANDLERS = {
    "deregister_image": deregister_image,
    "enable_image_deregistration_protection": enable_image_deregistration_protection,
    "disable_image_deregistration_protection": disable_image_deregistration_protection,
    "list_images_in_recycle_bin": list_images_in_recycle_bin,
}
