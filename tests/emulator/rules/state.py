"""The emulator's own state: everything that is not moto's.

Owns: ``EmulatorState`` and its one instance ``STATE``: configuration (with
its defaults), image block public access per region, injected faults and
corrupted EBS block reads, the
call log, CopyImage client tokens, the public image quota per region,
throttling buckets, marked copy failures, the Recycle Bin and its retention
rules, and the one re-entrant lock that guards all of it and every moto
dispatch. ``reset_all`` puts it back as the server started.

Leaves to others: what the state means (each feature's module reads and
writes its part). EBS encryption by default is moto's own flag, not here.
"""

from __future__ import annotations

import threading
from typing import Any

from throttling import Throttle  # sibling module of the package (tests/emulator)


# --------------------------------------------------------------------------
# Emulator state (not moto's)
# --------------------------------------------------------------------------

BPA_STATES = ("block-new-sharing", "unblocked")
BPA_MANAGED_BY = ("account", "declarative-policy")


class EmulatorState:
    """Configuration, BPA, faults, call log, CopyImage tokens, throttling,
    copy failures and the Recycle Bin.

    One re-entrant lock guards all of it and every moto dispatch, so the
    threaded server never runs two EC2 handlers at once (moto's backends are
    not thread-safe); injected latency is slept outside the lock so that
    concurrent clients still overlap in time.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.cli_copy_delay_seconds = 30.0
        self.reset_all()

    def default_config(self) -> dict[str, float]:
        return {
            "latency_ms": 0,
            "copy_delay_seconds": self.cli_copy_delay_seconds,
            # AWS: "Public AMIs per Region" default quota is 5
            # (Service Quotas L-0E3CBAB9; see DESIGN.md).
            "public_image_quota": 5,
            # DESIGN.md: concurrent AMI copies per destination Region ~100.
            "concurrent_copy_limit": 100,
            # AWS EnableImageDeregistrationProtection WithCooldown: "enforces
            # deregistration protection for 24 hours after deregistration
            # protection is disabled". A test knob, like copy_delay_seconds.
            "deregistration_cooldown_seconds": 24 * 3600,
        }

    def reset_all(self) -> None:
        with self.lock:
            # Calls held for a test (POST /_emulator/holds) go on at a reset.
            for hold in getattr(self, "holds", []):
                hold["event"].set()
            self.holds: list[dict[str, Any]] = []
            self.config: dict[str, float] = self.default_config()
            # region -> {"account_state", "policy_state", "managed_by"}
            self.bpa: dict[str, dict[str, str]] = {}
            self.faults: list[dict[str, Any]] = []
            # GetSnapshotBlock answers to corrupt (POST /_emulator/corrupt-blocks):
            # [{"snapshot_id", "block_index" (None: any), "region" (None: any),
            #   "count", "remaining", "corrupted"}]
            self.block_corruptions: list[dict[str, Any]] = []
            self.calls: list[dict[str, str]] = []
            # (account, destination region, client token) -> (fingerprint, image id)
            self.copy_tokens: dict[tuple[str, str, str], tuple[str, str]] = {}
            # region -> public image quota for that region (overrides
            # config["public_image_quota"], which applies to all regions).
            self.public_image_quota_by_region: dict[str, int] = {}
            self.throttle = Throttle()
            # destination region -> [{"remaining", "code", "message"}]: the
            # next CopyImage copies there end failed.
            self.copy_failures: dict[str, list[dict[str, Any]]] = {}
            # (account, region, image id) -> Recycle Bin entry
            self.recycle_bin: dict[tuple[str, str, str], dict[str, Any]] = {}
            # (account, region) -> retention days of a retention rule that
            # matches every AMI that account deregisters in that region.
            self.recycle_rules: dict[tuple[str, str], float] = {}

    def public_image_quota(self, region: str) -> int:
        return int(self.public_image_quota_by_region.get(region, self.config["public_image_quota"]))

    # -- image block public access ------------------------------------
    def bpa_entry(self, region: str) -> dict[str, str]:
        # Emulator default: unblocked. NOTE: on AWS, block public access for
        # AMIs is ON (block-new-sharing) by default for new accounts; tests
        # that want that start by POST /_emulator/bpa.
        return self.bpa.setdefault(
            region,
            {
                "account_state": "unblocked",
                "policy_state": "unblocked",
                "managed_by": "account",
            },
        )

    def bpa_effective(self, region: str) -> tuple[str, str]:
        e = self.bpa_entry(region)
        if e["managed_by"] == "declarative-policy":
            return e["policy_state"], "declarative-policy"
        return e["account_state"], "account"


STATE = EmulatorState()
