#!/usr/bin/env python3
"""`make lint`: parliament (offline, its own copy of the Service Authorization
Reference) on every policy of the function's role in template.yaml, with the
template's default parameters. Any finding fails: an unknown condition key,
a condition key the action does not support, a resource ARN that does not
fit the action, an invalid ARN, ...

    .venv/bin/python tests/template/lint_iam.py

Attributes that exist only once deployed (Fn::GetAtt of the log group and
the queue) are replaced by ARNs of the shape CloudFormation gives them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parliament import analyze_policy_string  # noqa: E402

from template_helpers import PSEUDO, load_template, parameter_values, resolve  # noqa: E402

DEPLOYED_ARNS = {
    ("PublisherLogGroup", "Arn"): f"arn:aws:logs:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:log-group:ami-publisher-PublisherLogGroup:*",
    ("FailureQueue", "Arn"): f"arn:aws:sqs:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:ami-publisher-FailureQueue",
    ("LedgerTable", "Arn"): f"arn:aws:dynamodb:{PSEUDO['AWS::Region']}:{PSEUDO['AWS::AccountId']}:table/ami-publisher-LedgerTable",
}


def deployed(node):
    """Replace Fn::GetAtt of known resources by their deployed ARN."""
    if isinstance(node, list):
        return [deployed(n) for n in node]
    if isinstance(node, dict):
        if set(node) == {"Fn::GetAtt"}:
            key = tuple(node["Fn::GetAtt"])
            if key not in DEPLOYED_ARNS:
                raise SystemExit(f"lint_iam: no deployed ARN known for Fn::GetAtt {key}")
            return DEPLOYED_ARNS[key]
        return {k: deployed(v) for k, v in node.items()}
    return node


# parliament wants every statement for CopyImage to name both resource types
# the SAR marks required (image*, snapshot*). IAM does not: it authorizes each
# resource a request touches against all statements, and allows the request
# when every resource is allowed (IAM User Guide, "Policy evaluation logic").
# CopyFromOwnImages names the source AMI only, on purpose: its conditions
# (ec2:Owner, ec2:ImageID) are keys the SAR supplies for image, not for
# snapshot; the snapshots are CopyCreatesMarkedImage's. This one finding, and
# no other, is accepted, and printed.
ACCEPTED = [
    ("RESOURCE_MISMATCH", [{"action": "ec2:CopyImage", "required_format": "arn:*:ec2:*::snapshot/*"}]),
]


def findings(doc: dict) -> tuple[list, list]:
    """parliament's findings on one policy: (failing, accepted)."""
    failing, accepted = [], []
    for f in analyze_policy_string(json.dumps(doc, indent=2)).findings:
        (accepted if (f.issue, f.detail) in ACCEPTED else failing).append(f)
    return failing, accepted


def role_policies(template: dict) -> list[tuple[str, dict]]:
    values = parameter_values(template)
    out = []
    for name, res in template["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for pol in res["Properties"].get("Policies", []):
            doc = resolve(pol["PolicyDocument"], values)
            if isinstance(doc, str):
                doc = json.loads(doc)
            out.append((f"{name}/{pol['PolicyName']}", deployed(doc)))
    return out


def main() -> int:
    policies = role_policies(load_template())
    if not policies:
        print("lint_iam: no role policy found in template.yaml", file=sys.stderr)
        return 1
    failed = 0
    for name, doc in policies:
        failing, accepted = findings(doc)
        for f in accepted:
            print(f"{name}: accepted (see ACCEPTED in {Path(__file__).name}): {f.issue}: {f.detail}")
        for f in failing:
            failed += 1
            print(f"{name}: {f.issue}: {f.detail} (line {f.location.get('line')})")
    if failed:
        print(f"lint_iam: {failed} finding(s) in the role's policies", file=sys.stderr)
        return 1
    print(f"lint_iam: {len(policies)} policies of the role, no finding")
    return 0


if __name__ == "__main__":
    sys.exit(main())
