"""Service Quotas: the public AMI quota (ec2 / L-0E3CBAB9).

Owns: GetServiceQuota and GetAWSDefaultServiceQuota for ``ec2`` /
``L-0E3CBAB9`` ("Public AMIs"), as methods on moto's ServiceQuotasResponse;
``NoSuchResourceException`` for another ec2 quota code. Other services'
quotas are moto's.

Leaves to others: the value itself (``STATE.public_image_quota``, set by
POST /_emulator/config) and its enforcement (sharing.py).
"""

from __future__ import annotations

import json
from typing import Any

from .common import SQ_ORIGINAL
from .state import STATE


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
    return SQ_ORIGINAL["get_service_quota"](self)


def get_aws_default_service_quota(self: Any) -> str:
    """GetAWSDefaultServiceQuota: the AWS default (5), whatever is applied."""
    service_code, quota_code = _service_quota_request(self)
    if service_code == "ec2" and quota_code == PUBLIC_AMIS_QUOTA_CODE:
        quota = public_amis_quota(self.region, self.current_account, PUBLIC_AMIS_DEFAULT)
        quota["QuotaArn"] = f"arn:aws:servicequotas:{self.region}::ec2/{PUBLIC_AMIS_QUOTA_CODE}"
        return json.dumps({"Quota": quota})
    raise _no_such_quota()


# Methods of moto's ServiceQuotasResponse, named like the EC2 ones.
HANDLERS = {
    "get_service_quota": get_service_quota,
    "get_aws_default_service_quota": get_aws_default_service_quota,
}
