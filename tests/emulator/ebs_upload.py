"""Upload a disk image as an EBS snapshot through the EBS direct APIs, the way
awslabs/coldsnap's ``upload.rs`` does it:

* ``StartSnapshot`` with the volume size in GiB (the file's size rounded up,
  at least 1; or the size asked for, which must be big enough);
* one ``PutSnapshotBlock`` per block of ``BlockSize`` bytes (512 KiB, as
  StartSnapshot answers it), each with its Base64 SHA-256 checksum and
  ``ChecksumAlgorithm`` SHA256; blocks of all zeros are skipped (a snapshot
  reads them as zeros), the last block is padded with zeros;
* ``CompleteSnapshot`` with ``ChangedBlocksCount`` (the blocks written) and
  the linear aggregated checksum (SHA-256 over the blocks' digests in block
  order).

Standard library plus a boto3 ``ebs`` client (the emulator's, from
``Emulator.client("ebs", region)``; or any). Used by the emulator's tests,
and meant for the demo and the bench: it is how a disk image gets into the
emulator (no back door).
"""

from __future__ import annotations

import base64
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

GIB = 1024 ** 3


class UploadError(RuntimeError):
    pass


def _checksum(data: bytes) -> tuple[str, bytes]:
    digest = hashlib.sha256(data).digest()
    return base64.b64encode(digest).decode(), digest


def upload_disk_image(ebs_client: Any, path: str | os.PathLike[str], *, volume_size_gib: int | None = None,
                      description: str | None = None, tags: dict[str, str] | None = None,
                      workers: int = 8) -> str:
    """Upload the file at ``path`` as a new snapshot; return its id once
    CompleteSnapshot has answered ``completed``.

    volume_size_gib: the snapshot's volume size (default: the file's size
    rounded up to a GiB, at least 1). description: default the file's name.
    tags: the snapshot's tags. workers: blocks put concurrently.
    """
    size = os.path.getsize(path)
    needed = max((size + GIB - 1) // GIB, 1)
    volume_size = needed if volume_size_gib is None else volume_size_gib
    if volume_size < needed:
        raise UploadError(f"volume size {volume_size} GiB is too small for {size} bytes (needs {needed} GiB)")
    start: dict[str, Any] = {"VolumeSize": volume_size,
                             "Description": description if description is not None else os.path.basename(path),
                             "Timeout": 10}
    if tags:
        start["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    started = ebs_client.start_snapshot(**start)
    snapshot_id, block_size = started["SnapshotId"], int(started["BlockSize"])
    count = (size + block_size - 1) // block_size

    zeros = bytes(block_size)

    def blocks() -> Any:
        # Read in order; blocks of all zeros are not written (coldsnap:
        # "Blocks of all zeroes should be omitted from the snapshot.").
        with open(path, "rb") as f:
            for index in range(count):
                data = f.read(block_size)
                if data != zeros[:len(data)]:
                    # "Blocks must be padded to the expected block size."
                    yield index, data.ljust(block_size, b"\0")

    def put(item: tuple[int, bytes]) -> tuple[int, bytes]:
        index, data = item
        checksum, digest = _checksum(data)
        ebs_client.put_snapshot_block(
            SnapshotId=snapshot_id, BlockIndex=index, BlockData=data, DataLength=len(data),
            Checksum=checksum, ChecksumAlgorithm="SHA256",
        )
        return index, digest

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        written = list(pool.map(put, blocks()))
    linear = hashlib.sha256(b"".join(digest for _i, digest in sorted(written))).digest()
    status = ebs_client.complete_snapshot(
        SnapshotId=snapshot_id, ChangedBlocksCount=len(written),
        Checksum=base64.b64encode(linear).decode(), ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR",
    )["Status"]
    if status != "completed":
        raise UploadError(f"CompleteSnapshot of {snapshot_id} answered {status}")
    return snapshot_id
