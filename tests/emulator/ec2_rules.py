"""EC2 rules that moto 5.2.5 does not model, added to moto in-process.

Everything here reaches into moto's internals (``moto.ec2``): moto is pinned
to 5.2.5 in tests/requirements.txt, and this module checks the version at
import time so that a silent upgrade fails loudly instead of half-working.

How it plugs in (verified against moto 5.2.5):
  * a method on ``moto.ec2.responses.EC2Response`` named after the action in
    snake case (``get_image_block_public_access_state``) answers that action;
    assigning one on the class replaces moto's own handler for that action;
  * moto serialises ``Ami`` objects through the botocore output shape, looking
    up each member by name (``DeprecationTime`` -> ``deprecation_time``), or
    by the aliases in ``Ami.Meta.serialization_aliases``.

Each rule cites the AWS documentation (or, where AWS documents the rule but
not the error code, says which code the emulator chose and why). See
README.md in this directory for the list.

State that is not moto's (BPA, configuration, faults, the call log, CopyImage
idempotency tokens, throttling buckets, copy failures, the Recycle Bin) lives
in ``STATE``; every access goes through ``STATE.lock`` (the server also holds
it around each moto dispatch). EBS encryption by default is moto's own flag.
Service Quotas' GetServiceQuota for the public AMI quota is answered here too
(methods on moto's ServiceQuotasResponse).
"""

from __future__ import annotations

import base64
import datetime as _dt
import fnmatch
import hashlib
import json
import os
import threading
import time
from typing import Any

# Must be set before moto.ec2 is imported: otherwise every (account, region)
# backend is pre-filled with ~hundreds of Amazon-owned public AMIs, which
# would make "public images" listings and the call-free visibility rules noisy.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

import moto  # noqa: E402

PINNED_MOTO = "5.2.5"
if moto.__version__ != PINNED_MOTO:  # pragma: no cover - guard
    raise RuntimeError(
        f"the EC2 emulator is written against moto {PINNED_MOTO} internals, "
        f"found moto {moto.__version__}; install tests/requirements.txt"
    )

from moto.core.parse import default_timestamp_parser  # noqa: E402
from moto.core.responses import ActionResult, EmptyResult  # noqa: E402
from moto.core.utils import utcnow  # noqa: E402
from moto.ec2.exceptions import (  # noqa: E402
    EC2ClientError,
    InvalidAMIIdError,
    InvalidSnapshotIdError,
    InvalidTaggableResourceType,
    MalformedAMIIdError,
    UnvailableAMIIdError,
)
from moto.ec2.models import ec2_backends  # noqa: E402
from moto.ec2.models.amis import Ami  # noqa: E402
from moto.ec2.responses import EC2Response  # noqa: E402
from moto.ec2.utils import generic_filter, random_ami_id  # noqa: E402

from throttling import Throttle  # noqa: E402  (sibling module)

DEFAULT_ACCOUNT = "123456789012"

# --------------------------------------------------------------------------
# Emulator state (not moto's)
# --------------------------------------------------------------------------

BPA_STATES = ("block-new-sharing", "unblocked")
BPA_MANAGED_BY = ("account", "declarative-policy")


class EmulatorState:
    """Configuration, BPA, faults, call log, CopyImage tokens, throttling,
    copy failures and the Recycle Bin.

    One re-entrant lock guards all of it and every moto dispatch, so the
    threaded server never runs two EC2 handlers at once (moto's backends are
    not thread-safe); injected latency is slept outside the lock so that
    concurrent clients still overlap in time.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.cli_copy_delay_seconds = 30.0
        self.reset_all()

    def default_config(self) -> dict[str, float]:
        return {
            "latency_ms": 0,
            "copy_delay_seconds": self.cli_copy_delay_seconds,
            # AWS: "Public AMIs per Region" default quota is 5
            # (Service Quotas L-0E3CBAB9; see DESIGN.md).
            "public_image_quota": 5,
            # DESIGN.md: concurrent AMI copies per destination Region ~100.
            "concurrent_copy_limit": 100,
            # AWS EnableImageDeregistrationProtection WithCooldown: "enforces
            # deregistration protection for 24 hours after deregistration
            # protection is disabled". A test knob, like copy_delay_seconds.
            "deregistration_cooldown_seconds": 24 * 3600,
        }

    def reset_all(self) -> None:
        with self.lock:
            self.config: dict[str, float] = self.default_config()
            # region -> {"account_state", "policy_state", "managed_by"}
            self.bpa: dict[str, dict[str, str]] = {}
            self.faults: list[dict[str, Any]] = []
            self.calls: list[dict[str, str]] = []
            # (account, destination region, client token) -> (fingerprint, image id)
            self.copy_tokens: dict[tuple[str, str, str], tuple[str, str]] = {}
            # region -> public image quota for that region (overrides
            # config["public_image_quota"], which applies to all regions).
            self.public_image_quota_by_region: dict[str, int] = {}
            self.throttle = Throttle()
            # destination region -> [{"remaining", "code", "message"}]: the
            # next CopyImage copies there end failed.
            self.copy_failures: dict[str, list[dict[str, Any]]] = {}
            # (account, region, image id) -> Recycle Bin entry
            self.recycle_bin: dict[tuple[str, str, str], dict[str, Any]] = {}
            # (account, region) -> retention days of a retention rule that
            # matches every AMI that account deregisters in that region.
            self.recycle_rules: dict[tuple[str, str], float] = {}

    def public_image_quota(self, region: str) -> int:
        return int(self.public_image_quota_by_region.get(region, self.config["public_image_quota"]))

    # -- image block public access ------------------------------------
    def bpa_entry(self, region: str) -> dict[str, str]:
        # Emulator default: unblocked. NOTE: on AWS, block public access for
        # AMIs is ON (block-new-sharing) by default for new accounts; tests
        # that want that start by POST /_emulator/bpa.
        return self.bpa.setdefault(
            region,
            {
                "account_state": "unblocked",
                "policy_state": "unblocked",
                "managed_by": "account",
            },
        )

    def bpa_effective(self, region: str) -> tuple[str, str]:
        e = self.bpa_entry(region)
        if e["managed_by"] == "declarative-policy":
            return e["policy_state"], "declarative-policy"
        return e["account_state"], "account"


STATE = EmulatorState()


# --------------------------------------------------------------------------
# Time helpers (moto keeps naive UTC datetimes)
# --------------------------------------------------------------------------


def _naive_utc(value: Any) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        dt = value
    else:
        dt = default_timestamp_parser(str(value))
    if dt.tzinfo is not None:
        dt = dt.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return dt


def parse_iso8601(value: str) -> _dt.datetime:
    """Parse an ISO8601 string from the control API into naive UTC."""
    return _naive_utc(value)


def fmt_time(dt: _dt.datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def add_years(dt: _dt.datetime, years: int) -> _dt.datetime:
    try:
        return dt.replace(year=dt.year + years)
    except ValueError:  # 29 February
        return dt.replace(year=dt.year + years, day=28)


def round_to_minute(dt: _dt.datetime) -> _dt.datetime:
    # AWS (EnableImageDeprecation, DeprecateAt): "If you specify a value for
    # seconds, Amazon EC2 rounds the seconds to the nearest minute."
    base = dt.replace(second=0, microsecond=0)
    if dt.second * 1_000_000 + dt.microsecond >= 30_000_000:
        base += _dt.timedelta(minutes=1)
    return base


# --------------------------------------------------------------------------
# Extra attributes on moto's Ami
# --------------------------------------------------------------------------

# Defaults for every Ami (moto's own constructor does not know them).
Ami.deprecation_time_dt = None  # type: ignore[attr-defined]
Ami.emu_bdm = None  # type: ignore[attr-defined]  # list of mapping specs
Ami.emu_is_copy = False  # type: ignore[attr-defined]
Ami.emu_ready_at = None  # type: ignore[attr-defined]  # epoch seconds
Ami.emu_source = None  # type: ignore[attr-defined]  # (region, image id)
# A pending copy that ends "failed" instead of "available": its StateReason.
Ami.emu_fail_reason = None  # type: ignore[attr-defined]
Ami.emu_state_reason = None  # type: ignore[attr-defined]  # {"Code", "Message"}
# Deregistration protection: "disabled", "enabled-without-cooldown" or
# "enabled-with-cooldown"; emu_dp_cooldown_until is set (naive UTC) when
# protection enabled with cooldown was disabled.
Ami.emu_dp = "disabled"  # type: ignore[attr-defined]
Ami.emu_dp_cooldown_until = None  # type: ignore[attr-defined]


def _get_tags(self: Ami) -> list[dict[str, str]]:
    """moto's get_tags, answered from the image's own entry in the backend's
    tag store. moto asks describe_tags(resource-id=[id]), which scans every
    tag of the backend with a regular expression per resource, for every
    image it filters or serializes: a DescribeImages page over 10,000 tagged
    AMIs took minutes (AWS answers it in about a second). The same answer
    (an id without wildcards matches exactly one resource), in constant time.
    """
    tags = self.ec2_backend.tags.get(self.id, {})
    return [{"resource_id": self.id, "key": k, "value": v, "resource_type": "image"} for k, v in tags.items()]


Ami.get_tags = _get_tags  # type: ignore[method-assign]


def _state_reason(self: Ami) -> dict[str, str] | None:
    # DescribeImages StateReason {Code, Message}: "The reason for the state
    # change." Only set for images that failed.
    return self.emu_state_reason


Ami.state_reason = property(_state_reason)  # type: ignore[attr-defined]


def _source_image_id(self: Ami) -> str | None:
    # DescribeImages SourceImageId / SourceImageRegion: "The ID of the source
    # AMI from which the AMI was created." / "The Region of the source AMI."
    # (set on copies).
    return self.emu_source[1] if self.emu_source else None


def _source_image_region(self: Ami) -> str | None:
    return self.emu_source[0] if self.emu_source else None


Ami.source_image_id = property(_source_image_id)  # type: ignore[attr-defined]
Ami.source_image_region = property(_source_image_region)  # type: ignore[attr-defined]


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


def _deprecation_time(self: Ami) -> str | None:
    # DescribeImages returns DeprecationTime (string, ISO8601) when set.
    return fmt_time(self.deprecation_time_dt)


Ami.deprecation_time = property(_deprecation_time)  # type: ignore[attr-defined]


def _product_code_structs(self: Ami) -> list[dict[str, str]]:
    # DescribeImages returns ProductCodes as [{ProductCodeId, ProductCodeType}];
    # moto keeps a set of ids and serialises them as empty structures.
    return [
        {"ProductCodeId": code, "ProductCodeType": "marketplace"}
        for code in sorted(self.product_codes)
    ]


Ami.emu_product_codes = property(_product_code_structs)  # type: ignore[attr-defined]


class _AmiMeta:
    serialization_aliases = {"ProductCodes": "emu_product_codes"}


Ami.Meta = _AmiMeta  # type: ignore[attr-defined]


def _find_snapshot(ami: Ami, snapshot_id: str | None) -> Any:
    if not snapshot_id:
        return None
    return ami.ec2_backend.snapshots.get(snapshot_id)


def _block_device_mappings(self: Ami) -> list[dict[str, Any]]:
    """BlockDeviceMappings with Ebs.Encrypted taken from the snapshot.

    AWS: the encryption state of an EBS-backed AMI's volumes is that of its
    snapshots ("Encrypted snapshots ... cannot be made public";
    RegisterImage takes the snapshot's encryption).
    """
    specs = self.emu_bdm
    if specs is None:
        snap = self.ebs_snapshot
        specs = [
            {
                "DeviceName": self.root_device_name,
                "SnapshotId": snap.id,
                "VolumeSize": 15,
                "VolumeType": "standard",
                "DeleteOnTermination": False,
            }
        ]
    out = []
    for spec in specs:
        ebs: dict[str, Any] = {}
        if spec.get("SnapshotId"):
            ebs["SnapshotId"] = spec["SnapshotId"]
        for key in ("VolumeSize", "VolumeType", "DeleteOnTermination", "Iops", "Throughput"):
            if spec.get(key) is not None:
                ebs[key] = spec[key]
        snap = _find_snapshot(self, spec.get("SnapshotId"))
        ebs["Encrypted"] = bool(snap.encrypted) if snap is not None else bool(spec.get("Encrypted", False))
        out.append({"DeviceName": spec["DeviceName"], "Ebs": ebs})
    return out


Ami.block_device_mappings = property(_block_device_mappings)  # type: ignore[assignment]


def ami_encrypted(ami: Ami) -> bool:
    return any(m["Ebs"].get("Encrypted") for m in ami.block_device_mappings)


def ami_tags(ami: Ami) -> dict[str, str]:
    return {t["key"]: t["value"] for t in ami.get_tags()}


def ami_shared_with(ami: Ami) -> list[str]:
    return [lp["UserId"] for lp in ami.launch_permissions if "UserId" in lp]


# --------------------------------------------------------------------------
# Cross-account image lookup and AWS visibility rules
# --------------------------------------------------------------------------


def region_backend(account: str, region: str) -> Any:
    return ec2_backends[account][region]


def existing_region_backends(region: str) -> list[Any]:
    """The EC2 backends of every account that already has state in region.

    Uses dict.get so that looking does not create backends.
    """
    out = []
    for account in list(ec2_backends.keys()):
        backend = dict.get(ec2_backends[account], region)
        if backend is not None:
            out.append(backend)
    return out


def all_images(region: str | None = None) -> list[tuple[str, Ami]]:
    out = []
    for account in list(ec2_backends.keys()):
        acct = ec2_backends[account]
        for reg in list(dict.keys(acct)):
            if region is not None and reg != region:
                continue
            backend = dict.get(acct, reg)
            for ami in list(backend.amis.values()):
                out.append((reg, ami))
    return out


def is_visible(ami: Ami, caller: str) -> bool:
    # AWS: an AMI is visible to an account that owns it, when it is public
    # (launch permission group "all"), or when it is shared with that account
    # (launch permission UserId). Private AMIs of other accounts are not.
    return (
        ami.owner_id == caller
        or ami.is_public
        or {"UserId": caller} in ami.launch_permissions
    )


def is_deprecated(ami: Ami, now: _dt.datetime | None = None) -> bool:
    if ami.deprecation_time_dt is None:
        return False
    return ami.deprecation_time_dt <= (now or utcnow())


def find_visible_image(region: str, caller: str, image_id: str) -> Ami:
    if not image_id or not image_id.startswith("ami-"):
        raise MalformedAMIIdError([image_id])
    for backend in existing_region_backends(region):
        ami = backend.amis.get(image_id)
        if ami is not None and is_visible(ami, caller):
            return ami
    if image_id in region_backend(caller, region).deleted_amis:
        raise UnvailableAMIIdError(image_id)
    raise InvalidAMIIdError(image_id)


def find_owned_image(region: str, caller: str, image_id: str) -> Ami:
    ami = find_visible_image(region, caller, image_id)
    if ami.owner_id != caller:
        # AWS: only the owner can modify, deprecate or share an AMI; EC2
        # answers AuthFailure ("... trying to use an AMI for which you do not
        # have permissions", Common client error codes). Message as EC2's.
        raise EC2ClientError("AuthFailure", f"Not authorized for image:{image_id}")
    return ami


DEFAULT_COPY_FAILURE = {
    # StateReason of a failed copy. The codes EC2 reports are listed in the
    # StateReason API reference (Server.InternalError, Client.InternalError,
    # Client.InvalidSnapshot.NotFound, ...); which one a failed AMI copy gets
    # is not documented: emulator's default, overridable per failure.
    "code": "Server.InternalError",
    "message": "Server.InternalError: An internal error caused the AMI copy to fail.",
}


def finish_copy(ami: Ami) -> str:
    """A pending image ends: "failed" if it was marked to fail, else "available"."""
    ami.emu_ready_at = None
    if ami.emu_fail_reason is not None:
        ami.state = "failed"
        ami.emu_state_reason = {"Code": ami.emu_fail_reason["code"], "Message": ami.emu_fail_reason["message"]}
        ami.emu_fail_reason = None
    else:
        ami.state = "available"
    return ami.state


def fail_image(image_id: str, code: str | None = None, message: str | None = None) -> Ami:
    """POST /_emulator/fail-image: a pending image ends failed now."""
    with STATE.lock:
        for _region, ami in all_images():
            if ami.id == image_id:
                if ami.state != "pending":
                    raise ValueError(f"image {image_id} is {ami.state}, not pending")
                ami.emu_fail_reason = {
                    "code": code or DEFAULT_COPY_FAILURE["code"],
                    "message": message or DEFAULT_COPY_FAILURE["message"],
                }
                finish_copy(ami)
                return ami
    raise KeyError(image_id)


def tick(now: float | None = None) -> None:
    """Pending copies whose delay has elapsed end (available or failed);
    Recycle Bin entries whose retention period has ended are deleted.
    """
    now = time.time() if now is None else now
    with STATE.lock:
        for _region, ami in all_images():
            if ami.state == "pending" and ami.emu_ready_at is not None and ami.emu_ready_at <= now:
                finish_copy(ami)
        # Recycle Bin: "It can be restored before its retention period
        # expires, after which it is permanently deleted." (DeregisterImage)
        current = utcnow()
        for key, entry in list(STATE.recycle_bin.items()):
            if entry["exit"] <= current:
                del STATE.recycle_bin[key]


def complete_pending(region: str | None = None) -> dict[str, list[str]]:
    """Every pending image (in region, or everywhere) ends now."""
    done: dict[str, list[str]] = {"completed": [], "failed": []}
    with STATE.lock:
        for _reg, ami in all_images(region):
            if ami.state == "pending":
                state = finish_copy(ami)
                done["completed" if state == "available" else "failed"].append(ami.id)
    return done


# --------------------------------------------------------------------------
# Building images and snapshots
# --------------------------------------------------------------------------


def _new_snapshot(backend: Any, owner: str, encrypted: bool, size: int, description: str, ami_id: str) -> Any:
    volume = backend.create_volume(size=size, zone_name=f"{backend.region_name}a", encrypted=encrypted)
    snap = backend.create_snapshot(volume.id, description, owner, from_ami=ami_id)
    backend.delete_volume(volume.id)
    return snap


def _drop_auto_snapshot(backend: Any, ami: Ami) -> None:
    # moto's Ami() always creates one unencrypted snapshot; the emulator
    # replaces it with the snapshots the image really has.
    backend.snapshots.pop(ami.ebs_snapshot.id, None)


def new_ami(
    backend: Any,
    image_id: str,
    *,
    owner: str,
    name: str | None,
    description: str | None,
    state: str = "available",
    creation_date: _dt.datetime | None = None,
    product_codes: list[str] | None = None,
    source: Ami | None = None,
    root_device_name: str = "/dev/xvda",
    architecture: str = "x86_64",
    virtualization_type: str = "hvm",
    boot_mode: str | None = None,
) -> Ami:
    kwargs: dict[str, Any] = {}
    if boot_mode:
        kwargs["boot_mode"] = boot_mode
    ami = Ami(
        backend,
        image_id,
        source_ami=source,
        name=name,
        description=description,
        owner_id=owner,
        state=state,
        creation_date=creation_date or utcnow(),
        product_codes=set(product_codes or []),
        root_device_name=root_device_name,
        root_device_type="ebs",
        architecture=architecture if source is None else source.architecture,
        virtualization_type=virtualization_type if source is None else source.virtualization_type,
        image_location=f"{owner}/{name}",
        **kwargs,
    )
    return ami


def image_id_taken(image_id: str) -> bool:
    # A dictionary lookup per region backend: seeding 10,000 images stays
    # linear.
    return any(
        image_id in dict.get(acct, reg).amis
        for acct in list(ec2_backends.values())
        for reg in list(dict.keys(acct))
    )


def seed_image(spec: dict[str, Any]) -> Ami:
    """POST /_emulator/images: put an image in place, as it would be on AWS."""
    region = spec["region"]
    owner = str(spec.get("owner") or DEFAULT_ACCOUNT)
    image_id = spec.get("image_id") or random_ami_id()
    if image_id_taken(image_id):
        raise ValueError(f"image id {image_id} already exists")
    state = spec.get("state", "available")
    creation = parse_iso8601(spec["creation_date"]) if spec.get("creation_date") else utcnow()
    backend = region_backend(owner, region)
    ami = new_ami(
        backend,
        image_id,
        owner=owner,
        name=spec["name"],
        description=spec.get("description"),
        state=state,
        creation_date=creation,
        product_codes=list(spec.get("product_codes") or []),
    )
    _drop_auto_snapshot(backend, ami)
    snapshots = spec.get("snapshots")
    if snapshots is None:
        snapshots = [{"encrypted": False}]
    bdm = []
    for i, s in enumerate(snapshots):
        snap = _new_snapshot(
            backend, owner, bool(s.get("encrypted", False)), int(s.get("size", 8)),
            f"Created for {image_id}", image_id,
        )
        device = ami.root_device_name if i == 0 else f"/dev/sd{chr(ord('b') + i - 1)}"
        bdm.append({"DeviceName": device, "SnapshotId": snap.id, "VolumeSize": snap.volume.size,
                    "VolumeType": "gp3", "DeleteOnTermination": True})
        if i == 0:
            ami.ebs_snapshot = snap
    ami.emu_bdm = bdm
    if spec.get("public"):
        ami.launch_permissions.append({"Group": "all"})
    for account in spec.get("shared_with") or []:
        ami.launch_permissions.append({"UserId": str(account)})
    if spec.get("deprecation_time"):
        ami.deprecation_time_dt = parse_iso8601(spec["deprecation_time"])
    backend.amis[image_id] = ami
    for k, v in (spec.get("tags") or {}).items():
        ami.add_tag(str(k), str(v))
    return ami


def image_view(region: str, ami: Ami) -> dict[str, Any]:
    """One image as GET /_emulator/images shows it."""
    return {
        "image_id": ami.id,
        "region": region,
        "owner": ami.owner_id,
        "name": ami.name,
        "description": ami.description,
        "state": ami.state,
        "public": bool(ami.is_public),
        "shared_with": ami_shared_with(ami),
        "tags": ami_tags(ami),
        "deprecation_time": ami.deprecation_time,
        "creation_date": fmt_time(ami.creation_date),
        "encrypted": ami_encrypted(ami),
        "product_codes": sorted(ami.product_codes),
        "is_copy": bool(ami.emu_is_copy),
        "state_reason": ami.emu_state_reason,
        "deregistration_protection": ami.deregistration_protection,
        "source": (
            {"region": ami.emu_source[0], "image_id": ami.emu_source[1]} if ami.emu_source else None
        ),
    }


# --------------------------------------------------------------------------
# Parameter helpers
# --------------------------------------------------------------------------


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).lower() == "true"


def _tag_specs(resp: EC2Response) -> list[dict[str, Any]]:
    specs = resp._get_param("TagSpecifications") or resp._get_param("TagSpecification") or []
    if isinstance(specs, dict):
        specs = [specs]
    return specs


def _tags_for(specs: list[dict[str, Any]], allowed: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """ResourceType -> {key: value}; other resource types fail, as on AWS."""
    out: dict[str, dict[str, str]] = {}
    for spec in specs:
        rtype = spec.get("ResourceType")
        if rtype not in allowed:
            # AWS (CopyImage/RegisterImage TagSpecifications): "If you specify
            # other values for ResourceType, the request fails."
            raise InvalidTaggableResourceType(str(rtype))
        for tag in spec.get("Tags") or []:
            out.setdefault(rtype, {})[tag["Key"]] = tag.get("Value", "")
    return out


# --------------------------------------------------------------------------
# Image block public access
# --------------------------------------------------------------------------


def get_image_block_public_access_state(self: EC2Response) -> ActionResult:
    # AWS GetImageBlockPublicAccessState: ImageBlockPublicAccessState is
    # block-new-sharing | unblocked; ManagedBy is account | declarative-policy.
    self.error_on_dryrun()
    with STATE.lock:
        state, managed_by = STATE.bpa_effective(self.region)
    return ActionResult({"ImageBlockPublicAccessState": state, "ManagedBy": managed_by})


def enable_image_block_public_access(self: EC2Response) -> ActionResult:
    # AWS EnableImageBlockPublicAccess: the only valid value is
    # block-new-sharing. Already-public AMIs stay public. (AWS applies the
    # change within up to 10 minutes; the emulator applies it at once.)
    value = self._get_param("ImageBlockPublicAccessState")
    if value != "block-new-sharing":
        raise EC2ClientError(
            "InvalidParameterValue",
            f"Value ({value}) for parameter ImageBlockPublicAccessState is invalid. "
            "Valid value: block-new-sharing.",
        )
    self.error_on_dryrun()
    with STATE.lock:
        # With ManagedBy=declarative-policy the account-level setting is
        # recorded but has no effect: the policy's state stays in force.
        STATE.bpa_entry(self.region)["account_state"] = "block-new-sharing"
    return ActionResult({"ImageBlockPublicAccessState": "block-new-sharing"})


def disable_image_block_public_access(self: EC2Response) -> ActionResult:
    # AWS DisableImageBlockPublicAccess: returns unblocked.
    self.error_on_dryrun()
    with STATE.lock:
        STATE.bpa_entry(self.region)["account_state"] = "unblocked"
    return ActionResult({"ImageBlockPublicAccessState": "unblocked"})


# --------------------------------------------------------------------------
# Deprecation
# --------------------------------------------------------------------------

TWO_YEARS = 2
TEN_YEARS = 10


def public_deprecation_limit(ami: Ami) -> _dt.datetime:
    # AWS ("Deprecate an AMI"): "By default, the deprecation date of all
    # public AMIs is set to two years from the AMI creation date. You can set
    # the deprecation date to earlier than two years."
    return add_years(ami.creation_date, TWO_YEARS)


def enable_image_deprecation(self: EC2Response) -> ActionResult:
    image_id = self._get_param("ImageId")
    raw = self._get_param("DeprecateAt")
    if raw is None:
        raise EC2ClientError("MissingParameter", "The request must contain the parameter DeprecateAt")
    self.error_on_dryrun()
    with STATE.lock:
        # AWS: "To deprecate an AMI, you must be the owner of the AMI."
        ami = find_owned_image(self.region, self.current_account, image_id)
        requested = _naive_utc(raw)
        now = utcnow()
        # AWS EnableImageDeprecation DeprecateAt: "You can't specify a date in
        # the past." The code is not documented; InvalidParameterValue is
        # EC2's code for "a value specified in a parameter is not valid".
        if requested < now:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"The deprecation time {fmt_time(requested)} is in the past. "
                "Specify a date and time in the future.",
            )
        at = round_to_minute(requested)
        # AWS: "The upper limit for DeprecateAt is 10 years from now, except
        # for public AMIs, where the upper limit is 2 years from the creation
        # date."
        if ami.is_public:
            limit = public_deprecation_limit(ami)
            if at > limit:
                raise EC2ClientError(
                    "InvalidParameterValue",
                    f"The deprecation time for a public image can't be later than "
                    f"2 years after its creation date ({fmt_time(limit)}). "
                    "To move it later, make the image private first.",
                )
        elif at > add_years(now, TEN_YEARS):
            raise EC2ClientError(
                "InvalidParameterValue",
                "The deprecation time can't be more than 10 years from now.",
            )
        ami.deprecation_time_dt = at
    return ActionResult({"Return": True})


def disable_image_deprecation(self: EC2Response) -> ActionResult:
    image_id = self._get_param("ImageId")
    self.error_on_dryrun()
    with STATE.lock:
        ami = find_owned_image(self.region, self.current_account, image_id)
        if ami.is_public:
            # AWS ("Deprecate an AMI"): "To cancel the deprecation date, or to
            # move the deprecation to a later date, you must make the AMI
            # private". Code not documented; OperationNotPermitted is EC2's
            # code for "the specified operation is not allowed".
            raise EC2ClientError(
                "OperationNotPermitted",
                f"You can't cancel the deprecation of public image {image_id}. "
                "Make the image private first.",
            )
        ami.deprecation_time_dt = None
    return ActionResult({"Return": True})


# --------------------------------------------------------------------------
# DescribeImages
# --------------------------------------------------------------------------


# --------------------------------------------------------------------------
# Pagination (DescribeImages, ListImagesInRecycleBin)
# --------------------------------------------------------------------------

DESCRIBE_IMAGES_MAX_RESULTS = (5, 1000)
# Page size when NextToken comes without MaxResults (emulator's choice).
DEFAULT_PAGE_SIZE = 1000


def _pagination_token(after: str, query: str) -> str:
    # Opaque to clients: the last ID of the page and a digest of the query it
    # belongs to. Deterministic, so the same query at the same position always
    # gets the same token, and a page boundary survives images being added or
    # removed between calls (the listing is ordered by image ID).
    raw = json.dumps({"v": 1, "after": after, "q": query}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _query_digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _token_position(token: str, query: str) -> str:
    """The last image ID before the page the token asks for.

    AWS (EC2 common client errors): "InvalidPaginationToken: The specified
    pagination token is not valid or is expired." A token that does not
    decode, or that was issued for another query, is refused that way.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = data["after"]
        if data.get("v") != 1 or data.get("q") != query or not isinstance(after, str):
            raise ValueError
        return after
    except Exception:
        raise EC2ClientError(
            "InvalidPaginationToken", "The specified pagination token is not valid or is expired."
        ) from None


def paginate(items: list[Any], key: Any, max_results: int | None, token: str | None,
             query: str) -> tuple[list[Any], str | None]:
    items = sorted(items, key=key)
    if token:
        after = _token_position(token, query)
        items = [i for i in items if key(i) > after]
    if max_results is None and not token:
        return items, None
    size = max_results if max_results is not None else DEFAULT_PAGE_SIZE
    page = items[:size]
    if len(items) > size:
        return page, _pagination_token(key(page[-1]), query)
    return page, None


def _int_param(resp: EC2Response, name: str) -> int | None:
    raw = resp._get_param(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise EC2ClientError("InvalidParameterValue", f"Value ( {raw} ) for parameter {name} is invalid.") from None


def describe_images(self: EC2Response) -> ActionResult:
    """DescribeImages with AWS visibility and pagination.

    Fixes moto 5.2.5, whose ImageIds path skips Owners (and every other
    scope): with ImageIds=[x] and Owners=["self"] AWS returns nothing when x
    belongs to another account; moto returned x.

    Pagination (MaxResults / NextToken; DescribeImages supports it since
    December 2022): without MaxResults every image comes in one response
    (EC2's older Describe actions "will not paginate server side unless
    max_results is set", AWS SDK for Ruby, aws-sdk-ec2 resource
    customization). MaxResults with ImageIds is refused, as EC2 does:
    "InvalidParameterCombination: The parameter imageIdsSet cannot be used
    with the parameter maxResults" (message as quoted by the AWS SDK for
    Ruby). The valid range of MaxResults is not documented for
    DescribeImages; the emulator takes EC2's usual 5..1000 (DescribeTags:
    "This value can be between 5 and 1000").
    """
    self.error_on_dryrun()
    ami_ids = self._get_param("ImageIds", []) or []
    filters = self._filters_from_querystring()
    owners = self._get_param("Owners", []) or []
    exec_users = self._get_param("ExecutableUsers", []) or []
    include_deprecated = _bool(self._get_param("IncludeDeprecated"))
    include_disabled = _bool(self._get_param("IncludeDisabled"))
    max_results = _int_param(self, "MaxResults")
    next_token = self._get_param("NextToken") or None
    caller = self.current_account
    region = self.region
    if ami_ids and (max_results is not None or next_token):
        raise EC2ClientError(
            "InvalidParameterCombination",
            "The parameter imageIdsSet cannot be used with the parameter maxResults",
        )
    if max_results is not None:
        low, high = DESCRIBE_IMAGES_MAX_RESULTS
        if not low <= max_results <= high:
            raise EC2ClientError(
                "InvalidParameterValue",
                f"Value ( {max_results} ) for parameter maxResults is invalid. "
                f"Expecting a value between {low} and {high}.",
            )
    query = _query_digest("DescribeImages", caller, region, sorted(owners), sorted(exec_users),
                          filters, include_deprecated)
    with STATE.lock:
        images = [
            ami for backend in existing_region_backends(region)
            for ami in list(backend.amis.values())
            if is_visible(ami, caller)
        ]
        if ami_ids:
            malformed = [i for i in ami_ids if not i.startswith("ami-")]
            if malformed:
                raise MalformedAMIIdError(malformed)
            found = [ami for ami in images if ami.id in ami_ids]
            found_ids = {ami.id for ami in found}
            deleted = set(region_backend(caller, region).deleted_amis)
            # AWS: an ID that does not exist (or is not visible to the caller)
            # fails the whole call with InvalidAMIID.NotFound; a recently
            # deregistered one is simply not returned.
            missing = [i for i in ami_ids if i not in found_ids and i not in deleted]
            if missing:
                raise InvalidAMIIdError(missing)
            images = found
        elif not include_deprecated:
            # AWS ("Deprecate an AMI"): for AMI users a deprecated AMI does
            # not appear in DescribeImages unless its ID is given or
            # IncludeDeprecated is set; owners always see their own.
            now = utcnow()
            images = [a for a in images if a.owner_id == caller or not is_deprecated(a, now)]
        if exec_users:
            # AWS ExecutableUsers: account IDs, "self" or "all" (public AMIs).
            wanted = {caller if u == "self" else u for u in exec_users}
            images = [
                a for a in images
                if ("all" in wanted and a.is_public)
                or any({"UserId": u} in a.launch_permissions for u in wanted if u != "all")
            ]
        if not include_disabled:
            # AWS DescribeImages, IncludeDisabled: "Specifies whether to
            # include disabled AMIs. Default: No disabled AMIs are included
            # in the response." (Also when ImageIds is given.)
            images = [a for a in images if a.state != "disabled"]
        if owners:
            # AWS Owners: account IDs, "self", or aliases (amazon,
            # aws-marketplace, aws-backup-vault).
            wanted = {caller if o == "self" else o for o in owners}
            images = [a for a in images if a.owner_id in wanted or (a.owner_alias and a.owner_alias in wanted)]
        if filters:
            images = [a for a in images if all(filter_matches(a, n, v) for n, v in filters.items())]
        if ami_ids:
            return ActionResult({"Images": images})
        page, token = paginate(images, lambda a: a.id, max_results, next_token, query)
        result: dict[str, Any] = {"Images": page}
        if token:
            result["NextToken"] = token
        return ActionResult(result)


def filter_matches(ami: Ami, name: str, values: list[str]) -> bool:
    """One DescribeImages filter, as AWS applies it.

    AWS (DescribeImages, Filters): "If you specify multiple values for a
    filter, the values are joined with an OR, and the request returns all
    results that match any of the specified values"; values may use the
    wildcards * and ?. moto 5.2.5 required a multi-valued attribute (such as
    tag-key, an image's list of tag keys) to be a subset or superset of the
    values, so tag-key=[a, b] missed an image tagged a and c.
    """
    value = ami.get_filter_value(name)
    if isinstance(value, (list, set, tuple)):
        return any(fnmatch.fnmatchcase(str(v), pattern) for v in value for pattern in values)
    return generic_filter({name: values}, [ami]) != []


def describe_image_attribute(self: EC2Response) -> Any:
    # moto looks the image up in the caller's own backend only (KeyError ->
    # HTTP 500 for unknown ids); answer as AWS does for unknown/unowned ids,
    # then let moto do the rest.
    image_id = self._get_param("ImageId")
    with STATE.lock:
        find_owned_image(self.region, self.current_account, image_id)
    return _ORIGINAL["describe_image_attribute"](self)


# --------------------------------------------------------------------------
# RegisterImage
# --------------------------------------------------------------------------


def register_image(self: EC2Response) -> ActionResult:
    name = self._get_param("Name")
    description = self._get_param("Description", "")
    mappings = self._get_param("BlockDeviceMappings") or self._get_param("BlockDeviceMapping") or []
    root_device_name = self._get_param("RootDeviceName")
    architecture = self._get_param("Architecture") or "x86_64"
    virtualization_type = self._get_param("VirtualizationType") or "hvm"
    boot_mode = self._get_param("BootMode")
    # AWS RegisterImage TagSpecifications: to tag the AMI, ResourceType must
    # be image; other values make the request fail.
    tags = _tags_for(_tag_specs(self), ("image",))
    self.error_on_dryrun()
    caller = self.current_account
    with STATE.lock:
        backend = region_backend(caller, self.region)
        specs = []
        for m in mappings:
            ebs = m.get("Ebs")
            if ebs is None:
                continue  # instance-store / NoDevice mappings: not modelled
            snap_id = ebs.get("SnapshotId")
            if snap_id:
                # AWS: the snapshot must exist (InvalidSnapshot.NotFound).
                if snap_id not in backend.snapshots:
                    raise InvalidSnapshotIdError()
            specs.append({
                "DeviceName": m.get("DeviceName"),
                "SnapshotId": snap_id,
                "VolumeSize": ebs.get("VolumeSize") or (backend.snapshots[snap_id].volume.size if snap_id else None),
                "VolumeType": ebs.get("VolumeType") or "gp2",
                "DeleteOnTermination": _bool(ebs.get("DeleteOnTermination", True)),
                "Iops": ebs.get("Iops"),
                "Throughput": ebs.get("Throughput"),
                # Only used without a snapshot: with one, encryption is the
                # snapshot's (an EBS volume restored from a snapshot has the
                # snapshot's encryption).
                "Encrypted": _bool(ebs.get("Encrypted")),
            })
        image_id = random_ami_id()
        ami = new_ami(
            backend, image_id, owner=caller, name=name, description=description,
            root_device_name=root_device_name or (specs[0]["DeviceName"] if specs else "/dev/xvda"),
            architecture=architecture, virtualization_type=virtualization_type, boot_mode=boot_mode,
        )
        if specs:
            _drop_auto_snapshot(backend, ami)
            ami.emu_bdm = specs
            first = _find_snapshot(ami, specs[0].get("SnapshotId"))
            if first is not None:
                ami.ebs_snapshot = first
        backend.amis[image_id] = ami
        for k, v in tags.get("image", {}).items():
            ami.add_tag(k, v)
    return ActionResult({"ImageId": image_id})


# --------------------------------------------------------------------------
# CopyImage
# --------------------------------------------------------------------------


def copy_image(self: EC2Response) -> ActionResult:
    source_image_id = self._get_param("SourceImageId")
    source_region = self._get_param("SourceRegion")
    name = self._get_param("Name")
    description = self._get_param("Description")
    client_token = self._get_param("ClientToken")
    copy_tags = _bool(self._get_param("CopyImageTags"))
    encrypted = _bool(self._get_param("Encrypted"))
    kms_key_id = self._get_param("KmsKeyId")
    tag_specs = _tag_specs(self)
    self.error_on_dryrun()
    caller = self.current_account
    region = self.region
    fingerprint = json.dumps(
        {
            "SourceImageId": source_image_id, "SourceRegion": source_region, "Name": name,
            "Description": description, "CopyImageTags": copy_tags, "Encrypted": encrypted,
            "KmsKeyId": kms_key_id, "TagSpecifications": tag_specs,
        },
        sort_keys=True, default=str,
    )
    with STATE.lock:
        if client_token:
            # AWS (Ensuring idempotency): a retry with the same client token
            # and the same parameters returns the same result;
            # "IdempotentParameterMismatch: The request uses the same client
            # token as a previous, but non-identical request."
            seen = STATE.copy_tokens.get((caller, region, client_token))
            if seen is not None:
                if seen[0] != fingerprint:
                    raise EC2ClientError(
                        "IdempotentParameterMismatch",
                        "The request uses the same client token as a previous, but non-identical request. "
                        "Do not reuse a client token with different requests, unless the requests are identical.",
                    )
                return ActionResult({"ImageId": seen[1]})
        # AWS TagSpecifications for CopyImage: ResourceType image or snapshot.
        tags = _tags_for(tag_specs, ("image", "snapshot"))
        if source_region not in ec2_backends[caller].regions and source_region not in dict.keys(ec2_backends[caller]):
            # AWS: "InvalidRegion: The specified AWS Region is not valid. For
            # copying a snapshot or image, specify the source Region ..."
            raise EC2ClientError("InvalidRegion", f"Region {source_region} is not valid.")
        # The source must be visible to the caller: owned, public or shared.
        source = find_visible_image(source_region, caller, source_image_id)
        if source.state != "available":
            # Not documented for CopyImage; IncorrectState is EC2's code for
            # "the resource is in an incorrect state for the request".
            raise EC2ClientError(
                "IncorrectState",
                f"Image {source_image_id} is in state {source.state}; only available images can be copied.",
            )
        limit = int(STATE.config["concurrent_copy_limit"])
        backend = region_backend(caller, region)
        in_progress = sum(1 for a in backend.amis.values() if a.emu_is_copy and a.state == "pending")
        if in_progress >= limit:
            # AWS: concurrent AMI copies per destination Region are limited;
            # ResourceLimitExceeded ("You have exceeded an Amazon EC2 resource
            # limit. For example, you might have too many snapshot copies in
            # progress.", errors overview). Not retried by the SDK.
            raise EC2ClientError(
                "ResourceLimitExceeded",
                f"You have reached the limit of {limit} concurrent AMI copies in progress "
                f"for this destination Region ({region}). Wait for copies to complete and retry.",
            )
        image_id = random_ami_id()
        ami = new_ami(
            backend, image_id, owner=caller, name=name,
            description=description if description is not None else source.description,
            # "A copy starts pending" (DESIGN.md); it becomes available after
            # the configured delay or on POST /_emulator/complete-copies.
            state="pending",
            # A copy is a new AMI: fresh CreationDate.
            creation_date=utcnow(),
            # Billing product codes stay with the copied AMI.
            product_codes=sorted(source.product_codes),
            source=source,
            root_device_name=source.root_device_name,
        )
        _drop_auto_snapshot(backend, ami)
        # AWS (EC2 User Guide, "Use encryption with EBS-backed AMIs", copy
        # with no encryption parameters): "An unencrypted snapshot is copied
        # to another unencrypted snapshot, unless encryption by default is
        # enabled, in which case all the newly created snapshots will be
        # encrypted." and "Enabling encryption by default has the same effect
        # as setting the Encrypted parameter to true for all snapshots in the
        # AMI." The setting is the destination Region's, of the caller
        # (GetEbsEncryptionByDefault: "for your account in the current Region").
        encrypt_all = encrypted or bool(backend.ebs_encryption_by_default)
        specs = []
        for m in source.block_device_mappings:
            ebs = m["Ebs"]
            # AWS CopyImage: "Copies of encrypted backing snapshots for the
            # AMI are encrypted. Copies of unencrypted backing snapshots
            # remain unencrypted, unless you set Encrypted during the copy".
            snap = _new_snapshot(
                backend, caller, bool(ebs.get("Encrypted")) or encrypt_all,
                int(ebs.get("VolumeSize") or 8),
                f"Copied for DestinationAmi {image_id} from SourceAmi {source_image_id}", image_id,
            )
            for k, v in tags.get("snapshot", {}).items():
                backend.create_tags([snap.id], {k: v})
            specs.append({
                "DeviceName": m["DeviceName"], "SnapshotId": snap.id, "VolumeSize": ebs.get("VolumeSize"),
                "VolumeType": ebs.get("VolumeType"), "DeleteOnTermination": ebs.get("DeleteOnTermination"),
            })
        ami.emu_bdm = specs
        if specs:
            ami.ebs_snapshot = backend.snapshots[specs[0]["SnapshotId"]]
        # Launch permissions and deprecation are not copied (new Ami: none).
        ami.emu_is_copy = True
        ami.emu_source = (source_region, source_image_id)
        delay = float(STATE.config["copy_delay_seconds"])
        ami.emu_ready_at = time.time() + delay
        # POST /_emulator/copy-failures: this copy ends "failed" (with that
        # StateReason) instead of "available" when its delay has elapsed.
        for failure in STATE.copy_failures.get(region, []):
            if failure["remaining"] > 0:
                failure["remaining"] -= 1
                ami.emu_fail_reason = {"code": failure["code"], "message": failure["message"]}
                break
        backend.amis[image_id] = ami
        if copy_tags and source.owner_id == caller:
            # AWS CopyImageTags: copies your user-defined AMI tags, except
            # system tags (aws:) and, for public and shared AMIs, tags attached
            # by other accounts. Default: not copied.
            for k, v in ami_tags(source).items():
                if not k.startswith("aws:"):
                    ami.add_tag(k, v)
        for k, v in tags.get("image", {}).items():
            ami.add_tag(k, v)
        if client_token:
            STATE.copy_tokens[(caller, region, client_token)] = (fingerprint, image_id)
    return ActionResult({"ImageId": image_id})


# --------------------------------------------------------------------------
# ModifyImageAttribute
# --------------------------------------------------------------------------


def _launch_permission_changes(self: EC2Response) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Same parsing as moto 5.2.5's handler (both request styles)."""
    lp_param = self._get_param("LaunchPermission", {}) or {}
    adds = list(lp_param.get("Add", []) or [])
    removes = list(lp_param.get("Remove", []) or [])
    operation_type = self._get_param("OperationType")
    if operation_type in ("add", "remove"):
        target = adds if operation_type == "add" else removes
        for group in self._get_param("UserGroups", []) or []:
            target.append({"Group": group})
        for user_id in self._get_param("UserIds", []) or []:
            target.append({"UserId": user_id})
        for arn in self._get_param("OrganizationArns", []) or []:
            target.append({"OrganizationArn": arn})
        for arn in self._get_param("OrganizationalUnitArns", []) or []:
            target.append({"OrganizationalUnitArn": arn})
    return adds, removes


def count_public_images(region: str, owner: str) -> int:
    # AWS (EC2 User Guide, "Amazon EC2 AMI quotas"): Public AMIs is "The
    # maximum number of public AMIs, including public AMIs in the Recycle
    # Bin, allowed per Region."
    backend = region_backend(owner, region)
    live = sum(1 for a in backend.amis.values() if a.is_public)
    recycled = sum(
        1 for (account, reg, _id), entry in STATE.recycle_bin.items()
        if account == owner and reg == region and entry["ami"].is_public
    )
    return live + recycled


def modify_image_attribute(self: EC2Response) -> Any:
    image_id = self._get_param("ImageId")
    adds, removes = _launch_permission_changes(self)
    description = self._get_param("Description")
    self.error_on_dryrun()
    caller = self.current_account
    region = self.region
    with STATE.lock:
        # Only the owner may change an AMI's attributes ("Making an AMI public
        # shares only launch rights: others can't ... change it").
        ami = find_owned_image(region, caller, image_id)
        if adds or removes:
            if ami.state != "available":
                # AWS errors overview, InvalidAMIID.Unavailable: "... or is not
                # in a state from which you can launch an instance or modify
                # attributes." (DESIGN.md: pending AMI -> this code.)
                raise EC2ClientError(
                    "InvalidAMIID.Unavailable",
                    f"The image id '[{image_id}]' is not available (state: {ami.state})",
                )
            making_public = {"Group": "all"} in adds and not ami.is_public
            if making_public:
                _check_can_make_public(region, caller, ami)
        if description is not None:
            value = description.get("Value") if isinstance(description, dict) else description
            if value is not None:
                ami.description = value
        if adds or removes:
            self.ec2_backend.modify_image_attribute(
                ami_id=image_id,
                launch_permissions_to_add=adds,
                launch_permissions_to_remove=removes,
            )
            if ami.is_public:
                # AWS ("Deprecate an AMI"): "By default, the deprecation date
                # of all public AMIs is set to two years from the AMI creation
                # date"; an earlier date is kept.
                limit = public_deprecation_limit(ami)
                if ami.deprecation_time_dt is None or ami.deprecation_time_dt > limit:
                    ami.deprecation_time_dt = limit
    return EmptyResult()


def _check_can_make_public(region: str, caller: str, ami: Ami) -> None:
    """Every refusal AWS documents for adding the group "all". Order: BPA,
    encryption, product codes, quota (AWS does not document an order)."""
    state, _managed_by = STATE.bpa_effective(region)
    if state == "block-new-sharing":
        # AWS ("Block public access to your AMIs"): while block public access
        # is on, public sharing fails with OperationNotPermitted; message as
        # EC2 returns it (quoted in hortonworks/cloudbreak-images#926).
        raise EC2ClientError(
            "OperationNotPermitted",
            "You can't publicly share this image because block public access for AMIs is "
            "enabled for this account. To publicly share the image, you must call the "
            "DisableImageBlockPublicAccess API.",
        )
    if ami_encrypted(ami):
        # AWS ("Make your AMI public"): AMIs with encrypted volumes can't be
        # made public. Code and message as EC2 returns them for
        # ModifyImageAttribute (quoted in opendevstack/ods-core#1062).
        raise EC2ClientError(
            "UnsupportedOperation",
            "Encrypted snapshots can't be shared publicly. Specify another snapshot.",
        )
    if ami.product_codes:
        # AWS ModifyImageAttribute: "Images with an AWS Marketplace product
        # code cannot be made public." The code is not documented; the
        # emulator uses UnsupportedOperation, as for the encrypted case.
        raise EC2ClientError(
            "UnsupportedOperation",
            "Images with an AWS Marketplace product code cannot be made public.",
        )
    quota = STATE.public_image_quota(region)
    if count_public_images(region, caller) >= quota:
        # AWS: public AMIs per Region are limited (default 5); message as EC2
        # returns it (quoted in iterative/studio-selfhosted#90).
        raise EC2ClientError(
            "ResourceLimitExceeded",
            f"You have reached your quota of {quota} for the number of public images allowed "
            "in this Region. Deregister unused public images or make them private, or request "
            "an increase in your public AMIs quota.",
        )


def create_tags(self: EC2Response) -> ActionResult:
    # AWS (EC2 User Guide, "Tag your Amazon EC2 resources"): "You can tag
    # public or shared AMIs, but the tags that you assign are available only
    # to your AWS account." moto looks resources up in the caller's own
    # backend only, so tagging an AMI shared by another account failed with
    # InvalidAMIID.NotFound. Here the tags land on the image itself: the
    # emulator keeps one tag set per image (see README, "does not model").
    resource_ids = self._get_param("Resources", [])
    tags = {tag["Key"]: tag["Value"] for tag in self._get_param("Tags", [])}
    self.error_on_dryrun()
    with STATE.lock:
        foreign = [
            r for r in resource_ids if r.startswith("ami-") and r not in self.ec2_backend.amis
        ]
        for image_id in foreign:
            ami = find_visible_image(self.region, self.current_account, image_id)
            region_backend(ami.owner_id, self.region).create_tags([image_id], tags)
        own = [r for r in resource_ids if r not in foreign]
        if own:
            self.ec2_backend.do_resources_exist(own)
            self.ec2_backend.create_tags(own, tags)
    return EmptyResult()


# --------------------------------------------------------------------------
# Deregistration protection and DeregisterImage
# --------------------------------------------------------------------------


def enable_image_deregistration_protection(self: EC2Response) -> ActionResult:
    image_id = self._get_param("ImageId")
    with_cooldown = _bool(self._get_param("WithCooldown"))
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
    max_results = _int_param(self, "MaxResults")
    next_token = self._get_param("NextToken") or None
    self.error_on_dryrun()
    if max_results is not None and not 1 <= max_results <= 1000:
        raise EC2ClientError(
            "InvalidParameterValue",
            f"Value ( {max_results} ) for parameter MaxResults is invalid. Expecting a value between 1 and 1000.",
        )
    caller = self.current_account
    region = self.region
    query = _query_digest("ListImagesInRecycleBin", caller, region, sorted(image_ids))
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


# --------------------------------------------------------------------------
# Service Quotas (GetServiceQuota for the public AMI quota)
# --------------------------------------------------------------------------

PUBLIC_AMIS_QUOTA_CODE = "L-0E3CBAB9"
# AWS (EC2 User Guide, "Amazon EC2 AMI quotas"): Public AMIs, default quota
# per Region 5; adjustable in Service Quotas.
PUBLIC_AMIS_DEFAULT = 5


def public_amis_quota(region: str, account: str, value: float) -> dict[str, Any]:
    # Service Quotas ServiceQuota structure (GetServiceQuota response).
    return {
        "ServiceCode": "ec2",
        "ServiceName": "Amazon Elastic Compute Cloud (Amazon EC2)",
        "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:ec2/{PUBLIC_AMIS_QUOTA_CODE}",
        "QuotaCode": PUBLIC_AMIS_QUOTA_CODE,
        "QuotaName": "Public AMIs",
        "Value": float(value),
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
        "QuotaAppliedAtLevel": "ACCOUNT",
        "Description": "The maximum number of public AMIs, including public AMIs in the Recycle Bin, "
                       "allowed per Region.",
    }


def _service_quota_request(resp: Any) -> tuple[str, str]:
    params = json.loads(resp.body or "{}")
    return str(params.get("ServiceCode")), str(params.get("QuotaCode"))


def _no_such_quota() -> Exception:
    from moto.core.exceptions import JsonRESTError

    # Service Quotas GetServiceQuota errors: NoSuchResourceException, "The
    # specified resource does not exist."
    return JsonRESTError("NoSuchResourceException", "The specified resource does not exist.")


def get_service_quota(self: Any) -> str:
    """The applied value of ec2/L-0E3CBAB9 is the emulator's public image
    quota for the Region: the number ModifyImageAttribute enforces."""
    service_code, quota_code = _service_quota_request(self)
    if service_code == "ec2":
        if quota_code != PUBLIC_AMIS_QUOTA_CODE:
            raise _no_such_quota()
        with STATE.lock:
            value = STATE.public_image_quota(self.region)
        return json.dumps({"Quota": public_amis_quota(self.region, self.current_account, value)})
    return _SQ_ORIGINAL["get_service_quota"](self)


def get_aws_default_service_quota(self: Any) -> str:
    """GetAWSDefaultServiceQuota: the AWS default (5), whatever is applied."""
    service_code, quota_code = _service_quota_request(self)
    if service_code == "ec2" and quota_code == PUBLIC_AMIS_QUOTA_CODE:
        quota = public_amis_quota(self.region, self.current_account, PUBLIC_AMIS_DEFAULT)
        quota["QuotaArn"] = f"arn:aws:servicequotas:{self.region}::ec2/{PUBLIC_AMIS_QUOTA_CODE}"
        return json.dumps({"Quota": quota})
    raise _no_such_quota()


# --------------------------------------------------------------------------
# Installation
# --------------------------------------------------------------------------

_ORIGINAL: dict[str, Any] = {}
_SQ_ORIGINAL: dict[str, Any] = {}

HANDLERS = {
    "get_image_block_public_access_state": get_image_block_public_access_state,
    "enable_image_block_public_access": enable_image_block_public_access,
    "disable_image_block_public_access": disable_image_block_public_access,
    "enable_image_deprecation": enable_image_deprecation,
    "disable_image_deprecation": disable_image_deprecation,
    "describe_images": describe_images,
    "describe_image_attribute": describe_image_attribute,
    "register_image": register_image,
    "copy_image": copy_image,
    "modify_image_attribute": modify_image_attribute,
    "create_tags": create_tags,
    "deregister_image": deregister_image,
    "enable_image_deregistration_protection": enable_image_deregistration_protection,
    "disable_image_deregistration_protection": disable_image_deregistration_protection,
    "list_images_in_recycle_bin": list_images_in_recycle_bin,
}

# Methods of moto's ServiceQuotasResponse, named like the EC2 ones.
SERVICE_QUOTAS_HANDLERS = {
    "get_service_quota": get_service_quota,
    "get_aws_default_service_quota": get_aws_default_service_quota,
}


def install() -> None:
    from moto.servicequotas.responses import ServiceQuotasResponse

    for name, fn in HANDLERS.items():
        if name not in _ORIGINAL:
            _ORIGINAL[name] = getattr(EC2Response, name, None)
        setattr(EC2Response, name, fn)
    for name, fn in SERVICE_QUOTAS_HANDLERS.items():
        if name not in _SQ_ORIGINAL:
            _SQ_ORIGINAL[name] = getattr(ServiceQuotasResponse, name, None)
        setattr(ServiceQuotasResponse, name, fn)


def reset_everything() -> None:
    """POST /_emulator/reset: every moto backend and all emulator state."""
    from moto.core.base_backend import BackendDict

    with STATE.lock:
        BackendDict.reset()
        STATE.reset_all()
