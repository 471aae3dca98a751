"""Images as EC2 has them: moto's ``Ami`` completed, found, built and seeded.

Owns:
  * the attributes moto's ``Ami`` lacks or gets wrong (StateReason,
    SourceImageId/Region, ProductCodes structures, BlockDeviceMappings with
    the snapshots' encryption, constant-time tags);
  * finding images across accounts with AWS's visibility rules (owned,
    public, shared) and the owner-only check (``AuthFailure``);
  * building images and their snapshots (``new_ami``, ``new_snapshot``);
  * ``seed_image`` (POST /_emulator/images; its volumes new snapshots or
    existing ones, such as those uploaded through the EBS direct APIs) and
    ``image_view`` (GET);
  * the EC2 actions ``RegisterImage`` and ``CreateTags`` (tags on AMIs shared
    with the caller).

Leaves to others: listing (describe.py), copies (copies.py), launch
permissions (sharing.py), deprecation (deprecation.py), deregistration and
the Recycle Bin (deregistration.py). Those modules add their own attributes
to ``Ami``.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import (
    EC2ClientError,
    InvalidAMIIdError,
    InvalidSnapshotIdError,
    MalformedAMIIdError,
    UnvailableAMIIdError,
)
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.ec2.responses import EC2Response
from moto.ec2.utils import random_ami_id

from .common import DEFAULT_ACCOUNT, bool_param, fmt_time, parse_iso8601, tag_specs, tags_for
from .state import STATE


# --------------------------------------------------------------------------
# Extra attributes on moto's Ami
# --------------------------------------------------------------------------

# Defaults for every Ami (moto's own constructor does not know them). The
# modules of other features add theirs (deprecation.py, copies.py,
# deregistration.py).
Ami.emu_bdm = None  # type: ignore[attr-defined]  # list of mapping specs
Ami.emu_source = None  # type: ignore[attr-defined]  # (region, image id) of a copy's source
Ami.emu_state_reason = None  # type: ignore[attr-defined]  # {"Code", "Message"}


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


def find_snapshot(ami: Ami, snapshot_id: str | None) -> Any:
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
        snap = find_snapshot(self, spec.get("SnapshotId"))
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


# --------------------------------------------------------------------------
# Building images and snapshots
# --------------------------------------------------------------------------


def new_snapshot(backend: Any, owner: str, encrypted: bool, size: int, description: str, ami_id: str) -> Any:
    volume = backend.create_volume(size=size, zone_name=f"{backend.region_name}a", encrypted=encrypted)
    snap = backend.create_snapshot(volume.id, description, owner, from_ami=ami_id)
    backend.delete_volume(volume.id)
    return snap


def drop_auto_snapshot(backend: Any, ami: Ami) -> None:
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
    drop_auto_snapshot(backend, ami)
    snapshots = spec.get("snapshots")
    if snapshots is None:
        snapshots = [{"encrypted": False}]
    bdm = []
    for i, s in enumerate(snapshots):
        if s.get("snapshot_id"):
            # An existing snapshot of the owner in that region (e.g. one
            # uploaded through the EBS direct APIs), as RegisterImage takes it.
            snap = backend.snapshots.get(s["snapshot_id"])
            if snap is None:
                raise ValueError(f"snapshot {s['snapshot_id']} does not exist for {owner} in {region}")
            if snap.status != "completed":
                raise ValueError(f"snapshot {s['snapshot_id']} is {snap.status}, not completed")
        else:
            snap = new_snapshot(
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
    tags = tags_for(tag_specs(self), ("image",))
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
                "DeleteOnTermination": bool_param(ebs.get("DeleteOnTermination", True)),
                "Iops": ebs.get("Iops"),
                "Throughput": ebs.get("Throughput"),
                # Only used without a snapshot: with one, encryption is the
                # snapshot's (an EBS volume restored from a snapshot has the
                # snapshot's encryption).
                "Encrypted": bool_param(ebs.get("Encrypted")),
            })
        image_id = random_ami_id()
        ami = new_ami(
            backend, image_id, owner=caller, name=name, description=description,
            root_device_name=root_device_name or (specs[0]["DeviceName"] if specs else "/dev/xvda"),
            architecture=architecture, virtualization_type=virtualization_type, boot_mode=boot_mode,
        )
        if specs:
            drop_auto_snapshot(backend, ami)
            ami.emu_bdm = specs
            first = find_snapshot(ami, specs[0].get("SnapshotId"))
            if first is not None:
                ami.ebs_snapshot = first
        backend.amis[image_id] = ami
        for k, v in tags.get("image", {}).items():
            ami.add_tag(k, v)
    return ActionResult({"ImageId": image_id})


# --------------------------------------------------------------------------
# CreateTags
# --------------------------------------------------------------------------


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
# DeleteTags
# --------------------------------------------------------------------------


def delete_tags(self: EC2Response) -> ActionResult:
    # AWS DeleteTags, Tags: "If you omit this parameter, we delete all
    # user-defined tags for the specified resources. We do not delete
    # AWS-generated tags (tags that have the aws: prefix)." moto deleted
    # nothing when the parameter was omitted. A tag given with a value is
    # deleted only if the value matches; without one, whatever its value.
    resource_ids = self._get_param("Resources", [])
    given = self._get_param("Tags", [])
    self.error_on_dryrun()
    with STATE.lock:
        self.ec2_backend.do_resources_exist(resource_ids)
        for resource_id in resource_ids:
            tags = self.ec2_backend.tags.get(resource_id, {})
            if not given:
                doomed = [k for k in tags if not k.startswith("aws:")]
            else:
                doomed = [t["Key"] for t in given
                          if t["Key"] in tags and t.get("Value") in (None, tags[t["Key"]])]
            for key in doomed:
                tags.pop(key, None)
    return EmptyResult()


# The EC2 actions this module answers (methods of moto's EC2Response).
HANDLERS = {
    "register_image": register_image,
    "create_tags": create_tags,
    "delete_tags": delete_tags,
}
