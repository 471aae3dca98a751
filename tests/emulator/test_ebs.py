"""The EBS direct APIs (rules/ebs.py): StartSnapshot, PutSnapshotBlock,
CompleteSnapshot, ListSnapshotBlocks, GetSnapshotBlock as the EBS API
reference documents them; disk images uploaded the way coldsnap does
(ebs_upload.py); images over uploaded snapshots; CopyImage carrying the
content; faults, latency, the call log and throttling on EBS actions.

Run: .venv/bin/python -m pytest -q tests/emulator (fixtures in conftest.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import base64
import hashlib
import time

import pytest
from botocore.exceptions import ClientError

from ebs_upload import UploadError, upload_disk_image
from emu_helpers import R1, R2, describe, error_of

BLOCK = 524288


def ebs_client(emu, region: str = R1, **config):
    config.setdefault("retries", {"total_max_attempts": 1, "mode": "standard"})
    return emu.client("ebs", region, **config)


def reason_of(exc: pytest.ExceptionInfo) -> str | None:
    return exc.value.response.get("Reason")


def sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def block_data(index: int) -> bytes:
    return f"block {index}".encode().ljust(BLOCK, b"\x5a")


def write_image(tmp_path, blocks: dict[int, bytes], size: int, name: str = "disk.img"):
    """A sparse file of `size` bytes with `blocks` (index -> bytes) at their offsets."""
    path = tmp_path / name
    with open(path, "wb") as f:
        f.truncate(size)
        for index, data in blocks.items():
            f.seek(index * BLOCK)
            f.write(data)
    return path


def all_blocks(ebs, snapshot_id: str) -> dict[int, bytes]:
    """Every listed block's data, read back with its token and checked."""
    out, token = {}, None
    while True:  # boto3 has no paginator for ListSnapshotBlocks
        page = ebs.list_snapshot_blocks(SnapshotId=snapshot_id, **({"NextToken": token} if token else {}))
        for b in page["Blocks"]:
            got = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=b["BlockIndex"],
                                         BlockToken=b["BlockToken"])
            data = got["BlockData"].read()
            assert (got["DataLength"], got["ChecksumAlgorithm"], got["Checksum"]) == (len(data), "SHA256", sha(data))
            out[b["BlockIndex"]] = data
        token = page.get("NextToken")
        if not token:
            return out


# ---------------------------------------------------------------------------
# Writing a snapshot
# ---------------------------------------------------------------------------


def test_start_snapshot_has_512_kib_blocks_and_is_pending_until_completed(emu, ec2):
    ebs = ebs_client(emu)
    started = ebs.start_snapshot(VolumeSize=2, Description="d", Tags=[{"Key": "k", "Value": "v"}])
    # moto 5.2.5 answered BlockSize 512.
    assert (started["BlockSize"], started["VolumeSize"], started["Status"]) == (BLOCK, 2, "pending")
    snap_id = started["SnapshotId"]
    snap = ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]
    assert (snap["State"], snap["VolumeSize"], snap["Tags"]) == ("pending", 2, [{"Key": "k", "Value": "v"}])
    assert ec2.describe_volumes()["Volumes"] == []  # StartSnapshot creates no volume
    with pytest.raises(ClientError) as exc:  # not readable while pending (EBS FAQ)
        ebs.list_snapshot_blocks(SnapshotId=snap_id)
    assert error_of(exc)[0::2] == ("ValidationException", 400)
    assert ebs.complete_snapshot(SnapshotId=snap_id, ChangedBlocksCount=0)["Status"] == "completed"
    assert ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]["State"] == "completed"
    assert ebs.list_snapshot_blocks(SnapshotId=snap_id)["Blocks"] == []


def test_put_snapshot_block_checks_length_checksum_algorithm_and_index(emu):
    ebs = ebs_client(emu, parameter_validation=False)
    snap_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    good = block_data(0)

    def put(**over):
        args = {"SnapshotId": snap_id, "BlockIndex": 0, "BlockData": good, "DataLength": BLOCK,
                "Checksum": sha(good), "ChecksumAlgorithm": "SHA256", **over}
        return ebs.put_snapshot_block(**args)

    small = b"x" * 512
    bad = [
        ({"BlockData": small, "DataLength": 512, "Checksum": sha(small)}, "INVALID_PARAMETER_VALUE"),
        ({"DataLength": BLOCK - 1}, "INVALID_PARAMETER_VALUE"),
        ({"Checksum": sha(b"other")}, "INVALID_PARAMETER_VALUE"),
        ({"ChecksumAlgorithm": "SHA1"}, "INVALID_PARAMETER_VALUE"),
        ({"BlockIndex": 2048}, "INVALID_BLOCK"),  # 1 GiB = blocks 0..2047
        ({"BlockIndex": -1}, "INVALID_BLOCK"),
    ]
    for over, reason in bad:
        with pytest.raises(ClientError) as exc:
            put(**over)
        assert (error_of(exc)[0::2], reason_of(exc)) == (("ValidationException", 400), reason), over
    out = put()
    assert (out["Checksum"], out["ChecksumAlgorithm"]) == (sha(good), "SHA256")
    put(BlockIndex=2047, BlockData=block_data(1), Checksum=sha(block_data(1)))
    with pytest.raises(ClientError) as exc:  # unknown snapshot
        put(SnapshotId="snap-0123456789abcdef0")
    assert (error_of(exc)[0::2], reason_of(exc)) == (("ResourceNotFoundException", 404), "SNAPSHOT_NOT_FOUND")
    ebs.complete_snapshot(SnapshotId=snap_id, ChangedBlocksCount=2)
    with pytest.raises(ClientError) as exc:  # "The target snapshot must be in the pending state."
        put()
    assert error_of(exc)[0] == "ValidationException"
    assert sorted(all_blocks(ebs, snap_id)) == [0, 2047]


def test_complete_snapshot_with_a_wrong_count_or_checksum_ends_in_error(emu, ec2):
    ebs = ebs_client(emu)
    for count, checksum in ((2, None), (1, sha(b"not the aggregate"))):
        snap_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
        data = block_data(3)
        ebs.put_snapshot_block(SnapshotId=snap_id, BlockIndex=3, BlockData=data, DataLength=BLOCK,
                               Checksum=sha(data), ChecksumAlgorithm="SHA256")
        extra = {"Checksum": checksum, "ChecksumAlgorithm": "SHA256",
                 "ChecksumAggregationMethod": "LINEAR"} if checksum else {}
        assert ebs.complete_snapshot(SnapshotId=snap_id, ChangedBlocksCount=count, **extra)["Status"] == "error"
        assert ec2.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]["State"] == "error"


# ---------------------------------------------------------------------------
# Uploading a disk image as coldsnap does
# ---------------------------------------------------------------------------


def test_upload_skips_zero_blocks_pads_the_last_and_reads_back(emu, tmp_path):
    ebs = ebs_client(emu)
    tail = b"end of disk"
    blocks = {0: block_data(0), 5: block_data(5), 9: b"\0" * BLOCK}  # block 9 all zeros: skipped
    size = 10 * BLOCK + len(tail)  # 11 blocks, the last one partial
    path = write_image(tmp_path, blocks, size)
    with open(path, "r+b") as f:
        f.seek(10 * BLOCK)
        f.write(tail)
    emu.clear_calls()
    snap_id = upload_disk_image(ebs, path, description="disk")
    puts = sorted(c["block_index"] for c in emu.control("GET", "/_emulator/calls?service=ebs")["calls"]
                  if c["action"] == "PutSnapshotBlock")
    assert puts == [0, 5, 10]
    listed = ebs.list_snapshot_blocks(SnapshotId=snap_id)
    assert (listed["VolumeSize"], listed["BlockSize"]) == (1, BLOCK)  # 5 MiB rounds up to 1 GiB
    assert all_blocks(ebs, snap_id) == {0: blocks[0], 5: blocks[5], 10: tail.ljust(BLOCK, b"\0")}
    with pytest.raises(UploadError):
        upload_disk_image(ebs, write_image(tmp_path, {}, 2 * 1024 ** 3 + 1, "big.img"), volume_size_gib=2)


# ---------------------------------------------------------------------------
# Reading a snapshot
# ---------------------------------------------------------------------------


@pytest.fixture
def many_blocks(emu, tmp_path):
    """A 1 GiB snapshot with 230 written blocks (every 7th index from 3)."""
    indexes = [3 + 7 * n for n in range(230)]
    path = write_image(tmp_path, {i: f"#{i}".encode() for i in indexes}, (indexes[-1] + 1) * BLOCK)
    return upload_disk_image(ebs_client(emu), path, volume_size_gib=1, workers=16), indexes


def test_list_snapshot_blocks_pages_in_index_order_with_a_token_per_block(emu, many_blocks):
    snap_id, indexes = many_blocks
    ebs = ebs_client(emu, parameter_validation=False)
    first = ebs.list_snapshot_blocks(SnapshotId=snap_id, MaxResults=100)
    second = ebs.list_snapshot_blocks(SnapshotId=snap_id, MaxResults=100, NextToken=first["NextToken"])
    third = ebs.list_snapshot_blocks(SnapshotId=snap_id, MaxResults=100, NextToken=second["NextToken"])
    pages = [first, second, third]
    assert [len(p["Blocks"]) for p in pages] == [100, 100, 30] and "NextToken" not in third
    assert [b["BlockIndex"] for p in pages for b in p["Blocks"]] == indexes  # only written blocks, in order
    tokens = [b["BlockToken"] for p in pages for b in p["Blocks"]]
    assert len(set(tokens)) == 230
    assert all(t and set(t) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") for t in tokens)
    assert all((p["VolumeSize"], p["BlockSize"]) == (1, BLOCK) for p in pages)
    # Under 100: "the API will return at least 100 results" (EBS FAQ).
    assert len(ebs.list_snapshot_blocks(SnapshotId=snap_id, MaxResults=10)["Blocks"]) == 100
    # Without MaxResults: everything (at most 10,000) in one page.
    everything = ebs.list_snapshot_blocks(SnapshotId=snap_id)
    assert len(everything["Blocks"]) == 230 and "NextToken" not in everything
    # StartingBlockIndex: from that index or the next written one; ignored with NextToken.
    start = ebs.list_snapshot_blocks(SnapshotId=snap_id, StartingBlockIndex=11)
    assert start["Blocks"][0]["BlockIndex"] == 17
    ignored = ebs.list_snapshot_blocks(SnapshotId=snap_id, MaxResults=100, NextToken=first["NextToken"],
                                       StartingBlockIndex=0)
    assert ignored["Blocks"] == second["Blocks"]
    for bad, reason in (({"MaxResults": 10001}, "INVALID_PARAMETER_VALUE"),
                        ({"NextToken": "bm90IGEgdG9rZW4="}, "INVALID_PAGE_TOKEN")):
        with pytest.raises(ClientError) as exc:
            ebs.list_snapshot_blocks(SnapshotId=snap_id, **bad)
        assert (error_of(exc)[0::2], reason_of(exc)) == (("ValidationException", 400), reason)


def test_get_snapshot_block_returns_data_checksum_and_refuses_unknown_blocks_and_tokens(emu, many_blocks):
    snap_id, indexes = many_blocks
    ebs = ebs_client(emu)
    blocks = ebs.list_snapshot_blocks(SnapshotId=snap_id)["Blocks"]
    got = ebs.get_snapshot_block(SnapshotId=snap_id, BlockIndex=blocks[1]["BlockIndex"],
                                 BlockToken=blocks[1]["BlockToken"])
    data = got["BlockData"].read()
    assert data == b"#10".ljust(BLOCK, b"\0")
    assert (got["DataLength"], got["Checksum"], got["ChecksumAlgorithm"]) == (BLOCK, sha(data), "SHA256")
    for index, token, reason in ((4, blocks[0]["BlockToken"], "INVALID_BLOCK"),  # never written
                                 (10, blocks[0]["BlockToken"], "INVALID_BLOCK_TOKEN")):  # another block's token
        with pytest.raises(ClientError) as exc:
            ebs.get_snapshot_block(SnapshotId=snap_id, BlockIndex=index, BlockToken=token)
        assert (error_of(exc)[0::2], reason_of(exc)) == (("ValidationException", 400), reason)
    with pytest.raises(ClientError) as exc:
        ebs.get_snapshot_block(SnapshotId="snap-0123456789abcdef0", BlockIndex=3, BlockToken="AAAA")
    assert (error_of(exc)[0::2], reason_of(exc)) == (("ResourceNotFoundException", 404), "SNAPSHOT_NOT_FOUND")


def test_a_corrupted_block_read_no_longer_matches_its_checksum_and_only_as_often_as_asked(emu, many_blocks):
    snap_id, indexes = many_blocks
    ebs = ebs_client(emu)
    tokens = {b["BlockIndex"]: b["BlockToken"] for b in ebs.list_snapshot_blocks(SnapshotId=snap_id)["Blocks"]}

    def read(index):
        got = ebs.get_snapshot_block(SnapshotId=snap_id, BlockIndex=index, BlockToken=tokens[index])
        return got["BlockData"].read(), got["Checksum"], got["DataLength"]

    stored = {i: f"#{i}".encode().ljust(BLOCK, b"\0") for i in (10, 17)}
    emu.control("POST", "/_emulator/corrupt-blocks", {"snapshot_id": snap_id, "block_index": 10, "count": 2})
    for _ in range(2):
        data, checksum, length = read(10)
        # The stored block's checksum and length, other data: one bit off.
        assert (checksum, length, len(data)) == (sha(stored[10]), BLOCK, BLOCK)
        assert sha(data) != checksum
        assert sum(bin(a ^ b).count("1") for a, b in zip(data, stored[10])) == 1
    assert read(10) == (stored[10], sha(stored[10]), BLOCK)  # count used up
    assert read(17) == (stored[17], sha(stored[17]), BLOCK)  # another block: untouched
    listed = emu.control("GET", "/_emulator/corrupt-blocks")["corruptions"]
    assert [(c["snapshot_id"], c["block_index"], c["remaining"], c["corrupted"]) for c in listed] == [
        (snap_id, 10, 0, 2)]

    # Any block of the snapshot, scoped to a region; a failed read uses none.
    emu.control("POST", "/_emulator/corrupt-blocks", {"snapshot_id": snap_id, "region": R2})
    assert read(17)[0] == stored[17]  # the read is in R1
    emu.control("POST", "/_emulator/corrupt-blocks", {"snapshot_id": snap_id, "region": R1})
    with pytest.raises(ClientError):
        ebs.get_snapshot_block(SnapshotId=snap_id, BlockIndex=17, BlockToken=tokens[10])
    data, checksum, _ = read(17)
    assert sha(data) != checksum == sha(stored[17])
    assert read(17)[0] == stored[17]

    for bad in ({}, {"snapshot_id": "ami-0123456789abcdef0"}, {"snapshot_id": snap_id, "block_index": -1},
                {"snapshot_id": snap_id, "count": 1.5}):
        with pytest.raises(Exception) as exc:
            emu.control("POST", "/_emulator/corrupt-blocks", bad)
        assert exc.value.status == 400, bad
    emu.control("POST", "/_emulator/corrupt-blocks", {"snapshot_id": snap_id})
    emu.reset()
    assert emu.control("GET", "/_emulator/corrupt-blocks")["corruptions"] == []


def test_snapshots_ec2_made_read_as_empty(emu, ec2):
    image_id = emu.seed_image(region=R1, name="seeded", snapshots=[{"size": 8}])
    snap_id = describe(ec2, image_id)["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    listed = ebs_client(emu).list_snapshot_blocks(SnapshotId=snap_id)
    assert (listed["Blocks"], listed["VolumeSize"], listed["BlockSize"]) == ([], 8, BLOCK)


# ---------------------------------------------------------------------------
# Images over uploaded snapshots; copies carry the content
# ---------------------------------------------------------------------------


def test_images_over_uploaded_snapshots_by_register_image_or_seeding(emu, ec2, tmp_path):
    ebs = ebs_client(emu)
    root = upload_disk_image(ebs, write_image(tmp_path, {0: block_data(0)}, BLOCK, "root.img"), volume_size_gib=3)
    data = upload_disk_image(ebs, write_image(tmp_path, {1: block_data(1)}, BLOCK * 4, "data.img"))
    registered = ec2.register_image(
        Name="uploaded", RootDeviceName="/dev/xvda", VirtualizationType="hvm", Architecture="x86_64",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": root}},
                             {"DeviceName": "/dev/sdb", "Ebs": {"SnapshotId": data}}],
    )["ImageId"]
    seeded = emu.seed_image(region=R1, name="seeded", tags={"publish": "public"},
                            snapshots=[{"snapshot_id": root}, {"snapshot_id": data}])
    for image_id in (registered, seeded):
        bdm = [(m["DeviceName"], m["Ebs"]["SnapshotId"], m["Ebs"]["VolumeSize"])
               for m in describe(ec2, image_id)["BlockDeviceMappings"]]
        assert bdm == [("/dev/xvda", root, 3), ("/dev/sdb", data, 1)]
    pending = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    for snapshots in ([{"snapshot_id": "snap-0123456789abcdef0"}], [{"snapshot_id": pending}]):
        with pytest.raises(Exception) as exc:
            emu.seed_image(region=R1, name="bad", snapshots=snapshots)
        assert exc.value.status == 400


def test_copy_image_carries_its_source_snapshots_content(emu, ec2, ec2_r2, tmp_path):
    ebs = ebs_client(emu)
    blocks = {0: block_data(0), 700: block_data(700)}
    root = upload_disk_image(ebs, write_image(tmp_path, blocks, 701 * BLOCK), volume_size_gib=1)
    source = emu.seed_image(region=R1, name="src", snapshots=[{"snapshot_id": root}])
    copy_id = ec2_r2.copy_image(SourceImageId=source, SourceRegion=R1, Name="copy")["ImageId"]
    emu.complete_copies()
    copy_snap = describe(ec2_r2, copy_id)["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
    assert copy_snap != root
    ebs_r2 = ebs_client(emu, R2)
    assert all_blocks(ebs_r2, copy_snap) == blocks == all_blocks(ebs, root)
    source_tokens = {b["BlockToken"] for b in ebs.list_snapshot_blocks(SnapshotId=root)["Blocks"]}
    copy_tokens = {b["BlockToken"] for b in ebs_r2.list_snapshot_blocks(SnapshotId=copy_snap)["Blocks"]}
    assert not source_tokens & copy_tokens  # the copy's own tokens


# ---------------------------------------------------------------------------
# Faults, latency, call log, throttling on EBS actions
# ---------------------------------------------------------------------------


def test_ebs_faults_are_rest_json_errors_with_the_models_status(emu):
    emu.fault("ListSnapshotBlocks", "InternalServerException", count=1)
    emu.fault("StartSnapshot", "RequestThrottledException", count=2, region=R1)
    ebs = ebs_client(emu)
    with pytest.raises(ClientError) as exc:
        ebs.list_snapshot_blocks(SnapshotId="snap-0123456789abcdef0")
    assert error_of(exc)[0::2] == ("InternalServerException", 500)
    retrying = ebs_client(emu, retries={"total_max_attempts": 3, "mode": "standard"})
    assert retrying.start_snapshot(VolumeSize=1)["Status"] == "pending"  # throttled twice, then through
    calls = emu.control("GET", "/_emulator/calls?service=ebs")["calls"]
    assert [c["action"] for c in calls] == ["ListSnapshotBlocks"] + ["StartSnapshot"] * 3
    assert calls[0]["snapshot_id"] == "snap-0123456789abcdef0"
    assert emu.calls() == []  # the default call log stays EC2's


def test_latency_applies_to_ebs_actions(emu):
    ebs = ebs_client(emu)
    snap_id = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
    emu.config(latency_ms=250)
    started = time.monotonic()
    ebs.complete_snapshot(SnapshotId=snap_id, ChangedBlocksCount=0)
    assert time.monotonic() - started >= 0.25


def test_a_held_ebs_call_waits_until_released(emu, many_blocks):
    # POST /_emulator/holds catches EBS actions as it does EC2's: a test can
    # interleave a block read with another run's.
    snap_id, _ = many_blocks
    ebs = ebs_client(emu)
    block = ebs.list_snapshot_blocks(SnapshotId=snap_id)["Blocks"][0]
    emu.control("POST", "/_emulator/holds", {"action": "GetSnapshotBlock", "region": R1, "count": 1})
    with ThreadPoolExecutor(max_workers=1) as pool:
        held = pool.submit(ebs.get_snapshot_block, SnapshotId=snap_id, BlockIndex=block["BlockIndex"],
                           BlockToken=block["BlockToken"])
        for _ in range(100):
            if emu.control("GET", "/_emulator/holds")["holds"][0]["waiting"] == 1:
                break
            time.sleep(0.05)
        assert emu.control("GET", "/_emulator/holds")["holds"][0]["waiting"] == 1
        assert not held.done()
        ebs.list_snapshot_blocks(SnapshotId=snap_id)  # another action goes on
        assert emu.control("POST", "/_emulator/holds/release", {"action": "GetSnapshotBlock"})["released"] == 1
        assert held.result(timeout=10)["DataLength"] == BLOCK


def test_ebs_throttling_uses_the_documented_request_rate(emu):
    emu.control("POST", "/_emulator/throttling", {"enabled": True})
    ebs = ebs_client(emu)
    # Twice the bucket, sent at once (a slow, loaded machine must not let
    # the bucket refill between them).
    snap_ids = [ebs.start_snapshot(VolumeSize=1)["SnapshotId"] for _ in range(20)]

    def complete(snap_id):
        try:
            ebs.complete_snapshot(SnapshotId=snap_id, ChangedBlocksCount=0)
            return "ok"
        except ClientError as e:
            return (e.response["Error"]["Code"], e.response.get("Reason"),
                    e.response["ResponseMetadata"]["HTTPStatusCode"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        outcomes = list(pool.map(complete, snap_ids))
    # "CompleteSnapshot requests per account: 10 per second" (EBS quotas):
    # the first 10 at least pass (a refill may let a few more through).
    assert outcomes.count("ok") >= 10
    assert ("RequestThrottledException", "ACCOUNT_THROTTLED", 400) in outcomes
    buckets = [b for b in emu.control("GET", "/_emulator/throttling")["buckets"] if b["category"] == "ebs"]
    assert [(b["action"], b["capacity"], b["refill_rate"]) for b in buckets] == [("CompleteSnapshot", 10, 10)]
    # StartSnapshot has no documented rate here: no bucket unless overridden.
    emu.control("POST", "/_emulator/throttling", {"enabled": True,
                                                  "overrides": {"GetSnapshotBlock": {"capacity": 1, "refill_rate": 0}}})
    with pytest.raises(ClientError) as exc:  # the one token: the request reaches the rules
        ebs.get_snapshot_block(SnapshotId=snap_ids[0], BlockIndex=0, BlockToken="AAAA")
    assert error_of(exc)[0] == "ValidationException"
    with pytest.raises(ClientError) as exc:  # no token left
        ebs.get_snapshot_block(SnapshotId=snap_ids[0], BlockIndex=0, BlockToken="AAAA")
    assert error_of(exc)[0] == "RequestThrottledException"
    # Refused calls are in the call log, marked, as EC2's are.
    refused = [c["action"] for c in emu.control("GET", "/_emulator/calls?service=ebs")["calls"] if c.get("throttled")]
    assert refused == ["CompleteSnapshot"] * (20 - outcomes.count("ok")) + ["GetSnapshotBlock"]
