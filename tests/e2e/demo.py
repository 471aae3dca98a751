"""`make demo`: ami-publisher end to end on this machine, nothing on AWS.

Starts the local EC2 emulator with sample AMIs, the Lambda runtime API
(`cargo lambda watch --only-lambda-apis`) and the function as cargo built it
(target/debug/ami-publisher; the Makefile runs `cargo build` first), sends
the sample events of events/ with `cargo lambda invoke --data-file`, then
prints per AMI and region what the function did and why, and which images
are public.

A single-stack deployment: the function runs in the source region
(us-east-1) only. It copies the eligible AMI to the target regions and,
once the copies are available, its scheduled sweep publishes them there.
Image block public access is on in one target region (eu-west-1), so the
copy there stays private until the owner turns it off. Then two newer
releases of the same family come, each previewed first (a dry run: what the
function would do, nothing written): with KEEP_PUBLIC_PER_FAMILY=2 the
oldest is retired, in every region. Then the owner pulls the newest, a bad
build, by removing its publish tag: it and its copies become private again,
and the release rotation retired for it is public again with its copies
(the rollback, RESTORE_ON_WITHDRAW). Then the owner asks for an emergency
unpublish of the middle one (held private, whatever its tags); the restored
release stays public. Then `ami-publisher history` prints the ledger (the
function's DynamoDB table, LEDGER_TABLE) of the source region: each AMI's
changes, when and why, the retirement and the restoration among them.
Last, the content check: the function again with CONTENT_CHECK=enforce
(the sample AMIs above have no disk image, so it is off for them), over two
AMIs whose ext4 root volumes are built here (tests/images/build.py's tools
and clean tree) and uploaded through the EBS direct APIs
(tests/emulator/ebs_upload.py): one with a builder's leftover
authorized_keys stays private, named, and the clean one is published. The
leftover key's text appears nowhere in what the demo prints, in the
function's answers, tags or logs.

Everything it starts is stopped at the end, also on failure or Ctrl-C.
Exit code: 0 when everything went as expected, 1 when something did not,
2 when a service could not start, 128 + the signal's number when
interrupted (130 on Ctrl-C).

    .venv/bin/python tests/e2e/demo.py [--keep-logs]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lambda_harness import (  # noqa: E402
    BINARY, ELIGIBLE, EXPECTED_ERRORS, FAMILY, FUNCTION_CONFIG, HOME, REASON, ROOT, SAMPLE_AMIS, SAMPLE_EVENTS,
    STATUS, TARGETS, FunctionProcess, HarnessError, Invocation, Lambda, Stack, ami_available_event, base_env,
    copies_of, final_state_problems, format_table, home_sweep, load_event, result_rows, seed_sample_amis,
    stale_binary_note, sweep_event, tag_removed_event, unexpected_invocations,
)
from ebs_upload import upload_disk_image  # noqa: E402  (tests/emulator/ebs_upload.py, on the harness's path)

BLOCKED_REGION = TARGETS[-1]
CONTENT = "publish:content"

# Everything the demo prints, so that the content check's step can look
# for the leftover key's text in it.
PRINTED: list[str] = []


def say(message: str = "") -> None:
    PRINTED.append(message)
    print(message, flush=True)


def step(message: str) -> None:
    say(f"==> {message}")


def show(inv: Invocation) -> Invocation:
    first, *rest = inv.summary_lines()
    say(f"    {inv.label:<44} -> {first}")
    for line in rest:
        say(f"    {'':<44}    {line}")
    return inv


def heading(title: str) -> None:
    say()
    say(title)
    say("=" * len(title))


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def on_signal(signum: int, _frame: object) -> None:
    raise Interrupted(signum)


def history(emu, region: str, *args: str) -> subprocess.CompletedProcess:
    """`ami-publisher history --region REGION ...`: the binary the function
    runs as, read by a person, against the emulator's ledger table."""
    env = dict(base_env(), AWS_ENDPOINT_URL=emu.url, LEDGER_TABLE=FUNCTION_CONFIG["LEDGER_TABLE"])
    return subprocess.run([str(BINARY), "history", "--region", region, *args], env=env,
                          capture_output=True, text=True, timeout=60)


def show_ledger(emu, family: list[str]) -> list[str]:
    """Prints the ledger's history of the home region's AMIs and returns
    what is missing from it: an entry for each of the family's releases,
    and for the first one its retirement by rotation, then its restoration
    (a `publishing` intent whose reason says restored, then `public`) when
    the newest release was pulled."""
    step(f"ami-publisher history --region {HOME}   (LEDGER_TABLE={FUNCTION_CONFIG['LEDGER_TABLE']})")
    done = history(emu, HOME)
    if done.returncode != 0:
        return [f"history --region {HOME}: exit {done.returncode}: {done.stderr.strip()}"]
    for line in done.stdout.splitlines():
        say(f"    {line}")
    done = history(emu, HOME, "--json")
    if done.returncode != 0:
        return [f"history --region {HOME} --json: exit {done.returncode}: {done.stderr.strip()}"]
    records = {r["image_id"]: r for r in json.loads(done.stdout)}
    problems: list[str] = []
    missing = sorted(set(family) - set(records))
    if missing:
        problems.append(f"the ledger of {HOME} has no entry for {missing}")
    entry = records.get(ELIGIBLE, {})
    changes = [(c.get("state"), c.get("reason") or "") for c in entry.get("history", [])]
    retired = [n for n, (state, _) in enumerate(changes) if state == "retired"]
    restored = [n for n in range(len(changes) - 1)
                if retired and n > retired[0] and changes[n][1].startswith("restored")
                and changes[n + 1][0] == "public"]
    if not retired or not restored:
        problems.append(f"the ledger's history of {ELIGIBLE}: expected a `retired` change, then a `restored` "
                        f"one (reason restored: ...) followed by `public`; got {changes}")
    if entry.get("state") != "public":
        problems.append(f"the ledger's entry of {ELIGIBLE}: state {entry.get('state')!r}, expected 'public'")
    return problems


def image_builder():
    """tests/images/build.py as a module: its file-system tools and trees."""
    spec = importlib.util.spec_from_file_location("image_build", ROOT / "tests" / "images" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_content_images(work: Path, leftover_key: str) -> tuple[Path, Path]:
    """Two 128 MiB ext4 root volumes (no partition table, as
    clean-ext4-plain.img), built without root by mke2fs -d: build.py's clean
    root, and the same root with one builder's leftover, an authorized_keys
    holding `leftover_key` in ann's home."""
    build = image_builder()
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    if shutil.which("mke2fs") is None:
        raise HarnessError("mke2fs is missing (e2fsprogs): run `make images-tools`")

    def leftover_tree(root: str) -> None:
        build.clean_tree(root)
        build.write(os.path.join(root, "home", "ann", ".ssh", "authorized_keys"),
                    f"ssh-ed25519 {leftover_key} ann@build-host\n", 0o600)

    paths = []
    for name, fill in (("clean-ext4-plain", build.clean_tree), ("leftover-key-ext4-plain", leftover_tree)):
        path = work / f"{name}.img"
        tree_dir = work / name
        tree_dir.mkdir()
        build.content_plain(build.ext_fs, fill, 128)(str(path), str(tree_dir))
        paths.append(path)
    return paths[0], paths[1]


def content_check_step(stack: Stack, invocations: list[Invocation]) -> list[str]:
    """Step 8: the function with CONTENT_CHECK=enforce over two AMIs built
    from real disk images; returns what did not go as expected."""
    emu = stack.emu
    problems: list[str] = []
    # A key that looks like one and is unique to this run: it must appear
    # nowhere the demo, the function or the emulator's tags show.
    leftover_key = "AAAAC3NzaC1lZDI1NTE5AAAAI" + secrets.token_hex(16)
    work = Path(tempfile.mkdtemp(prefix="ami-publisher-demo-images-"))
    try:
        step("building two ext4 root volumes with mke2fs -d (tests/images/build.py's clean tree)")
        clean_img, leftover_img = build_content_images(work, leftover_key)
        say(f"    {clean_img.name}: clean (as a careful build leaves it)")
        say(f"    {leftover_img.name}: the same, plus a leftover /home/ann/.ssh/authorized_keys")
        ebs = emu.client("ebs", HOME)
        amis = {}
        for label, path, name in (("leftover", leftover_img, "example-app-2024.04.01"),
                                  ("clean", clean_img, "example-app-2024.04.02")):
            snapshot = upload_disk_image(ebs, path)
            amis[label] = emu.seed_image(region=HOME, name=name, snapshots=[{"snapshot_id": snapshot}],
                                         tags={"publish": "public", "Name": name})
            step(f"uploaded {path.name} through the EBS direct APIs (StartSnapshot, PutSnapshotBlock, "
                 f"CompleteSnapshot): {snapshot}; AMI {amis[label]} ({name}) over it, tagged publish=public")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    config = dict(FUNCTION_CONFIG, CONTENT_CHECK="enforce")
    step("the function again, with CONTENT_CHECK=enforce: "
         + " ".join(f"{k}={v}" for k, v in config.items()))
    stack.function.stop()
    log_dir = stack.log_dir / "content-check"
    stack.function = FunctionProcess.start(stack.runtime.runtime_api, emu.url, log_dir, config=config)
    lam = stack.lam = Lambda(stack.runtime, stack.function, stack.log_dir)

    def invoke(event, label: str) -> Invocation:
        inv = show(lam.invoke(event, label=label))
        invocations.append(inv)
        return inv

    for label in ("leftover", "clean"):
        invoke(ami_available_event(amis[label], HOME), f"available event of {amis[label]}")
    emu.complete_copies()
    emu.clear_calls()
    invoke(sweep_event(HOME), f"scheduled sweep in {HOME} (publishes the copies)")
    read_again = [c["action"] for c in emu.control("GET", "/_emulator/calls?service=ebs")["calls"]]
    if read_again:
        problems.append(f"the sweep after the check read the volumes again: {read_again}")
    say(f"    {'':<44}    EBS calls of the sweep: {len(read_again)} (the verdicts are in the ledger)")

    kept, published = emu.image(amis["leftover"]), emu.image(amis["clean"])
    path = "/home/ann/.ssh/authorized_keys"
    reason = kept["tags"].get(REASON, "")
    say(f"    {amis['leftover']}: public={kept['public']} {STATUS}={kept['tags'].get(STATUS)} "
        f"{CONTENT}={kept['tags'].get(CONTENT)} {REASON}={reason!r}")
    say(f"    {amis['clean']}: public={published['public']} {STATUS}={published['tags'].get(STATUS)} "
        f"{CONTENT}={published['tags'].get(CONTENT)}")
    if kept["public"] or kept["tags"].get(STATUS) != "rejected" or kept["tags"].get(CONTENT) != "findings":
        problems.append(f"the AMI with a leftover authorized_keys: public={kept['public']}, tags {kept['tags']}")
    if "authorized-keys" not in reason or path not in reason:
        problems.append(f"{amis['leftover']}: {REASON}={reason!r} does not name authorized-keys and {path}")
    if not published["public"] or published["tags"].get(STATUS) != "public" \
            or published["tags"].get(CONTENT) != "clean":
        problems.append(f"the clean AMI: public={published['public']}, tags {published['tags']}")
    copies = copies_of(emu, amis["clean"])
    if sorted(c["region"] for c in copies if c["public"]) != sorted(TARGETS):
        problems.append(f"the clean AMI's copies: {[(c['region'], c['public']) for c in copies]}")
    if copies_of(emu, amis["leftover"]):
        problems.append(f"the AMI with a leftover authorized_keys was copied: {copies_of(emu, amis['leftover'])}")

    # The key's text: nowhere in what was printed, the function's answers,
    # the images' tags, or either function's log.
    places = {
        "the demo's output": "\n".join(PRINTED),
        "the function's answers": json.dumps([i.result for i in invocations]),
        "the images' tags": json.dumps([i["tags"] for i in emu.images()]),
    }
    for log in sorted(stack.log_dir.rglob("ami-publisher.log")):
        places[f"the function's log {log.relative_to(stack.log_dir)}"] = log.read_text(errors="replace")
    leaked = [where for where, text in places.items() if leftover_key in text]
    if leaked:
        problems.append(f"the leftover key's text is in {', '.join(leaked)}")
    step(f"the leftover key's text searched for in {', '.join(places)}: "
         f"{'FOUND in ' + ', '.join(leaked) if leaked else 'not found'}")
    return problems


def run(stack: Stack) -> list[str]:
    """The demo proper; returns what did not go as expected."""
    emu, lam = stack.emu, stack.lam
    owner = emu.client("ec2", HOME)
    problems: list[str] = []
    invocations: list[Invocation] = []

    def invoke(event, label: str) -> Invocation:
        inv = show(lam.invoke(event, label=label))
        invocations.append(inv)
        return inv

    def check(after: str, **expected) -> None:
        problems.extend(f"after {after}: {p}" for p in final_state_problems(emu, **expected))

    def family_public(expected: list[str], after: str) -> None:
        """The family's public releases in the home region, and their
        copies the only public ones of the family in each target region."""
        public = sorted(i["image_id"] for i in emu.images(HOME)
                        if i["public"] and i["tags"].get("family") == FAMILY)
        if public != sorted(expected):
            problems.append(f"after {after}: family {FAMILY} in {HOME}: public {public}, expected {sorted(expected)}")
        for region in TARGETS:
            kept = sorted(c["image_id"] for c in emu.images(region) if c["public"] and c["tags"].get("family") == FAMILY)
            want = sorted(c["image_id"] for r in expected for c in copies_of(emu, r) if c["region"] == region)
            if kept != want:
                problems.append(f"after {after}: family {FAMILY} in {region}: public {kept}, "
                                f"expected the copies of {sorted(expected)}: {want}")

    step("seeding the AMIs the sample events name (all in us-east-1, owned by 123456789012)")
    emu.reset()
    seed_sample_amis(emu)
    for spec in SAMPLE_AMIS:
        say(f"    {spec['image_id']}  {spec['name']:<32} {spec['description']}")
    state = emu.set_bpa(BLOCKED_REGION, "block-new-sharing")
    step(
        f"image block public access in {BLOCKED_REGION}: {state['state']} (managed by "
        f"{state['managed_by']}); {', '.join(r for r in (HOME, *TARGETS) if r != BLOCKED_REGION)}: unblocked"
    )
    step(f"one stack, in {HOME}: the function never runs in {', '.join(TARGETS)}")

    heading("1. The sample events, as EventBridge would deliver them")
    for name in SAMPLE_EVENTS:
        invoke(name, f"events/{name}")
        if name == "ami-available.json":
            started = [f"{c['region']} {c['image_id']}" for c in copies_of(emu, ELIGIBLE)]
            say(f"    {'':<44}    (copies now pending: {', '.join(started) or 'none'})")

    heading(f"2. EC2 finishes the copies; the next scheduled sweep in {HOME} publishes them")
    completed = emu.complete_copies()["completed"]
    step(f"emulator: copies available now: {', '.join(completed) or 'none'}")
    invocations.append(show(home_sweep(lam)))
    problems += unexpected_invocations(invocations)
    check("the events", rejected_copy_regions=[BLOCKED_REGION])
    heading(f"Result after the events (BPA on in {BLOCKED_REGION})")
    say(format_table(result_rows(emu, invocations)))

    heading(f"3. The owner turns image block public access off in {BLOCKED_REGION}; the sweep catches up")
    state = emu.set_bpa(BLOCKED_REGION, "unblocked")
    step(f"image block public access in {BLOCKED_REGION}: {state['state']}")
    invocations.append(show(home_sweep(lam)))
    check("the sweep")

    heading(f"4. Two newer releases of family {FAMILY}; KEEP_PUBLIC_PER_FAMILY=2 keeps the newest two")
    releases = []
    for n, month in enumerate(("02", "03"), start=1):
        created = (datetime.now(timezone.utc) + timedelta(hours=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        name = f"example-base-2024.{month}.01"
        release = emu.seed_image(region=HOME, name=name, creation_date=created,
                                 tags={"publish": "public", "Name": name, "family": FAMILY})
        releases.append(release)
        step(f"Image Builder made {release} ({name}), tagged publish=public family={FAMILY}")
        preview = lam.invoke({"image_id": release, "dry_run": True}, label=f"preview of {release}")
        invocations.append(preview)
        say(f"    {'preview (dry_run, nothing written):':<44} ->")
        for planned in preview.result.get("steps", []) if preview.ok else []:
            target = planned.get("image_id") or f"{planned['source']['region']}/{planned['source']['image_id']}"
            say(f"    {'':<44}    {planned['region']:<10} {planned['step']} {target}")
        invoke(ami_available_event(release, HOME), f"available event of {release}")
        emu.complete_copies()
        invocations.append(show(home_sweep(lam)))
    family_public(releases, "the rotation")
    check("the rotation", eligible="retired")

    newest, middle = releases[-1], releases[0]
    heading(f"5. A bad release: the owner pulls {newest}; the release rotation retired for it comes back")
    say(f"   ({newest} and its copies private again; {ELIGIBLE} public again with its copies: "
        "RESTORE_ON_WITHDRAW, on by default)")
    owner.delete_tags(Resources=[newest], Tags=[{"Key": "publish"}])
    step(f"owner: aws ec2 delete-tags --resources {newest} --tags Key=publish")
    taken_down = invoke(tag_removed_event(newest), f"tag change on {newest} (publish removed)")
    if taken_down.ok:
        outcome = taken_down.image(newest)
        if outcome.get("status") != "withdrawn":
            problems.append(f"{newest}: {outcome}")
        restored = [(r["image_id"], r["region"]) for r in outcome.get("restored") or []]
        if restored != [(ELIGIBLE, HOME)]:
            problems.append(f"{newest} pulled: restored {restored}, expected [{(ELIGIBLE, HOME)}]")
    left = [c for c in copies_of(emu, newest) if c["public"]]
    if emu.image(newest)["public"] or left:
        problems.append(f"{newest} or its copies still public after the tag was removed")
    # The rollback: the eligible AMI public again with its copies, and the
    # family's newest two good releases (it and the middle one) public.
    check("the pull (rollback)")
    family_public([ELIGIBLE, middle], "the pull (rollback)")

    heading(f"6. An emergency: unpublish {middle} now, whatever its tags")
    held = invoke({"image_id": middle, "region": HOME, "action": "unpublish"}, f"unpublish request for {middle}")
    invoke(sweep_event(HOME), f"scheduled sweep in {HOME} (keeps it private)")
    if held.ok and held.image(middle).get("status") != "held":
        problems.append(f"{middle}: {held.image(middle)}")
    if emu.image(middle)["public"] or any(c["public"] for c in copies_of(emu, middle)):
        problems.append(f"{middle} or its copies public after the unpublish request")
    # Nothing older is left to restore: the restored release stays public.
    check("the unpublish request")
    family_public([ELIGIBLE], "the unpublish request")
    problems += unexpected_invocations(invocations)

    heading("7. The ledger: what the function did to each AMI, when and why (ami-publisher history)")
    problems += show_ledger(emu, [ELIGIBLE, *releases])

    heading("8. The content check: what a builder left behind is not made public")
    problems += content_check_step(stack, invocations)
    problems += unexpected_invocations(invocations)

    heading("Result: what the function did and why, per AMI and region")
    say(format_table(result_rows(emu, invocations)))
    public = [f"{r.image_id} ({r.region})" for r in result_rows(emu, invocations) if r.public == "PUBLIC"]
    say()
    say(f"Public now: {', '.join(public) or 'none'}")
    errors = [f"{inv.label}: {inv.error_type}" for inv in invocations if not inv.ok]
    say(f"Refused events (error returned to Lambda): {', '.join(errors) or 'none'}"
        f"  [expected: {', '.join(f'events/{k}: {v}' for k, v in EXPECTED_ERRORS.items())}]")
    return sorted(set(problems), key=problems.index)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the processes' logs (printed at the end) instead of deleting them")
    args = parser.parse_args()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)

    log_dir = Path(tempfile.mkdtemp(prefix="ami-publisher-demo-"))
    started = time.monotonic()
    say("ami-publisher demo: the function through the Lambda runtime API, against a local EC2 emulator")
    say(f"    function configuration: {' '.join(f'{k}={v}' for k, v in FUNCTION_CONFIG.items())}")
    note = stale_binary_note()
    if note:
        say(f"    warning: {note}")
    stack = Stack(log_dir, progress=step)
    keep_logs = args.keep_logs
    try:
        try:
            stack.start()
        except HarnessError as e:
            say(f"\nFAILED to start: {e}")
            keep_logs = True
            return 2
        problems = run(stack)
        say()
        if problems:
            keep_logs = True
            say(f"UNEXPECTED ({len(problems)}):")
            for p in problems:
                say(f"  - {p}")
            say(f"function log: {log_dir / 'ami-publisher.log'}")
            return 1
        say(f"Everything as expected ({time.monotonic() - started:.1f} s).")
        return 0
    except Interrupted as e:
        say(f"\ninterrupted by {e}: stopping everything")
        return 128 + e.signum
    except Exception as e:  # a harness or emulator failure mid-way
        keep_logs = True
        say(f"\nFAILED: {type(e).__name__}: {e}")
        return 1
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        step("stopping the function, the runtime API and the emulator")
        try:
            stack.stop()
        except Exception as e:
            say(f"    could not stop everything: {e}")
        if keep_logs:
            say(f"    logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
