"""The EventBridge rules of template.yaml, routed for real by moto.

Every rule's pattern is read from the template, its parameters resolved
(defaults unless a test overrides one), and created in moto's EventBridge
(in-process, mock_aws) with an SQS queue of its own as target. Each sample
event of events/ is then put on the bus and the queues say which rules
matched it. (moto's TestEventPattern is a stub; its routing is real.)
"""

from __future__ import annotations

import copy
import json

import boto3
import pytest
from moto import mock_aws

from template_helpers import REPO, parameter_values, resolve

# What each sample must trigger. Every file in events/ must be listed.
EXPECTED = {
    "ami-available.json": {"ami"},
    "ami-failed.json": set(),
    "tag-added.json": {"tag"},
    "tag-added-product-code.json": {"tag"},
    "tag-removed.json": {"tag"},
    "tag-status-changed.json": set(),
    "tag-change-instance.json": set(),
    "scheduled-sweep.json": set(),
    "direct.json": set(),
    "unpublish.json": set(),
    # What the function sends to the default bus on success (OnSuccess
    # destination): no rule of the function matches it.
    "outcome-published.json": set(),
    "malformed.json": set(),
}


def template_rules(template: dict, **overrides: str) -> dict[str, dict]:
    """Rules of the template by logical id: {"pattern": ...} or {"schedule": ...},
    parameters resolved. Covers SAM function events and plain AWS::Events::Rule."""
    values = parameter_values(template, **overrides)
    rules = {}
    for rid, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            for name, ev in props.get("Events", {}).items():
                p = ev.get("Properties", {})
                if ev["Type"] in ("EventBridgeRule", "CloudWatchEvent"):
                    rules[rid + name] = {"pattern": resolve(p["Pattern"], values)}
                elif ev["Type"] == "Schedule":
                    rules[rid + name] = {"schedule": resolve(p["Schedule"], values)}
        elif res["Type"] == "AWS::Events::Rule":
            if "EventPattern" in props:
                rules[rid] = {"pattern": resolve(props["EventPattern"], values)}
            if "ScheduleExpression" in props:
                rules[rid] = {"schedule": resolve(props["ScheduleExpression"], values)}
    return rules


def by_source(rules: dict[str, dict]) -> dict[str, str]:
    """Short name -> logical id of the two pattern rules."""
    names = {}
    for rid, rule in rules.items():
        src = rule.get("pattern", {}).get("source")
        if src == ["aws.ec2"]:
            names["ami"] = rid
        elif src == ["aws.tag"]:
            names["tag"] = rid
    return names


def entry_for(event: dict) -> dict:
    """A PutEvents entry carrying the sample. Lambda-direct payloads (no
    source/detail-type) are sent as a custom event whose detail is the payload."""
    if "source" in event and "detail-type" in event:
        entry = {
            "Source": event["source"],
            "DetailType": event["detail-type"],
            "Detail": json.dumps(event.get("detail", {})),
            "Resources": event.get("resources", []),
        }
    else:
        entry = {"Source": "ami-publisher.test", "DetailType": "Direct Invocation", "Detail": json.dumps(event)}
    return entry


class Bus:
    """moto EventBridge with one SQS queue per pattern rule.

    Scheduled rules are left out: on AWS they never match put events, but
    moto treats a rule without a pattern as matching every event."""

    def __init__(self, rules: dict[str, dict]):
        self.events = boto3.client("events", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.queues = {}
        for rid, rule in rules.items():
            if "pattern" not in rule:
                continue
            url = self.sqs.create_queue(QueueName=rid)["QueueUrl"]
            arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            self.events.put_rule(Name=rid, EventPattern=json.dumps(rule["pattern"]))
            self.events.put_targets(Rule=rid, Targets=[{"Id": "queue", "Arn": arn}])
            self.queues[rid] = url

    def matches(self, event: dict) -> set[str]:
        """Logical ids of the rules that delivered the event."""
        result = self.events.put_events(Entries=[entry_for(event)])
        assert result["FailedEntryCount"] == 0, result
        hit = set()
        for rid, url in self.queues.items():
            msgs = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            for m in msgs:
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                delivered = json.loads(m["Body"])
                assert delivered["detail"] == json.loads(entry_for(event)["Detail"])
            if msgs:
                hit.add(rid)
        return hit


@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


def test_every_sample_event_has_an_expectation(events):
    assert set(events) == set(EXPECTED)


def test_rules_of_the_template(template):
    rules = template_rules(template)
    assert set(by_source(rules)) == {"ami", "tag"}
    schedules = [r["schedule"] for r in rules.values() if "schedule" in r]
    assert schedules == ["rate(1 hour)"]
    assert len(rules) == 3, rules


def test_each_sample_event_triggers_exactly_the_expected_rules(template, events, aws):
    rules = template_rules(template)
    names = {rid: short for short, rid in by_source(rules).items()}
    bus = Bus(rules)
    got = {name: {names.get(rid, rid) for rid in bus.matches(event)} for name, event in events.items()}
    assert got == EXPECTED


def test_samples_are_valid_for_their_rule(events):
    """The samples carry what the function reads (DESIGN.md's trigger table)."""
    ids = {
        "ami-available.json": "ami-0a1b2c3d4e5f60001",
        "ami-failed.json": "ami-0a1b2c3d4e5f60005",
        "tag-added.json": "ami-0a1b2c3d4e5f60002",
        "tag-added-product-code.json": "ami-0a1b2c3d4e5f60003",
        "tag-removed.json": "ami-0a1b2c3d4e5f60004",
    }
    for name, image_id in ids.items():
        ev = events[name]
        assert ev["account"] == "123456789012" and ev["region"] == "us-east-1"
        assert ev["resources"] == [f"arn:aws:ec2:us-east-1::image/{image_id}"]
        if ev["source"] == "aws.ec2":
            assert ev["detail"]["ImageId"] == image_id
    assert "publish" in events["tag-removed.json"]["detail"]["changed-tag-keys"]
    assert "publish" not in events["tag-removed.json"]["detail"]["tags"]
    assert events["direct.json"] == {"image_id": "ami-0a1b2c3d4e5f60001", "region": "us-east-1"}


def test_publish_key_among_other_changed_keys_matches(template, events, aws):
    rules = template_rules(template)
    bus = Bus(rules)
    tag_rule = by_source(rules)["tag"]
    ev = copy.deepcopy(events["tag-added.json"])
    ev["detail"]["changed-tag-keys"] = ["Name", "publish", "publish:status"]
    assert bus.matches(ev) == {tag_rule}
    ev["detail"]["changed-tag-keys"] = ["publish:status", "Publish", "publish "]
    assert bus.matches(ev) == set()


def test_tag_rule_follows_the_publish_key_parameter(template, events, aws):
    rules = template_rules(template, PublishTagKey="release")
    bus = Bus(rules)
    tag_rule = by_source(rules)["tag"]
    assert bus.matches(events["tag-added.json"]) == set()
    ev = copy.deepcopy(events["tag-added.json"])
    ev["detail"]["changed-tag-keys"] = ["release"]
    assert bus.matches(ev) == {tag_rule}


def test_ami_rule_ignores_other_states(events, template, aws):
    rules = template_rules(template)
    bus = Bus(rules)
    for state in ("failed", "deregistered", "disabled", "pending"):
        ev = copy.deepcopy(events["ami-available.json"])
        ev["detail"]["State"] = state
        assert bus.matches(ev) == set(), state


def readme_rule() -> dict:
    """The notification rule's pattern as the README shows it (the JSON
    block after the marker `notify-rule`)."""
    readme = (REPO / "README.md").read_text()
    marker = "<!-- notify-rule -->"
    assert marker in readme, "README.md must show the notification rule after " + marker
    block = readme.split(marker, 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


def outcome_event(events: dict, action: str, preview: bool = False) -> dict:
    event = copy.deepcopy(events["outcome-published.json"])
    payload = event["detail"]["responsePayload"]
    payload["images"][0]["action"] = action
    payload["actions"] = sorted({action, "already-public"})
    if preview:
        # The function writes `preview` only when it is true.
        payload["preview"] = True
    return event


def destination_entry(event: dict) -> dict:
    return {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
        "Resources": event["resources"],
    }


def test_the_readme_notification_rule_routes_outcomes_to_notify_about(events, aws):
    """A rule on the default bus, as the README shows it, gets the outcome
    the OnSuccess destination sends for the actions worth a notification
    (published, rejected, withdrawn, retired), and not the others."""
    bus = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="notify")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus.put_rule(Name="ami-publisher-notify", EventPattern=json.dumps(readme_rule()))
    bus.put_targets(Rule="ami-publisher-notify", Targets=[{"Id": "notify", "Arn": arn}])

    def delivered(action: str, preview: bool = False) -> bool:
        result = bus.put_events(Entries=[destination_entry(outcome_event(events, action, preview))])
        assert result["FailedEntryCount"] == 0, result
        msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for m in msgs:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return bool(msgs)

    for action in ("published", "rejected", "withdrawn", "retired"):
        assert delivered(action), action
    for action in ("already-public", "skipped", "waiting"):
        assert not delivered(action), action
    # A dry run invoked asynchronously: nothing was done, nothing to tell.
    assert not delivered("published", preview=True)
