"""A small evaluator of IAM identity-policy statements, for the table-driven
test of the function's role (test_template_iam.py).

A request is described by its facts: for each resource, every key it and
the request would have (the AMI's owner, id, tags, whether it is public,
the request's tags, its region). AWS does not put all of them in the
context: for each action and resource type it supplies only the condition
keys the Service Authorization Reference lists (sar.py, from its data).
`is_allowed` keeps only those, so the tests evaluate only contexts AWS can
produce: CopyImage, for one, is never evaluated with the source's
aws:ResourceTag keys, whatever a test says about the source's tags.

It follows the IAM User Guide's policy evaluation logic for one principal's
identity policies (no resource policy, boundary or SCP): an explicit Deny
wins; otherwise an Allow is needed; otherwise the request is implicitly
denied. A request that touches several resources (CopyImage: the source AMI
and the AMI it creates, their snapshots) is authorized only if each of them
is. Condition operators follow the IAM User Guide's "IAM JSON policy
elements: Condition operators" and "Single-valued vs. multivalued context
keys":

* several operators in a Condition block, and several keys under one
  operator, must all match (AND); several values for one key match if any
  does (OR);
* condition key names are case-insensitive (IAM User Guide, "IAM JSON
  policy elements: Condition"; for aws:ResourceTag/<key> and
  aws:RequestTag/<key> the tag key part too): `aws:ResourceTag/publish` in a
  policy reads a resource tag `Publish` or `PUBLISH`. A context holding two
  keys that differ only in case (EC2 allows tags `publish` and `Publish` on
  one AMI) is a case IAM documents as matching one or the other, not which:
  the evaluator raises rather than guess;
* a key missing from the request context makes a positive operator false and
  a negated one (StringNotEquals, StringNotEqualsIgnoreCase, StringNotLike,
  ArnNotEquals, ArnNotLike) true; `...IfExists` makes any operator true when
  the key is missing;
* `Null` is true when the key's presence is what the value says ("true":
  absent);
* `ForAllValues:` is true when every value of the (multivalued) key matches
  one of the policy's values, and also when the key is missing or empty;
  `ForAnyValue:` when at least one does (false when missing or empty). With a
  negated operator, "matches" is the negation for each request value:
  `ForAllValues:StringNotEquals` is true when no request value equals any of
  the policy's values.

Only the operators the template uses are implemented; any other raises, so
that a new operator in the template fails the test instead of being
misread. Values are compared case-sensitively for String* (but
StringEqualsIgnoreCase, StringNotEqualsIgnoreCase), and as lowercase
"true"/"false" for Bool, as IAM does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sar import context_for

Context = dict[str, Any]  # key -> str, or list of str for a multivalued key


@dataclass
class Resource:
    arn: str
    context: Context = field(default_factory=dict)


@dataclass
class Request:
    """One API call: the action and, per resource it authorizes, the
    resource's ARN and its facts (request-level keys such as aws:TagKeys
    included). What AWS evaluates of them: `supplied`."""

    action: str
    resources: list[Resource]


def supplied(request: Request) -> Request:
    """The request as AWS evaluates it: each resource's facts kept only
    where the SAR lists the key for the action and the resource's type."""
    return Request(request.action, [Resource(r.arn, context_for(request.action, r.arn, r.context))
                                    for r in request.resources])


def _as_list(x: Any) -> list:
    return x if isinstance(x, list) else [x]


def _glob(pattern: str, text: str, *, case: bool) -> bool:
    # IAM wildcards: * any run of characters, ? one character; nothing else.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, 0 if case else re.IGNORECASE) is not None


def _action_matches(patterns: Any, action: str) -> bool:
    # Action names are case-insensitive.
    return any(_glob(p, action, case=False) for p in _as_list(patterns))


def _resource_matches(patterns: Any, arn: str) -> bool:
    return any(_glob(p, arn, case=True) for p in _as_list(patterns))


_POSITIVE = {
    "StringEquals": lambda v, p: v == p,
    "StringEqualsIgnoreCase": lambda v, p: v.casefold() == p.casefold(),
    "StringLike": lambda v, p: _glob(p, v, case=True),
    "ArnEquals": lambda v, p: v == p,
    "ArnLike": lambda v, p: _glob(p, v, case=True),
    "Bool": lambda v, p: str(v).lower() == str(p).lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


_MISSING = object()


def _lookup(context: Context, key: str) -> Any:
    """The context's value of a condition key, its name compared
    case-insensitively as IAM does; _MISSING when absent."""
    found = [k for k in context if k.lower() == key.lower()]
    if len(found) > 1:
        raise ValueError(f"{key} matches several context keys {found}: IAM does not say which it reads")
    return context[found[0]] if found else _MISSING


def _operator_matches(operator: str, key: str, wanted: Any, context: Context) -> bool:
    wanted = [str(w) for w in _as_list(wanted)]
    value = _lookup(context, key)
    if operator == "Null":
        (absent,) = wanted
        return (value is _MISSING) == (absent.lower() == "true")
    set_op = None
    if ":" in operator:
        set_op, operator = operator.split(":", 1)
        if set_op not in ("ForAllValues", "ForAnyValue"):
            raise ValueError(f"unsupported condition operator prefix {set_op}")
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    negated = operator in _NEGATED
    base = _NEGATED.get(operator, operator)
    if base not in _POSITIVE:
        raise ValueError(f"unsupported condition operator {operator}")
    compare = _POSITIVE[base]

    if value is _MISSING:
        if if_exists:
            return True
        if set_op == "ForAllValues":
            return True
        if set_op == "ForAnyValue":
            return False
        return negated
    if set_op is not None:
        values = [str(v) for v in _as_list(value)]
        if set_op == "ForAllValues":
            hits = [any(compare(v, w) for w in wanted) for v in values]
            return all(not h if negated else h for h in hits)
        hits = [any(compare(v, w) for w in wanted) for v in values]
        return any(not h if negated else h for h in hits)
    if isinstance(value, list):
        raise ValueError(f"{key} is multivalued: use ForAllValues or ForAnyValue with {operator}")
    matched = any(compare(str(value), w) for w in wanted)
    return not matched if negated else matched


def _conditions_match(condition: dict[str, Any] | None, context: Context) -> bool:
    for operator, keys in (condition or {}).items():
        for key, wanted in keys.items():
            if not _operator_matches(operator, key, wanted, context):
                return False
    return True


def _applies(statement: dict[str, Any], action: str, resource: Resource) -> bool:
    for unsupported in ("NotAction", "NotResource", "NotPrincipal"):
        if unsupported in statement:
            raise ValueError(f"{unsupported} is not supported by this evaluator")
    return (
        _action_matches(statement["Action"], action)
        and _resource_matches(statement["Resource"], resource.arn)
        and _conditions_match(statement.get("Condition"), resource.context)
    )


def decide_as_given(statements: list[dict[str, Any]], action: str, resource: Resource) -> tuple[str, list[str]]:
    """("deny" (explicit), "allow" or "implicit-deny", the Sids deciding it)
    for one resource whose context is taken as given."""
    applying = [s for s in statements if _applies(s, action, resource)]
    for effect, verdict in (("Deny", "deny"), ("Allow", "allow")):
        deciding = [s.get("Sid", "?") for s in applying if s["Effect"] == effect]
        if deciding:
            return verdict, deciding
    return "implicit-deny", []


def verdicts(statements: list[dict[str, Any]], request: Request) -> dict[str, tuple[str, list[str]]]:
    """Per resource ARN, its verdict and deciding statements, on the
    context AWS supplies."""
    aws = supplied(request)
    return {r.arn: decide_as_given(statements, aws.action, r) for r in aws.resources}


def is_allowed(statements: list[dict[str, Any]], request: Request) -> bool:
    """Allowed as AWS would evaluate it: every resource allowed, on the keys
    AWS supplies."""
    return is_allowed_as_given(statements, supplied(request))


def is_allowed_as_given(statements: list[dict[str, Any]], request: Request) -> bool:
    """The evaluator alone, on contexts taken as given (its own tests)."""
    return all(decide_as_given(statements, request.action, r)[0] == "allow" for r in request.resources)

