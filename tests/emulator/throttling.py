"""EC2 request throttling: token buckets as the EC2 API documents them.

Source for every number here: Amazon EC2 Developer Guide, "Request throttling
for the Amazon EC2 API" (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html),
sections "How throttling is applied" and "Request token bucket sizes and
refill rates":

  * "Amazon EC2 throttles EC2 API requests for each AWS account on a
    per-Region basis."
  * "With request rate limiting, each API is evaluated individually, and you
    are throttled on the number of requests you make on a per-API basis. Each
    request that you make removes one token from the API's bucket." and
    "Limits are applied to individual API actions, not API action
    categories." So there is one bucket per (account, Region, action); the
    action's category only gives that bucket its size and refill rate.
  * Buckets refill every second at the refill rate up to their maximum
    capacity; refill rates may be fractional (e.g. 0.1 per second).
  * An empty bucket answers RequestLimitExceeded.

Not modelled: resource token buckets (RunInstances, TerminateInstances,
StartInstances, StopInstances count instances, not requests), "Console
non-mutating actions" (requests from the EC2 console), limit increases.

Off by default; turned on and scaled through POST /_emulator/throttling.
"""

from __future__ import annotations

import time
from typing import Any

# Category -> (bucket maximum capacity, refill rate per second).
CATEGORY_LIMITS: dict[str, tuple[float, float]] = {
    # "The Describe*, List*, Search*, and Get* API actions that are not
    # included in another category."
    "non-mutating": (100, 20),
    # "A specific subset of non-mutating API actions that, when requested
    # without specifying either pagination or a filter, use tokens from a
    # smaller token bucket."
    "unfiltered-unpaginated": (50, 10),
    # "All mutating API actions that are not Resource-intensive actions or
    # Uncategorized actions."
    "mutating": (50, 5),
    "resource-intensive": (50, 5),
}

# The "Unfiltered and unpaginated non-mutating actions" the page lists.
# DescribeImages is not among them: it always uses the non-mutating bucket.
UNFILTERED_UNPAGINATED_ACTIONS = frozenset({
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeSecurityGroups",
    "DescribeSnapshots",
    "DescribeSpotInstanceRequests",
    "DescribeVolumes",
})

RESOURCE_INTENSIVE_ACTIONS = frozenset({
    "AcceptVpcPeeringConnection",
    "AuthorizeSecurityGroupIngress",
    "CancelSpotInstanceRequests",
    "CreateKeyPair",
    "CreateVpcPeeringConnection",
    "DeleteVpcPeeringConnection",
    "RejectVpcPeeringConnection",
    "RevokeSecurityGroupIngress",
    "RequestSpotInstances",
})

# "Uncategorized actions": "API actions that receive their own token bucket
# sizes and refill rates, even though by definition they fit in one of the
# other categories." The whole table of the page, (capacity, refill rate).
UNCATEGORIZED_ACTIONS: dict[str, tuple[float, float]] = {
    "AcceptVpcEndpointConnections": (10, 1),
    "AdvertiseByoipCidr": (1, 0.1),
    "AssignIpv6Addresses": (100, 5),
    "AssignPrivateIpAddresses": (100, 5),
    "AssignPrivateNatGatewayAddress": (10, 1),
    "AssociateCapacityReservationBillingOwner": (1, 0.5),
    "AssociateEnclaveCertificateIamRole": (10, 1),
    "AssociateIamInstanceProfile": (100, 5),
    "AssociateNatGatewayAddress": (10, 1),
    "AttachVerifiedAccessTrustProvider": (10, 2),
    "AuthorizeClientVpnIngress": (5, 2),
    "CancelDeclarativePoliciesReport": (1, 1),
    "CopyImage": (100, 1),
    "CreateClientVpnRoute": (5, 2),
    "CreateCoipCidr": (5, 1),
    "CreateCoipPool": (5, 1),
    "CreateDefaultSubnet": (1, 1),
    "CreateDefaultVpc": (1, 1),
    "CreateLaunchTemplateVersion": (100, 5),
    "CreateNatGateway": (10, 1),
    "CreateNetworkInterface": (100, 5),
    "CreateRestoreImageTask": (50, 0.1),
    "CreateSnapshot": (100, 5),
    "CreateSnapshots": (100, 5),
    "CreateSpotDatafeedSubscription": (50, 3),
    "CreateStoreImageTask": (50, 0.1),
    "CreateSubnetCidrReservation": (5, 1),
    "CreateTags": (100, 10),
    "CreateVerifiedAccessEndpoint": (20, 4),
    "CreateVerifiedAccessGroup": (10, 2),
    "CreateVerifiedAccessInstance": (10, 2),
    "CreateVerifiedAccessTrustProvider": (10, 2),
    "CreateVolume": (100, 5),
    "CreateVpcEndpoint": (4, 0.3),
    "CreateVpcEndpointServiceConfiguration": (10, 1),
    "DeleteClientVpnRoute": (5, 2),
    "DeleteCoipCidr": (5, 1),
    "DeleteCoipPool": (5, 1),
    "DeleteCoipPoolPermission": (5, 1),
    "DeleteNatGateway": (10, 1),
    "DeleteNetworkInterface": (100, 5),
    "DeleteSnapshot": (100, 5),
    "DeleteSpotDatafeedSubscription": (50, 3),
    "DeleteSubnetCidrReservation": (5, 1),
    "DeleteQueuedReservedInstances": (5, 5),
    "DeleteTags": (100, 10),
    "DeleteVerifiedAccessEndpoint": (20, 4),
    "DeleteVerifiedAccessGroup": (10, 2),
    "DeleteVerifiedAccessInstance": (10, 2),
    "DeleteVerifiedAccessTrustProvider": (10, 2),
    "DeleteVolume": (100, 5),
    "DeleteVpcEndpoints": (4, 0.3),
    "DeleteVpcEndpointServiceConfigurations": (10, 1),
    "DeprovisionByoipCidr": (1, 0.1),
    "DeregisterImage": (100, 5),
    "DescribeAggregateIdFormat": (10, 10),
    "DescribeByoipCidrs": (1, 0.5),
    "DescribeCapacityBlockExtensionOfferings": (10, 0.15),
    "DescribeCapacityBlockOfferings": (10, 0.15),
    "DescribeDeclarativePoliciesReports": (5, 5),
    "DescribeHostReservations": (5, 2),
    "DescribeHostReservationOfferings": (5, 2),
    "DescribeIdentityIdFormat": (10, 10),
    "DescribeIdFormat": (10, 10),
    "DescribeInstanceTopology": (1, 1),
    "DescribeMovingAddresses": (1, 1),
    "DescribePrincipalIdFormat": (10, 10),
    "DescribeReservedInstancesOfferings": (10, 10),
    "DescribeSecurityGroupReferences": (20, 5),
    "DescribeSpotDatafeedSubscription": (100, 13),
    "DescribeSpotFleetInstances": (100, 5),
    "DescribeSpotFleetRequestHistory": (100, 5),
    "DescribeSpotFleetRequests": (50, 3),
    "DescribeStaleSecurityGroups": (20, 5),
    "DescribeStoreImageTasks": (50, 0.5),
    "DescribeVerifiedAccessInstanceLoggingConfigurations": (10, 2),
    "DetachVerifiedAccessTrustProvider": (10, 2),
    "DisableFastLaunch": (5, 2),
    "DisableImageBlockPublicAccess": (1, 0.1),
    "DisableSnapshotBlockPublicAccess": (1, 0.1),
    "DisassociateCapacityReservationBillingOwner": (1, 0.5),
    "DisassociateEnclaveCertificateIamRole": (10, 1),
    "DisassociateIamInstanceProfile": (100, 5),
    "DisassociateNatGatewayAddress": (10, 1),
    "EnableFastLaunch": (5, 2),
    "EnableImageBlockPublicAccess": (1, 0.1),
    "EnableSnapshotBlockPublicAccess": (1, 0.1),
    "GetAssociatedEnclaveCertificateIamRoles": (10, 1),
    "GetDeclarativePoliciesReportSummary": (5, 5),
    "GetHostReservationPurchasePreview": (5, 2),
    "ModifyImageAttribute": (100, 5),
    "ModifyInstanceMetadataDefaults": (2, 2),
    "ModifyInstanceMetadataOptions": (100, 5),
    "ModifyLaunchTemplate": (100, 5),
    "ModifyNetworkInterfaceAttribute": (100, 5),
    "ModifySnapshotAttribute": (100, 5),
    "ModifyVerifiedAccessEndpoint": (20, 4),
    "ModifyVerifiedAccessEndpointPolicy": (20, 4),
    "ModifyVerifiedAccessGroup": (10, 2),
    "ModifyVerifiedAccessGroupPolicy": (20, 4),
    "ModifyVerifiedAccessInstance": (10, 2),
    "ModifyVerifiedAccessInstanceLoggingConfiguration": (10, 2),
    "ModifyVerifiedAccessTrustProvider": (10, 2),
    "ModifyVpcEndpoint": (4, 0.3),
    "ModifyVpcEndpointServiceConfiguration": (10, 1),
    "MoveAddressToVpc": (1, 1),
    "ProvisionByoipCidr": (1, 0.1),
    "PurchaseCapacityBlock": (10, 0.15),
    "PurchaseCapacityBlockExtension": (10, 0.15),
    "PurchaseHostReservation": (5, 2),
    "PurchaseReservedInstancesOffering": (5, 5),
    "RejectVpcEndpointConnections": (10, 1),
    "RestoreAddressToClassic": (1, 1),
    "RevokeClientVpnIngress": (5, 2),
    "RunInstances": (5, 2),
    "StartDeclarativePoliciesReport": (1, 1),
    "StartInstances": (5, 2),
    "TerminateInstances": (100, 5),
    "UnassignPrivateIpAddresses": (100, 5),
    "UnassignPrivateNatGatewayAddress": (10, 1),
    "WithdrawByoipCidr": (1, 0.1),
}

NON_MUTATING_PREFIXES = ("Describe", "List", "Search", "Get")

# EBS direct APIs (service "ebs"): requests per second per account and
# Region, from the EBS User Guide, "Quotas for Amazon EBS": "CompleteSnapshot
# requests per account | Each supported Region: 10 per second | Not
# adjustable". The rows for the other EBS direct API actions could not be
# read from AWS's own page here, so they are not modelled: their requests are
# not throttled unless an override gives them a bucket (README). A bucket of
# "N per second" holds N tokens and refills N per second (the burst is not
# documented: emulator's choice).
EBS_REQUESTS_PER_SECOND: dict[str, float] = {
    "CompleteSnapshot": 10,
}


def classify(action: str, params: dict[str, list[str]]) -> tuple[str, float, float]:
    """(category, capacity, refill rate) of the bucket a request draws from.

    params: the request's query parameters (to tell whether a request is
    filtered or paginated).
    """
    if action in UNCATEGORIZED_ACTIONS:
        capacity, refill = UNCATEGORIZED_ACTIONS[action]
        return "uncategorized", capacity, refill
    if action in RESOURCE_INTENSIVE_ACTIONS:
        return ("resource-intensive", *CATEGORY_LIMITS["resource-intensive"])
    if action.startswith(NON_MUTATING_PREFIXES):
        if action in UNFILTERED_UNPAGINATED_ACTIONS and not _filtered_or_paginated(params):
            return ("unfiltered-unpaginated", *CATEGORY_LIMITS["unfiltered-unpaginated"])
        return ("non-mutating", *CATEGORY_LIMITS["non-mutating"])
    return ("mutating", *CATEGORY_LIMITS["mutating"])


def _filtered_or_paginated(params: dict[str, list[str]]) -> bool:
    # Query protocol: Filter.1.Name=..., MaxResults=..., NextToken=...
    return any(k.startswith("Filter.") or k in ("MaxResults", "NextToken") for k in params)


class Throttle:
    """Token buckets per (account, Region, action, category).

    The category is part of the key because an action of the "unfiltered and
    unpaginated" list has two buckets: the smaller one its unfiltered,
    unpaginated requests draw from, and the standard one for the others.

    Not thread-safe on its own: the server calls it under STATE.lock.
    """

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.enabled = False
        # Multiply every bucket's capacity / refill rate (tiny buckets for
        # tests; refill_scale 0 makes buckets never refill).
        self.capacity_scale = 1.0
        self.refill_scale = 1.0
        # action -> {"capacity": n, "refill_rate": r}: replaces the scaled
        # values for that action.
        self.overrides: dict[str, dict[str, float]] = {}
        # key -> {"tokens": float, "at": clock time}
        self.buckets: dict[tuple[str, str, str, str], dict[str, float]] = {}

    def configure(self, *, enabled: bool | None = None, capacity_scale: float | None = None,
                  refill_scale: float | None = None, overrides: dict[str, dict[str, float]] | None = None) -> None:
        if enabled is not None:
            self.enabled = enabled
        if capacity_scale is not None:
            self.capacity_scale = capacity_scale
        if refill_scale is not None:
            self.refill_scale = refill_scale
        if overrides is not None:
            self.overrides = overrides
        # New sizes: every bucket starts full again.
        self.buckets.clear()

    def limits(self, action: str, params: dict[str, list[str]],
               service: str = "ec2") -> tuple[str, float, float] | None:
        """The bucket's (category, capacity, refill rate); None: no bucket."""
        if service == "ebs":
            rate = EBS_REQUESTS_PER_SECOND.get(action)
            category, capacity, refill = "ebs", rate, rate
        else:
            category, capacity, refill = classify(action, params)
        override = self.overrides.get(action)
        if override is not None:
            return category, float(override["capacity"]), float(override["refill_rate"])
        if capacity is None or refill is None:
            return None
        return category, capacity * self.capacity_scale, refill * self.refill_scale

    def _level(self, key: tuple[str, str, str, str], capacity: float, refill: float) -> dict[str, float]:
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            # A bucket not used yet is full.
            bucket = {"tokens": capacity, "at": now, "capacity": capacity, "refill_rate": refill}
            self.buckets[key] = bucket
        else:
            elapsed = now - bucket["at"]
            bucket["tokens"] = min(bucket["capacity"], bucket["tokens"] + elapsed * bucket["refill_rate"])
            bucket["at"] = now
        return bucket

    def take(self, account: str, region: str, action: str, params: dict[str, list[str]],
             service: str = "ec2") -> bool:
        """One request: True if it may proceed (a token was taken)."""
        if not self.enabled:
            return True
        limits = self.limits(action, params, service)
        if limits is None:
            return True
        category, capacity, refill = limits
        bucket = self._level((account, region, action, category), capacity, refill)
        if bucket["tokens"] >= 1:
            bucket["tokens"] -= 1
            return True
        return False

    def view(self) -> list[dict[str, Any]]:
        out = []
        for key in sorted(self.buckets):
            account, region, action, category = key
            bucket = self._level(key, 0, 0)
            out.append({
                "account": account, "region": region, "action": action, "category": category,
                "capacity": bucket["capacity"], "refill_rate": bucket["refill_rate"],
                "tokens": round(bucket["tokens"], 3),
            })
        return out
