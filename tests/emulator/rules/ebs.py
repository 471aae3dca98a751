"""The EBS direct APIs: StartSnapshot, PutSnapshotBlock, CompleteSnapshot,
ListSnapshotBlocks, GetSnapshotBlock.

Owns: a snapshot's blocks as the EBS direct APIs read and write them
(512 KiB blocks, SHA-256 checksums, block tokens, pagination), the checks
AWS documents for each action (EBS direct APIs reference), the snapshot's
life (``pending`` until CompleteSnapshot, readable only once ``completed``;
its EC2 ``State`` follows), ``copy_blocks`` (CopyImage: a copy's snapshots
carry the source's content) and ``snapshot_view`` (GET /_emulator/snapshots).

The blocks live where moto keeps them (``moto.ebs`` backends, one
``EBSSnapshot`` per snapshot, its ``blocks`` by index): one source of truth.
A snapshot EC2 knows (seeded, CreateSnapshot, a copy) that was never written
through these APIs is a completed snapshot with no blocks: every block reads
as zeros, as a snapshot of an empty volume does.

Also owns the corrupted reads a test asks for (``POST
/_emulator/corrupt-blocks``): a GetSnapshotBlock answer whose data no
longer matches its ``Checksum``.

Leaves to others: images over these snapshots (images.py: RegisterImage,
seed_image with ``snapshot_id``), copying the blocks at CopyImage
(copies.py calls ``copy_blocks``), throttling and faults (server.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import hashlib
import json
import os
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.ebs.models import Block, EBSSnapshot, ebs_backends
from moto.ebs.responses import EBSResponse

from .images import new_snapshot, region_backend
from .state import STATE

# EBS direct APIs reference (PutSnapshotBlock, GetSnapshotBlock): "A block
# index is a logical index in units of 512 KiB blocks. To identify the block
# index, divide the logical offset of the data in the logical volume by the
# block size (logical offset of data/524288)." moto 5.2.5 answered BlockSize
# 512.
BLOCK_SIZE = 524288
GIB = 1024 ** 3
BLOCKS_PER_GIB = GIB // BLOCK_SIZE
# PutSnapshotBlock ChecksumAlgorithm: "Currently, the only supported
# algorithm is SHA256."
SHA256 = "SHA256"
# ListSnapshotBlocks MaxResults: "Valid Range: Minimum value of 100. Maximum
# value of 10000."
LIST_MAX_RESULTS = (100, 10000)
# Without MaxResults: not documented; the emulator answers pages of the
# largest size.
LIST_DEFAULT_PAGE = 10000
# ListSnapshotBlocks ExpiryTime, "The time when the BlockToken expires." How
# long a token lives is not documented; the emulator says one hour from the
# listing and never expires tokens (README).
TOKEN_LIFETIME = _dt.timedelta(hours=1)


class EBSError(ServiceException):
    """Serialised by moto with the EBS model (this module is not moto's, so
    moto looks the error up in the service of the request)."""


def _error(code: str, message: str, reason: str | None = None) -> ServiceException:
    """An EBS error as the EBS model has it (HTTP status from the model:
    ValidationException 400, ResourceNotFoundException 404), with its
    ``Reason`` (one of the values the model lists for that error)."""
    error = EBSError(code, message)
    if reason is not None:
        error.Reason = reason  # type: ignore[attr-defined]
        error.reason = reason  # type: ignore[attr-defined]
    return error


def _validation(message: str, reason: str) -> ServiceException:
    # ValidationException: "The input fails to satisfy the constraints of
    # the EBS direct APIs." Reason, e.g. INVALID_BLOCK_TOKEN, INVALID_BLOCK,
    # INVALID_PAGE_TOKEN, INVALID_PARAMETER_VALUE, INVALID_VOLUME_SIZE.
    return _error("ValidationException", message, reason)


def _not_found(snapshot_id: str) -> ServiceException:
    # ResourceNotFoundException: "The specified resource does not exist.",
    # Reason SNAPSHOT_NOT_FOUND.
    return _error("ResourceNotFoundException", f"The snapshot '{snapshot_id}' does not exist.",
                  "SNAPSHOT_NOT_FOUND")


def new_block_token() -> str:
    # BlockToken pattern in the API reference: ^[A-Za-z0-9+/=]+$ (moto's
    # were UUIDs, with "-"). A new token for every write of a block.
    return base64.b64encode(os.urandom(30)).decode()


def checksum_of(data: bytes) -> str:
    # "A Base64-encoded SHA256 checksum of the data."
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _new_block(data: bytes) -> Block:
    block = Block(data, checksum_of(data), SHA256, len(data))
    block.block_token = new_block_token()
    return block


def find_snapshot(account: str, region: str, snapshot_id: str) -> EBSSnapshot:
    """The caller's snapshot, as the EBS direct APIs see it.

    Only the caller's own snapshots (the emulator does not model reading
    snapshots shared by other accounts). One EC2 knows but that was never
    written through the EBS direct APIs is completed and has no blocks.
    """
    backend = ebs_backends[account][region]
    snap = backend.snapshots.get(snapshot_id)
    if snap is not None:
        return snap
    ec2_snap = region_backend(account, region).snapshots.get(snapshot_id)
    if ec2_snap is None:
        raise _not_found(snapshot_id)
    snap = EBSSnapshot(account_id=account, snapshot=ec2_snap)
    snap.region = region  # type: ignore[attr-defined]
    snap.status = "completed" if ec2_snap.status == "completed" else ec2_snap.status
    snap.block_size = BLOCK_SIZE
    backend.snapshots[snapshot_id] = snap
    return snap


def _completed(snap: EBSSnapshot) -> EBSSnapshot:
    if snap.status != "completed":
        # EBS User Guide, "Frequently asked questions for EBS direct APIs":
        # "Can a snapshot be accessed using the EBS direct APIs if it has a
        # pending status? No. The snapshot can be accessed only if it has a
        # completed status." The error is not documented: emulator's choice.
        raise _validation(f"The snapshot '{snap.snapshot_id}' is {snap.status}; only a completed "
                          "snapshot can be read.", "INVALID_SNAPSHOT_ID")
    return snap


def _ec2_snapshot(snap: EBSSnapshot) -> Any:
    return region_backend(snap.account_id, snap.region).snapshots.get(snap.snapshot_id)


def _set_status(snap: EBSSnapshot, status: str) -> None:
    # One state for both APIs: EC2's DescribeSnapshots State is pending |
    # completed | error, as is the EBS direct APIs' Status.
    snap.status = status
    ec2_snap = _ec2_snapshot(snap)
    if ec2_snap is not None:
        ec2_snap.status = status


def _int(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _validation(f"{name} must be an integer.", "INVALID_PARAMETER_VALUE") from None


# --------------------------------------------------------------------------
# Writing: StartSnapshot, PutSnapshotBlock, CompleteSnapshot
# --------------------------------------------------------------------------


def start_snapshot(self: EBSResponse) -> ActionResult:
    volume_size = _int(self._get_param("VolumeSize"), "VolumeSize")
    tags = self._get_param("Tags") or []
    description = self._get_param("Description")
    encrypted = bool(self._get_param("Encrypted"))
    account, region = self.current_account, self.region
    if volume_size is None or volume_size < 1:
        # StartSnapshot VolumeSize: "The size of the volume, in GiB."
        # Minimum 1 (API model). Reason INVALID_VOLUME_SIZE.
        raise _validation("VolumeSize must be at least 1 (GiB).", "INVALID_VOLUME_SIZE")
    with STATE.lock:
        # moto 5.2.5 left a volume behind (StartSnapshot creates none).
        ec2_snap = new_snapshot(region_backend(account, region), account, encrypted, volume_size,
                                description or "", None)
        if tags:
            ec2_snap.add_tags({tag["Key"]: tag["Value"] for tag in tags})
        snap = EBSSnapshot(account_id=account, snapshot=ec2_snap)
        snap.region = region  # type: ignore[attr-defined]
        snap.block_size = BLOCK_SIZE
        # StartSnapshot: "The new snapshot enters the pending state after the
        # request completes."
        _set_status(snap, "pending")
        ebs_backends[account][region].snapshots[snap.snapshot_id] = snap
    return ActionResult({
        "SnapshotId": snap.snapshot_id, "OwnerId": account, "Status": snap.status,
        "StartTime": snap.start_time, "VolumeSize": snap.volume_size, "BlockSize": BLOCK_SIZE,
        "Tags": snap.tags, "Description": snap.description,
    })


def put_snapshot_block(self: EBSResponse) -> ActionResult:
    snapshot_id = self._get_param("SnapshotId")
    index = _int(self._get_param("BlockIndex"), "BlockIndex")
    data = self._get_param("BlockData") or b""
    if isinstance(data, str):
        data = data.encode("latin-1")
    length = _int(self._get_param("DataLength"), "DataLength")
    checksum = self._get_param("Checksum")
    algorithm = self._get_param("ChecksumAlgorithm")
    with STATE.lock:
        snap = find_snapshot(self.current_account, self.region, snapshot_id)
        if snap.status != "pending":
            # PutSnapshotBlock: "The target snapshot must be in the pending
            # state." The error is not documented: emulator's choice.
            raise _validation(f"The snapshot '{snapshot_id}' is {snap.status}; blocks can be written "
                              "only while it is pending.", "INVALID_SNAPSHOT_ID")
        if algorithm != SHA256:
            # ChecksumAlgorithm: "Currently, the only supported algorithm is SHA256."
            raise _validation(f"ChecksumAlgorithm {algorithm!r} is not supported: only SHA256.",
                              "INVALID_PARAMETER_VALUE")
        if length != BLOCK_SIZE:
            # DataLength: "Currently, the only supported size is 524288."
            raise _validation(f"DataLength {length} is not valid: the only supported size is {BLOCK_SIZE}.",
                              "INVALID_PARAMETER_VALUE")
        if len(data) != length:
            # The data is the DataLength bytes the header announces.
            raise _validation(f"The block data is {len(data)} bytes, DataLength says {length}.",
                              "INVALID_BLOCK")
        if index is None or not 0 <= index < snap.volume_size * BLOCKS_PER_GIB:
            # BlockIndex: "Valid Range: Minimum value of 0", "a logical index
            # in units of 512 KiB blocks" of the volume (VolumeSize GiB), so
            # it must fall inside the volume. Reason: emulator's choice.
            raise _validation(f"BlockIndex {index} is outside the volume of {snap.volume_size} GiB "
                              f"(blocks 0 to {snap.volume_size * BLOCKS_PER_GIB - 1}).", "INVALID_BLOCK")
        if checksum != checksum_of(data):
            # BlockData: "you must generate and provide a Base64-encoded
            # SHA256 checksum for the block data ... It is validated against
            # a checksum generated by Amazon EBS ... If the checksums do not
            # correspond, the request fails." Reason: emulator's choice.
            raise _validation("The checksum of the block data does not match the checksum given.",
                              "INVALID_PARAMETER_VALUE")
        # "If the specified block contains data, the existing data is overwritten."
        snap.blocks[index] = _new_block(bytes(data))
    return ActionResult({"Checksum": checksum, "ChecksumAlgorithm": SHA256})


def linear_checksum(snap: EBSSnapshot) -> str:
    # CompleteSnapshot Checksum: "To generate the aggregated checksum using
    # the linear aggregation method, arrange the checksums for each written
    # block in ascending order of their block index, concatenate them to form
    # a single string, and then generate the checksum on the entire string
    # using the SHA256 algorithm." (the decoded digests, as coldsnap does)
    digest = hashlib.sha256()
    for index in sorted(snap.blocks):
        digest.update(base64.b64decode(snap.blocks[index].checksum))
    return base64.b64encode(digest.digest()).decode()


def complete_snapshot(self: EBSResponse) -> ActionResult:
    snapshot_id = self._get_param("SnapshotId")
    changed = _int(self._get_param("ChangedBlocksCount"), "ChangedBlocksCount")
    checksum = self._get_param("Checksum")
    algorithm = self._get_param("ChecksumAlgorithm")
    method = self._get_param("ChecksumAggregationMethod")
    with STATE.lock:
        snap = find_snapshot(self.current_account, self.region, snapshot_id)
        if snap.status != "pending":
            # Not documented: emulator's choice (a snapshot completes once).
            raise _validation(f"The snapshot '{snapshot_id}' is {snap.status}, not pending.",
                              "INVALID_SNAPSHOT_ID")
        if changed is None or changed < 0:
            # ChangedBlocksCount: "The number of blocks that were written to
            # the snapshot." Required; minimum 0.
            raise _validation("ChangedBlocksCount is required (the number of blocks written).",
                              "INVALID_PARAMETER_VALUE")
        if checksum is not None and (algorithm != SHA256 or method != "LINEAR"):
            # ChecksumAlgorithm: only SHA256; ChecksumAggregationMethod: only LINEAR.
            raise _validation("Checksum needs ChecksumAlgorithm SHA256 and ChecksumAggregationMethod "
                              "LINEAR.", "INVALID_PARAMETER_VALUE")
        wrong_count = changed != len(snap.blocks)
        wrong_sum = checksum is not None and checksum != linear_checksum(snap)
        # CompleteSnapshot Status: completed | pending | error. A count or
        # an aggregated checksum that does not match what was written ends
        # the snapshot in error (which AWS does then is not documented:
        # emulator's choice; README).
        _set_status(snap, "error" if wrong_count or wrong_sum else "completed")
        if wrong_count or wrong_sum:
            snap.emu_error = (  # type: ignore[attr-defined]
                f"ChangedBlocksCount {changed}, {len(snap.blocks)} blocks written" if wrong_count
                else "the aggregated checksum does not match the blocks written")
    return ActionResult({"Status": snap.status})


# --------------------------------------------------------------------------
# Reading: ListSnapshotBlocks, GetSnapshotBlock
# --------------------------------------------------------------------------


def _page_token(snapshot_id: str, after: int) -> str:
    # NextToken pattern: ^[A-Za-z0-9+/=]+$, at most 256 characters.
    raw = json.dumps({"v": 1, "s": snapshot_id, "a": after}, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode()


def _token_after(token: str, snapshot_id: str) -> int:
    try:
        data = json.loads(base64.b64decode(token.encode(), validate=True))
        if data.get("v") != 1 or data.get("s") != snapshot_id or not isinstance(data.get("a"), int):
            raise ValueError
        return int(data["a"])
    except (ValueError, binascii.Error, TypeError, AttributeError):
        # ValidationException Reason INVALID_PAGE_TOKEN. A token of another
        # snapshot is refused too (emulator's choice).
        raise _validation("The pagination token is not valid.", "INVALID_PAGE_TOKEN") from None


def list_snapshot_blocks(self: EBSResponse) -> ActionResult:
    snapshot_id = self._get_param("SnapshotId")
    token = self._get_param("NextToken") or None
    max_results = _int(self._get_param("MaxResults"), "MaxResults")
    starting = _int(self._get_param("StartingBlockIndex"), "StartingBlockIndex")
    low, high = LIST_MAX_RESULTS
    if max_results is not None and max_results > high:
        # MaxResults: "Maximum value of 10000." Code: emulator's choice.
        raise _validation(f"MaxResults {max_results} is over {high}.", "INVALID_PARAMETER_VALUE")
    if starting is not None and starting < 0:
        raise _validation("StartingBlockIndex must be at least 0.", "INVALID_PARAMETER_VALUE")
    # EBS FAQ: "If you submit a request with a MaxResult parameter value of
    # under 100, and there are more than 100 blocks in the snapshot, then the
    # API will return at least 100 results."
    size = LIST_DEFAULT_PAGE if max_results is None else max(max_results, low)
    with STATE.lock:
        snap = _completed(find_snapshot(self.current_account, self.region, snapshot_id))
        if token:
            # "If you specify NextToken, then StartingBlockIndex is ignored."
            first = _token_after(token, snapshot_id) + 1
        else:
            # "The list in the response will start from this block index or
            # the next valid block index in the snapshot."
            first = starting or 0
        # EBS FAQ: "The block indexes returned are unique, and in numerical
        # order." Only blocks that were written are listed; the others read
        # as zeros (EBS User Guide, "Read snapshots").
        indexes = sorted(i for i in snap.blocks if i >= first)
        page = indexes[:size]
        result: dict[str, Any] = {
            "Blocks": [{"BlockIndex": i, "BlockToken": snap.blocks[i].block_token} for i in page],
            "ExpiryTime": utcnow() + TOKEN_LIFETIME,
            # "The size of the volume in GB." (VolumeSize, GiB)
            "VolumeSize": snap.volume_size,
            # "The size of the blocks in the snapshot, in bytes."
            "BlockSize": BLOCK_SIZE,
        }
        if len(indexes) > size:
            # "The value of NextToken is null when there are no more blocks
            # to return."
            result["NextToken"] = _page_token(snapshot_id, page[-1])
    return ActionResult(result)


def get_snapshot_block(self: EBSResponse) -> ActionResult:
    snapshot_id = self._get_param("SnapshotId")
    index = _int(self._get_param("BlockIndex"), "BlockIndex")
    token = self._get_param("BlockToken")
    with STATE.lock:
        snap = _completed(find_snapshot(self.current_account, self.region, snapshot_id))
        block = snap.blocks.get(index) if index is not None else None
        if block is None:
            # A block that was never written has no token to ask for it with
            # (ListSnapshotBlocks does not list it). Which error EBS gives is
            # not documented: ValidationException INVALID_BLOCK, emulator's
            # choice.
            raise _validation(f"The snapshot has no block {index}.", "INVALID_BLOCK")
        if token != block.block_token:
            # BlockToken: "The block token of the block from which to get
            # data", from ListSnapshotBlocks or ListChangedBlocks.
            raise _validation("The block token is not valid for this block.", "INVALID_BLOCK_TOKEN")
        data = block.block_data
        checksum = checksum_of(data)
        if _take_corruption(self.region, snapshot_id, index):
            data = corrupted(data)
    # GetSnapshotBlock response: DataLength ("The size of the data in the
    # block"), BlockData, Checksum ("The checksum generated for the block,
    # which is Base64 encoded"), ChecksumAlgorithm (SHA256). A corrupted
    # answer keeps the stored block's checksum and length: only the data
    # changed on its way.
    return ActionResult({"DataLength": len(data), "BlockData": data, "Checksum": checksum,
                         "ChecksumAlgorithm": SHA256})


def _take_corruption(region: str, snapshot_id: str, index: int) -> bool:
    """Whether this answer is one POST /_emulator/corrupt-blocks asked to
    corrupt (counted down; the lock is held)."""
    for entry in STATE.block_corruptions:
        if (entry["remaining"] > 0 and entry["snapshot_id"] == snapshot_id
                and entry["block_index"] in (None, index) and entry["region"] in (None, region)):
            entry["remaining"] -= 1
            entry["corrupted"] += 1
            return True
    return False


def corrupted(data: bytes) -> bytes:
    """The block with one bit flipped (its first byte's lowest), as a bit
    error on the way would leave it: the same length, a SHA-256 that no
    longer matches the Checksum sent with it. EBS User Guide, "Use EBS
    direct APIs checksums to validate snapshot data": "The block data that
    is transmitted is not signed as part of the Signature Version 4 signing
    process. As a result, checksums are used to validate the integrity of
    the data ... If the checksum that you generate doesn't match what Amazon
    EBS provided, you should consider the data not valid and retry your
    request." Such an answer can't be had from AWS at will: an
    emulator-only switch."""
    if not data:
        return data
    return bytes([data[0] ^ 0x01]) + data[1:]


# --------------------------------------------------------------------------
# For CopyImage and the control API
# --------------------------------------------------------------------------


def copy_blocks(source_account: str, source_region: str, source_snapshot_id: str,
                account: str, region: str, snapshot_id: str) -> None:
    """The copy's snapshot holds the source snapshot's blocks (CopyImage:
    "Initiates an AMI copy operation": the copy's snapshots are copies of
    the source's). Block tokens are the copy's own."""
    source = ebs_backends[source_account][source_region].snapshots.get(source_snapshot_id)
    if source is None or not source.blocks:
        return  # never written through the EBS direct APIs: nothing but zeros
    snap = find_snapshot(account, region, snapshot_id)
    snap.blocks = {i: _new_block(b.block_data) for i, b in source.blocks.items()}


def snapshot_view(snap: EBSSnapshot) -> dict[str, Any]:
    return {
        "snapshot_id": snap.snapshot_id, "owner": snap.account_id, "status": snap.status,
        "volume_size": snap.volume_size, "block_size": snap.block_size, "blocks": len(snap.blocks),
        "error": getattr(snap, "emu_error", None),
    }


# Methods of moto's EBSResponse, named after the actions in snake case.
HANDLERS = {
    "start_snapshot": start_snapshot,
    "put_snapshot_block": put_snapshot_block,
    "complete_snapshot": complete_snapshot,
    "list_snapshot_blocks": list_snapshot_blocks,
    "get_snapshot_block": get_snapshot_block,
}
