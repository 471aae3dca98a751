"""Making an AMI public: launch permissions, image block public access, the quota.

Owns: Get/Enable/DisableImageBlockPublicAccess (per Region, ManagedBy
account or declarative-policy), ModifyImageAttribute's launch permissions
(owner only, ``available`` only) and every refusal AWS documents for adding
the group "all" (BPA, encrypted snapshots, product codes, the public AMI
quota per Region counting public AMIs in the Recycle Bin), and the default
deprecation date a public AMI gets.

Leaves to others: the quota's value as Service Quotas reports it
(service_quotas.py reads the same ``STATE.public_image_quota``), the
deprecation limits (deprecation.py), the Recycle Bin (deregistration.py).
"""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.amis import Ami
from moto.ec2.responses import EC2Response

from .deprecation import public_deprecation_limit
from .images import ami_encrypted, find_owned_image, region_backend
from .state import STATE


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


HANDLERS = {
    "get_image_block_public_access_state": get_image_block_public_access_state,
    "enable_image_block_public_access": enable_image_block_public_access,
    "disable_image_block_public_access": disable_image_block_public_access,
    "modify_image_attribute": modify_image_attribute,
}
