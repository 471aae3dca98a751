"""`ami-publisher history`: the ledger read back by a person, the binary run
against the local emulator's DynamoDB (the table as template.yaml defines
it). The entries are written in the shape src/ledger.rs writes them (the
Rust test `the_ledger_keeps_the_history_a_person_reads` checks that the
function's own writes read back the same way)."""

from __future__ import annotations

import json
import subprocess

import pytest

from lambda_harness import BINARY, HOME, base_env, function_binary
from harness import Emulator

TABLE = "ami-publisher-ledger"
AMI = "ami-0a1b2c3d4e5f60001"


@pytest.fixture(scope="module")
def emu():
    function_binary()
    with Emulator.start() as emulator:
        yield emulator


def history(emu: Emulator, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = base_env()
    environment.update(AWS_ENDPOINT_URL=emu.url, **env)
    return subprocess.run([str(BINARY), "history", *args], env=environment, capture_output=True,
                          text=True, timeout=60)


def change(at: str, state: str, reason: str) -> dict:
    return {"M": {"at": {"S": at}, "state": {"S": state}, "reason": {"S": reason}}}


def test_history_shows_each_change_of_an_ami_oldest_first(emu):
    emu.reset()
    emu.client("dynamodb", HOME).put_item(TableName=TABLE, Item={
        "region": {"S": HOME}, "image_id": {"S": AMI}, "state": {"S": "held"}, "version": {"N": "3"},
        "history": {"L": [change("2026-12-01T10:00:00Z", "publishing", "about to add the group all"),
                          change("2026-12-01T10:00:01Z", "public", "public in us-east-1"),
                          change("2026-12-02T09:00:00Z", "held", "an unpublish request")]},
    })

    done = history(emu, "--region", HOME, AMI, LEDGER_TABLE=TABLE)

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{AMI} (us-east-1): held (version 3)"
    assert [line.split()[1] for line in lines[1:]] == ["publishing", "public", "held"]
    as_json = history(emu, "--region", HOME, "--table", TABLE, "--json")
    [record] = json.loads(as_json.stdout)
    assert (record["image_id"], record["state"], len(record["history"])) == (AMI, "held", 3)


def test_history_without_a_table_or_of_a_missing_one_says_what_is_wrong(emu):
    unnamed = history(emu, "--region", HOME)
    assert unnamed.returncode == 2 and "name the ledger's table" in unnamed.stderr
    missing = history(emu, "--region", HOME, "--table", "no-such-table")
    assert missing.returncode == 1, missing.stdout
    [line] = missing.stderr.strip().splitlines()
    assert line.startswith("ami-publisher: could not read the ledger no-such-table in us-east-1"), line
