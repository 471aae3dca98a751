"""The role is a boundary, not only the code: template.yaml's statements,
evaluated (iam_eval.py) against the requests AWS would authorize, with the
context keys AWS sends, allow exactly what the function needs and deny what
must be impossible whatever the function's code does:

1. adding group `all` to an AMI that does not carry the publish tag and
   value (a copy the function made carries it from its source);
2. copying an AMI that is not the account's or does not carry the publish
   tag;
3. putting the publish tag, or any tag outside the status prefix, on an
   existing AMI (only a copy, at creation, gets its source's tags), or the
   provenance tag on an existing AMI; nor the publish or family tag when a
   deployer chose a key inside the status prefix (rendered with those
   parameters), in any letter case;
4. writing the status tags on an AMI the account does not own.

Where the Service Authorization Reference leaves a doubt about the context
of the AMI a CopyImage creates (does it carry ec2:Owner? do its
aws:ResourceTag keys reflect the request's tags? are the request's tags in
the source AMI's context too?), every combination is evaluated: the policy
must hold under each reading. The parameters are the template's defaults
(publish=public, prefix publish:, a stack in us-east-1 of 123456789012),
but where a test says otherwise.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from iam_eval import Request, Resource, decide_resource, is_allowed
from template_helpers import statements

ACCOUNT = "123456789012"
OTHER = "210987654321"
HOME = "us-east-1"
TARGET = "eu-west-1"
SOURCE_ID = "ami-0a1b2c3d4e5f60001"
MARKER = f"{HOME}/{SOURCE_ID}"
TAGGED = {"publish": "public", "Name": "base"}


@pytest.fixture(scope="module")
def role(template) -> list[dict]:
    return statements(template)


def request_keys(tags: dict[str, str]) -> dict:
    """Request-level keys of a call that sets `tags`."""
    return {"aws:TagKeys": list(tags), **{f"aws:RequestTag/{k}": v for k, v in tags.items()}}


def existing_image(
    tags: dict[str, str],
    *,
    owner: str = ACCOUNT,
    public: bool = False,
    region: str = HOME,
    image_id: str = SOURCE_ID,
    extra: dict | None = None,
) -> Resource:
    """An AMI that exists: EC2 sends its owner, id, public flag and tags."""
    context = {
        "ec2:Owner": owner,
        "ec2:ImageID": image_id,
        "ec2:Public": "true" if public else "false",
        "ec2:Region": region,
        **{f"aws:ResourceTag/{k}": v for k, v in tags.items()},
        **(extra or {}),
    }
    return Resource(f"arn:aws:ec2:{region}::image/{image_id}", context)


def modify(image: Resource) -> Request:
    return Request("ec2:ModifyImageAttribute", [image])


def create_tags(image: Resource, tags: dict[str, str]) -> Request:
    image.context.update(request_keys(tags))
    return Request("ec2:CreateTags", [image])


# -- 1. making an AMI public --------------------------------------------------

COPY_TAGS = {"publish": "public", "Name": "base", "publish:source": MARKER}


@pytest.mark.parametrize(
    "what, image, allowed",
    [
        ("the account's AMI tagged publish=public", existing_image(TAGGED), True),
        ("a copy the function made (its source's tags, the marker)", existing_image(COPY_TAGS, region=TARGET), True),
        ("an untagged AMI", existing_image({"Name": "base"}), False),
        ("an AMI tagged publish=Public (not the exact value)", existing_image({"publish": "Public"}), False),
        ("an AMI carrying only the marker and status tags", existing_image({"publish:source": MARKER, "publish:status": "public"}), False),
        ("another account's AMI tagged publish=public", existing_image(TAGGED, owner=OTHER), False),
        # Take-down: IAM can't tell removing "all" from adding it; the
        # statement is bound to AMIs that are public already, for which
        # adding "all" changes nothing.
        ("an untagged AMI that is public already (take-down)", existing_image({"Name": "base"}, public=True), True),
        ("another account's public AMI", existing_image({}, owner=OTHER, public=True), False),
    ],
)
def test_modify_image_attribute(role, what, image, allowed):
    assert is_allowed(role, modify(image)) is allowed, what


@pytest.mark.parametrize(
    "what, image, allowed",
    [
        ("tagged", existing_image(TAGGED), True),
        ("a copy", existing_image(COPY_TAGS, region=TARGET), True),
        ("untagged, even public", existing_image({}, public=True), False),
        ("another account's", existing_image(TAGGED, owner=OTHER), False),
    ],
)
def test_deprecation(role, what, image, allowed):
    assert is_allowed(role, Request("ec2:EnableImageDeprecation", [image])) is allowed, what


@pytest.mark.parametrize(
    "what, action, image, allowed",
    [
        ("protect a tagged AMI", "ec2:EnableImageDeregistrationProtection", existing_image(TAGGED, public=True), True),
        ("protect an untagged AMI", "ec2:EnableImageDeregistrationProtection", existing_image({}, public=True), False),
        ("unprotect what the function protected", "ec2:DisableImageDeregistrationProtection",
         existing_image({"publish:protected": "true"}), True),
        ("unprotect what someone else protected", "ec2:DisableImageDeregistrationProtection",
         existing_image(TAGGED, public=True), False),
        ("unprotect another account's AMI", "ec2:DisableImageDeregistrationProtection",
         existing_image({"publish:protected": "true"}, owner=OTHER), False),
    ],
)
def test_deregistration_protection(role, what, action, image, allowed):
    assert is_allowed(role, Request(action, [image])) is allowed, what


def test_outcomes_go_to_the_default_bus_only(role):
    default = Resource("arn:aws:events:us-east-1:123456789012:event-bus/default")
    other = Resource("arn:aws:events:us-east-1:123456789012:event-bus/somewhere")
    assert is_allowed(role, Request("events:PutEvents", [default]))
    assert not is_allowed(role, Request("events:PutEvents", [other]))


# -- 2. copying ----------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One reading of what IAM sees when CopyImage creates an AMI."""

    new_image_has_owner: bool
    new_image_tags_from_request: bool
    request_tags_in_source_context: bool


READINGS = [Reading(*flags) for flags in itertools.product([False, True], repeat=3)]


def copy_image(
    reading: Reading,
    source_tags: dict[str, str],
    *,
    source_owner: str = ACCOUNT,
    copy_tags: dict[str, str] | None = None,
) -> Request:
    """CopyImage into TARGET of SOURCE_ID in HOME, as the function sends it:
    the source's own tags plus the marker, on the new AMI and snapshots."""
    if copy_tags is None:
        copy_tags = {**{k: v for k, v in source_tags.items() if not k.startswith("publish:")}, "publish:source": MARKER}
    requested = request_keys(copy_tags)
    source = existing_image(
        source_tags,
        owner=source_owner,
        public=source_owner != ACCOUNT,
        extra=requested if reading.request_tags_in_source_context else None,
    )
    new_context = {"ec2:Region": TARGET, **requested}
    if reading.new_image_has_owner:
        new_context["ec2:Owner"] = ACCOUNT
    if reading.new_image_tags_from_request:
        new_context.update({f"aws:ResourceTag/{k}": v for k, v in copy_tags.items()})
    new_image = Resource(f"arn:aws:ec2:{TARGET}::image/*", new_context)
    # The source's snapshot exists (it has an id); the new one is tagged by
    # the request (the function tags the new snapshots as the new AMI).
    snapshot_context = {"ec2:Owner": source_owner, "ec2:SnapshotID": "snap-0a1b2c3d4e5f60001"}
    if reading.request_tags_in_source_context:
        snapshot_context.update(requested)
    source_snapshot = Resource(f"arn:aws:ec2:{HOME}::snapshot/snap-0a1b2c3d4e5f60001", snapshot_context)
    new_snapshot = Resource(f"arn:aws:ec2:{TARGET}::snapshot/*", dict(requested))
    return Request("ec2:CopyImage", [source, new_image, source_snapshot, new_snapshot])


@pytest.mark.parametrize("reading", READINGS, ids=str)
def test_copying_the_accounts_tagged_ami_is_allowed_under_every_reading(role, reading):
    request = copy_image(reading, TAGGED)
    verdicts = {r.arn: decide_resource(role, request.action, r) for r in request.resources}
    assert is_allowed(role, request), verdicts
    # And the tags CopyImage puts on the new AMI and its snapshots.
    for arn in (f"arn:aws:ec2:{TARGET}::image/*", f"arn:aws:ec2:{TARGET}::snapshot/*"):
        at_creation = Resource(arn, {"ec2:CreateAction": "CopyImage", **request_keys({**TAGGED, "publish:source": MARKER})})
        assert is_allowed(role, Request("ec2:CreateTags", [at_creation])), arn


@pytest.mark.parametrize("reading", READINGS, ids=str)
@pytest.mark.parametrize(
    "what, source_tags, source_owner, copy_tags",
    [
        ("an untagged AMI", {"Name": "base"}, ACCOUNT, None),
        ("an AMI tagged publish=Public", {"publish": "Public"}, ACCOUNT, None),
        ("an untagged AMI, the copy claiming the publish tag", {"Name": "base"}, ACCOUNT, {"publish": "public", "publish:source": MARKER}),
        ("another account's AMI tagged publish=public (public)", TAGGED, OTHER, None),
        ("the account's tagged AMI without the marker on the copy", TAGGED, ACCOUNT, dict(TAGGED)),
        ("the account's tagged AMI, the marker naming another region", TAGGED, ACCOUNT, {**TAGGED, "publish:source": f"eu-west-2/{SOURCE_ID}"}),
    ],
)
def test_copying_anything_else_is_denied_under_every_reading(role, reading, what, source_tags, source_owner, copy_tags):
    request = copy_image(reading, source_tags, source_owner=source_owner, copy_tags=copy_tags)
    assert not is_allowed(role, request), what


# -- 3 and 4. tags on existing AMIs ---------------------------------------------


@pytest.mark.parametrize(
    "what, tags, owner, allowed",
    [
        ("status and reason on the account's AMI", {"publish:status": "public", "publish:reason": "public in us-east-1"}, ACCOUNT, True),
        ("the publish tag", {"publish": "public"}, ACCOUNT, False),
        ("another tag", {"Name": "x"}, ACCOUNT, False),
        ("a status tag with the publish tag", {"publish:status": "public", "publish": "public"}, ACCOUNT, False),
        ("the provenance marker", {"publish:source": MARKER}, ACCOUNT, False),
        ("a status tag with the marker", {"publish:status": "public", "publish:source": MARKER}, ACCOUNT, False),
        ("status tags on another account's AMI", {"publish:status": "rejected"}, OTHER, False),
    ],
)
def test_tags_on_existing_amis(role, what, tags, owner, allowed):
    image = existing_image({}, owner=owner, public=owner == OTHER)
    assert is_allowed(role, create_tags(image, tags)) is allowed, what


# -- 3, whatever the parameters: the publish and family tag keys inside the
# status prefix. src/config.rs refuses such a stack at start; the role must
# refuse the tags too, whatever the code does. Condition key names, and so
# the key in aws:ResourceTag/<publish key>, are case-insensitive to IAM: a
# key differing only in case is refused as well.

STATUS = {"publish:status": "public", "publish:reason": "public in us-east-1"}

MISCONFIGURED = [
    ("PublishTagKey publish:go", {"PublishTagKey": "publish:go"}, [
        ("the publish tag", {"publish:go": "public"}),
        ("the publish tag in another case", {"publish:GO": "public"}),
        ("a status tag with the publish tag", {"publish:status": "public", "publish:go": "public"}),
        ("the provenance marker", {"publish:source": MARKER}),
        ("the provenance marker in another case", {"publish:Source": MARKER}),
    ]),
    # config.rs refuses this one too (it compares without regard to case);
    # the role must hold anyway: IAM would read "publish:go" as the publish tag.
    ("PublishTagKey Publish:go", {"PublishTagKey": "Publish:go"}, [
        ("the publish tag in the prefix's case", {"publish:go": "public"}),
    ]),
    ("PublishTagKey publish: (the prefix itself)", {"PublishTagKey": "publish:"}, [
        ("the publish tag", {"publish:": "public"}),
    ]),
    ("FamilyTagKey publish:family", {"FamilyTagKey": "publish:family"}, [
        ("the family tag", {"publish:family": "base"}),
        ("the family tag in another case", {"publish:Family": "base"}),
        ("a status tag with the family tag", {"publish:status": "public", "publish:family": "base"}),
    ]),
    ("both inside the prefix", {"PublishTagKey": "publish:go", "FamilyTagKey": "publish:family"}, [
        ("the publish tag", {"publish:go": "public"}),
        ("the family tag", {"publish:family": "base"}),
    ]),
]


@pytest.mark.parametrize(
    "config, overrides, what, tags",
    [pytest.param(config, overrides, what, tags, id=f"{config}: {what}")
     for config, overrides, cases in MISCONFIGURED for what, tags in cases],
)
def test_publish_and_family_tags_are_denied_even_inside_the_status_prefix(template, config, overrides, what, tags):
    role = statements(template, **overrides)
    assert not is_allowed(role, create_tags(existing_image({}), tags)), f"{config}: {what}"


@pytest.mark.parametrize("config, overrides", [(c, o) for c, o, _ in MISCONFIGURED], ids=[c for c, _, _ in MISCONFIGURED])
def test_status_tags_stay_allowed_whatever_the_tag_keys(template, config, overrides):
    role = statements(template, **overrides)
    assert is_allowed(role, create_tags(existing_image({}), STATUS)), config
    assert not is_allowed(role, create_tags(existing_image({}, owner=OTHER, public=True), STATUS)), config
    # Copies still get their source's tags, the publish tag among them, at creation.
    key = overrides.get("PublishTagKey", "publish")
    at_creation = Resource(f"arn:aws:ec2:{TARGET}::image/*",
                           {"ec2:CreateAction": "CopyImage", **request_keys({key: "public", "publish:source": MARKER})})
    assert is_allowed(role, Request("ec2:CreateTags", [at_creation])), config


def test_what_writing_the_publish_tag_would_unlock_and_which_condition_stops_it(template):
    role = statements(template, PublishTagKey="publish:go")
    # An AMI carrying the publish tag, in any case of its key, can be made
    # public: that is what a role able to write it could do to any AMI.
    for key in ("publish:go", "publish:GO"):
        assert is_allowed(role, modify(existing_image({key: "public"}))), key
    # The condition that stops it: without it, the status prefix alone
    # would let the role write the publish tag on an existing AMI.
    (write,) = [s for s in role if s.get("Sid") == "WriteStatusTagsOnOwnImages"]
    weakened = [s for s in role if s is not write] + [
        {**write, "Condition": {k: v for k, v in write["Condition"].items()
                                if k != "ForAllValues:StringNotEqualsIgnoreCase"}}
    ]
    assert is_allowed(weakened, create_tags(existing_image({}), {"publish:go": "public"}))
    assert not is_allowed(role, create_tags(existing_image({}), {"publish:go": "public"}))


def test_a_create_tags_without_tag_keys_is_not_allowed(role):
    # ForAllValues over a missing key is true: the Null condition closes that.
    image = existing_image({})
    assert not is_allowed(role, Request("ec2:CreateTags", [image]))


# -- the evaluator itself ----------------------------------------------------------


def test_evaluator_follows_iam_on_missing_keys_and_set_operators():
    allow = [
        {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
         "Condition": {"ForAllValues:StringLike": {"aws:TagKeys": "p:*"}}},
    ]
    assert is_allowed(allow, Request("ec2:CreateTags", [Resource("x", {"aws:TagKeys": ["p:a", "p:b"]})]))
    assert not is_allowed(allow, Request("ec2:CreateTags", [Resource("x", {"aws:TagKeys": ["p:a", "q"]})]))
    assert is_allowed(allow, Request("ec2:CreateTags", [Resource("x", {})])), "ForAllValues of nothing is true"
    deny = [
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ec2:CreateTags", "Resource": "*",
         "Condition": {"StringNotEquals": {"ec2:CreateAction": "CopyImage"}}},
    ]
    assert not is_allowed(deny, Request("ec2:CreateTags", [Resource("x", {})])), "negated operator, missing key: true"
    assert is_allowed(deny, Request("ec2:CreateTags", [Resource("x", {"ec2:CreateAction": "CopyImage"})]))
    null = [{"Effect": "Allow", "Action": "ec2:CopyImage", "Resource": "*", "Condition": {"Null": {"ec2:ImageID": "true"}}}]
    assert is_allowed(null, Request("ec2:CopyImage", [Resource("x", {})]))
    assert not is_allowed(null, Request("ec2:CopyImage", [Resource("x", {"ec2:ImageID": "ami-1"})]))
    with pytest.raises(ValueError):
        is_allowed([{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"NumericEquals": {"k": "1"}}}],
                   Request("ec2:CopyImage", [Resource("x", {"k": "1"})]))


def test_evaluator_follows_iam_on_letter_case():
    def allows(condition: dict, context: dict) -> bool:
        statement = {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*", "Condition": condition}
        return is_allowed([statement], Request("ec2:CreateTags", [Resource("x", context)]))

    # Values: case-sensitive unless IgnoreCase.
    assert not allows({"StringEquals": {"k": "Public"}}, {"k": "public"})
    assert allows({"StringEqualsIgnoreCase": {"k": "Public"}}, {"k": "public"})
    # Key names: case-insensitive, the tag key in aws:ResourceTag/<key> too.
    assert allows({"StringEquals": {"aws:resourcetag/Publish": "public"}}, {"aws:ResourceTag/publish": "public"})
    assert allows({"Null": {"AWS:TagKeys": "false"}}, {"aws:TagKeys": ["a"]})
    with pytest.raises(ValueError):
        allows({"StringEquals": {"aws:ResourceTag/publish": "public"}},
               {"aws:ResourceTag/publish": "public", "aws:ResourceTag/Publish": "no"})
    # ForAllValues with a negated operator: no request value equals any policy value.
    not_these = {"ForAllValues:StringNotEqualsIgnoreCase": {"aws:TagKeys": ["p:go", "p:family"]}}
    assert allows(not_these, {"aws:TagKeys": ["p:status", "p:reason"]})
    assert not allows(not_these, {"aws:TagKeys": ["p:status", "P:GO"]})
    assert not allows(not_these, {"aws:TagKeys": ["p:family"]})
    assert allows(not_these, {}), "ForAllValues of nothing is true (hence the Null condition)"
    assert not allows({"ForAllValues:StringNotEquals": {"aws:TagKeys": ["p:go"]}}, {"aws:TagKeys": ["p:go"]})
    assert allows({"ForAllValues:StringNotEquals": {"aws:TagKeys": ["p:go"]}}, {"aws:TagKeys": ["P:GO"]})
    # ForAnyValue with IgnoreCase (the provenance Deny).
    assert allows({"ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": "p:source"}}, {"aws:TagKeys": ["a", "P:Source"]})
    assert not allows({"ForAnyValue:StringEqualsIgnoreCase": {"aws:TagKeys": "p:source"}}, {})


# -- parliament (make lint) ---------------------------------------------------------


def test_parliament_finds_nothing_in_the_role_and_would_flag_a_bad_key(template):
    import copy
    import json

    from parliament import analyze_policy_string

    from lint_iam import role_policies

    policies = role_policies(template)
    assert len(policies) == 2
    for name, doc in policies:
        findings = analyze_policy_string(json.dumps(doc)).findings
        assert findings == [], (name, [(f.issue, f.detail) for f in findings])
    # The same lint on a role with a misspelt condition key and an image
    # action scoped to snapshots: both are reported.
    name, doc = policies[0]
    broken = copy.deepcopy(doc)
    broken["Statement"].append(
        {"Effect": "Allow", "Action": "ec2:ModifyImageAttribute", "Resource": "arn:aws:ec2:*::snapshot/*",
         "Condition": {"StringEquals": {"ec2:Ownr": ACCOUNT}}}
    )
    issues = {f.issue for f in analyze_policy_string(json.dumps(broken)).findings}
    assert {"UNKNOWN_CONDITION_FOR_ACTION", "RESOURCE_MISMATCH"} <= issues, issues
