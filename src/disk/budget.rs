//! The per-AMI read budget, and the meter every reader reads through.
//!
//! A hostile image can point a reader anywhere, as often as it likes; the
//! budget is what turns "never loop, never read the whole volume" into a
//! check rather than a hope. The meter counts what it lets through (the
//! figures `make bench` and the tests report) and refuses a read that would
//! go over any limit, before it reaches the device.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use super::{BlockDevice, DiskError, SNAPSHOT_BLOCK_SIZE};

/// Limits on what reading one AMI may cost, over all its volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Distinct 512 KiB snapshot blocks touched: each is a `GetSnapshotBlock`
    /// call and 512 KiB transferred, once (the device caches it).
    pub max_blocks: u64,
    /// Bytes the readers asked for, counting re-reads of cached blocks: bounds
    /// the work a hostile image can cause without new blocks.
    pub max_bytes: u64,
    /// Read calls, for the same reason.
    pub max_reads: u64,
    /// A volume larger than this is not read at all.
    pub max_volume_bytes: u64,
}

impl Default for Budget {
    /// Reading the paths the content check needs from a realistic root
    /// touches 7 to 18 blocks (tests/disk_images.rs prints the figures);
    /// 1,024 blocks (512 MiB transferred at most) leaves room for large
    /// directories while bounding what a hostile image can cost.
    fn default() -> Self {
        Budget {
            max_blocks: 1024,
            max_bytes: 1 << 30,
            max_reads: 200_000,
            // EBS's largest volume (io2 Block Express, gp3): 64 TiB.
            max_volume_bytes: 64 << 40,
        }
    }
}

/// What has been read so far, over every device sharing one budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// `read_at` calls that reached a device.
    pub reads: u64,
    /// Bytes those calls asked for.
    pub bytes: u64,
    /// Distinct 512 KiB blocks those calls touched (the minimum an EBS
    /// reader with a cache fetches).
    pub blocks: u64,
}

#[derive(Default)]
struct Account {
    stats: ReadStats,
    /// (device, block index): holds at most `max_blocks` entries.
    touched: HashSet<(u32, u64)>,
}

struct Shared {
    budget: Budget,
    account: Mutex<Account>,
    next_device: AtomicU32,
}

/// A device that reads through a shared budget. Cloning is cheap and shares
/// the device and the budget; [`Meter::attach`] puts another volume of the
/// same AMI under the same budget.
#[derive(Clone)]
pub struct Meter {
    device: Arc<dyn BlockDevice>,
    id: u32,
    shared: Arc<Shared>,
}

impl Meter {
    pub fn new(device: Arc<dyn BlockDevice>, budget: Budget) -> Self {
        let shared = Arc::new(Shared {
            budget,
            account: Mutex::new(Account::default()),
            next_device: AtomicU32::new(1),
        });
        Meter {
            device,
            id: 0,
            shared,
        }
    }

    /// Another device (another volume of the same AMI) under this budget.
    pub fn attach(&self, device: Arc<dyn BlockDevice>) -> Self {
        let id = self.shared.next_device.fetch_add(1, Ordering::Relaxed);
        Meter {
            device,
            id,
            shared: Arc::clone(&self.shared),
        }
    }

    pub fn budget(&self) -> Budget {
        self.shared.budget
    }

    /// What every device under this budget has read so far.
    pub fn stats(&self) -> ReadStats {
        self.lock().stats
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Account> {
        // A poisoned lock only means another reader panicked mid-count; the
        // counts are still the best there are.
        self.shared
            .account
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the read, or refuses it if it would go over the budget.
    fn charge(&self, offset: u64, len: u64) -> Result<(), DiskError> {
        let budget = &self.shared.budget;
        let mut account = self.lock();
        let stats = account.stats;
        if stats.reads >= budget.max_reads {
            return Err(DiskError::OverBudget(format!("{} reads", budget.max_reads)));
        }
        if stats.bytes.saturating_add(len) > budget.max_bytes {
            return Err(DiskError::OverBudget(format!(
                "{} bytes read",
                budget.max_bytes
            )));
        }
        let first = offset / SNAPSHOT_BLOCK_SIZE;
        let last = offset.saturating_add(len.max(1) - 1) / SNAPSHOT_BLOCK_SIZE;
        let new: Vec<u64> = (first..=last)
            .take(1 + (budget.max_blocks as usize).min(1 << 20))
            .filter(|b| !account.touched.contains(&(self.id, *b)))
            .collect();
        if stats.blocks.saturating_add(new.len() as u64) > budget.max_blocks {
            return Err(DiskError::OverBudget(format!(
                "{} blocks of 512 KiB",
                budget.max_blocks
            )));
        }
        for b in new {
            account.touched.insert((self.id, b));
            account.stats.blocks += 1;
        }
        account.stats.reads += 1;
        account.stats.bytes += len;
        Ok(())
    }
}

impl BlockDevice for Meter {
    fn size(&self) -> u64 {
        self.device.size()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let size = self.device.size();
        if size > self.shared.budget.max_volume_bytes {
            return Err(DiskError::Unsupported(format!(
                "the volume ({} GiB) is larger than the read budget allows ({} GiB)",
                size >> 30,
                self.shared.budget.max_volume_bytes >> 30
            )));
        }
        super::check_range(offset, buf.len(), size)?;
        self.charge(offset, buf.len() as u64)?;
        self.device.read_at(offset, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDevice;

    fn meter(size: usize, budget: Budget) -> Meter {
        Meter::new(Arc::new(MemDevice(vec![7; size])), budget)
    }

    #[test]
    fn counts_distinct_blocks_reads_and_bytes() {
        let m = meter(4 << 20, Budget::default());
        let mut buf = [0u8; 4096];
        m.read_at(0, &mut buf).unwrap();
        m.read_at(8192, &mut buf).unwrap();
        // Straddles blocks 0 and 1: one new block.
        m.read_at(SNAPSHOT_BLOCK_SIZE - 2048, &mut buf).unwrap();
        assert_eq!(
            m.stats(),
            ReadStats {
                reads: 3,
                bytes: 3 * 4096,
                blocks: 2
            }
        );
    }

    #[test]
    fn refuses_a_read_over_any_limit_before_it_reaches_the_device() {
        let budget = Budget {
            max_blocks: 2,
            ..Budget::default()
        };
        let m = meter(4 << 20, budget);
        let mut buf = [0u8; 16];
        m.read_at(0, &mut buf).unwrap();
        m.read_at(SNAPSHOT_BLOCK_SIZE, &mut buf).unwrap();
        let err = m.read_at(2 * SNAPSHOT_BLOCK_SIZE, &mut buf).unwrap_err();
        assert!(matches!(err, DiskError::OverBudget(_)), "{err}");
        assert_eq!(m.stats().blocks, 2);
        // Blocks already touched stay readable.
        m.read_at(10, &mut buf).unwrap();

        let m = meter(
            1 << 20,
            Budget {
                max_reads: 1,
                ..Budget::default()
            },
        );
        m.read_at(0, &mut buf).unwrap();
        assert!(matches!(
            m.read_at(0, &mut buf),
            Err(DiskError::OverBudget(_))
        ));

        let m = meter(
            1 << 20,
            Budget {
                max_bytes: 20,
                ..Budget::default()
            },
        );
        m.read_at(0, &mut buf).unwrap();
        assert!(matches!(
            m.read_at(0, &mut buf),
            Err(DiskError::OverBudget(_))
        ));
    }

    #[test]
    fn volumes_attached_share_one_budget_and_count_blocks_apart() {
        let m = meter(
            1 << 20,
            Budget {
                max_blocks: 2,
                ..Budget::default()
            },
        );
        let other = m.attach(Arc::new(MemDevice(vec![1; 1 << 20])));
        let mut buf = [0u8; 8];
        m.read_at(0, &mut buf).unwrap();
        other.read_at(0, &mut buf).unwrap();
        assert_eq!(m.stats().blocks, 2);
        assert!(matches!(
            other.read_at(SNAPSHOT_BLOCK_SIZE, &mut buf),
            Err(DiskError::OverBudget(_))
        ));
    }

    #[test]
    fn a_volume_over_the_size_limit_is_not_read() {
        let m = meter(
            1 << 20,
            Budget {
                max_volume_bytes: 1 << 19,
                ..Budget::default()
            },
        );
        let err = m.read_at(0, &mut [0u8; 8]).unwrap_err();
        assert!(
            err.report().contains("larger than the read budget"),
            "{err}"
        );
        assert_eq!(m.stats(), ReadStats::default());
    }

    #[test]
    fn a_read_past_the_end_is_an_error_not_a_charge() {
        let m = meter(1024, Budget::default());
        assert!(matches!(
            m.read_at(u64::MAX - 2, &mut [0u8; 8]),
            Err(DiskError::OutOfRange { .. })
        ));
        assert_eq!(m.stats().reads, 0);
    }
}
