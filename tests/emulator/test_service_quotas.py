"""Service Quotas (rules/service_quotas.py): the public AMI quota as
GetServiceQuota reports it, the same value ModifyImageAttribute enforces.

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations


import pytest
from botocore.exceptions import ClientError

from emu_helpers import OWNER, R1, R2, error_of, make_public, seed_many
from harness import ControlAPIError


# ---------------------------------------------------------------------------
# Service Quotas: the public AMI quota
# ---------------------------------------------------------------------------

def quotas(emu, region: str = R1):
    return emu.client("service-quotas", region, retries={"total_max_attempts": 1, "mode": "standard"})


def test_get_service_quota_public_amis_default(emu):
    quota = quotas(emu, R2).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]
    assert quota == {**quota, "ServiceCode": "ec2", "QuotaCode": "L-0E3CBAB9", "QuotaName": "Public AMIs",
                     "Value": 5.0, "Adjustable": True, "GlobalQuota": False}
    assert quota["QuotaArn"] == f"arn:aws:servicequotas:{R2}:{OWNER}:ec2/L-0E3CBAB9"
    # Routed by the SigV4 credential scope (service "servicequotas").
    assert emu.control("GET", "/_emulator/calls?service=servicequotas")["calls"] == [
        {"action": "GetServiceQuota", "region": R2}
    ]
    assert emu.calls() == []  # the default call log is EC2's


def test_service_quota_is_the_quota_modify_image_attribute_enforces(emu, ec2, ec2_r2):
    emu.config(public_image_quota=2, public_image_quota_by_region={R2: 3})
    assert quotas(emu, R1).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]["Value"] == 2
    assert quotas(emu, R2).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]["Value"] == 3
    r1 = seed_many(emu, 3, region=R1)
    r2 = seed_many(emu, 4, region=R2)
    for image_id in r1[:2]:
        make_public(ec2, image_id)
    with pytest.raises(ClientError) as exc:
        make_public(ec2, r1[2])
    assert "quota of 2 " in error_of(exc)[1]
    for image_id in r2[:3]:
        make_public(ec2_r2, image_id)
    with pytest.raises(ClientError) as exc:
        make_public(ec2_r2, r2[3])
    assert "quota of 3 " in error_of(exc)[1]
    assert emu.control("GET", "/_emulator/config")["config"]["public_image_quota_by_region"] == {R2: 3}
    # The default quota for AWS stays 5.
    default = quotas(emu).get_aws_default_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]
    assert default["Value"] == 5.0


def test_unknown_service_quota_is_no_such_resource(emu):
    with pytest.raises(ClientError) as exc:
        quotas(emu).get_service_quota(ServiceCode="ec2", QuotaCode="L-00000000")
    assert error_of(exc)[0::2] == ("NoSuchResourceException", 400)


def test_service_quotas_faults_are_json_errors(emu):
    emu.fault("GetServiceQuota", "AccessDeniedException", count=1, message="not allowed")
    with pytest.raises(ClientError) as exc:
        quotas(emu).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")
    assert error_of(exc) == ("AccessDeniedException", "not allowed", 400)
    assert quotas(emu).get_service_quota(ServiceCode="ec2", QuotaCode="L-0E3CBAB9")["Quota"]["Value"] == 5.0


def test_public_image_quota_by_region_rejects_bad_input(emu):
    for bad in ({"public_image_quota_by_region": [1]}, {"public_image_quota_by_region": {R1: -1}},
                {"public_image_quota_by_region": {R1: 1.5}}):
        with pytest.raises(ControlAPIError) as exc:
            emu.config(**bad)
        assert exc.value.status == 400
