//! Partition tables: GPT (the primary header, its CRC and the entries' CRC
//! checked), MBR (the protective MBR that fronts a GPT, primary and logical
//! partitions) and none (a file system on the whole volume).
//!
//! Only the primary GPT is read: a disk whose primary header or entries
//! fail their CRC is reported corrupt rather than read from the backup,
//! since an AMI's disk was written once by its builder and a damaged table
//! says the image is not what it claims.

use std::fmt;

use super::{BlockDevice, DiskError};

const SECTOR: u64 = 512;
/// More entries than any partitioning tool writes (128 is the default);
/// bounds the entry array a hostile header can ask us to read.
const MAX_GPT_ENTRIES: u32 = 1024;
const MAX_GPT_ENTRY_SIZE: u32 = 4096;
/// Logical partitions followed along the EBR chain before giving up: the
/// chain is a linked list in the image and may point at itself.
const MAX_LOGICAL: usize = 64;

/// Which kind of table the volume has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionTable {
    Gpt,
    Mbr,
    /// No table: the volume is one file system (or one LVM PV, ...).
    None,
}

/// One partition, in bytes from the start of the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The number Linux gives it (`nvme0n1p<number>`); 0 for a volume
    /// without a table.
    pub number: u32,
    pub start: u64,
    pub len: u64,
    pub kind: PartitionKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionKind {
    Gpt { type_guid: Guid, name: String },
    Mbr { type_byte: u8 },
    Whole,
}

impl Partition {
    /// "partition 128 (EFI System)", "the whole volume": for reports.
    pub fn describe(&self) -> String {
        match &self.kind {
            PartitionKind::Whole => "the whole volume".to_string(),
            PartitionKind::Gpt { type_guid, .. } => match type_guid.known_name() {
                Some(n) => format!("partition {} ({n})", self.number),
                None => format!("partition {} (type {type_guid})", self.number),
            },
            PartitionKind::Mbr { type_byte } => {
                format!("partition {} (type 0x{type_byte:02x})", self.number)
            }
        }
    }

    /// The GPT type says BIOS boot (GRUB's core image, no file system).
    pub fn is_bios_boot(&self) -> bool {
        matches!(&self.kind, PartitionKind::Gpt { type_guid, .. } if *type_guid == Guid::BIOS_BOOT)
    }
}

/// A GPT GUID as stored on disk (the first three fields little-endian).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    pub const BIOS_BOOT: Guid = Guid::parse("21686148-6449-6E6F-744E-656564454649");
    pub const EFI_SYSTEM: Guid = Guid::parse("C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    const KNOWN: &[(&str, &str)] = &[
        ("21686148-6449-6E6F-744E-656564454649", "BIOS boot"),
        ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System"),
        ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux file system"),
        ("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "Linux root x86-64"),
        ("B921B045-1DF0-41C3-AF44-4C6F280D3FAE", "Linux root arm64"),
        (
            "BC13C2FF-59E6-4262-A352-B275FD6F7172",
            "Linux extended boot",
        ),
        ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
        ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
        ("CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"),
        (
            "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
            "Microsoft basic data",
        ),
        ("E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved"),
    ];

    /// From the text form; only used on the constants above.
    const fn parse(s: &str) -> Guid {
        let s = s.as_bytes();
        let mut hex = [0u8; 16];
        let (mut i, mut n) = (0, 0);
        while i < s.len() {
            if s[i] != b'-' {
                let v = match s[i] {
                    b'0'..=b'9' => s[i] - b'0',
                    b'A'..=b'F' => s[i] - b'A' + 10,
                    _ => s[i] - b'a' + 10,
                };
                hex[n / 2] |= if n % 2 == 0 { v << 4 } else { v };
                n += 1;
            }
            i += 1;
        }
        // Text order to disk order: swap the first three fields' bytes.
        let h = hex;
        Guid([
            h[3], h[2], h[1], h[0], h[5], h[4], h[7], h[6], h[8], h[9], h[10], h[11], h[12], h[13],
            h[14], h[15],
        ])
    }

    pub fn known_name(&self) -> Option<&'static str> {
        Self::KNOWN
            .iter()
            .find(|(g, _)| Guid::parse(g) == *self)
            .map(|(_, n)| *n)
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02X}{:02X}{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-{:02X}{:02X}-",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9]
        )?;
        b[10..].iter().try_for_each(|x| write!(f, "{x:02X}"))
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// CRC-32 (IEEE 802.3, reflected), as UEFI specifies for GPT. Bitwise:
/// a few KiB are checked per volume, a table would buy nothing.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

/// Reads the volume's table. Returns the partitions in table order; for a
/// volume without one, a single partition covering it.
pub fn read_partitions<D: BlockDevice>(
    device: &D,
) -> Result<(PartitionTable, Vec<Partition>), DiskError> {
    let size = device.size();
    let whole = || Partition {
        number: 0,
        start: 0,
        len: size,
        kind: PartitionKind::Whole,
    };
    if size < 2 * SECTOR {
        return Ok((PartitionTable::None, vec![whole()]));
    }
    // The MBR and the GPT header (LBA 1) in one read; the entries normally
    // follow at LBA 2, in the same 512 KiB snapshot block.
    let mut head = vec![0u8; (34 * SECTOR).min(size) as usize];
    device.read_at(0, &mut head)?;
    let mbr = &head[..SECTOR as usize];
    let mbr_entries = mbr_entries(mbr);
    let protective = mbr_entries.iter().any(|e| e.type_byte == 0xEE);
    if &head[512..520] == b"EFI PART" || protective {
        return Ok((PartitionTable::Gpt, read_gpt(device, &head)?));
    }
    if is_mbr(mbr, &mbr_entries, size) {
        return Ok((PartitionTable::Mbr, read_mbr(device, &mbr_entries)?));
    }
    Ok((PartitionTable::None, vec![whole()]))
}

struct MbrEntry {
    boot: u8,
    type_byte: u8,
    lba: u64,
    count: u64,
}

fn mbr_entries(mbr: &[u8]) -> Vec<MbrEntry> {
    (0..4)
        .map(|i| {
            let e = &mbr[446 + 16 * i..446 + 16 * (i + 1)];
            MbrEntry {
                boot: e[0],
                type_byte: e[4],
                lba: u64::from(le32(e, 8)),
                count: u64::from(le32(e, 12)),
            }
        })
        .filter(|e| e.type_byte != 0 && e.count != 0)
        .collect()
}

/// A DOS table, as opposed to a FAT or NTFS boot sector (which ends in
/// 0x55AA too, when the file system is on the whole volume).
fn is_mbr(mbr: &[u8], entries: &[MbrEntry], size: u64) -> bool {
    if le16(mbr, 510) != 0xAA55 || entries.is_empty() {
        return false;
    }
    let boot_sector = &mbr[3..11] == b"NTFS    "
        || &mbr[54..59] == b"FAT12"
        || &mbr[54..59] == b"FAT16"
        || &mbr[82..87] == b"FAT32";
    let sane = entries.iter().all(|e| {
        (e.boot == 0 || e.boot == 0x80)
            && e.lba > 0
            && (e.lba + e.count).saturating_mul(SECTOR) <= size
    });
    !boot_sector && sane
}

fn read_mbr<D: BlockDevice>(device: &D, entries: &[MbrEntry]) -> Result<Vec<Partition>, DiskError> {
    let mut parts = Vec::new();
    // Primary entries are numbered by their slot, as Linux does.
    for (slot, e) in entries.iter().enumerate() {
        if matches!(e.type_byte, 0x05 | 0x0F | 0x85) {
            read_logical(device, e.lba, e.count, &mut parts)?;
            continue;
        }
        parts.push(mbr_partition(
            slot as u32 + 1,
            e.lba,
            e.count,
            e.type_byte,
            device.size(),
        )?);
    }
    parts.sort_by_key(|p| p.number);
    Ok(parts)
}

fn mbr_partition(
    number: u32,
    lba: u64,
    count: u64,
    type_byte: u8,
    size: u64,
) -> Result<Partition, DiskError> {
    let (start, len) = (lba * SECTOR, count * SECTOR);
    if start.checked_add(len).is_none_or(|end| end > size) {
        return Err(DiskError::corrupt(
            "MBR",
            format!("partition {number} ends past the disk"),
        ));
    }
    Ok(Partition {
        number,
        start,
        len,
        kind: PartitionKind::Mbr { type_byte },
    })
}

/// Follows the chain of extended boot records (each holds one logical
/// partition and a link to the next, relative to the extended partition).
fn read_logical<D: BlockDevice>(
    device: &D,
    ext_lba: u64,
    ext_count: u64,
    parts: &mut Vec<Partition>,
) -> Result<(), DiskError> {
    let mut next = 0u64;
    let mut sector = vec![0u8; SECTOR as usize];
    for n in 0..MAX_LOGICAL {
        if next >= ext_count {
            return Err(DiskError::corrupt(
                "MBR",
                "extended partition links outside itself",
            ));
        }
        let ebr = ext_lba + next;
        device.read_at(ebr * SECTOR, &mut sector)?;
        if le16(&sector, 510) != 0xAA55 {
            return Err(DiskError::corrupt(
                "MBR",
                "extended boot record without its signature",
            ));
        }
        let entries = (0..2).map(|i| {
            let e = &sector[446 + 16 * i..446 + 16 * (i + 1)];
            (e[4], u64::from(le32(e, 8)), u64::from(le32(e, 12)))
        });
        let mut link = None;
        for (i, (type_byte, lba, count)) in entries.enumerate() {
            if type_byte == 0 || count == 0 {
                continue;
            }
            if i == 0 {
                parts.push(mbr_partition(
                    5 + n as u32,
                    ebr + lba,
                    count,
                    type_byte,
                    device.size(),
                )?);
            } else {
                link = Some(lba);
            }
        }
        match link {
            // Each link must move forward, or the chain could go round.
            Some(l) if l > next => next = l,
            Some(_) => {
                return Err(DiskError::corrupt(
                    "MBR",
                    "extended boot records form a loop",
                ));
            }
            None => return Ok(()),
        }
    }
    Err(DiskError::corrupt(
        "MBR",
        format!("more than {MAX_LOGICAL} logical partitions"),
    ))
}

fn read_gpt<D: BlockDevice>(device: &D, head: &[u8]) -> Result<Vec<Partition>, DiskError> {
    let corrupt = |why: String| DiskError::corrupt("GPT", why);
    let hdr = &head[512..1024];
    if &hdr[0..8] != b"EFI PART" {
        return Err(corrupt("protective MBR but no GPT header at LBA 1".into()));
    }
    let hdr_size = le32(hdr, 12);
    if !(92..=512).contains(&hdr_size) {
        return Err(corrupt(format!("header size {hdr_size}")));
    }
    let mut copy = hdr[..hdr_size as usize].to_vec();
    copy[16..20].fill(0);
    if crc32(&copy) != le32(hdr, 16) {
        return Err(corrupt("header CRC mismatch".into()));
    }
    if le64(hdr, 24) != 1 {
        return Err(corrupt("primary header does not say it is at LBA 1".into()));
    }
    let entries_lba = le64(hdr, 72);
    let count = le32(hdr, 80);
    let entry_size = le32(hdr, 84);
    if count > MAX_GPT_ENTRIES
        || !(128..=MAX_GPT_ENTRY_SIZE).contains(&entry_size)
        || !entry_size.is_multiple_of(8)
    {
        return Err(corrupt(format!("{count} entries of {entry_size} bytes")));
    }
    let len = count as usize * entry_size as usize;
    let offset = entries_lba
        .checked_mul(SECTOR)
        .ok_or_else(|| corrupt("entries LBA out of range".into()))?;
    let mut entries = vec![0u8; len];
    if offset + len as u64 <= head.len() as u64 {
        entries.copy_from_slice(&head[offset as usize..offset as usize + len]);
    } else {
        device.read_at(offset, &mut entries)?;
    }
    if crc32(&entries) != le32(hdr, 88) {
        return Err(corrupt("partition entries CRC mismatch".into()));
    }
    let sectors = device.size() / SECTOR;
    let mut parts = Vec::new();
    for (i, e) in entries.chunks_exact(entry_size as usize).enumerate() {
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&e[0..16]);
        if guid == [0; 16] {
            continue;
        }
        let (first, last) = (le64(e, 32), le64(e, 40));
        if first > last || last >= sectors {
            return Err(corrupt(format!(
                "partition {} spans LBA {first}..={last} of {sectors}",
                i + 1
            )));
        }
        let name: Vec<u16> = e[56..128]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|&c| c != 0)
            .collect();
        parts.push(Partition {
            number: i as u32 + 1,
            start: first * SECTOR,
            len: (last - first + 1) * SECTOR,
            kind: PartitionKind::Gpt {
                type_guid: Guid(guid),
                name: String::from_utf16_lossy(&name),
            },
        });
    }
    Ok(parts)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::disk::MemDevice;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn guids_print_and_name_as_sgdisk_does() {
        assert_eq!(
            Guid::EFI_SYSTEM.to_string(),
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
        );
        assert_eq!(Guid::BIOS_BOOT.known_name(), Some("BIOS boot"));
        assert_eq!(Guid([1; 16]).known_name(), None);
    }

    /// A GPT disk built byte by byte: `parts` are (type, first, last LBA).
    pub(crate) fn gpt_image(sectors: usize, parts: &[(Guid, u64, u64)]) -> Vec<u8> {
        let mut img = vec![0u8; sectors * 512];
        img[446 + 4] = 0xEE;
        img[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        img[446 + 12..446 + 16].copy_from_slice(&(sectors as u32 - 1).to_le_bytes());
        img[510] = 0x55;
        img[511] = 0xAA;
        let mut entries = vec![0u8; 128 * 128];
        for (i, (g, first, last)) in parts.iter().enumerate() {
            let e = &mut entries[i * 128..(i + 1) * 128];
            e[0..16].copy_from_slice(&g.0);
            e[16] = 1;
            e[32..40].copy_from_slice(&first.to_le_bytes());
            e[40..48].copy_from_slice(&last.to_le_bytes());
        }
        img[1024..1024 + entries.len()].copy_from_slice(&entries);
        let h = &mut img[512..1024];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&1u64.to_le_bytes());
        h[72..80].copy_from_slice(&2u64.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&crc32(&entries).to_le_bytes());
        let c = crc32(&h[..92]);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        img
    }

    #[test]
    fn reads_a_gpt_and_checks_both_crcs() {
        let img = gpt_image(
            200,
            &[(Guid::BIOS_BOOT, 40, 47), (Guid::EFI_SYSTEM, 48, 99)],
        );
        let (table, parts) = read_partitions(&MemDevice(img.clone())).unwrap();
        assert_eq!(table, PartitionTable::Gpt);
        assert_eq!(parts.len(), 2);
        assert_eq!(
            (parts[1].number, parts[1].start, parts[1].len),
            (2, 48 * 512, 52 * 512)
        );
        assert!(parts[0].is_bios_boot());

        let mut bad_entry = img.clone();
        bad_entry[1024 + 33] ^= 1;
        let err = read_partitions(&MemDevice(bad_entry)).unwrap_err();
        assert!(err.to_string().contains("entries CRC"), "{err}");

        let mut bad_header = img;
        bad_header[512 + 80] = 0x40; // entry count, under the header CRC
        let err = read_partitions(&MemDevice(bad_header)).unwrap_err();
        assert!(err.to_string().contains("header CRC"), "{err}");
    }

    #[test]
    fn a_gpt_partition_past_the_end_is_corrupt() {
        let img = gpt_image(100, &[(Guid::EFI_SYSTEM, 40, 1000)]);
        assert!(matches!(
            read_partitions(&MemDevice(img)),
            Err(DiskError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_protective_mbr_without_a_gpt_is_corrupt() {
        let mut img = gpt_image(100, &[]);
        img[512..520].fill(0);
        assert!(matches!(
            read_partitions(&MemDevice(img)),
            Err(DiskError::Corrupt { .. })
        ));
    }

    fn mbr_image(sectors: usize, parts: &[(u8, u32, u32)]) -> Vec<u8> {
        let mut img = vec![0u8; sectors * 512];
        for (i, (t, lba, count)) in parts.iter().enumerate() {
            let e = &mut img[446 + 16 * i..446 + 16 * (i + 1)];
            e[4] = *t;
            e[8..12].copy_from_slice(&lba.to_le_bytes());
            e[12..16].copy_from_slice(&count.to_le_bytes());
        }
        img[510] = 0x55;
        img[511] = 0xAA;
        img
    }

    #[test]
    fn reads_mbr_primaries_and_a_logical_chain() {
        let mut img = mbr_image(400, &[(0x83, 2, 100), (0x05, 200, 200)]);
        // EBR at 200: logical at +1 for 50, link to the next EBR at +100.
        let ebr = |img: &mut Vec<u8>, at: usize, start: u32, link: u32| {
            let s = &mut img[at * 512..(at + 1) * 512];
            s[446 + 4] = 0x83;
            s[446 + 8..446 + 12].copy_from_slice(&start.to_le_bytes());
            s[446 + 12..446 + 16].copy_from_slice(&50u32.to_le_bytes());
            if link != 0 {
                s[462 + 4] = 0x05;
                s[462 + 8..462 + 12].copy_from_slice(&link.to_le_bytes());
                s[462 + 12..462 + 16].copy_from_slice(&60u32.to_le_bytes());
            }
            s[510] = 0x55;
            s[511] = 0xAA;
        };
        ebr(&mut img, 200, 1, 100);
        ebr(&mut img, 300, 1, 0);
        let (table, parts) = read_partitions(&MemDevice(img.clone())).unwrap();
        assert_eq!(table, PartitionTable::Mbr);
        let numbers: Vec<_> = parts.iter().map(|p| (p.number, p.start / 512)).collect();
        assert_eq!(numbers, vec![(1, 2), (5, 201), (6, 301)]);

        // The second EBR links back to the first: a loop, refused.
        ebr(&mut img, 300, 1, 0);
        img[300 * 512 + 462 + 4] = 0x05;
        img[300 * 512 + 462 + 8..300 * 512 + 462 + 12].copy_from_slice(&0u32.to_le_bytes());
        img[300 * 512 + 462 + 12] = 1;
        let err = read_partitions(&MemDevice(img)).unwrap_err();
        assert!(err.to_string().contains("loop"), "{err}");
    }

    #[test]
    fn no_table_is_the_whole_volume_and_a_fat_boot_sector_is_not_a_table() {
        let (table, parts) = read_partitions(&MemDevice(vec![0; 8192])).unwrap();
        assert_eq!(table, PartitionTable::None);
        assert_eq!(parts[0].kind, PartitionKind::Whole);

        let mut fat = mbr_image(64, &[(0x83, 1, 10)]);
        fat[82..87].copy_from_slice(b"FAT32");
        assert_eq!(
            read_partitions(&MemDevice(fat)).unwrap().0,
            PartitionTable::None
        );
    }

    /// Random headers and entries with correct CRCs (so the parsing behind
    /// the checks is reached), random MBRs and EBR chains: every outcome
    /// is a table or an error, every partition inside the disk.
    #[test]
    fn random_tables_with_valid_crcs_never_panic_or_escape_the_disk() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut read, mut refused) = (0, 0);
        for i in 0..1000 {
            let sectors = 64 + (next() % 256) as usize;
            let mut img = gpt_image(sectors, &[(Guid::EFI_SYSTEM, 40, 50)]);
            // Scribble over the header fields and entries, then re-seal.
            for _ in 0..1 + next() % 8 {
                let at = 512 + 8 + (next() % (34 * 512 - 520)) as usize;
                img[at] = next() as u8;
            }
            if i % 3 == 0 {
                // Plausible values in the fields that size things.
                let v = [0u32, 1, 127, 128, 129, 1024, 1025, u32::MAX][(next() % 8) as usize];
                let field = [80usize, 84, 72, 12][(next() % 4) as usize];
                img[512 + field..512 + field + 4].copy_from_slice(&v.to_le_bytes());
            }
            let count = le32(&img[512..], 80) as usize;
            let size = le32(&img[512..], 84) as usize;
            if let Some(len) = count.checked_mul(size).filter(|l| 1024 + l <= img.len()) {
                let c = crc32(&img[1024..1024 + len]);
                img[512 + 88..512 + 92].copy_from_slice(&c.to_le_bytes());
            }
            let hs = (le32(&img[512..], 12) as usize).clamp(92, 512);
            img[512 + 16..512 + 20].fill(0);
            let c = crc32(&img[512..512 + hs]);
            img[512 + 16..512 + 20].copy_from_slice(&c.to_le_bytes());
            if i % 2 == 0 {
                // An MBR instead: random entries, some extended.
                img[512..520].fill(0);
                for e in 0..4 {
                    let at = 446 + 16 * e;
                    img[at + 4] = [0x83u8, 0x05, 0x0F, 0xEE, 0x82, 0][(next() % 6) as usize];
                    let lba = (next() % sectors as u64) as u32;
                    img[at + 8..at + 12].copy_from_slice(&lba.to_le_bytes());
                    let n = (next() % sectors as u64) as u32;
                    img[at + 12..at + 16].copy_from_slice(&n.to_le_bytes());
                }
                for _ in 0..next() % 40 {
                    let at = (next() % img.len() as u64) as usize;
                    img[at] = next() as u8;
                }
            }
            let size = img.len() as u64;
            match read_partitions(&MemDevice(img)) {
                Ok((_, parts)) => {
                    read += 1;
                    for p in parts {
                        assert!(p.start + p.len <= size, "iteration {i}: {p:?} past {size}");
                    }
                }
                Err(_) => refused += 1,
            }
        }
        // Both sides reached, or the test proves nothing.
        assert!(
            read > 100 && refused > 100,
            "{read} read, {refused} refused"
        );
    }
}
