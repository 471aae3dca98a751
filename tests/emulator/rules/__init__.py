"""The AWS rules moto 5.2.5 lacks or gets wrong, added to moto in-process.

One module per AWS feature, so that a change to one feature has one file to
read (the tests follow the same split, ``tests/emulator/test_<module>.py``):

  ===================  ====================================================
  ``common``           moto pin, time and request-parameter helpers
  ``state``            the emulator's own state (not moto's) and its lock
  ``images``           moto's ``Ami`` completed; lookup and visibility;
                       building and seeding images; RegisterImage, CreateTags
  ``describe``         DescribeImages (visibility, filters, IncludeDeprecated,
                       IncludeDisabled), DescribeImageAttribute
  ``pagination``       MaxResults / NextToken / InvalidPaginationToken
  ``copies``           CopyImage and a copy's life (pending, available, failed)
  ``sharing``          launch permissions, image block public access, the
                       public AMI quota (ModifyImageAttribute, *BlockPublicAccess*)
  ``deprecation``      Enable/DisableImageDeprecation and their limits
  ``deregistration``   deregistration protection, DeregisterImage, Recycle Bin
  ``service_quotas``   GetServiceQuota for the public AMI quota
  ``ebs``              the EBS direct APIs (snapshot blocks), on moto's EBS
  ``ledger``           the function's ledger table (DynamoDB), as template.yaml
                       defines it
  ===================  ====================================================

Everything here reaches into moto's internals (``moto.ec2``): moto is pinned
to 5.2.5 in tests/requirements.txt, and ``common`` checks the version at
import time so that a silent upgrade fails loudly instead of half-working.

How it plugs in (verified against moto 5.2.5):
  * a method on ``moto.ec2.responses.EC2Response`` named after the action in
    snake case (``get_image_block_public_access_state``) answers that action;
    assigning one on the class replaces moto's own handler for that action
    (each module lists its own in ``HANDLERS``; ``install()`` assigns them);
  * moto serialises ``Ami`` objects through the botocore output shape, looking
    up each member by name (``DeprecationTime`` -> ``deprecation_time``), or
    by the aliases in ``Ami.Meta.serialization_aliases``.

Each rule cites the AWS documentation (or, where AWS documents the rule but
not the error code, says which code the emulator chose and why). See
README.md beside this package for the list.

This package's own names are what server.py (the control API) uses:
``install``, ``reset_everything``, ``tick`` and the functions re-exported
below.
"""

from __future__ import annotations

# common first: it sets the environment moto.ec2 reads when it is imported.
from . import common  # noqa: F401  (isort: skip)
from . import copies, deprecation, deregistration, describe, ebs, images, ledger, service_quotas, sharing
from .common import DEFAULT_ACCOUNT, parse_iso8601
from .copies import DEFAULT_COPY_FAILURE, complete_pending, fail_image
from .deregistration import put_in_recycle_bin, recycle_bin_view
from .images import all_images, image_view, region_backend, seed_image
from .state import BPA_MANAGED_BY, BPA_STATES, STATE

__all__ = [
    "BPA_MANAGED_BY", "BPA_STATES", "DEFAULT_ACCOUNT", "DEFAULT_COPY_FAILURE", "STATE",
    "all_images", "complete_pending", "fail_image", "image_view", "install", "ledger", "parse_iso8601",
    "put_in_recycle_bin", "recycle_bin_view", "region_backend", "reset_everything", "seed_image", "tick",
]

# The EC2 actions the emulator answers itself, from each feature's module.
EC2_MODULES = (images, describe, copies, sharing, deprecation, deregistration)


def tick(now: float | None = None) -> None:
    """What time does, checked on each request (no background thread):
    pending copies whose delay has elapsed end (available or failed);
    Recycle Bin entries whose retention period has ended are deleted."""
    copies.tick_copies(now)
    deregistration.tick_recycle_bin()


def install() -> None:
    """Put every module's handlers on moto's response classes."""
    from moto.ebs.responses import EBSResponse
    from moto.ec2.responses import EC2Response
    from moto.servicequotas.responses import ServiceQuotasResponse

    for module in EC2_MODULES:
        for name, fn in module.HANDLERS.items():
            if name not in common.ORIGINAL:
                common.ORIGINAL[name] = getattr(EC2Response, name, None)
            setattr(EC2Response, name, fn)
    for name, fn in service_quotas.HANDLERS.items():
        if name not in common.SQ_ORIGINAL:
            common.SQ_ORIGINAL[name] = getattr(ServiceQuotasResponse, name, None)
        setattr(ServiceQuotasResponse, name, fn)
    for name, fn in ebs.HANDLERS.items():
        setattr(EBSResponse, name, fn)


def reset_everything() -> None:
    """POST /_emulator/reset: every moto backend and all emulator state."""
    from moto.core.base_backend import BackendDict

    with STATE.lock:
        BackendDict.reset()
        STATE.reset_all()
