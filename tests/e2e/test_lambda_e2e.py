"""ami-publisher end to end: the sample events in events/ go through the real
Lambda runtime API (`cargo lambda watch --only-lambda-apis` and
`cargo lambda invoke --data-file`) to the real binary (target/debug/ami-publisher,
built by `cargo test --all-targets`), which works against the local EC2
emulator; the results are read back from the emulator.

Run: `cargo test --all-targets --no-run && .venv/bin/python -m pytest tests/e2e -q`
(`make test` does both). Nothing is skipped: when a service can't start,
every test errors with the reason.

The services start once for the module; each test resets the emulator and
seeds the AMIs the sample events name (lambda_harness.SAMPLE_AMIS).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from lambda_harness import (
    ELIGIBLE, ENCRYPTED, FAILED, HOME, MARKETPLACE_CODE, PRODUCT_CODE, REASON, SOURCE,
    STATUS, TARGETS, UNTAGGED, Stack, ami_available_event, copies_of, diff_snapshots,
    final_state_problems, home_sweep, is_read_only, replay_events, run_sample_scenario,
    seed_sample_amis, squash, stale_binary_note, state_snapshot, sweep_event, tag_removed_event,
    unexpected_invocations,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    log_dir: Path = tmp_path_factory.mktemp("e2e")
    note = stale_binary_note()
    if note:
        warnings.warn(note, stacklevel=1)
    with Stack(log_dir) as running:
        yield running


@pytest.fixture
def emu(stack: Stack):
    stack.emu.reset()
    seed_sample_amis(stack.emu)
    return stack.emu


@pytest.fixture
def lam(stack: Stack, emu):
    return stack.lam


def mutations(emu) -> list[dict[str, str]]:
    return [c for c in emu.calls() if not is_read_only(c["action"])]


def test_eligible_ami_is_published_copied_and_its_copies_published(lam, emu):
    inv = lam.invoke("ami-available.json")
    assert inv.ok, inv.summary()
    assert (inv.result["trigger"], inv.result["cause"], inv.result["region"]) == ("image", "available", HOME)
    out = inv.image(ELIGIBLE)
    assert out["action"] == "published", out
    assert out["status"] == "copying", out  # the copies are pending (emulator copy delay 30 s)
    assert out["deprecation_time"], "DEPRECATE_AFTER_DAYS=365 sets a deprecation date"
    assert [c["region"] for c in out["copies"]] == list(TARGETS)
    assert all(c["started"] and c["state"] == "pending" and not c["public"] and not c["error"]
               for c in out["copies"]), out["copies"]

    source = emu.image(ELIGIBLE)
    assert source["public"] is True
    assert source["tags"][STATUS] == "copying"
    assert source["deprecation_time"] and source["deprecation_time"][:16] == out["deprecation_time"][:16]
    copies = copies_of(emu, ELIGIBLE)
    assert sorted(c["region"] for c in copies) == sorted(TARGETS)
    for c in copies:
        assert c["image_id"] in {x["image_id"] for x in out["copies"]}
        assert (c["state"], c["public"]) == ("pending", False), c
        assert c["source"] == {"region": HOME, "image_id": ELIGIBLE}
        assert c["tags"][SOURCE] == f"{HOME}/{ELIGIBLE}"
        assert c["tags"]["Name"] == "example-base-2024.01.01", "the source's own tags are copied"
        assert STATUS not in c["tags"], "the source's status tags are not copied"

    # EC2 finishes the copies. Only the source region's stack is deployed:
    # its next scheduled sweep publishes them and marks the source public.
    assert sorted(emu.complete_copies()["completed"]) == sorted(c["image_id"] for c in copies)
    sweep = home_sweep(lam)
    assert sweep.ok, sweep.summary()
    assert not sweep.result.get("deferred"), "the sweep had the time to do everything"
    out = sweep.image(ELIGIBLE)
    assert (out["action"], out["status"]) == ("already-public", "public"), out
    assert [(c["region"], c["action"], c["status"], c["public"], c["started"]) for c in out["copies"]] == [
        (r, "published", "public", True, False) for r in TARGETS
    ], out["copies"]
    source = emu.image(ELIGIBLE)
    assert source["tags"][STATUS] == "public"
    assert source["tags"][REASON] == f"public in {HOME} and copies in {', '.join(TARGETS)}"

    for c in copies_of(emu, ELIGIBLE):
        assert c["public"] is True and c["state"] == "available", c
        assert c["tags"][STATUS] == "public", c["tags"]
        assert c["tags"][SOURCE] == f"{HOME}/{ELIGIBLE}"
        assert c["deprecation_time"][:16] == source["deprecation_time"][:16], "deprecated with its source"
    by_region = {r: [i["image_id"] for i in emu.images(r)] for r in TARGETS}
    assert all(len(ids) == 1 for ids in by_region.values()), f"copies copied onward: {by_region}"

    # Settled: the next sweep leaves the AMI and its copies alone (it looks
    # at the rejected samples again, in case their owner fixed them).
    emu.clear_calls()
    again = home_sweep(lam)
    assert again.ok, again.summary()
    assert ELIGIBLE not in {i["image_id"] for i in again.images}, again.summary()
    assert mutations(emu) == []


@pytest.mark.parametrize(
    "event, image_id, reason",
    [
        ("tag-added.json", ENCRYPTED, "encrypted EBS volume"),
        ("tag-added-product-code.json", PRODUCT_CODE, f"has product code: {MARKETPLACE_CODE}"),
    ],
)
def test_ineligible_ami_stays_private_and_says_why(lam, emu, event, image_id, reason):
    inv = lam.invoke(event)
    assert inv.ok, inv.summary()
    assert (inv.result["trigger"], inv.result["cause"]) == ("image", "tag-changed")
    out = inv.image(image_id)
    assert (out["action"], out["status"]) == ("rejected", "rejected"), out
    assert any(reason in r for r in out["reasons"]), out["reasons"]
    assert "copies" not in out

    image = emu.image(image_id)
    assert image["public"] is False
    assert image["tags"][STATUS] == "rejected"
    assert reason in image["tags"][REASON]
    assert image["deprecation_time"] is None, "nothing but tags is changed on a rejected AMI"
    assert all(emu.images(r) == [] for r in TARGETS), "an ineligible AMI is not copied"
    assert {c["action"] for c in mutations(emu)} == {"CreateTags"}


def test_untagged_and_failed_amis_and_other_tag_changes_are_left_alone(lam, emu):
    before = state_snapshot(emu)
    emu.clear_calls()

    removed = lam.invoke("tag-removed.json")
    assert removed.ok, removed.summary()
    out = removed.image(UNTAGGED)
    assert out["action"] == "skipped" and "status" not in out, out
    assert out["reasons"] == ["not tagged publish=public"]

    failed = lam.invoke("ami-failed.json")
    assert failed.ok, failed.summary()
    assert failed.result == {
        "trigger": "ignored", "images": [],
        "ignored": f"{FAILED} in {HOME} became failed",
    }

    status_changed = lam.invoke("tag-status-changed.json")
    assert status_changed.ok, status_changed.summary()
    assert status_changed.result["trigger"] == "ignored"
    assert "does not touch `publish`" in status_changed.result["ignored"]

    assert diff_snapshots(before, state_snapshot(emu)) == []
    assert mutations(emu) == []
    for image_id in (UNTAGGED, FAILED):
        assert not [k for k in emu.image(image_id)["tags"] if k.startswith("publish:")]


@pytest.mark.parametrize(
    "event, error_type, must_name",
    [
        ("malformed.json", "InvalidEvent", ["unrecognised payload", "unknown field `hello`"]),
        ("tag-change-instance.json", "InvalidEvent",
         ["unsupported event", "aws.tag", "resource-type `instance`"]),
        ({"image_id": ELIGIBLE, "region": "ap-south-1"}, "UnknownRegion",
         ["ap-south-1", HOME]),
        ({"image_id": "ami-XYZ"}, "InvalidEvent", ["image_id", "ami-XYZ"]),
    ],
    ids=["malformed", "instance-tag-change", "unknown-region", "bad-image-id"],
)
def test_invalid_event_gets_an_error_naming_what_was_wrong(lam, emu, event, error_type, must_name):
    before = state_snapshot(emu)
    emu.clear_calls()
    inv = lam.invoke(event)
    assert not inv.ok, f"expected an error, got {inv.result}"
    assert inv.error_type == error_type, (inv.error_type, inv.error_message)
    for text in must_name:
        assert squash(text) in squash(inv.error_message), (text, inv.error_message)
    assert emu.calls() == [], "an invalid event makes no EC2 call"
    assert diff_snapshots(before, state_snapshot(emu)) == []


# Not JSON, and (the last three, found by fuzzing the entry) text that looks
# like JSON but that the runtime can't read into a JSON value: each answered
# by the function as InvalidEvent, never by the runtime's own errorType.
# (Bytes that are not UTF-8 can't be sent through `cargo lambda invoke`,
# which reads its data file as text: src/event.rs's unit test has them.)
@pytest.mark.parametrize("body", [
    b"publish ami-0a1b2c3d4e5f60001 please",
    b"1e999",
    b"[1e400]",
    b'"\\ud800"',
], ids=["text", "number-out-of-range", "number-out-of-range-in-a-list", "lone-surrogate"])
def test_a_payload_that_is_not_json_is_an_invalid_event(lam, emu, tmp_path, body):
    payload = tmp_path / "not-json.txt"
    payload.write_bytes(body)
    emu.clear_calls()
    inv = lam.invoke(payload, label="not JSON")
    assert not inv.ok, f"expected an error, got {inv.result}"
    assert inv.error_type == "InvalidEvent", (inv.error_type, inv.error_message)
    assert squash("the payload is not JSON") in squash(inv.error_message), inv.error_message
    assert emu.calls() == []


def test_every_sample_event_then_a_full_replay_changes_nothing(lam, emu):
    invocations = run_sample_scenario(lam, emu)
    assert unexpected_invocations(invocations) == []
    assert final_state_problems(emu) == []

    before = state_snapshot(emu)
    emu.clear_calls()
    replayed = [lam.invoke(event, label=f"replay of {label}") for label, event in replay_events(emu)]
    for inv in replayed:
        name = inv.label.removeprefix("replay of events/")
        if name in ("tag-change-instance.json", "malformed.json"):
            assert not inv.ok and inv.error_type == "InvalidEvent", inv.summary()
            continue
        assert inv.ok, inv.summary()
        for image in inv.images:
            assert image["action"] in ("already-public", "rejected", "skipped"), (inv.label, image)
            assert not any(c["started"] for c in image.get("copies", [])), (inv.label, image)

    assert diff_snapshots(before, state_snapshot(emu)) == []
    assert mutations(emu) == [], "a replay only reads"
    assert final_state_problems(emu) == []


def test_block_public_access_in_one_target_region_keeps_only_that_copy_private(lam, emu):
    blocked = TARGETS[-1]
    emu.set_bpa(blocked, "block-new-sharing")
    assert lam.invoke("ami-available.json").ok
    emu.complete_copies()
    sweep = home_sweep(lam)
    assert sweep.ok, sweep.summary()
    for c in sweep.image(ELIGIBLE)["copies"]:
        if c["region"] == blocked:
            assert (c["action"], c["status"], c["public"]) == ("rejected", "rejected", False), c
            assert any("block public access" in r for r in c["reasons"]), c
        else:
            assert (c["action"], c["status"], c["public"]) == ("published", "public", True), c
    assert final_state_problems(emu, rejected_copy_regions=[blocked]) == []

    # The owner lifts BPA; the next sweep publishes the copy and marks the
    # source public.
    emu.set_bpa(blocked, "unblocked")
    sweep = home_sweep(lam)
    assert sweep.ok, sweep.summary()
    [late] = [c for c in sweep.image(ELIGIBLE)["copies"] if c["region"] == blocked]
    assert (late["action"], late["status"]) == ("published", "public"), late
    assert final_state_problems(emu) == []
    # A copy's own available event (a stack in its region would get it),
    # replayed after all that, changes nothing.
    [blocked_copy] = [c for c in copies_of(emu, ELIGIBLE) if c["region"] == blocked]
    before = state_snapshot(emu)
    assert lam.invoke(ami_available_event(blocked_copy["image_id"], blocked)).ok
    assert diff_snapshots(before, state_snapshot(emu)) == []


def published_everywhere(lam, emu) -> None:
    """The eligible sample AMI public with public copies in every target region."""
    assert lam.invoke("ami-available.json").ok
    emu.complete_copies()
    assert home_sweep(lam).ok
    assert final_state_problems(emu) == []


def test_removing_the_publish_tag_makes_the_ami_and_its_copies_private(lam, emu):
    published_everywhere(lam, emu)
    emu.client("ec2", HOME).delete_tags(Resources=[ELIGIBLE], Tags=[{"Key": "publish"}])
    emu.clear_calls()

    inv = lam.invoke(tag_removed_event(ELIGIBLE), label="tag removed from the eligible AMI")

    assert inv.ok, inv.summary()
    out = inv.image(ELIGIBLE)
    assert (out["action"], out["status"]) == ("withdrawn", "withdrawn"), out
    assert all(c["action"] == "withdrawn" and not c["public"] for c in out["copies"]), out["copies"]
    assert final_state_problems(emu, eligible="withdrawn") == []
    # Made private, the deregistration protection the function set turned
    # off, the status written: on the source and each copy.
    assert sorted(c["action"] for c in mutations(emu)) == (
        ["CreateTags"] * 3 + ["DisableImageDeregistrationProtection"] * 3 + ["ModifyImageAttribute"] * 3
    )
    # Nothing is deregistered, and a replay changes nothing.
    before = state_snapshot(emu)
    assert lam.invoke(tag_removed_event(ELIGIBLE)).ok
    assert home_sweep(lam).ok
    assert diff_snapshots(before, state_snapshot(emu)) == []


def test_an_unpublish_request_makes_the_ami_and_its_copies_private_and_keeps_them_so(lam, emu):
    published_everywhere(lam, emu)

    inv = lam.invoke("unpublish.json")

    assert inv.ok, inv.summary()
    out = inv.image(ELIGIBLE)
    assert (out["action"], out["status"]) == ("withdrawn", "held"), out
    assert final_state_problems(emu, eligible="held") == []
    assert emu.image(ELIGIBLE)["tags"]["publish"] == "public", "the owner's tags are left as they are"
    # Its events and the sweep keep it private.
    before = state_snapshot(emu)
    for event in ("ami-available.json", "direct.json"):
        assert lam.invoke(event).ok
    assert home_sweep(lam).ok
    assert diff_snapshots(before, state_snapshot(emu)) == []


def emf_lines(stack: Stack) -> list[dict]:
    """The function's Embedded Metric Format lines so far (its stdout)."""
    text = stack.function.process.log(last_lines=100_000)
    docs = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and "_aws" in doc:
            docs.append(doc)
    return docs


def assert_emf(doc: dict) -> None:
    """CloudWatch's EMF specification, the parts a metric line must meet."""
    assert isinstance(doc["_aws"]["Timestamp"], int)
    [directive] = doc["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "ami-publisher"
    for dimension_set in directive["Dimensions"]:
        assert len(dimension_set) <= 30
        for name in dimension_set:
            assert isinstance(doc[name], str), name
    assert 0 < len(directive["Metrics"]) <= 100
    for metric in directive["Metrics"]:
        assert isinstance(doc[metric["Name"]], int), metric
        assert metric["Unit"] == "Count"


def test_each_invocation_writes_one_embedded_metric_format_line(stack, lam, emu):
    before = len(emf_lines(stack))
    published = lam.invoke("ami-available.json")
    rejected = lam.invoke("tag-added.json")
    invalid = lam.invoke("malformed.json")
    assert published.ok and rejected.ok and not invalid.ok

    lines = emf_lines(stack)[before:]
    assert len(lines) == 3, lines
    for doc in lines:
        assert_emf(doc)
        assert doc["Region"] == HOME
    assert (lines[0]["Published"], lines[0]["CopiesStarted"]) == (1, len(TARGETS))
    assert lines[1]["Rejected"] == 1
    assert lines[2]["Errors"] == 1
