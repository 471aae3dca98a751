"""What template.yaml promises the Rust code and the operator: the exact
environment variables, parameters that are all used and validated, the
binary SAM builds, failure handling, and a least-privilege role."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from template_helpers import ENV_VARS, REPO, _SUB_VAR, parameter_values, resolve, statements

EC2_ACTIONS = {
    "ec2:DescribeImages",
    "ec2:ListImagesInRecycleBin",
    "ec2:GetImageBlockPublicAccessState",
    "ec2:GetEbsEncryptionByDefault",
    "ec2:ModifyImageAttribute",
    "ec2:EnableImageDeprecation",
    "ec2:CreateTags",
    "ec2:CopyImage",
    "ec2:EnableImageDeregistrationProtection",
    "ec2:DisableImageDeregistrationProtection",
}
# Actions that support no resource-level permission, the only ones allowed on "*".
UNSCOPED = {
    "ec2:DescribeImages",
    "ec2:ListImagesInRecycleBin",
    "ec2:GetImageBlockPublicAccessState",
    "ec2:GetEbsEncryptionByDefault",
    "servicequotas:GetServiceQuota",
}
OTHER_ACTIONS = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "sqs:SendMessage",
    "servicequotas:GetServiceQuota",
    "events:PutEvents",
    "dynamodb:UpdateItem",
    "dynamodb:Query",
    "dynamodb:GetItem",
    "ebs:ListSnapshotBlocks",
    "ebs:GetSnapshotBlock",
}


def function(template: dict) -> dict:
    fns = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert len(fns) == 1
    return fns[0]


def referenced_names(node) -> set[str]:
    """Names used by Ref and Fn::Sub anywhere in node."""
    found: set[str] = set()
    if isinstance(node, list):
        for n in node:
            found |= referenced_names(n)
    elif isinstance(node, dict):
        for k, v in node.items():
            if k == "Ref" and isinstance(v, str):
                found.add(v)
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                found |= {m.group(1).split(".")[0] for m in _SUB_VAR.finditer(text)}
                if not isinstance(v, str):
                    found |= referenced_names(v[1])
            else:
                found |= referenced_names(v)
    return found


def as_list(x) -> list:
    return x if isinstance(x, list) else [x]


# -- environment and parameters ------------------------------------------------


def test_function_gets_exactly_the_env_vars_the_code_reads(template):
    env = function(template)["Properties"]["Environment"]["Variables"]
    global_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    names = set(env) | set(global_env)
    assert names <= ENV_VARS, f"unknown to the code: {names - ENV_VARS}"
    assert names == ENV_VARS, f"not passed: {ENV_VARS - names}"


def test_env_var_defaults(template):
    values = parameter_values(template)
    env = resolve(function(template)["Properties"]["Environment"]["Variables"], values)
    assert env == {
        "PUBLISH_TAG_KEY": "publish",
        "PUBLISH_TAG_VALUE": "public",
        "STATUS_TAG_PREFIX": "publish:",
        "DEPRECATE_AFTER_DAYS": "",
        "TARGET_REGIONS": "",
        "COPY_CONCURRENCY": "4",
        "UNPUBLISH_ON_UNTAG": "true",
        "PROTECT_PUBLIC": "true",
        "FAMILY_TAG_KEY": "family",
        "KEEP_PUBLIC_PER_FAMILY": "",
        "DEPRECATE_RETIRED": "false",
        "RESTORE_ON_WITHDRAW": "true",
        "CONTENT_CHECK": "enforce",
        "CONTENT_CHECK_UNREADABLE": "reject",
        "PACE_EC2_CALLS": "true",
        "LEDGER_TABLE": {"Ref": "LedgerTable"},
    }


def test_every_parameter_is_used(template):
    used = referenced_names({k: v for k, v in template.items() if k not in ("Parameters", "Metadata")})
    unused = set(template["Parameters"]) - used
    assert not unused, f"parameters never used: {unused}"


@pytest.mark.parametrize(
    "param, good, bad",
    [
        ("PublishTagKey", ["publish", "release/public", "a"], ["", "aws:publish", 'x"y', "k" * 129]),
        ("PublishTagValue", ["public", "yes"], ["", 'a"b', "v" * 257]),
        ("StatusTagPrefix", ["publish:", "ami-publisher/"], ["", "aws:x", "a}b"]),
        ("DeprecateAfterDays", ["", "1", "9", "10", "99", "100", "699", "700", "729", "730"], ["0", "731", "800", "07", "-1", "1.5", " 30"]),
        ("TargetRegions", ["", "us-west-2", "us-west-2,eu-west-1", "us-gov-west-1,ap-southeast-4", "eusc-de-east-1"], ["us-west-2, eu-west-1", "us-west-2,", ",us-west-2", "US-WEST-2", "all"]),
        ("SweepSchedule", ["rate(1 hour)", "rate(30 minutes)", "cron(0 * * * ? *)"], ["", "1 hour", "every(1 hour)"]),
        ("KeepPublicPerFamily", ["", "1", "3", "10", "99", "100"], ["0", "101", "03", "-1", "all"]),
        ("FamilyTagKey", ["family", "os/version"], ["", "aws:family", 'a"b']),
    ],
)
def test_parameter_constraints(template, param, good, bad):
    """AllowedPattern checked with Python's re; the patterns use no construct
    where it differs from CloudFormation's Java regular expressions."""
    spec = template["Parameters"][param]
    pattern = re.compile(spec["AllowedPattern"])
    for v in good:
        assert pattern.fullmatch(v), f"{param} should accept {v!r}"
    for v in bad:
        assert not pattern.fullmatch(v), f"{param} should reject {v!r}"
    assert pattern.fullmatch(str(spec.get("Default", ""))), "the default must be allowed"


def test_copy_concurrency_bounds(template):
    p = template["Parameters"]["CopyConcurrency"]
    assert p["Type"] == "Number" and p["Default"] == 4 and p["MinValue"] >= 1


# -- build and runtime ----------------------------------------------------------


def test_sam_builds_the_crates_binary(template):
    fn = function(template)
    props, meta = fn["Properties"], fn["Metadata"]
    assert meta["BuildMethod"] == "rust-cargolambda"
    assert (props["Runtime"], props["Handler"], props["Architectures"], props["CodeUri"]) == (
        "provided.al2023",
        "bootstrap",
        ["arm64"],
        ".",
    )
    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    bins = {b["name"] for b in cargo.get("bin", [])}
    if (REPO / "src" / "main.rs").exists() and not any(b.get("path") == "src/main.rs" for b in cargo.get("bin", [])):
        bins.add(cargo["package"]["name"])  # Cargo's implicit binary
    assert meta["BuildProperties"]["Binary"] in bins, f"Binary must be one of Cargo's bin targets {bins}"


def test_logging_is_json(template):
    logging = function(template)["Properties"]["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"


def test_failures_end_in_the_queue(template):
    props = function(template)["Properties"]
    eic = props["EventInvokeConfig"]
    assert 0 <= eic["MaximumRetryAttempts"] <= 2
    assert 60 <= eic["MaximumEventAgeInSeconds"] <= 21600
    dest = eic["DestinationConfig"]["OnFailure"]
    assert dest["Type"] == "SQS" and dest["Destination"] == {"Fn::GetAtt": ["FailureQueue", "Arn"]}
    for name, ev in props["Events"].items():
        assert ev["Properties"]["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": ["FailureQueue", "Arn"]}}, name
        assert "RetryPolicy" in ev["Properties"], name
    queue = template["Resources"]["FailureQueue"]["Properties"]
    assert queue["MessageRetentionPeriod"] == 1209600
    assert queue.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in queue
    on_success = eic["DestinationConfig"]["OnSuccess"]
    assert on_success["Type"] == "EventBridge"
    bus = resolve(on_success["Destination"], parameter_values(template))
    assert bus == "arn:aws:events:us-east-1:123456789012:event-bus/default", bus
    outputs = template["Outputs"]
    assert outputs["FailureQueueUrl"]["Value"] == {"Ref": "FailureQueue"}
    assert outputs["FunctionArn"]["Value"] == {"Fn::GetAtt": ["PublisherFunction", "Arn"]}


def test_queue_policy_admits_only_this_stacks_rules(template):
    fn_id = next(k for k, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function")
    rules = {fn_id + name for name in function(template)["Properties"]["Events"]}
    (stmt,) = [
        s
        for s in template["Resources"]["FailureQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if s["Effect"] == "Allow"
    ]
    assert stmt["Principal"] == {"Service": "events.amazonaws.com"}
    sources = stmt["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert {s["Fn::GetAtt"][0] for s in sources} == rules


# -- least privilege ------------------------------------------------------------


def test_role_allows_only_the_listed_actions(template):
    stmts = statements(template)
    allowed = {a for s in stmts if s["Effect"] == "Allow" for a in as_list(s["Action"])}
    assert allowed == EC2_ACTIONS | OTHER_ACTIONS
    denied = {a for s in stmts if s["Effect"] == "Deny" for a in as_list(s["Action"])}
    assert denied <= allowed, "a Deny only narrows what an Allow grants"
    fn_props = function(template)["Properties"]
    assert "Policies" not in fn_props and "Role" in fn_props, "the function uses the template's role only"


def test_only_unscoped_reads_use_star(template):
    for s in statements(template):
        if "*" in as_list(s["Resource"]):
            assert set(as_list(s["Action"])) <= UNSCOPED, s
        assert "NotAction" not in s and "NotResource" not in s, s


# What the role allows and denies, request by request: test_template_iam.py.
