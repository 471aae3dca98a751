"""Helpers for the template.yaml tests: loading the template, resolving
parameters the way CloudFormation would with their defaults, finding tools."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
EVENTS = REPO / "events"

# The names src/config.rs reads. The template must pass exactly these.
ENV_VARS = {
    "PUBLISH_TAG_KEY",
    "PUBLISH_TAG_VALUE",
    "STATUS_TAG_PREFIX",
    "DEPRECATE_AFTER_DAYS",
    "TARGET_REGIONS",
    "COPY_CONCURRENCY",
    "UNPUBLISH_ON_UNTAG",
    "PROTECT_PUBLIC",
    "FAMILY_TAG_KEY",
    "KEEP_PUBLIC_PER_FAMILY",
    "DEPRECATE_RETIRED",
    "RESTORE_ON_WITHDRAW",
    "CONTENT_CHECK",
    "CONTENT_CHECK_UNREADABLE",
    "PACE_EC2_CALLS",
    "LEDGER_TABLE",
}

# Pseudo parameters, as a stack in us-east-1 of the sample account sees them.
PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::StackName": "ami-publisher",
    "AWS::URLSuffix": "amazonaws.com",
}

_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


def load_template(path: Path = TEMPLATE) -> dict:
    """template.yaml (or another template) as plain dicts, CloudFormation
    tags as {"Ref": ...} etc."""
    return json.loads(json.dumps(cfn_yaml.load(str(path))))


def parameter_values(template: dict, **overrides: str) -> dict[str, str]:
    """Default value of every parameter (as the string CloudFormation passes),
    with overrides, plus the pseudo parameters."""
    values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    unknown = set(overrides) - set(values)
    assert not unknown, f"not template parameters: {unknown}"
    values.update(overrides)
    values.update(PSEUDO)
    return values


def resolve(node, values: dict[str, str]):
    """Replace Ref, Fn::Sub, Fn::Split and Fn::Join of parameters by their
    values, as CloudFormation would. Any other intrinsic function is left
    alone (GetAtt has no value before deploy)."""
    if isinstance(node, list):
        return [resolve(n, values) for n in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"} and node["Ref"] in values:
        return values[node["Ref"]]
    if set(node) == {"Fn::Split"}:
        sep, text = resolve(node["Fn::Split"], values)
        return text.split(sep) if isinstance(text, str) else {"Fn::Split": [sep, text]}
    if set(node) == {"Fn::Join"}:
        sep, items = resolve(node["Fn::Join"], values)
        if isinstance(items, list) and all(isinstance(i, str) for i in items):
            return sep.join(items)
        return {"Fn::Join": [sep, items]}
    if set(node) == {"Fn::Sub"}:
        arg = node["Fn::Sub"]
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], resolve(arg[1], values))
        scope = {**values, **local}

        def sub(m: re.Match) -> str:
            name = m.group(1)
            if name not in scope or not isinstance(scope[name], str):
                return m.group(0)
            return scope[name]

        out = _SUB_VAR.sub(sub, text)
        return out if not _SUB_VAR.search(out) else {"Fn::Sub": out}
    return {k: resolve(v, values) for k, v in node.items()}


def statements(template: dict, **overrides: str) -> list[dict]:
    """Every statement of the function role's policies, parameters resolved
    with their defaults or the overrides (JSON-string documents parsed)."""
    values = parameter_values(template, **overrides)
    out = []
    for res in template["Resources"].values():
        if res["Type"] != "AWS::IAM::Role":
            continue
        props = res["Properties"]
        assert "ManagedPolicyArns" not in props, "inline statements only"
        for pol in props.get("Policies", []):
            doc = resolve(pol["PolicyDocument"], values)
            if isinstance(doc, str):
                doc = json.loads(doc)
            assert isinstance(doc, dict), f"unresolved document in {pol['PolicyName']}: {doc}"
            out += doc["Statement"]
    return out


def tool(name: str) -> str:
    """A console script of the venv running the tests (cfn-lint, sam), else PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found next to {sys.executable} nor on PATH: install tests/requirements.txt")
    return found


# Audits every name lookup and socket connection of a Python process through
# sys.addaudithook. Imported at start-up because it is first on PYTHONPATH.
SITECUSTOMIZE = '''
import os, sys
_log = os.environ.get("NET_AUDIT_LOG")
if _log:
    _events = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto", "socket.sendmsg"}
    def _hook(event, args, _log=_log, _events=_events):
        if event in _events:
            with open(_log, "a") as f:
                f.write(event + " " + repr(args) + "\\n")
    sys.addaudithook(_hook)
'''
