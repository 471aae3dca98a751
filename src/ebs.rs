//! The only module that talks to aws-sdk-ebs: the EBS direct APIs that read
//! a snapshot's blocks without a volume, an instance or a copy, as free
//! functions over a client. `ListSnapshotBlocks` is paged here to the end
//! (within a bound); every block `GetSnapshotBlock` returns has its SHA-256
//! checked here, so no byte leaves this module unverified.
//!
//! Pace: EBS documents its request quotas per account and region ("Quotas
//! for Amazon EBS" in the EBS User Guide; "CompleteSnapshot requests per
//! account: 10 per second"), but the rows for `ListSnapshotBlocks` and
//! `GetSnapshotBlock` could not be read from AWS's own pages here, so no
//! token bucket is kept for them (unlike EC2's, src/pace.rs). What keeps
//! the reads polite instead: a snapshot is listed once, a block is fetched
//! at most once per AMI (src/snapshot.rs caches it), at most
//! [`crate::snapshot::CONCURRENCY`] blocks are fetched at once, and a
//! throttled call (`RequestThrottledException`, which the API reference
//! says to "always retry") is retried with back-off by the SDK's standard
//! retry, with the same limits as every EC2 call (src/clients.rs).

use aws_sdk_ebs::error::ProvideErrorMetadata;
use aws_sdk_ebs::types::ChecksumAlgorithm;
use sha2::{Digest, Sha256};

pub use aws_sdk_ebs::Client;

use crate::disk::SNAPSHOT_BLOCK_SIZE;
use crate::ec2::{causes, described};

/// `ListSnapshotBlocks`' largest page ("Valid Range: Minimum value of 100.
/// Maximum value of 10000."): the fewest calls for a listing.
pub const MAX_RESULTS: i32 = 10_000;

/// An EBS direct API call that failed, or an answer that can't be used;
/// each names the snapshot (and the block) it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EbsError {
    #[error("{operation} of {snapshot_id} failed: {code}: {message}")]
    Call {
        operation: &'static str,
        snapshot_id: String,
        /// The service's error code (`AccessDeniedException`, ...), or the
        /// kind of failure when there was no answer (`DispatchFailure`, ...).
        code: String,
        message: String,
    },
    /// The block's bytes do not hash to the checksum EBS sent with them:
    /// corrupted on the way (or by whoever answered). Never used as data.
    #[error("block {index} of {snapshot_id}: {why}")]
    Checksum {
        snapshot_id: String,
        index: u64,
        why: String,
    },
    /// An answer that contradicts the API reference (a block size other
    /// than 512 KiB, a listing that never ends, ...).
    #[error("{snapshot_id}: {why}")]
    Unexpected { snapshot_id: String, why: String },
    /// More than reading one AMI may take: a volume larger than the
    /// budget, a listing longer than the tokens' memory bound.
    #[error("{snapshot_id}: {why}")]
    TooLarge { snapshot_id: String, why: String },
}

/// A snapshot's listing: its volume's size and the blocks that hold data,
/// each with the token `GetSnapshotBlock` needs. A block not listed reads
/// as zeros ("ListSnapshotBlocks ... only returns the block indexes and
/// tokens of blocks that have data written", EBS direct APIs FAQ).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockList {
    /// `VolumeSize` (GiB) in bytes.
    pub volume_bytes: u64,
    /// Block index and token, by index (EBS returns them in order, unique;
    /// sorted and deduplicated here all the same).
    pub blocks: Vec<(u64, String)>,
    /// `ListSnapshotBlocks` calls it took.
    pub pages: u64,
}

impl BlockList {
    /// The token of block `index`; `None` for a block that reads as zeros.
    pub fn token(&self, index: u64) -> Option<&str> {
        self.blocks
            .binary_search_by_key(&index, |(i, _)| *i)
            .ok()
            .map(|at| self.blocks[at].1.as_str())
    }
}

/// Lists every block of `snapshot_id`, page after page of [`MAX_RESULTS`].
/// Refuses a volume larger than `max_volume_bytes` after the first page
/// (before listing the rest), and a listing of more than `max_blocks`
/// entries (which bounds the memory the tokens take).
pub async fn list_snapshot_blocks(
    client: &Client,
    snapshot_id: &str,
    max_volume_bytes: u64,
    max_blocks: usize,
) -> Result<BlockList, EbsError> {
    let unexpected = |why: String| EbsError::Unexpected {
        snapshot_id: snapshot_id.to_owned(),
        why,
    };
    let too_large = |why: String| EbsError::TooLarge {
        snapshot_id: snapshot_id.to_owned(),
        why,
    };
    let mut list = BlockList::default();
    let mut next: Option<String> = None;
    loop {
        list.pages += 1;
        let page = client
            .list_snapshot_blocks()
            .snapshot_id(snapshot_id)
            .max_results(MAX_RESULTS)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| call_error("ListSnapshotBlocks", snapshot_id, e))?;
        match page.block_size() {
            Some(size) if size as u64 == SNAPSHOT_BLOCK_SIZE => {}
            other => {
                return Err(unexpected(format!(
                    "ListSnapshotBlocks answered a block size of {other:?}, not {SNAPSHOT_BLOCK_SIZE}"
                )));
            }
        }
        let gib = page
            .volume_size()
            .filter(|g| *g > 0)
            .ok_or_else(|| unexpected("ListSnapshotBlocks answered no volume size".into()))?;
        let volume_bytes = (gib as u64)
            .checked_mul(1 << 30)
            .ok_or_else(|| unexpected(format!("a volume of {gib} GiB")))?;
        if volume_bytes > max_volume_bytes {
            return Err(too_large(format!(
                "the volume ({gib} GiB) is larger than the read budget allows ({} GiB)",
                max_volume_bytes >> 30
            )));
        }
        list.volume_bytes = volume_bytes;
        let blocks_in_volume = volume_bytes / SNAPSHOT_BLOCK_SIZE;
        for block in page.blocks() {
            let (Some(index), Some(token)) = (block.block_index(), block.block_token()) else {
                return Err(unexpected("a listed block without index or token".into()));
            };
            let index = u64::try_from(index)
                .ok()
                .filter(|i| *i < blocks_in_volume)
                .ok_or_else(|| {
                    unexpected(format!(
                        "block {index} listed, outside the volume's {blocks_in_volume} blocks"
                    ))
                })?;
            if list.blocks.len() >= max_blocks {
                return Err(too_large(format!(
                    "more than {max_blocks} blocks listed: too many to read"
                )));
            }
            list.blocks.push((index, token.to_owned()));
        }
        match page.next_token() {
            // An empty page with a token is normal ("the request can return
            // less blocks than MaxResults or an empty array"); the page
            // count is bounded all the same, so a service that keeps
            // answering tokens can't keep this loop going.
            Some(token) if !token.is_empty() => {
                if list.blocks.len() as u64 > blocks_in_volume {
                    return Err(unexpected("the listing does not end".into()));
                }
                next = Some(token.to_owned());
            }
            _ => break,
        }
    }
    list.blocks.sort_by_key(|(i, _)| *i);
    list.blocks.dedup_by_key(|(i, _)| *i);
    Ok(list)
}

/// Fetches block `index` of `snapshot_id` and returns its 512 KiB once its
/// SHA-256 matches the `Checksum` EBS sent with it. A mismatch, a missing
/// checksum or another algorithm is an error, never data.
pub async fn get_snapshot_block(
    client: &Client,
    snapshot_id: &str,
    index: u64,
    token: &str,
) -> Result<Vec<u8>, EbsError> {
    let unexpected = |why: String| EbsError::Unexpected {
        snapshot_id: snapshot_id.to_owned(),
        why,
    };
    let block_index =
        i32::try_from(index).map_err(|_| unexpected(format!("block index {index}")))?;
    let mut output = client
        .get_snapshot_block()
        .snapshot_id(snapshot_id)
        .block_index(block_index)
        .block_token(token)
        .send()
        .await
        .map_err(|e| call_error("GetSnapshotBlock", snapshot_id, e))?;
    // Read the body in its chunks, never more than one block: a body that
    // runs on is refused before it is held in memory.
    let mut data = Vec::with_capacity(SNAPSHOT_BLOCK_SIZE as usize);
    while let Some(chunk) = output
        .block_data
        .try_next()
        .await
        .map_err(|e| EbsError::Call {
            operation: "GetSnapshotBlock",
            snapshot_id: snapshot_id.to_owned(),
            code: "ResponseError".into(),
            message: causes(&e),
        })?
    {
        if data.len() + chunk.len() > SNAPSHOT_BLOCK_SIZE as usize {
            return Err(unexpected(format!(
                "block {index} is longer than {SNAPSHOT_BLOCK_SIZE} bytes"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    if data.len() as u64 != SNAPSHOT_BLOCK_SIZE
        || output.data_length().map(|n| n as u64) != Some(SNAPSHOT_BLOCK_SIZE)
    {
        return Err(unexpected(format!(
            "block {index} has {} bytes (DataLength {:?}), not {SNAPSHOT_BLOCK_SIZE}",
            data.len(),
            output.data_length()
        )));
    }
    verify(
        &data,
        output.checksum(),
        output.checksum_algorithm().map(ChecksumAlgorithm::as_str),
    )
    .map_err(|why| EbsError::Checksum {
        snapshot_id: snapshot_id.to_owned(),
        index,
        why,
    })?;
    Ok(data)
}

/// Checks `data` against a `GetSnapshotBlock` checksum: Base64 of its
/// SHA-256, algorithm `SHA256` (the only one the API defines). Fails closed:
/// no checksum, or one that can't be decoded, is a failure too.
pub fn verify(data: &[u8], checksum: Option<&str>, algorithm: Option<&str>) -> Result<(), String> {
    if algorithm != Some("SHA256") {
        return Err(format!(
            "checksum algorithm {algorithm:?}, not SHA256: not verified"
        ));
    }
    let checksum = checksum.ok_or("no checksum: not verified")?;
    let expected = aws_smithy_types::base64::decode(checksum)
        .map_err(|_| format!("checksum {checksum:?} is not Base64: not verified"))?;
    let actual = Sha256::digest(data);
    if expected.as_slice() == actual.as_slice() {
        Ok(())
    } else {
        Err(format!(
            "checksum mismatch: EBS sent {checksum}, the data hashes to {}",
            aws_smithy_types::base64::encode(actual.as_slice())
        ))
    }
}

fn call_error<E>(
    operation: &'static str,
    snapshot_id: &str,
    error: aws_sdk_ebs::error::SdkError<E, aws_sdk_ebs::config::http::HttpResponse>,
) -> EbsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (_, code, message) = described(&error);
    EbsError::Call {
        operation,
        snapshot_id: snapshot_id.to_owned(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64_sha(data: &[u8]) -> String {
        aws_smithy_types::base64::encode(Sha256::digest(data).as_slice())
    }

    #[test]
    fn a_block_is_used_only_when_its_sha256_matches() {
        let data = vec![7u8; 4096];
        let good = b64_sha(&data);
        assert_eq!(verify(&data, Some(&good), Some("SHA256")), Ok(()));

        let mut flipped = data.clone();
        flipped[100] ^= 1;
        let err = verify(&flipped, Some(&good), Some("SHA256")).unwrap_err();
        assert!(err.starts_with("checksum mismatch"), "{err}");
    }

    #[test]
    fn no_checksum_another_algorithm_or_garbage_fails_closed() {
        let data = [1u8; 16];
        let good = b64_sha(&data);
        assert!(verify(&data, None, Some("SHA256")).is_err());
        assert!(verify(&data, Some(&good), None).is_err());
        assert!(verify(&data, Some(&good), Some("CRC32")).is_err());
        assert!(verify(&data, Some("not base64!"), Some("SHA256")).is_err());
        assert!(verify(&data, Some(""), Some("SHA256")).is_err());
    }

    #[test]
    fn tokens_are_found_by_index() {
        let list = BlockList {
            volume_bytes: 1 << 30,
            blocks: vec![(0, "a".into()), (5, "b".into()), (9, "c".into())],
            pages: 1,
        };
        assert_eq!(list.token(5), Some("b"));
        assert_eq!(list.token(4), None);
        assert_eq!(list.token(u64::MAX), None);
    }
}
