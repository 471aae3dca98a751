"""Listing images: DescribeImages and DescribeImageAttribute.

Owns: which images a caller sees in DescribeImages (visibility, Owners,
ExecutableUsers, ImageIds and InvalidAMIID.NotFound, IncludeDeprecated,
IncludeDisabled), filters as AWS applies them (values ORed, wildcards), and
DescribeImages' pagination rules (MaxResults 5..1000, not with ImageIds);
DescribeImageAttribute's answer for unknown or unowned images.

Leaves to others: the page and token machinery (pagination.py), what
"visible" and "deprecated" mean (images.py, deprecation.py).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError, MalformedAMIIdError
from moto.ec2.models.amis import Ami
from moto.ec2.responses import EC2Response
from moto.ec2.utils import generic_filter

from .common import ORIGINAL, bool_param, int_param
from .deprecation import is_deprecated
from .images import existing_region_backends, find_owned_image, is_visible, region_backend
from .pagination import paginate, query_digest
from .state import STATE

# DescribeImages' MaxResults range (emulator's choice: see describe_images).
DESCRIBE_IMAGES_MAX_RESULTS = (5, 1000)


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
    include_deprecated = bool_param(self._get_param("IncludeDeprecated"))
    include_disabled = bool_param(self._get_param("IncludeDisabled"))
    max_results = int_param(self, "MaxResults")
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
    query = query_digest("DescribeImages", caller, region, sorted(owners), sorted(exec_users),
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
    return ORIGINAL["describe_image_attribute"](self)


HANDLERS = {
    "describe_images": describe_images,
    "describe_image_attribute": describe_image_attribute,
}
