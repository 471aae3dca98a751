//! Reading an AMI's volumes without launching anything: the byte source
//! ([`BlockDevice`]), the read budget every reader goes through, partition
//! tables, and read-only ext2/3/4 and XFS readers that find the root file
//! system and resolve paths, list directories and read small files in it.
//!
//! Everything here is synchronous and treats the image as hostile: whatever
//! the bytes, a reader returns an error rather than panicking, looping or
//! allocating without bound, and it never reads past the per-AMI [`Budget`].
//! A snapshot reader over the EBS direct APIs implements [`BlockDevice`]
//! (bridging its async fetches with `spawn_blocking` + `Handle::block_on`);
//! the tests use [`FileDevice`] and [`MemDevice`].
//!
//! The readers block on every read, so the whole read of an AMI (read the
//! volumes, open the root, read the files) belongs inside one
//! `tokio::task::spawn_blocking` closure. A [`FileSystem`] is not `Send`
//! (ext4-view holds an `Rc`): it is opened, used and dropped in that closure.
//! Wrap each volume's device in a [`Meter`] ([`Meter::attach`] for the
//! AMI's other volumes) so that one [`Budget`] covers them all and
//! [`Meter::stats`] says what reading cost.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ami_publisher::disk::{Budget, FileDevice, Meter, read_volume};
//!
//! let meter = Meter::new(Arc::new(FileDevice::open("disk.img")?), Budget::default());
//! let volume = read_volume(&meter)?;
//! if let Some(mut root) = volume.open_root(&meter)? {
//!     let passwd = root.read_file("/etc/passwd", 1 << 20)?;
//!     println!("{} bytes; {:?}", passwd.len(), meter.stats());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod budget;
mod ext4;
mod fs;
mod partitions;
mod probe;
mod xfs;

use std::fmt;
use std::sync::Arc;

pub use budget::{Budget, Meter, ReadStats};
pub use fs::{
    DirEntry, FileKind, FileSystem, MAX_DIR_ENTRIES, MAX_SYMLINK_HOPS, MAX_WALK_DEPTH, Metadata,
};
pub use partitions::{Guid, Partition, PartitionKind, PartitionTable, read_partitions};
pub use probe::{Content, PROBE_LEN, probe};

/// The unit EBS direct APIs transfer: `GetSnapshotBlock` returns 512 KiB
/// blocks (`BlockSize` 524,288 in `ListSnapshotBlocks`). The budget counts
/// reads in these units, since each distinct one is a call and a transfer.
pub const SNAPSHOT_BLOCK_SIZE: u64 = 512 * 1024;

/// Why a volume or a file in it could not be read. Shown to people as
/// "could not read: {error}" (see [`DiskError::report`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    /// The device failed (an EBS call, a file read).
    #[error("{0}")]
    Io(String),
    /// A read past the end of the device or partition.
    #[error("read of {len} bytes at {offset} is past the end ({size} bytes)")]
    OutOfRange { offset: u64, len: u64, size: u64 },
    /// The per-AMI read budget is spent.
    #[error("over the read budget ({0})")]
    OverBudget(String),
    /// Something a reader does not handle: LVM, LUKS, NTFS, an unknown file
    /// system, a volume larger than the budget allows.
    #[error("{0}")]
    Unsupported(String),
    /// The bytes contradict the format.
    #[error("corrupt {what}: {why}")]
    Corrupt { what: &'static str, why: String },
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: not a directory")]
    NotADirectory(String),
    #[error("{0}: not a regular file")]
    NotAFile(String),
    #[error("{0}: too many levels of symbolic links")]
    TooManySymlinks(String),
    #[error("{path}: {size} bytes, more than the {max} a small read allows")]
    TooLarge { path: String, size: u64, max: u64 },
}

impl DiskError {
    /// The sentence a person reads in a report.
    pub fn report(&self) -> String {
        format!("could not read: {self}")
    }

    pub(crate) fn corrupt(what: &'static str, why: impl fmt::Display) -> Self {
        DiskError::Corrupt {
            what,
            why: why.to_string(),
        }
    }
}

/// A read-only, random-access byte source: a snapshot, a file, a partition.
///
/// Readers ask for ranges aligned to their own block size (512 bytes to
/// 64 KiB), so a range never spans more than two 512 KiB snapshot blocks
/// and nearly always lies in one. An implementation over the EBS direct
/// APIs is expected to cache the blocks it fetched (readers come back to
/// the same metadata blocks often) and to read absent blocks as zeros.
/// `&self`, `Send` and `Sync`: one device is shared by the readers of every
/// partition on it and may be read from a blocking thread.
pub trait BlockDevice: Send + Sync {
    /// Size in bytes (an EBS volume's `VolumeSize` GiB).
    fn size(&self) -> u64;
    /// Fill all of `buf` from `offset`, or fail; a short read is an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError>;
}

impl<T: BlockDevice + ?Sized> BlockDevice for Arc<T> {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read_at(offset, buf)
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        (**self).read_at(offset, buf)
    }
}

/// Checks a read lies inside `size`; every device and slice calls it first,
/// so an offset from hostile bytes can't reach past the end or overflow.
pub(crate) fn check_range(offset: u64, len: usize, size: u64) -> Result<(), DiskError> {
    let len = len as u64;
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(DiskError::OutOfRange { offset, len, size }),
    }
}

/// A disk image file (sparse or not): the tests' device, and `make bench`'s.
pub struct FileDevice {
    file: std::fs::File,
    size: u64,
}

impl FileDevice {
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, DiskError> {
        let path = path.as_ref();
        let file = std::fs::File::open(path)
            .map_err(|e| DiskError::Io(format!("{}: {e}", path.display())))?;
        let size = file
            .metadata()
            .map_err(|e| DiskError::Io(format!("{}: {e}", path.display())))?
            .len();
        Ok(FileDevice { file, size })
    }
}

impl BlockDevice for FileDevice {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        use std::os::unix::fs::FileExt;
        check_range(offset, buf.len(), self.size)?;
        // Positional reads: no shared cursor, so `&self` is enough.
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| DiskError::Io(e.to_string()))
    }
}

/// A device in memory, for unit tests and hand-made hostile images.
pub struct MemDevice(pub Vec<u8>);

impl BlockDevice for MemDevice {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        check_range(offset, buf.len(), self.size())?;
        let start = offset as usize;
        buf.copy_from_slice(&self.0[start..start + buf.len()]);
        Ok(())
    }
}

/// A window of a device: a partition, read as a volume of its own.
#[derive(Clone)]
pub struct Slice<D> {
    device: D,
    start: u64,
    len: u64,
}

impl<D: BlockDevice> Slice<D> {
    /// The window must lie inside the device (the partition table is
    /// data from the image, so this is checked, not assumed).
    pub fn new(device: D, start: u64, len: u64) -> Result<Self, DiskError> {
        match start.checked_add(len) {
            Some(end) if end <= device.size() => Ok(Slice { device, start, len }),
            _ => Err(DiskError::corrupt(
                "partition table",
                format!(
                    "partition at {start} of {len} bytes ends past the disk ({} bytes)",
                    device.size()
                ),
            )),
        }
    }
}

impl<D: BlockDevice> BlockDevice for Slice<D> {
    fn size(&self) -> u64 {
        self.len
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        check_range(offset, buf.len(), self.len)?;
        self.device.read_at(self.start + offset, buf)
    }
}

/// One volume (one EBS snapshot): its table and what each partition holds.
#[derive(Debug, Clone)]
pub struct Volume {
    pub table: PartitionTable,
    /// Every partition with what probing found on it; for a volume without
    /// a table, one entry covering the whole volume (number 0).
    pub partitions: Vec<(Partition, Content)>,
}

/// Reads a volume's partition table and probes every partition. Reads a
/// handful of sectors: the table, then the first 64 KiB of each partition.
pub fn read_volume<D: BlockDevice>(device: &D) -> Result<Volume, DiskError> {
    let (table, parts) = read_partitions(device)?;
    let mut partitions = Vec::with_capacity(parts.len());
    for part in parts {
        let slice = Slice::new(device, part.start, part.len)?;
        let content = probe(&slice, &part)?;
        partitions.push((part, content));
    }
    Ok(Volume { table, partitions })
}

impl Volume {
    /// The Linux file systems on this volume (ext2/3/4, XFS), in table order.
    pub fn linux_file_systems(&self) -> impl Iterator<Item = &(Partition, Content)> {
        self.partitions.iter().filter(|(_, c)| c.is_linux_fs())
    }

    /// Why nothing on this volume can be read, when nothing can: names what
    /// was found (LVM, LUKS, NTFS, unknown) so the report says it plainly.
    pub fn unreadable_reason(&self) -> Option<String> {
        if self.linux_file_systems().next().is_some() {
            return None;
        }
        let found: Vec<String> = self
            .partitions
            .iter()
            .filter(|(_, c)| !c.is_boot_or_swap())
            .map(|(p, c)| format!("{} {}", p.describe(), c))
            .collect();
        Some(if found.is_empty() {
            "no Linux file system on the volume".to_string()
        } else {
            format!("no Linux file system on the volume ({})", found.join(", "))
        })
    }

    /// Opens the file system on `part` (which must be in this volume).
    pub fn open<D: BlockDevice + Clone + 'static>(
        &self,
        device: &D,
        part: &Partition,
    ) -> Result<FileSystem, DiskError> {
        let content = self
            .partitions
            .iter()
            .find(|(p, _)| p == part)
            .map(|(_, c)| c.clone())
            .ok_or_else(|| DiskError::NotFound(part.describe()))?;
        let slice = Slice::new(device.clone(), part.start, part.len)?;
        FileSystem::open(Arc::new(slice), &content)
    }

    /// Finds the root file system: the Linux file system with an `/etc`
    /// directory (a `/boot` partition and a data volume have none). Returns
    /// `None` when this volume has none (a second, data volume); an error
    /// when no Linux file system at all can be read.
    pub fn open_root<D: BlockDevice + Clone + 'static>(
        &self,
        device: &D,
    ) -> Result<Option<FileSystem>, DiskError> {
        if let Some(why) = self.unreadable_reason() {
            return Err(DiskError::Unsupported(why));
        }
        let mut last_err = None;
        for (part, _) in self.linux_file_systems() {
            match self.open(device, part) {
                Ok(mut fs) => match fs.metadata("/etc") {
                    Ok(m) if m.kind == FileKind::Directory => return Ok(Some(fs)),
                    Ok(_) | Err(DiskError::NotFound(_)) | Err(DiskError::NotADirectory(_)) => {}
                    Err(e) => last_err = Some(e),
                },
                Err(e) => last_err = Some(e),
            }
        }
        if let Some(e) = last_err {
            return Err(e);
        }
        // No root among the file systems read, and something that was not
        // read (the LVM beside a RHEL-style /boot): that is where it is.
        let unread: Vec<String> = self
            .partitions
            .iter()
            .filter(|(_, c)| !c.is_linux_fs() && !c.is_boot_or_swap())
            .map(|(p, c)| format!("{} {}", p.describe(), c))
            .collect();
        if unread.is_empty() {
            Ok(None)
        } else {
            Err(DiskError::Unsupported(format!(
                "no root file system found; {}",
                unread.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::partitions::Guid;
    use super::partitions::tests::gpt_image;
    use super::*;

    const LINUX: Guid = Guid([
        0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47, 0x7D,
        0xE4,
    ]);

    /// A GPT disk whose partition 1 (LBA 2048..) starts with `magic` at `at`.
    fn disk_with(at: usize, magic: &[u8]) -> Meter {
        let mut img = gpt_image(4096, &[(LINUX, 2048, 4095)]);
        img[2048 * 512 + at..2048 * 512 + at + magic.len()].copy_from_slice(magic);
        Meter::new(Arc::new(MemDevice(img)), Budget::default())
    }

    #[test]
    fn lvm_luks_ntfs_and_unknown_are_said_plainly() {
        let mut lvm = b"LABELONE".to_vec();
        lvm.extend_from_slice(&[0; 16]);
        lvm.extend_from_slice(b"LVM2 001");
        for (at, magic, says) in [
            (512, &lvm[..], "LVM"),
            (0, &b"LUKS\xba\xbe"[..], "LUKS"),
            (3, &b"NTFS    "[..], "NTFS"),
            (100, &b"what is this"[..], "unknown file system"),
        ] {
            let meter = disk_with(at, magic);
            let volume = read_volume(&meter).unwrap();
            let err = volume.open_root(&meter).err().expect(says);
            let report = err.report();
            assert!(
                report.starts_with("could not read: no Linux file system"),
                "{report}"
            );
            assert!(
                report.contains("partition 1") && report.contains(says),
                "{report}"
            );
        }
    }

    #[test]
    fn an_empty_volume_has_no_file_system() {
        let meter = Meter::new(Arc::new(MemDevice(vec![0; 1 << 20])), Budget::default());
        let volume = read_volume(&meter).unwrap();
        assert_eq!(volume.table, PartitionTable::None);
        let err = volume.open_root(&meter).err().unwrap();
        assert_eq!(
            err.report(),
            "could not read: no Linux file system on the volume"
        );
    }

    #[test]
    fn a_corrupt_superblock_is_an_error_not_a_panic() {
        // ext magic and nothing else: every field zero or nonsense.
        let meter = disk_with(1024 + 56, &[0x53, 0xEF]);
        let volume = read_volume(&meter).unwrap();
        assert!(volume.open_root(&meter).is_err());
        let meter = disk_with(0, b"XFSB\xff\xff\xff\xff");
        let volume = read_volume(&meter).unwrap();
        assert!(volume.open_root(&meter).is_err());
    }

    #[test]
    fn slices_stay_inside_their_device() {
        let dev = MemDevice(vec![1; 1000]);
        assert!(Slice::new(&dev, 900, 200).is_err());
        assert!(Slice::new(&dev, u64::MAX, 2).is_err());
        let s = Slice::new(&dev, 100, 100).unwrap();
        assert!(s.read_at(90, &mut [0; 20]).is_err());
        s.read_at(80, &mut [0; 20]).unwrap();
    }
}
