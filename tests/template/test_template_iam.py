"""The role is a boundary, not only the code: template.yaml's statements,
evaluated (iam_eval.py) against the requests AWS would authorize, with only
the context keys AWS supplies for each action and resource type (the
Service Authorization Reference's data, sar.py), allow exactly what the
function needs and deny what must be impossible whatever the function's
code does:

1. adding group `all` to an AMI that does not carry the publish tag and
   value (a copy carries it only from its source, through CopyImageTags);
2. copying another account's AMI, into a region outside TargetRegions, or
   with the publish or family key in the request's tags (any letter case);
   a copy of an untagged AMI is allowed, and can never be made public;
3. putting the publish tag, or any tag outside the status prefix, on an
   existing AMI, or the provenance tag; nor the publish or family tag when a
   deployer chose a key inside the status prefix (rendered with those
   parameters), in any letter case;
4. writing the status tags on an AMI the account does not own, or outside
   the stack's regions.

Where AWS's documentation leaves a doubt about a context (does the AMI a
CopyImage creates carry ec2:Owner? an ec2:ImageID? are the tags
CopyImageTags copies evaluated as request tags? which ec2:Attribute does a
launch permission change carry?), every reading is evaluated, each one a
context AWS can produce (only SAR-listed keys): what must be denied is
denied under each, and what must be allowed is allowed under the expected
reading and refused, closed, under the others, by the statement README's
"First deploy" names. The parameters are the template's defaults
(publish=public, prefix publish:, a stack in us-east-1 of 123456789012)
with TargetRegions=eu-west-1,us-west-2, but where a test says otherwise.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pytest

from iam_eval import Request, Resource, is_allowed, is_allowed_as_given, supplied, verdicts
from sar import unsupplied_conditions
from template_helpers import statements

ACCOUNT = "123456789012"
OTHER = "210987654321"
HOME = "us-east-1"
TARGET = "eu-west-1"
TARGETS = "eu-west-1,us-west-2"
ELSEWHERE = "ap-south-1"  # neither the stack's region nor a target
SOURCE_ID = "ami-0a1b2c3d4e5f60001"
NEW_ID = "ami-0f0e0d0c0b0a90002"
MARKER = f"{HOME}/{SOURCE_ID}"
TAGGED = {"publish": "public", "Name": "base"}


@pytest.fixture(scope="module")
def role(template) -> list[dict]:
    return statements(template, TargetRegions=TARGETS)


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
    """An AMI that exists, with every fact about it; AWS supplies those the
    SAR lists for the action (iam_eval.supplied)."""
    context = {
        "ec2:Owner": owner,
        "ec2:ImageID": image_id,
        "ec2:Public": "true" if public else "false",
        "ec2:Region": region,
        **{f"aws:ResourceTag/{k}": v for k, v in tags.items()},
        **(extra or {}),
    }
    return Resource(f"arn:aws:ec2:{region}::image/{image_id}", context)


# What ec2:Attribute a launch permission change carries: EC2's documentation
# does not say (the SAR lists the key for ModifyImageAttribute on image).
ATTRIBUTE_READINGS = [None, "launchPermission", "LaunchPermission"]


def modify(image: Resource, attribute: str | None = None) -> Request:
    """ModifyImageAttribute, the launch permission (the function's only use)
    or another attribute, on a copy of `image`'s facts."""
    context = dict(image.context)
    if attribute is not None:
        context["ec2:Attribute"] = attribute
    return Request("ec2:ModifyImageAttribute", [Resource(image.arn, context)])


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
        ("a tagged AMI outside the stack's regions", existing_image(TAGGED, region=ELSEWHERE), False),
        ("a public AMI outside the stack's regions (take-down)", existing_image({}, public=True, region=ELSEWHERE), False),
    ],
)
@pytest.mark.parametrize("attribute", ATTRIBUTE_READINGS, ids=lambda a: f"ec2:Attribute={a}")
def test_modify_image_attribute(role, what, image, allowed, attribute):
    assert is_allowed(role, modify(image, attribute)) is allowed, what


@pytest.mark.parametrize("image", [existing_image(TAGGED), existing_image({}, public=True)], ids=["tagged", "public"])
def test_modify_image_attribute_is_the_launch_permission_only_where_aws_says_which(role, image):
    """ec2:Attribute (SAR: supplied for ModifyImageAttribute on image): where
    AWS supplies it, only the launch permission; where it does not, the
    statements hold as before (IfExists), since EC2's documentation does not
    say which value a launch permission change carries."""
    assert not is_allowed(role, modify(image, "description"))
    assert is_allowed(role, modify(image, "launchPermission"))
    assert is_allowed(role, modify(image))


@pytest.mark.parametrize(
    "what, image, allowed",
    [
        ("tagged", existing_image(TAGGED), True),
        ("a copy", existing_image(COPY_TAGS, region=TARGET), True),
        ("untagged, even public", existing_image({}, public=True), False),
        ("another account's", existing_image(TAGGED, owner=OTHER), False),
        ("outside the stack's regions", existing_image(TAGGED, region=ELSEWHERE), False),
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
        ("protect outside the stack's regions", "ec2:EnableImageDeregistrationProtection",
         existing_image(TAGGED, region=ELSEWHERE), False),
        ("unprotect outside the stack's regions", "ec2:DisableImageDeregistrationProtection",
         existing_image({"publish:protected": "true"}, region=ELSEWHERE), False),
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
    """One reading of what AWS supplies for a CopyImage that AWS's
    documentation leaves open (all within the keys the SAR lists)."""

    new_image_has_owner: bool  # ec2:Owner on the AMI being created
    new_image_has_id: bool  # an ec2:ImageID on it before it exists
    copied_tags_are_request_tags: bool  # CopyImageTags' tags in aws:TagKeys / aws:RequestTag


READINGS = [Reading(*flags) for flags in itertools.product([False, True], repeat=3)]
# The reading the template is built for: it is also the one that fails
# closed where the documentation is silent (README, "First deploy").
EXPECTED = [r for r in READINGS if not r.new_image_has_id and not r.copied_tags_are_request_tags]


def copy_image(
    reading: Reading,
    source_tags: dict[str, str],
    *,
    source_owner: str = ACCOUNT,
    region: str = TARGET,
    tag_specifications: dict[str, str] | None = None,
) -> Request:
    """CopyImage into `region` of SOURCE_ID in HOME with CopyImageTags, as
    the function should send it: TagSpecifications carry the provenance tag
    only (the source's own tags come through CopyImageTags)."""
    if tag_specifications is None:
        tag_specifications = {"publish:source": MARKER}
    # CopyImageTags copies the owner's user tags, not aws: ones, and none of
    # another account's AMI (EC2 API Reference, CopyImage, CopyImageTags).
    copied = {k: v for k, v in source_tags.items() if not k.startswith("aws:")} if source_owner == ACCOUNT else {}
    request_tags = {**copied, **tag_specifications} if reading.copied_tags_are_request_tags else tag_specifications
    requested = {**request_keys(request_tags), "ec2:Region": region}
    source = existing_image(source_tags, owner=source_owner, public=source_owner != ACCOUNT, extra=requested)
    new_facts = dict(requested)
    if reading.new_image_has_owner:
        new_facts["ec2:Owner"] = ACCOUNT
    if reading.new_image_has_id:
        new_facts["ec2:ImageID"] = NEW_ID
    new_image = Resource(f"arn:aws:ec2:{region}::image/{NEW_ID if reading.new_image_has_id else '*'}", new_facts)
    # The source's snapshot exists: it has an owner and an id, which the SAR
    # does not supply for CopyImage on snapshot (so no test can rely on them).
    source_snapshot = Resource(f"arn:aws:ec2:{HOME}::snapshot/snap-0a1b2c3d4e5f60001",
                               {"ec2:Owner": source_owner, "ec2:SnapshotID": "snap-0a1b2c3d4e5f60001", **requested})
    new_snapshot = Resource(f"arn:aws:ec2:{region}::snapshot/*", dict(requested))
    return Request("ec2:CopyImage", [source, new_image, source_snapshot, new_snapshot])


def tags_at_creation(reading: Reading, source_tags: dict[str, str], tag_specifications: dict[str, str],
                     region: str = TARGET) -> Request:
    """The CreateTags EC2 authorizes for a CopyImage's tags (EC2 User Guide,
    "Grant permission to tag Amazon EC2 resources during creation")."""
    request_tags = {**source_tags, **tag_specifications} if reading.copied_tags_are_request_tags else tag_specifications
    facts = {"ec2:CreateAction": "CopyImage", "ec2:Region": region, **request_keys(request_tags)}
    return Request("ec2:CreateTags", [Resource(f"arn:aws:ec2:{region}::image/*", dict(facts)),
                                      Resource(f"arn:aws:ec2:{region}::snapshot/*", dict(facts))])


def copy_of(source_tags: dict[str, str], tag_specifications: dict[str, str]) -> Resource:
    """The AMI a copy becomes: the source's user tags (CopyImageTags) and
    the TagSpecifications, private, the account's, in TARGET."""
    return existing_image({**source_tags, **tag_specifications}, region=TARGET, image_id=NEW_ID)


def test_aws_supplies_no_source_tags_to_copy_image(role):
    """What issue 17 found: the SAR lists no aws:ResourceTag for CopyImage,
    so the source's tags are never in its context, whatever a test says."""
    request = supplied(copy_image(EXPECTED[0], TAGGED))
    source, new_image, source_snapshot, _ = request.resources
    assert not any(k.lower().startswith("aws:resourcetag/") for k in source.context), source.context
    assert {"ec2:Owner", "ec2:ImageID", "ec2:Region"} <= set(source.context)
    assert "ec2:Owner" not in source_snapshot.context and "ec2:SnapshotID" not in source_snapshot.context
    assert "aws:RequestTag/publish:source" in source_snapshot.context


@pytest.mark.parametrize("reading", READINGS, ids=str)
def test_copying_the_accounts_tagged_ami_into_a_target_region(role, reading):
    """Allowed under the expected reading; under the others refused (closed),
    and by the statement README's "First deploy" names."""
    request = copy_image(reading, TAGGED)
    tagging = tags_at_creation(reading, TAGGED, {"publish:source": MARKER})
    found = {**verdicts(role, request), **{f"CreateTags {k}": v for k, v in verdicts(role, tagging).items()}}
    if reading in EXPECTED:
        assert is_allowed(role, request) and is_allowed(role, tagging), found
        assert found[f"arn:aws:ec2:{HOME}::image/{SOURCE_ID}"] == ("allow", ["CopyFromOwnImages"])
        assert found[f"arn:aws:ec2:{TARGET}::image/*"] == ("allow", ["CopyCreatesMarkedImage"])
        # The copy can then be made public: it carries the publish tag from its source.
        assert is_allowed(role, modify(copy_of(TAGGED, {"publish:source": MARKER})))
        return
    assert not is_allowed(role, request), found
    new_image = f"arn:aws:ec2:{TARGET}::image/{NEW_ID if reading.new_image_has_id else '*'}"
    if reading.copied_tags_are_request_tags:
        # The publish key reaches aws:TagKeys: refused, explicitly.
        assert found[new_image] == ("deny", ["DenyPublishAndFamilyTagKeys"]), found
        assert not is_allowed(role, tagging)
    else:
        # An id on the AMI being created: no statement allows it.
        assert found[new_image] == ("implicit-deny", []), found


@pytest.mark.parametrize("reading", READINGS, ids=str)
def test_a_copy_of_an_untagged_ami_can_never_be_made_public(role, reading):
    """IAM can't see the source's tags in CopyImage, so the copy itself is
    allowed (under the expected reading; there is no publish key to copy, so
    the copied tags reading changes nothing); but the copy carries no publish
    tag, and PublishOwnImagesTaggedForPublishing is the only statement that
    adds "all" to a private AMI."""
    untagged = {"Name": "base"}
    assert is_allowed(role, copy_image(reading, untagged)) is (not reading.new_image_has_id)
    copy = copy_of(untagged, {"publish:source": MARKER})
    for attribute in ATTRIBUTE_READINGS:
        request = modify(copy, attribute)
        assert not is_allowed(role, request)
        assert verdicts(role, request)[copy.arn] == ("implicit-deny", [])
    # Nor can the role tag it for publishing afterwards.
    tagging = create_tags(existing_image({}, region=TARGET, image_id=NEW_ID), {"publish": "public"})
    assert verdicts(role, tagging)[tagging.resources[0].arn][0] == "deny"


@pytest.mark.parametrize("reading", READINGS, ids=str)
@pytest.mark.parametrize(
    "what, source_tags, source_owner, region, tag_specifications",
    [
        ("into a region outside TargetRegions", TAGGED, ACCOUNT, ELSEWHERE, None),
        ("into the stack's own region (not a target)", TAGGED, ACCOUNT, HOME, None),
        ("another account's AMI tagged publish=public (public)", TAGGED, OTHER, TARGET, None),
        ("another account's untagged public AMI", {}, OTHER, TARGET, None),
        ("the account's tagged AMI without the marker on the copy", TAGGED, ACCOUNT, TARGET, {"Name": "base"}),
        ("the account's tagged AMI, the marker naming another region", TAGGED, ACCOUNT, TARGET,
         {"publish:source": f"eu-west-2/{SOURCE_ID}"}),
    ]
    + [(f"the {key} key in TagSpecifications", source, ACCOUNT, TARGET, {key: "public", "publish:source": MARKER})
       for key in ("publish", "Publish", "PUBLISH", "family", "FAMILY")
       for source in ({"Name": "base"}, TAGGED)],
)
def test_copying_anything_else_is_denied_under_every_reading(role, reading, what, source_tags, source_owner, region,
                                                             tag_specifications):
    request = copy_image(reading, source_tags, source_owner=source_owner, region=region,
                         tag_specifications=tag_specifications)
    assert not is_allowed(role, request), (what, verdicts(role, request))


@pytest.mark.parametrize("reading", READINGS, ids=str)
@pytest.mark.parametrize("key", ["publish", "Publish", "family", "FaMiLy"])
def test_the_publish_and_family_keys_are_refused_at_creation_too(role, reading, key):
    """The CreateTags EC2 authorizes with a CopyImage's TagSpecifications."""
    request = tags_at_creation(reading, {}, {key: "x", "publish:source": MARKER})
    assert {v[0] for v in verdicts(role, request).values()} == {"deny"}


def test_no_copy_at_all_without_target_regions(template):
    role = statements(template)  # TargetRegions empty, the default: ec2:Region [""]
    # (No request is made in a region named "": AWS can't produce that context.)
    for reading in EXPECTED:
        for region in (TARGET, HOME, ELSEWHERE):
            assert not is_allowed(role, copy_image(reading, TAGGED, region=region)), region


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
@pytest.mark.parametrize("region", [HOME, TARGET])
def test_tags_on_existing_amis(role, what, tags, owner, allowed, region):
    image = existing_image({}, owner=owner, public=owner == OTHER, region=region)
    assert is_allowed(role, create_tags(image, tags)) is allowed, what


def test_status_tags_only_in_the_stacks_regions(role):
    assert not is_allowed(role, create_tags(existing_image({}, region=ELSEWHERE), STATUS))


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


@pytest.mark.parametrize("tags", [
    {"publish-allow": "host-keys"},
    {"publish-ALLOW": "histories"},
    {"publish-status": "public", "publish-allow": "host-keys"},
], ids=str)
def test_the_acknowledgement_tag_is_denied_even_inside_the_status_prefix(template, tags):
    """The owner's acknowledgement of content findings (<publish key>-allow)
    with STATUS_TAG_PREFIX=publish-: the role must never acknowledge for the
    owner, while its status tags stay allowed."""
    role = statements(template, StatusTagPrefix="publish-")
    assert is_allowed(role, create_tags(existing_image({}), {"publish-status": "public"}))
    assert not is_allowed(role, create_tags(existing_image({}), tags))


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
    role = statements(template, TargetRegions=TARGETS, **overrides)
    assert is_allowed(role, create_tags(existing_image({}), STATUS)), config
    assert not is_allowed(role, create_tags(existing_image({}, owner=OTHER, public=True), STATUS)), config
    # Copies still get the provenance tag at creation; the publish key never.
    (reading,) = [r for r in EXPECTED if not r.new_image_has_owner]
    assert is_allowed(role, tags_at_creation(reading, {}, {"publish:source": MARKER})), config
    key = overrides.get("PublishTagKey", "publish")
    assert not is_allowed(role, tags_at_creation(reading, {}, {key: "public", "publish:source": MARKER})), config


def test_what_writing_the_publish_tag_would_unlock_and_which_condition_stops_it(template):
    role = statements(template, PublishTagKey="publish:go")
    # An AMI carrying the publish tag, in any case of its key, can be made
    # public: that is what a role able to write it could do to any AMI.
    for key in ("publish:go", "publish:GO"):
        assert is_allowed(role, modify(existing_image({key: "public"}))), key
    # The statement that stops it: without it, the status prefix alone
    # would let the role write the publish tag on an existing AMI.
    weakened = [s for s in role if s.get("Sid") != "DenyPublishAndFamilyTagKeys"]
    assert len(weakened) == len(role) - 1
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
    assert is_allowed_as_given(allow, Request("ec2:CreateTags", [Resource("x", {"aws:TagKeys": ["p:a", "p:b"]})]))
    assert not is_allowed_as_given(allow, Request("ec2:CreateTags", [Resource("x", {"aws:TagKeys": ["p:a", "q"]})]))
    assert is_allowed_as_given(allow, Request("ec2:CreateTags", [Resource("x", {})])), "ForAllValues of nothing is true"
    deny = [
        {"Effect": "Allow", "Action": "ec2:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "ec2:CreateTags", "Resource": "*",
         "Condition": {"StringNotEquals": {"ec2:CreateAction": "CopyImage"}}},
    ]
    assert not is_allowed_as_given(deny, Request("ec2:CreateTags", [Resource("x", {})])), "negated operator, missing key: true"
    assert is_allowed_as_given(deny, Request("ec2:CreateTags", [Resource("x", {"ec2:CreateAction": "CopyImage"})]))
    null = [{"Effect": "Allow", "Action": "ec2:CopyImage", "Resource": "*", "Condition": {"Null": {"ec2:ImageID": "true"}}}]
    assert is_allowed_as_given(null, Request("ec2:CopyImage", [Resource("x", {})]))
    assert not is_allowed_as_given(null, Request("ec2:CopyImage", [Resource("x", {"ec2:ImageID": "ami-1"})]))
    with pytest.raises(ValueError):
        is_allowed_as_given([{"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {"NumericEquals": {"k": "1"}}}],
                   Request("ec2:CopyImage", [Resource("x", {"k": "1"})]))


def test_evaluator_follows_iam_on_letter_case():
    def allows(condition: dict, context: dict) -> bool:
        statement = {"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*", "Condition": condition}
        return is_allowed_as_given([statement], Request("ec2:CreateTags", [Resource("x", context)]))

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


# -- parliament and the SAR check (make lint) ----------------------------------------


def test_parliament_finds_nothing_in_the_role_but_the_one_accepted_and_would_flag_a_bad_key(template):
    import copy

    from parliament import analyze_policy_string

    from lint_iam import ACCEPTED, findings, role_policies

    policies = role_policies(template)
    assert len(policies) == 2
    accepted_total = []
    for name, doc in policies:
        failing, accepted = findings(doc)
        assert failing == [], (name, [(f.issue, f.detail) for f in failing])
        accepted_total += accepted
    # Exactly the accepted finding (CopyFromOwnImages names no snapshot), once.
    assert [(f.issue, f.detail) for f in accepted_total] == ACCEPTED
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


@pytest.mark.parametrize("overrides", [{}, {"TargetRegions": TARGETS}], ids=["defaults", "with targets"])
def test_sar_check_finds_nothing_in_the_role(template, overrides):
    from lint_iam import deployed

    assert unsupplied_conditions(deployed(statements(template, **overrides))) == []


# The CopyImage statements of the template before issue 17 (resolved with
# the defaults): on AWS neither allowed anything. parliament passed them (it
# takes aws:ResourceTag for a global key); the SAR check must not.
BEFORE_ISSUE_17 = json.loads("""[
  {"Sid": "CopyOwnSnapshots", "Effect": "Allow", "Action": "ec2:CopyImage",
   "Resource": ["arn:aws:ec2:*::image/*", "arn:aws:ec2:*::snapshot/*"],
   "Condition": {"StringEquals": {"ec2:Owner": "123456789012"}, "Null": {"ec2:SnapshotID": "false"}}},
  {"Sid": "CopyOwnImagesTaggedForPublishing", "Effect": "Allow", "Action": "ec2:CopyImage",
   "Resource": ["arn:aws:ec2:*::image/*", "arn:aws:ec2:*::snapshot/*"],
   "Condition": {"StringEquals": {"ec2:Owner": "123456789012", "aws:ResourceTag/publish": "public"},
                 "Null": {"ec2:ImageID": "false"}}}
]""")


def test_sar_check_fails_on_the_copy_statements_before_issue_17():
    assert unsupplied_conditions(BEFORE_ISSUE_17) == [
        "CopyOwnSnapshots: ec2:CopyImage on snapshot: StringEquals ec2:Owner is not a key AWS supplies",
        "CopyOwnImagesTaggedForPublishing: ec2:CopyImage on snapshot: StringEquals ec2:Owner is not a key AWS supplies",
        "CopyOwnImagesTaggedForPublishing: ec2:CopyImage on image: StringEquals aws:ResourceTag/publish is not a key AWS supplies",
        "CopyOwnImagesTaggedForPublishing: ec2:CopyImage on snapshot: StringEquals aws:ResourceTag/publish is not a key AWS supplies",
    ]
    # And, evaluated on what AWS supplies, they allowed no copy at all, even
    # of the account's tagged AMI.
    for reading in READINGS:
        assert not is_allowed(BEFORE_ISSUE_17, copy_image(reading, TAGGED))


def test_sar_check_lets_null_and_if_exists_through_and_flags_a_dead_deny():
    statement = {"Sid": "S", "Effect": "Deny", "Action": "ec2:CopyImage", "Resource": "arn:aws:ec2:*::image/*"}
    assert unsupplied_conditions([{**statement, "Condition": {"Null": {"ec2:Public": "true"}}}]) == []
    assert unsupplied_conditions([{**statement, "Condition": {"StringEqualsIfExists": {"ec2:Public": "true"}}}]) == []
    assert unsupplied_conditions([{**statement, "Condition": {"Bool": {"ec2:Public": "true"}}}]) == [
        "S: ec2:CopyImage on image: Bool ec2:Public is not a key AWS supplies"]
