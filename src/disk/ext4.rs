//! ext2, ext3 and ext4, read through the `ext4-view` crate (read-only,
//! fuzzed upstream, replays the journal in memory, verifies metadata
//! checksums). This module adapts it to [`BlockDevice`] and to the errors
//! and limits of this crate.

use std::sync::Arc;

use ext4_view::{Ext4, Ext4Error, Ext4Read, FileType};

use super::fs::{DirEntry, FileKind, Metadata, Reader};
use super::{BlockDevice, DiskError};

/// `ext4-view` reads through this: a device it owns (`Box<dyn Ext4Read>`
/// must be `'static`, hence the `Arc`).
struct Source(Arc<dyn BlockDevice>);

impl Ext4Read for Source {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        self.0
            .read_at(start_byte, dst)
            .map_err(|e| Box::new(e) as _)
    }
}

pub(crate) struct Ext4Reader {
    fs: Ext4,
}

/// Our error for one of `ext4-view`'s: the device's own error comes back
/// unchanged (an exceeded budget must say so, not "I/O error").
fn convert(e: Ext4Error, path: &[u8]) -> DiskError {
    let path = String::from_utf8_lossy(path).into_owned();
    match e {
        Ext4Error::Io(inner) => match inner.downcast::<DiskError>() {
            Ok(disk) => *disk,
            Err(other) => DiskError::Io(other.to_string()),
        },
        Ext4Error::NotFound => DiskError::NotFound(path),
        Ext4Error::NotADirectory => DiskError::NotADirectory(path),
        Ext4Error::IsADirectory | Ext4Error::IsASpecialFile => DiskError::NotAFile(path),
        Ext4Error::TooManySymlinks => DiskError::TooManySymlinks(path),
        Ext4Error::Encrypted => DiskError::Unsupported(format!("{path}: encrypted (fscrypt)")),
        Ext4Error::Incompatible(i) => {
            DiskError::Unsupported(format!("ext4 feature not supported: {i}"))
        }
        other => DiskError::corrupt("ext4", other),
    }
}

fn kind(t: FileType) -> FileKind {
    if t.is_regular_file() {
        FileKind::File
    } else if t.is_dir() {
        FileKind::Directory
    } else if t.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    }
}

/// Block groups an ext file system may have here. ext4-view reserves a
/// descriptor for each group before it reads them, so a superblock claiming
/// billions (tiny groups) would be an allocation without bound. EBS's
/// largest volume, 64 TiB, in the standard 128 MiB groups: 524,288.
const MAX_GROUPS: u64 = 1 << 19;

/// Refuses a superblock whose group count is over [`MAX_GROUPS`], before
/// ext4-view allocates for it.
fn check_groups(device: &dyn BlockDevice) -> Result<(), DiskError> {
    let mut sb = [0u8; 1024];
    device.read_at(1024, &mut sb)?;
    let le32 = |at: usize| {
        u64::from(u32::from_le_bytes([
            sb[at],
            sb[at + 1],
            sb[at + 2],
            sb[at + 3],
        ]))
    };
    let hi = if le32(0x60) & 0x80 != 0 {
        le32(0x150)
    } else {
        0
    };
    let blocks = (hi << 32) | le32(0x04);
    let per_group = le32(0x20);
    // A zero is ext4-view's to report.
    if per_group != 0 && blocks.saturating_sub(le32(0x14)).div_ceil(per_group) > MAX_GROUPS {
        return Err(DiskError::corrupt(
            "ext4",
            format!("{blocks} blocks in groups of {per_group}: more than {MAX_GROUPS} groups"),
        ));
    }
    Ok(())
}

impl Ext4Reader {
    pub(crate) fn open(device: Arc<dyn BlockDevice>) -> Result<Self, DiskError> {
        check_groups(&*device)?;
        let fs = Ext4::load(Box::new(Source(device))).map_err(|e| convert(e, b"/"))?;
        Ok(Ext4Reader { fs })
    }
}

impl Reader for Ext4Reader {
    fn lstat(&mut self, path: &[u8]) -> Result<Metadata, DiskError> {
        let m = self
            .fs
            .symlink_metadata(path)
            .map_err(|e| convert(e, path))?;
        Ok(Metadata {
            kind: kind(m.file_type()),
            mode: u32::from(m.mode()),
            size: m.len(),
        })
    }

    fn read_link(&mut self, path: &[u8]) -> Result<Vec<u8>, DiskError> {
        let target = self.fs.read_link(path).map_err(|e| convert(e, path))?;
        Ok(target.as_ref().to_vec())
    }

    fn read_dir(&mut self, path: &[u8], max: usize) -> Result<Vec<DirEntry>, DiskError> {
        let mut out = Vec::new();
        for entry in self.fs.read_dir(path).map_err(|e| convert(e, path))? {
            let entry = entry.map_err(|e| convert(e, path))?;
            if out.len() == max {
                return Err(DiskError::OverBudget(format!(
                    "{}: more than {max} directory entries",
                    String::from_utf8_lossy(path)
                )));
            }
            let t = entry.file_type().map_err(|e| convert(e, path))?;
            out.push(DirEntry {
                name: entry.file_name().as_ref().to_vec(),
                kind: kind(t),
            });
        }
        Ok(out)
    }

    fn read_file(&mut self, path: &[u8], size: u64) -> Result<Vec<u8>, DiskError> {
        let mut file = self.fs.open(path).map_err(|e| convert(e, path))?;
        // `size` was checked against the caller's bound: safe to allocate.
        let mut out = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
        let mut filled = 0;
        while filled < out.len() {
            let n = file
                .read_bytes(&mut out[filled..])
                .map_err(|e| convert(e, path))?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        out.truncate(filled);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDevice;

    #[test]
    fn a_superblock_claiming_millions_of_groups_is_refused_before_allocating() {
        let mut img = vec![0u8; 4096];
        let sb = &mut img[1024..2048];
        sb[0x04..0x08].copy_from_slice(&u32::MAX.to_le_bytes()); // blocks
        sb[0x20..0x24].copy_from_slice(&1u32.to_le_bytes()); // blocks per group
        sb[0x38..0x3A].copy_from_slice(&0xEF53u16.to_le_bytes());
        let err = Ext4Reader::open(Arc::new(MemDevice(img))).err().unwrap();
        assert!(err.to_string().contains("groups"), "{err}");
    }
}
