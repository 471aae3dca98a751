"""What every rule shares: the moto pin, time and request-parameter helpers.

Owns: the check that moto is the pinned version (the rules reach into its
internals), the switch that keeps moto from pre-loading Amazon's public AMIs,
the default account, naive-UTC time helpers (moto keeps naive UTC
datetimes), the parsing of query parameters every EC2 handler uses
(booleans, integers, TagSpecifications), and the table of moto's own
handlers that a rule replaced but still calls (``ORIGINAL``).

Leaves to others: every AWS rule. Imported first by the package, so that the
environment is set before ``moto.ec2`` is imported anywhere.
"""

from __future__ import annotations

import datetime as _dt
import os
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
from moto.ec2.exceptions import EC2ClientError, InvalidTaggableResourceType  # noqa: E402
from moto.ec2.responses import EC2Response  # noqa: E402

# moto's handlers replaced by a rule, by method name, for the rules that
# check first and then let moto answer (filled by rules.install()).
ORIGINAL: dict[str, Any] = {}  # EC2Response methods
SQ_ORIGINAL: dict[str, Any] = {}  # ServiceQuotasResponse methods

DEFAULT_ACCOUNT = "123456789012"

# --------------------------------------------------------------------------
# Time helpers (moto keeps naive UTC datetimes)
# --------------------------------------------------------------------------


def naive_utc(value: Any) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        dt = value
    else:
        dt = default_timestamp_parser(str(value))
    if dt.tzinfo is not None:
        dt = dt.astimezone(_dt.timezone.utc).replace(tzinfo=None)
    return dt


def parse_iso8601(value: str) -> _dt.datetime:
    """Parse an ISO8601 string from the control API into naive UTC."""
    return naive_utc(value)


def fmt_time(dt: _dt.datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def add_years(dt: _dt.datetime, years: int) -> _dt.datetime:
    try:
        return dt.replace(year=dt.year + years)
    except ValueError:  # 29 February
        return dt.replace(year=dt.year + years, day=28)


# --------------------------------------------------------------------------
# Parameter helpers
# --------------------------------------------------------------------------


def bool_param(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).lower() == "true"


def tag_specs(resp: EC2Response) -> list[dict[str, Any]]:
    specs = resp._get_param("TagSpecifications") or resp._get_param("TagSpecification") or []
    if isinstance(specs, dict):
        specs = [specs]
    return specs


def tags_for(specs: list[dict[str, Any]], allowed: tuple[str, ...]) -> dict[str, dict[str, str]]:
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


def int_param(resp: EC2Response, name: str) -> int | None:
    raw = resp._get_param(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise EC2ClientError("InvalidParameterValue", f"Value ( {raw} ) for parameter {name} is invalid.") from None
