"""AMI copies: CopyImage, and how a copy ends.

Owns: CopyImage (ClientToken idempotency and IdempotentParameterMismatch,
the source's visibility and state, the concurrent copy limit per destination
Region, new snapshots whose encryption follows the source, ``Encrypted`` and
the destination's EBS encryption by default, CopyImageTags and
TagSpecifications, SourceImageId/Region), the copy's life (pending for the
configured delay, then available, or failed with a StateReason when marked
by POST /_emulator/copy-failures or /fail-image), ``complete_pending``
(POST /_emulator/complete-copies) and ``tick_copies``.

Leaves to others: building images and snapshots (images.py); a copy's launch
permissions and deprecation are not copied (a new image has none).
"""

from __future__ import annotations

import json
import time

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models import ec2_backends
from moto.ec2.models.amis import Ami
from moto.ec2.responses import EC2Response
from moto.ec2.utils import random_ami_id

from .common import bool_param, tag_specs, tags_for
from .ebs import copy_blocks
from .images import (
    all_images,
    ami_tags,
    drop_auto_snapshot,
    find_visible_image,
    new_ami,
    new_snapshot,
    region_backend,
)
from .state import STATE

# Defaults for every Ami (moto's own constructor does not know them).
Ami.emu_is_copy = False  # type: ignore[attr-defined]
Ami.emu_ready_at = None  # type: ignore[attr-defined]  # epoch seconds
# A pending copy that ends "failed" instead of "available": its StateReason.
Ami.emu_fail_reason = None  # type: ignore[attr-defined]


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


def tick_copies(now: float | None = None) -> None:
    """Pending copies whose delay has elapsed end (available or failed)."""
    now = time.time() if now is None else now
    with STATE.lock:
        for _region, ami in all_images():
            if ami.state == "pending" and ami.emu_ready_at is not None and ami.emu_ready_at <= now:
                finish_copy(ami)


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
# CopyImage
# --------------------------------------------------------------------------


def copy_image(self: EC2Response) -> ActionResult:
    source_image_id = self._get_param("SourceImageId")
    source_region = self._get_param("SourceRegion")
    name = self._get_param("Name")
    description = self._get_param("Description")
    client_token = self._get_param("ClientToken")
    copy_tags = bool_param(self._get_param("CopyImageTags"))
    encrypted = bool_param(self._get_param("Encrypted"))
    kms_key_id = self._get_param("KmsKeyId")
    request_tag_specs = tag_specs(self)
    self.error_on_dryrun()
    caller = self.current_account
    region = self.region
    fingerprint = json.dumps(
        {
            "SourceImageId": source_image_id, "SourceRegion": source_region, "Name": name,
            "Description": description, "CopyImageTags": copy_tags, "Encrypted": encrypted,
            "KmsKeyId": kms_key_id, "TagSpecifications": request_tag_specs,
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
        tags = tags_for(request_tag_specs, ("image", "snapshot"))
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
        drop_auto_snapshot(backend, ami)
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
            snap = new_snapshot(
                backend, caller, bool(ebs.get("Encrypted")) or encrypt_all,
                int(ebs.get("VolumeSize") or 8),
                f"Copied for DestinationAmi {image_id} from SourceAmi {source_image_id}", image_id,
            )
            for k, v in tags.get("snapshot", {}).items():
                backend.create_tags([snap.id], {k: v})
            if ebs.get("SnapshotId"):
                # The copy's snapshot holds the source snapshot's content
                # (what the EBS direct APIs read from it).
                copy_blocks(source.owner_id, source_region, ebs["SnapshotId"], caller, region, snap.id)
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


HANDLERS = {
    "copy_image": copy_image,
}
