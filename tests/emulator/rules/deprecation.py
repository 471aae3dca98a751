"""AMI deprecation: EnableImageDeprecation, DisableImageDeprecation.

Owns: the ``DeprecationTime`` of an image (``Ami.deprecation_time_dt``, as
DescribeImages shows it), whether an image is deprecated now, the rounding
of ``DeprecateAt`` to the minute, its limits (not in the past; 10 years from
now; 2 years after creation for a public AMI), the refusal to cancel the
deprecation of a public AMI, and ``public_deprecation_limit`` (the default
date a public AMI gets, used by sharing.py when an image is made public).

Leaves to others: hiding deprecated images from listings (describe.py),
setting the default date when an image becomes public (sharing.py).
"""

from __future__ import annotations

import datetime as _dt

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ec2.exceptions import EC2ClientError
from moto.ec2.models.amis import Ami
from moto.ec2.responses import EC2Response

from .common import add_years, fmt_time, naive_utc
from .images import find_owned_image
from .state import STATE

# Default for every Ami (moto's own constructor does not know it).
Ami.deprecation_time_dt = None  # type: ignore[attr-defined]


def _deprecation_time(self: Ami) -> str | None:
    # DescribeImages returns DeprecationTime (string, ISO8601) when set.
    return fmt_time(self.deprecation_time_dt)


Ami.deprecation_time = property(_deprecation_time)  # type: ignore[attr-defined]


def is_deprecated(ami: Ami, now: _dt.datetime | None = None) -> bool:
    if ami.deprecation_time_dt is None:
        return False
    return ami.deprecation_time_dt <= (now or utcnow())


def round_to_minute(dt: _dt.datetime) -> _dt.datetime:
    # AWS (EnableImageDeprecation, DeprecateAt): "If you specify a value for
    # seconds, Amazon EC2 rounds the seconds to the nearest minute."
    base = dt.replace(second=0, microsecond=0)
    if dt.second * 1_000_000 + dt.microsecond >= 30_000_000:
        base += _dt.timedelta(minutes=1)
    return base


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
        requested = naive_utc(raw)
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


HANDLERS = {
    "enable_image_deprecation": enable_image_deprecation,
    "disable_image_deprecation": disable_image_deprecation,
}
