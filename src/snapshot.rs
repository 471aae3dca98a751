//! An AMI's EBS snapshots read as disks, through the EBS direct APIs
//! (src/ebs.rs): each snapshot a [`BlockDevice`] for the readers of
//! src/disk/, all of one AMI's under one read [`Budget`] and one block cache.
//!
//! A byte range maps to 512 KiB snapshot blocks. A block the listing does
//! not name reads as zeros, without a call. A block that is named is fetched
//! with `GetSnapshotBlock`, its SHA-256 checked (src/ebs.rs), and kept in a
//! cache shared by the AMI's volumes, bounded in bytes: readers come back to
//! the same metadata blocks again and again, and two readers asking for the
//! same block at once share one fetch. Independent blocks are fetched
//! concurrently, at most [`ReadOptions::concurrency`] at a time for the
//! whole AMI: the blocks of a read that spans several, every volume's
//! listing and first block, every partition's first blocks.
//!
//! The readers are synchronous; this device bridges them to the async
//! fetches with `Handle::block_on`, so it must be read on a blocking thread
//! (`tokio::task::spawn_blocking`), never on the runtime's own threads.
//! [`read_root`] does that: it lists the snapshots, then reads every volume
//! and opens the root file system inside one `spawn_blocking` closure (a
//! [`FileSystem`] is not `Send`), where the caller's function runs.
//!
//! Every failure (a call, a checksum, the budget, the bytes) is a
//! [`DiskError`], shown to a person as "could not read: <why>".

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::future::try_join_all;
use tokio::runtime::Handle;
use tokio::sync::{OnceCell, Semaphore};

use crate::disk::{
    self, BlockDevice, Budget, DiskError, FileSystem, Meter, ReadStats, SNAPSHOT_BLOCK_SIZE, Volume,
};
use crate::ebs::{self, BlockList, Client};
use crate::model::EbsSnapshot;

/// How one AMI is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    /// What reading may cost, over all the AMI's volumes.
    pub budget: Budget,
    /// Bytes of fetched blocks kept for the AMI. Beyond it the block used
    /// least recently is dropped (and fetched again if read again, which
    /// [`FetchStats::refetched`] counts).
    pub cache_bytes: usize,
    /// `GetSnapshotBlock` calls in flight at once, for the whole AMI.
    pub concurrency: usize,
    /// Entries a snapshot's listing may have: the tokens are held in memory
    /// (about 100 bytes each) for as long as the AMI is read.
    pub max_listed_blocks: usize,
}

/// `GetSnapshotBlock` calls in flight at once: enough that a read touching a
/// few independent blocks waits for one round trip, few enough to stay
/// far from any account's request quota (src/ebs.rs).
pub const CONCURRENCY: usize = 16;

impl Default for ReadOptions {
    /// A 32 MiB cache holds 64 blocks: more than reading the paths the
    /// content check needs touches on realistic roots (tests and `make
    /// bench` print the figures), within a Lambda's memory.
    fn default() -> Self {
        Self {
            budget: Budget::default(),
            cache_bytes: 32 << 20,
            concurrency: CONCURRENCY,
            // 256 Ki entries: 128 GiB of written data, ~25 MB of tokens.
            max_listed_blocks: 1 << 18,
        }
    }
}

/// What the EBS direct APIs were asked, for one AMI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// `ListSnapshotBlocks` pages.
    pub list_calls: u64,
    /// `GetSnapshotBlock` calls that returned a verified block.
    pub fetched: u64,
    /// Of those, blocks fetched before (dropped from the cache since).
    pub refetched: u64,
    /// Distinct blocks read that the listing does not name (zeros, no call).
    pub zero_blocks: u64,
    /// Bytes of block data transferred.
    pub bytes: u64,
}

type Key = (u32, u64);

/// A block being fetched or held: filled once, by the first reader to ask,
/// and shared by every reader that asks meanwhile.
type Slot = Arc<OnceCell<Arc<Vec<u8>>>>;

/// The blocks fetched for one AMI, shared by its volumes.
struct Cache {
    max_bytes: usize,
    limit: Semaphore,
    state: Mutex<CacheState>,
    list_calls: AtomicU64,
}

#[derive(Default)]
struct CacheState {
    /// A slot per block being fetched or held; the tick it was last used.
    slots: HashMap<Key, (Slot, u64)>,
    tick: u64,
    held: usize,
    /// Every block fetched so far (at most the budget's blocks: the meter
    /// refuses reads beyond them), to count fetches of the same block again.
    ever: HashSet<Key>,
    zeros: HashSet<Key>,
    stats: FetchStats,
}

impl Cache {
    fn new(options: &ReadOptions) -> Self {
        Self {
            max_bytes: options.cache_bytes,
            limit: Semaphore::new(options.concurrency.max(1)),
            state: Mutex::default(),
            list_calls: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        // A poisoned lock means a reader panicked mid-update; the map is
        // still consistent (every update is a single insert or remove).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, key: Key) -> Slot {
        let mut state = self.lock();
        state.tick += 1;
        let tick = state.tick;
        let slot = state.slots.entry(key).or_default();
        slot.1 = tick;
        Arc::clone(&slot.0)
    }

    /// Counts a block just fetched and drops the least recently used
    /// blocks (never `key`) until the cache is within its bound again.
    fn fetched(&self, key: Key, len: usize) {
        let mut state = self.lock();
        state.stats.fetched += 1;
        state.stats.bytes += len as u64;
        if !state.ever.insert(key) {
            state.stats.refetched += 1;
        }
        state.held += len;
        while state.held > self.max_bytes {
            let oldest = state
                .slots
                .iter()
                .filter(|(k, (cell, _))| **k != key && cell.initialized())
                .min_by_key(|(_, (_, tick))| *tick)
                .map(|(k, _)| *k);
            let Some(oldest) = oldest else { break };
            if let Some((cell, _)) = state.slots.remove(&oldest) {
                state.held -= cell.get().map_or(0, |b| b.len());
            }
        }
    }

    fn zero(&self, key: Key) {
        let mut state = self.lock();
        if state.zeros.insert(key) {
            state.stats.zero_blocks += 1;
        }
    }

    fn stats(&self) -> FetchStats {
        FetchStats {
            list_calls: self.list_calls.load(Ordering::Relaxed),
            ..self.lock().stats
        }
    }
}

/// One snapshot as a read-only disk. Cheap to clone (shared state).
#[derive(Clone)]
pub struct SnapshotDevice {
    inner: Arc<Device>,
}

struct Device {
    client: Client,
    snapshot_id: String,
    number: u32,
    list: BlockList,
    cache: Arc<Cache>,
    handle: Handle,
}

impl SnapshotDevice {
    pub fn snapshot_id(&self) -> &str {
        &self.inner.snapshot_id
    }

    /// The block `index`, from the cache or fetched; `None`: zeros.
    async fn block(&self, index: u64) -> Result<Option<Arc<Vec<u8>>>, DiskError> {
        let dev = &self.inner;
        let key = (dev.number, index);
        let Some(token) = dev.list.token(index) else {
            dev.cache.zero(key);
            return Ok(None);
        };
        let slot = dev.cache.slot(key);
        let block = slot
            .get_or_try_init(|| async {
                let _turn = dev
                    .cache
                    .limit
                    .acquire()
                    .await
                    .map_err(|e| DiskError::Io(e.to_string()))?;
                let get = || ebs::get_snapshot_block(&dev.client, &dev.snapshot_id, index, token);
                let mut got = get().await;
                if matches!(got, Err(ebs::EbsError::Checksum { .. })) {
                    // "If the checksums do not match, consider the data not
                    // valid and retry your request" (EBS User Guide, "Use EBS
                    // direct APIs checksums to validate snapshot data"):
                    // once; a second mismatch is the error.
                    got = get().await;
                }
                let data = got.map_err(|e| DiskError::Io(e.to_string()))?;
                dev.cache.fetched(key, data.len());
                Ok::<_, DiskError>(Arc::new(data))
            })
            .await?;
        Ok(Some(Arc::clone(block)))
    }

    /// Fetches these blocks (those not cached yet), concurrently.
    async fn fetch(&self, blocks: impl IntoIterator<Item = u64>) -> Result<(), DiskError> {
        try_join_all(blocks.into_iter().map(|b| self.block(b))).await?;
        Ok(())
    }

    /// The blocks a read of `len` bytes at `offset` touches.
    fn blocks_of(offset: u64, len: u64) -> std::ops::RangeInclusive<u64> {
        let first = offset / SNAPSHOT_BLOCK_SIZE;
        let last = offset.saturating_add(len.max(1) - 1) / SNAPSHOT_BLOCK_SIZE;
        first..=last
    }

    async fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let range = Self::blocks_of(offset, buf.len() as u64);
        let first = *range.start();
        // The blocks of one read are independent: fetched together.
        let blocks = try_join_all(range.map(|b| self.block(b))).await?;
        let mut done = 0usize;
        for (i, block) in blocks.iter().enumerate() {
            let block_start = (first + i as u64) * SNAPSHOT_BLOCK_SIZE;
            let from = (offset + done as u64 - block_start) as usize;
            let n = (SNAPSHOT_BLOCK_SIZE as usize - from).min(buf.len() - done);
            let out = &mut buf[done..done + n];
            match block {
                Some(data) => out.copy_from_slice(&data[from..from + n]),
                None => out.fill(0),
            }
            done += n;
        }
        Ok(())
    }

    /// Fetches these blocks concurrently (from a blocking thread), so that
    /// the reads that follow find them cached.
    pub fn prefetch(&self, blocks: &[u64]) -> Result<(), DiskError> {
        let blocks: Vec<u64> = blocks
            .iter()
            .copied()
            .filter(|b| *b < self.inner.list.volume_bytes / SNAPSHOT_BLOCK_SIZE)
            .collect();
        self.inner.handle.block_on(self.fetch(blocks))
    }
}

impl BlockDevice for SnapshotDevice {
    fn size(&self) -> u64 {
        self.inner.list.volume_bytes
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        disk::check_range(offset, buf.len(), self.size())?;
        if buf.is_empty() {
            return Ok(());
        }
        // On a blocking thread (see the module's docs): waits for the
        // fetches while the runtime's own threads drive them.
        self.inner.handle.block_on(self.read(offset, buf))
    }
}

/// The volumes of one AMI, listed and ready to read, under one budget.
pub struct AmiDisks {
    volumes: Vec<(EbsSnapshot, SnapshotDevice, Meter)>,
    cache: Arc<Cache>,
}

/// Lists every snapshot of the AMI (concurrently, within the budget's
/// volume size) and makes each a device. Call from async code; read the
/// result on a blocking thread (or use [`read_root`]).
pub async fn open(
    client: &Client,
    snapshots: &[EbsSnapshot],
    options: ReadOptions,
) -> Result<AmiDisks, DiskError> {
    if snapshots.is_empty() {
        return Err(DiskError::Unsupported(
            "the AMI has no EBS snapshot to read".into(),
        ));
    }
    let cache = Arc::new(Cache::new(&options));
    let lists = try_join_all(snapshots.iter().map(|s| {
        let cache = Arc::clone(&cache);
        async move {
            let _turn = cache
                .limit
                .acquire()
                .await
                .map_err(|e| DiskError::Io(e.to_string()))?;
            let list = ebs::list_snapshot_blocks(
                client,
                &s.snapshot_id,
                options.budget.max_volume_bytes,
                options.max_listed_blocks,
            )
            .await;
            cache
                .list_calls
                .fetch_add(list.as_ref().map_or(1, |l| l.pages), Ordering::Relaxed);
            list.map_err(|e| match e {
                ebs::EbsError::TooLarge { .. } => DiskError::Unsupported(e.to_string()),
                e => DiskError::Io(e.to_string()),
            })
        }
    }))
    .await?;
    let handle = Handle::current();
    let mut volumes: Vec<(EbsSnapshot, SnapshotDevice, Meter)> = Vec::new();
    for (number, (snapshot, list)) in snapshots.iter().zip(lists).enumerate() {
        let device = SnapshotDevice {
            inner: Arc::new(Device {
                client: client.clone(),
                snapshot_id: snapshot.snapshot_id.clone(),
                number: number as u32,
                list,
                cache: Arc::clone(&cache),
                handle: handle.clone(),
            }),
        };
        let shared: Arc<dyn BlockDevice> = Arc::new(device.clone());
        let meter = match volumes.first() {
            None => Meter::new(shared, options.budget),
            Some((_, _, first)) => first.attach(shared),
        };
        volumes.push((snapshot.clone(), device, meter));
    }
    Ok(AmiDisks { volumes, cache })
}

impl AmiDisks {
    /// Reads every volume's partition table and what each partition holds
    /// (on a blocking thread). The first block of every volume is fetched
    /// at once, then the first blocks of every partition of every volume.
    pub fn read_volumes(&self) -> Result<Vec<(EbsSnapshot, Volume)>, DiskError> {
        let handle = match self.volumes.first() {
            Some((_, device, _)) => device.inner.handle.clone(),
            None => return Ok(Vec::new()),
        };
        // Fetched ahead only as far as the budget has room: what is fetched
        // here is read next, and the meter counts it then.
        let mut room = self.room();
        handle.block_on(try_join_all(
            self.volumes
                .iter()
                .take(room)
                .map(|(_, device, _)| device.fetch([0])),
        ))?;
        let mut starts = Vec::new();
        for (_, device, meter) in &self.volumes {
            let (_, parts) = disk::read_partitions(meter)?;
            // Probing reads the first PROBE_LEN bytes of each partition but
            // a BIOS boot one (src/disk/probe.rs): those blocks, no others.
            let blocks: Vec<u64> = parts
                .iter()
                .filter(|p| !p.is_bios_boot())
                .flat_map(|p| SnapshotDevice::blocks_of(p.start, p.len.min(disk::PROBE_LEN)))
                .collect();
            starts.push((device, blocks));
        }
        room = self.room();
        handle.block_on(try_join_all(starts.iter().scan(
            room,
            |room, (device, blocks)| {
                let n = blocks.len().min(*room);
                *room -= n;
                Some(device.fetch(blocks[..n].iter().copied()))
            },
        )))?;
        self.volumes
            .iter()
            .map(|(snapshot, _, meter)| Ok((snapshot.clone(), disk::read_volume(meter)?)))
            .collect()
    }

    /// Reads every volume and opens the root file system: the first Linux
    /// file system with an `/etc`, looked for volume by volume (the root
    /// device's first). An error when there is none, saying what was found.
    pub fn open_root(&self) -> Result<FileSystem, DiskError> {
        let volumes = self.read_volumes()?;
        let mut errors = Vec::new();
        for ((snapshot, volume), (_, _, meter)) in volumes.iter().zip(&self.volumes) {
            match volume.open_root(meter) {
                Ok(Some(root)) => return Ok(root),
                Ok(None) => {}
                Err(e @ DiskError::OverBudget(_)) => return Err(e),
                Err(e) => errors.push(format!(
                    "{} ({}): {e}",
                    snapshot.device, snapshot.snapshot_id
                )),
            }
        }
        Err(DiskError::Unsupported(if errors.is_empty() {
            format!(
                "no root file system (a Linux file system with /etc) on the AMI's {} volume(s)",
                volumes.len()
            )
        } else {
            errors.join("; ")
        }))
    }

    /// Blocks the budget still allows.
    fn room(&self) -> usize {
        let used = self.read_stats().blocks;
        let max = self
            .volumes
            .first()
            .map_or(0, |(_, _, m)| m.budget().max_blocks);
        usize::try_from(max.saturating_sub(used)).unwrap_or(usize::MAX)
    }

    /// What the readers read, over every volume (the budget's count).
    pub fn read_stats(&self) -> ReadStats {
        self.volumes
            .first()
            .map(|(_, _, m)| m.stats())
            .unwrap_or_default()
    }

    /// What was asked of the EBS direct APIs.
    pub fn fetch_stats(&self) -> FetchStats {
        self.cache.stats()
    }

    /// The AMI's volumes: snapshot, device, and its meter (read through it).
    pub fn volumes(&self) -> impl Iterator<Item = (&EbsSnapshot, &Meter)> {
        self.volumes.iter().map(|(s, _, m)| (s, m))
    }
}

/// Opens the AMI's root file system from its snapshots and runs `f` on it,
/// on a blocking thread; returns what `f` returns and what reading cost.
pub async fn read_root<T, F>(
    client: &Client,
    snapshots: &[EbsSnapshot],
    options: ReadOptions,
    f: F,
) -> Result<(T, ReadStats, FetchStats), DiskError>
where
    T: Send + 'static,
    F: FnOnce(&mut FileSystem) -> Result<T, DiskError> + Send + 'static,
{
    let disks = open(client, snapshots, options).await?;
    tokio::task::spawn_blocking(move || {
        let mut root = disks.open_root()?;
        let value = f(&mut root)?;
        Ok((value, disks.read_stats(), disks.fetch_stats()))
    })
    .await
    .map_err(|e| DiskError::Io(format!("the reading thread failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ebs::operation::get_snapshot_block::{
        GetSnapshotBlockInput, GetSnapshotBlockOutput,
    };
    use aws_sdk_ebs::operation::list_snapshot_blocks::ListSnapshotBlocksOutput;
    use aws_sdk_ebs::primitives::ByteStream;
    use aws_sdk_ebs::types::{Block, ChecksumAlgorithm};
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use sha2::{Digest, Sha256};

    const BS: usize = SNAPSHOT_BLOCK_SIZE as usize;

    /// Block `i` of the test snapshot: every byte `i + 1`.
    fn data(i: i32) -> Vec<u8> {
        vec![(i + 1) as u8; BS]
    }

    fn listing(indexes: &'static [i32]) -> Rule {
        mock!(Client::list_snapshot_blocks).then_output(move || {
            ListSnapshotBlocksOutput::builder()
                .volume_size(1)
                .block_size(BS as i32)
                .set_blocks(Some(
                    indexes
                        .iter()
                        .map(|i| {
                            Block::builder()
                                .block_index(*i)
                                .block_token(format!("t{i}"))
                                .build()
                        })
                        .collect(),
                ))
                .build()
        })
    }

    fn answer(i: i32, corrupt: bool) -> GetSnapshotBlockOutput {
        let body = data(i);
        let mut sum = Sha256::digest(&body).to_vec();
        if corrupt {
            sum[0] ^= 1;
        }
        GetSnapshotBlockOutput::builder()
            .data_length(BS as i32)
            .block_data(ByteStream::from(body))
            .checksum(aws_smithy_types::base64::encode(&sum))
            .checksum_algorithm(ChecksumAlgorithm::ChecksumAlgorithmSha256)
            .build()
    }

    fn block_rule(i: i32, corrupt: bool) -> Rule {
        mock!(Client::get_snapshot_block)
            .match_requests(move |r: &GetSnapshotBlockInput| r.block_index() == Some(i))
            .then_output(move || answer(i, corrupt))
    }

    fn snap() -> Vec<EbsSnapshot> {
        vec![EbsSnapshot {
            device: "/dev/xvda".into(),
            snapshot_id: "snap-0123456789abcdef0".into(),
        }]
    }

    /// Runs `f` on the AMI's first volume's device, on a blocking thread.
    async fn with_device<T: Send + 'static>(
        client: Client,
        options: ReadOptions,
        f: impl FnOnce(&Meter) -> T + Send + 'static,
    ) -> (T, FetchStats) {
        let disks = open(&client, &snap(), options).await.unwrap();
        tokio::task::spawn_blocking(move || {
            let meter = disks.volumes().next().unwrap().1.clone();
            (f(&meter), disks.fetch_stats())
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_block_is_fetched_once_and_an_unlisted_one_reads_as_zeros_without_a_call() {
        let list = listing(&[0, 3]);
        let (b0, b3) = (block_rule(0, false), block_rule(3, false));
        let client = mock_client!(aws_sdk_ebs, RuleMode::MatchAny, [&list, &b0, &b3]);
        let (bytes, stats) = with_device(client, ReadOptions::default(), |m| {
            let mut a = [0u8; 16];
            m.read_at(100, &mut a).unwrap();
            let mut again = [0u8; 4096];
            m.read_at(8192, &mut again).unwrap();
            let mut zeros = [9u8; 4096];
            m.read_at(SNAPSHOT_BLOCK_SIZE + 10, &mut zeros).unwrap();
            // Spans blocks 3 and 4 (not listed).
            let mut span = [9u8; 8];
            m.read_at(4 * SNAPSHOT_BLOCK_SIZE - 4, &mut span).unwrap();
            (a, again, zeros, span)
        })
        .await;
        assert_eq!(bytes.0, [1u8; 16]);
        assert!(bytes.1.iter().all(|b| *b == 1));
        assert!(bytes.2.iter().all(|b| *b == 0));
        assert_eq!(bytes.3, [4, 4, 4, 4, 0, 0, 0, 0]);
        assert_eq!(
            (b0.num_calls(), b3.num_calls(), list.num_calls()),
            (1, 1, 1)
        );
        assert_eq!(
            stats,
            FetchStats {
                list_calls: 1,
                fetched: 2,
                refetched: 0,
                zero_blocks: 2,
                bytes: 2 * SNAPSHOT_BLOCK_SIZE,
            }
        );
    }

    #[tokio::test]
    async fn a_corrupt_block_is_an_error_never_data() {
        let list = listing(&[0]);
        let corrupt = block_rule(0, true);
        let client = mock_client!(aws_sdk_ebs, RuleMode::MatchAny, [&list, &corrupt]);
        let (result, stats) = with_device(client, ReadOptions::default(), |m| {
            let mut buf = [0u8; 512];
            m.read_at(0, &mut buf).map(|_| buf)
        })
        .await;
        let report = result.unwrap_err().report();
        assert!(
            report.starts_with("could not read: block 0 of snap-"),
            "{report}"
        );
        assert!(report.contains("checksum mismatch"), "{report}");
        // Fetched again once, as EBS advises; corrupt twice, it is the error.
        assert_eq!(corrupt.num_calls(), 2);
        assert_eq!(stats.fetched, 0);
    }

    #[tokio::test]
    async fn the_cache_keeps_to_its_bound_and_counts_what_it_fetches_again() {
        let list = listing(&[0, 1]);
        let (b0, b1) = (block_rule(0, false), block_rule(1, false));
        let client = mock_client!(aws_sdk_ebs, RuleMode::MatchAny, [&list, &b0, &b1]);
        let options = ReadOptions {
            cache_bytes: BS,
            ..ReadOptions::default()
        };
        let (_, stats) = with_device(client, options, |m| {
            let mut buf = [0u8; 8];
            for at in [0, SNAPSHOT_BLOCK_SIZE, 0] {
                m.read_at(at, &mut buf).unwrap();
            }
        })
        .await;
        assert_eq!((b0.num_calls(), b1.num_calls()), (2, 1));
        assert_eq!((stats.fetched, stats.refetched), (3, 1));
    }

    #[tokio::test]
    async fn listing_pages_to_the_end_and_refuses_a_volume_over_the_budget_after_one_page() {
        let first = mock!(Client::list_snapshot_blocks)
            .match_requests(|r| r.next_token().is_none() && r.max_results() == Some(10_000))
            .then_output(|| {
                ListSnapshotBlocksOutput::builder()
                    .volume_size(8)
                    .block_size(BS as i32)
                    .blocks(Block::builder().block_index(0).block_token("a").build())
                    .next_token("page2")
                    .build()
            });
        let second = mock!(Client::list_snapshot_blocks)
            .match_requests(|r| r.next_token() == Some("page2"))
            .then_output(|| {
                ListSnapshotBlocksOutput::builder()
                    .volume_size(8)
                    .block_size(BS as i32)
                    .blocks(Block::builder().block_index(7).block_token("b").build())
                    .build()
            });
        let client = mock_client!(aws_sdk_ebs, RuleMode::MatchAny, [&first, &second]);
        let list = ebs::list_snapshot_blocks(&client, "snap-1", 64 << 30, 100)
            .await
            .unwrap();
        assert_eq!(list.blocks, vec![(0, "a".to_owned()), (7, "b".to_owned())]);
        assert_eq!((list.pages, list.volume_bytes), (2, 8 << 30));

        let err = open(
            &client,
            &snap(),
            ReadOptions {
                budget: Budget {
                    max_volume_bytes: 4 << 30,
                    ..Budget::default()
                },
                ..ReadOptions::default()
            },
        )
        .await
        .err()
        .unwrap();
        assert!(
            err.report().contains("larger than the read budget allows"),
            "{}",
            err.report()
        );
        assert_eq!((first.num_calls(), second.num_calls()), (2, 1));

        // A listing longer than its memory bound is refused too.
        let err = ebs::list_snapshot_blocks(&client, "snap-1", 64 << 30, 1)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("more than 1 blocks listed"),
            "{err}"
        );
    }
}
