"""The ledger table (rules/ledger.py) and the holds that interleave two runs
(server.py, POST /_emulator/holds)."""

from __future__ import annotations

import threading
import time

import pytest
from botocore.exceptions import ClientError

from emu_helpers import R1, R2
from rules.ledger import definition as ledger_properties

TABLE = "ami-publisher-ledger"


def test_the_ledger_table_is_there_in_every_region_as_the_template_defines_it(emu):
    want = ledger_properties()
    for region in (R1, R2):
        table = emu.client("dynamodb", region).describe_table(TableName=TABLE)["Table"]
        assert table["KeySchema"] == want["KeySchema"]
        assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
            want["AttributeDefinitions"], key=lambda a: a["AttributeName"])
        assert table["BillingModeSummary"]["BillingMode"] == want["BillingMode"]


def test_the_table_is_there_again_after_a_reset_and_empty(emu):
    db = emu.client("dynamodb", R1)
    db.put_item(TableName=TABLE, Item={"region": {"S": R1}, "image_id": {"S": "ami-1"}})
    emu.reset()
    assert db.scan(TableName=TABLE)["Items"] == []


def test_a_conditional_write_on_a_version_read_before_fails_once_another_wrote(emu):
    db = emu.client("dynamodb", R1)
    key = {"region": {"S": R1}, "image_id": {"S": "ami-1"}}
    db.update_item(TableName=TABLE, Key=key, UpdateExpression="SET version = :one",
                   ExpressionAttributeValues={":one": {"N": "1"}})
    db.update_item(TableName=TABLE, Key=key, UpdateExpression="SET version = :two",
                   ConditionExpression="version = :one",
                   ExpressionAttributeValues={":one": {"N": "1"}, ":two": {"N": "2"}})
    with pytest.raises(ClientError) as refused:
        db.update_item(TableName=TABLE, Key=key, UpdateExpression="SET version = :two",
                       ConditionExpression="version = :one",
                       ExpressionAttributeValues={":one": {"N": "1"}, ":two": {"N": "2"}})
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_a_held_call_waits_until_released_and_others_go_on(emu, ec2):
    emu.control("POST", "/_emulator/holds", {"action": "DescribeImages", "region": R1, "count": 1})
    done = threading.Event()

    def held_call():
        ec2.describe_images(Owners=["self"])
        done.set()

    thread = threading.Thread(target=held_call)
    thread.start()
    for _ in range(100):
        if emu.control("GET", "/_emulator/holds")["holds"][0]["waiting"] == 1:
            break
        time.sleep(0.05)
    assert emu.control("GET", "/_emulator/holds")["holds"][0]["waiting"] == 1
    # Another action, and the next DescribeImages (count 1), are not held.
    emu.client("ec2", R1).get_ebs_encryption_by_default()
    ec2.describe_images(Owners=["self"])
    assert not done.is_set()

    released = emu.control("POST", "/_emulator/holds/release", {"action": "DescribeImages"})
    thread.join(10)
    assert done.is_set() and released["released"] == 1
    assert emu.control("GET", "/_emulator/holds")["holds"] == []


def test_injected_faults_apply_to_dynamodb_actions_named_by_their_target_header(emu):
    # DynamoDB's JSON protocol names the action in X-Amz-Target
    # (DynamoDB_20120810.UpdateItem), not in an Action parameter.
    key = {"region": {"S": R1}, "image_id": {"S": "ami-1"}}

    def update(db):
        db.update_item(TableName=TABLE, Key=key, UpdateExpression="SET version = :one",
                       ExpressionAttributeValues={":one": {"N": "1"}})

    once = emu.client("dynamodb", R1, retries={"total_max_attempts": 1, "mode": "standard"})
    emu.fault("UpdateItem", "InternalServerError", count=1, region=R1)
    emu.fault("UpdateItem", "ProvisionedThroughputExceededException", count=1, region=R1)
    for code, status in (("InternalServerError", 500), ("ProvisionedThroughputExceededException", 400)):
        with pytest.raises(ClientError) as failed:
            update(once)
        assert (failed.value.response["Error"]["Code"],
                failed.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status)
    assert "Item" not in once.get_item(TableName=TABLE, Key=key)  # nothing reached the table

    # Another action, another region: not caught. Retried by the SDK: through.
    emu.fault("UpdateItem", "InternalServerError", count=1, region=R2)
    emu.fault("UpdateItem", "ProvisionedThroughputExceededException", count=2, region=R1)
    once.get_item(TableName=TABLE, Key=key)
    update(emu.client("dynamodb", R1, retries={"total_max_attempts": 3, "mode": "standard"}))
    assert once.get_item(TableName=TABLE, Key=key)["Item"]["version"] == {"N": "1"}

    calls = emu.control("GET", "/_emulator/calls?service=dynamodb")["calls"]
    assert [c["action"] for c in calls if c["region"] == R1] == [
        "UpdateItem", "UpdateItem", "GetItem", "GetItem", "UpdateItem", "UpdateItem", "UpdateItem", "GetItem"]
    assert emu.control("GET", "/_emulator/faults")["faults"][-2]["remaining"] == 1  # R2's, unused
