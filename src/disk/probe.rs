//! What a partition holds, from its first bytes: the signatures blkid reads.
//! The partition type is a hint a builder may get wrong (Ubuntu's root is
//! "Linux file system", AL2023's too, an MBR type 0x83 may hold anything),
//! so the bytes decide, except for BIOS boot, which has no signature.

use std::fmt;

use super::partitions::Partition;
use super::{BlockDevice, DiskError};

/// Bytes read from the start of a partition to recognise it: up to the
/// btrfs superblock (64 KiB + 4 KiB), in one read inside one snapshot block
/// for any partition aligned to 1 MiB.
pub const PROBE_LEN: u64 = 68 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// ext2, ext3 or ext4 (by features).
    Ext(&'static str),
    /// XFS, v5 (CRCs) or v4.
    Xfs {
        v5: bool,
    },
    /// FAT: the EFI system partition.
    Fat,
    Swap,
    /// GRUB's core image: no file system.
    BiosBoot,
    Lvm,
    Luks,
    Ntfs,
    Btrfs,
    /// All zeros where a signature would be.
    Empty,
    Unknown,
}

impl Content {
    /// A file system the readers here open.
    pub fn is_linux_fs(&self) -> bool {
        matches!(self, Content::Ext(_) | Content::Xfs { .. })
    }

    /// Partitions that never hold the root and need no mention when it is
    /// missing.
    pub fn is_boot_or_swap(&self) -> bool {
        matches!(
            self,
            Content::Fat | Content::Swap | Content::BiosBoot | Content::Empty
        )
    }
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Content::Ext(kind) => kind,
            Content::Xfs { v5: true } => "XFS",
            Content::Xfs { v5: false } => "XFS v4",
            Content::Fat => "FAT",
            Content::Swap => "swap",
            Content::BiosBoot => "BIOS boot",
            Content::Lvm => "LVM physical volume, not read",
            Content::Luks => "LUKS encrypted, not read",
            Content::Ntfs => "NTFS (Windows), not read",
            Content::Btrfs => "btrfs, not read",
            Content::Empty => "empty",
            Content::Unknown => "unknown file system, not read",
        })
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn at(b: &[u8], offset: usize, magic: &[u8]) -> bool {
    b.get(offset..offset + magic.len()) == Some(magic)
}

/// Recognises what `device` (one partition) holds.
pub fn probe<D: BlockDevice>(device: &D, part: &Partition) -> Result<Content, DiskError> {
    if part.is_bios_boot() {
        return Ok(Content::BiosBoot);
    }
    let mut b = vec![0u8; PROBE_LEN.min(device.size()) as usize];
    device.read_at(0, &mut b)?;
    Ok(classify(&b))
}

pub(crate) fn classify(b: &[u8]) -> Content {
    if at(b, 0, b"XFSB") {
        // sb_versionnum's low nibble: 5 for CRC-enabled file systems.
        let version = b
            .get(100..102)
            .map_or(0, |v| u16::from_be_bytes([v[0], v[1]]) & 0xF);
        return Content::Xfs { v5: version == 5 };
    }
    if b.len() >= 2048 && le16(b, 1024 + 56) == 0xEF53 {
        let compat = le32(b, 1024 + 92);
        let incompat = le32(b, 1024 + 96);
        // extents or flex_bg or 64bit: ext4; a journal: ext3; else ext2.
        let kind = if incompat & (0x40 | 0x200 | 0x80) != 0 {
            "ext4"
        } else if compat & 0x4 != 0 {
            "ext3"
        } else {
            "ext2"
        };
        return Content::Ext(kind);
    }
    if at(b, 0, b"LUKS\xba\xbe") || at(b, 0, b"SKUL\xba\xbe") {
        return Content::Luks;
    }
    // LVM2's label may sit in any of the first four sectors.
    if (0..4).any(|s| at(b, s * 512, b"LABELONE") && at(b, s * 512 + 24, b"LVM2 001")) {
        return Content::Lvm;
    }
    if at(b, 3, b"NTFS    ") {
        return Content::Ntfs;
    }
    if at(b, 510, b"\x55\xaa") && (at(b, 54, b"FAT") || at(b, 82, b"FAT32")) {
        return Content::Fat;
    }
    // The swap signature ends the first page: 4 KiB (x86_64) or 64 KiB.
    for page in [4096usize, 65536] {
        if at(b, page - 10, b"SWAPSPACE2") || at(b, page - 10, b"SWAP-SPACE") {
            return Content::Swap;
        }
    }
    if at(b, 65536 + 64, b"_BHRfS_M") {
        return Content::Btrfs;
    }
    if b.iter().take(8192).all(|&x| x == 0) {
        return Content::Empty;
    }
    Content::Unknown
}

/// The size the file system's superblock says it has, for ext and XFS.
pub(crate) fn fs_size(b: &[u8]) -> Option<u64> {
    if at(b, 0, b"XFSB") && b.len() >= 16 {
        let blocksize = u64::from(u32::from_be_bytes([b[4], b[5], b[6], b[7]]));
        let mut dblocks = [0u8; 8];
        dblocks.copy_from_slice(&b[8..16]);
        return u64::from_be_bytes(dblocks).checked_mul(blocksize);
    }
    if b.len() >= 2048 && le16(b, 1024 + 56) == 0xEF53 {
        let log = le32(b, 1024 + 24);
        let lo = u64::from(le32(b, 1024 + 4));
        // s_blocks_count_hi only counts with the 64bit feature.
        let hi = if le32(b, 1024 + 96) & 0x80 != 0 {
            u64::from(le32(b, 1024 + 0x150))
        } else {
            0
        };
        let blocks = (hi << 32) | lo;
        return if log > 6 {
            None
        } else {
            blocks.checked_mul(1024 << log)
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(offset: usize, magic: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; PROBE_LEN as usize];
        b[offset..offset + magic.len()].copy_from_slice(magic);
        b
    }

    #[test]
    fn recognises_each_signature() {
        assert_eq!(classify(&with(0, b"LUKS\xba\xbe\x00\x02")), Content::Luks);
        let mut lvm = with(512, b"LABELONE");
        lvm[512 + 24..512 + 32].copy_from_slice(b"LVM2 001");
        assert_eq!(classify(&lvm), Content::Lvm);
        assert_eq!(classify(&with(3, b"NTFS    ")), Content::Ntfs);
        assert_eq!(classify(&with(4086, b"SWAPSPACE2")), Content::Swap);
        assert_eq!(classify(&with(65536 + 64, b"_BHRfS_M")), Content::Btrfs);
        assert_eq!(classify(&with(0, b"XFSB")), Content::Xfs { v5: false });
        assert_eq!(
            classify(&with(1024 + 56, &[0x53, 0xEF])),
            Content::Ext("ext2")
        );
        assert_eq!(classify(&[0u8; 100]), Content::Empty);
        assert_eq!(classify(&with(100, b"hello")), Content::Unknown);
    }

    #[test]
    fn reads_the_size_a_superblock_claims() {
        let mut xfs = with(0, b"XFSB");
        xfs[4..8].copy_from_slice(&4096u32.to_be_bytes());
        xfs[8..16].copy_from_slice(&100u64.to_be_bytes());
        assert_eq!(fs_size(&xfs), Some(409_600));
        let mut ext = with(1024 + 56, &[0x53, 0xEF]);
        ext[1024 + 4..1024 + 8].copy_from_slice(&1000u32.to_le_bytes());
        ext[1024 + 24] = 2; // 4 KiB blocks
        assert_eq!(fs_size(&ext), Some(4_096_000));
        xfs[8..16].copy_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(fs_size(&xfs), None);
    }

    #[test]
    fn short_buffers_do_not_panic() {
        for len in [0, 1, 511, 1100, 2047, 4095] {
            let _ = classify(&vec![0xFFu8; len]);
            let _ = fs_size(&vec![0xFFu8; len]);
        }
    }

    #[test]
    fn says_plainly_what_is_not_read() {
        for c in [Content::Lvm, Content::Luks, Content::Ntfs, Content::Unknown] {
            assert!(c.to_string().contains("not read"), "{c}");
            assert!(!c.is_linux_fs());
        }
    }
}
