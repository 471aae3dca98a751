//! The disk readers against real images: every layout tests/images/build.py
//! makes with e2fsprogs, xfsprogs, gdisk and dosfstools (Amazon Linux 2023,
//! Ubuntu, Debian, an unpartitioned ext4 volume, an MBR disk with an XFS v4
//! root, a data volume), then the same images truncated, fuzzed and made
//! hostile. The images are built on first use (a few minutes, cached); a
//! missing tool fails these tests, it never skips them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ami_publisher::content::{self, Finding, Kind};
use ami_publisher::disk::{
    BlockDevice, Budget, Content, DiskError, FileDevice, FileKind, FileSystem, Meter,
    PartitionTable, ReadStats, read_volume,
};

/// The images' directory, built (once per test run) if missing.
fn images() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = std::env::var_os("DISK_IMAGES_DIR").map(PathBuf::from).unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
            target.join("disk-images")
        });
        let status = std::process::Command::new("python3")
            .arg(root.join("tests/images/build.py"))
            .arg(&dir)
            .status()
            .expect("python3 runs tests/images/build.py (the disk images' builder)");
        assert!(status.success(), "tests/images/build.py failed ({status}): see its message above; `make images-tools` installs the tools");
        dir.join("v3")
    })
    .clone()
}

fn device(name: &str) -> Arc<dyn BlockDevice> {
    Arc::new(FileDevice::open(images().join(format!("{name}.img"))).unwrap())
}

fn root_of(meter: &Meter) -> FileSystem {
    let volume = read_volume(meter).unwrap();
    volume
        .open_root(meter)
        .unwrap()
        .expect("a root file system")
}

const SMALL: u64 = 64 * 1024;

/// What every realistic root holds (tests/images/build.py, `root_tree`).
fn check_root(fs: &mut FileSystem, os_name: &str) {
    let os = fs.read_file("/etc/os-release", SMALL).unwrap();
    assert!(
        String::from_utf8_lossy(&os).contains(os_name),
        "{}",
        String::from_utf8_lossy(&os)
    );
    // Two hops: /etc/system-release -> /etc/os-release -> ../usr/lib/os-release.
    assert_eq!(fs.read_file("/etc/system-release", SMALL).unwrap(), os);
    assert_eq!(
        fs.canonicalize("/etc/system-release").unwrap(),
        "/usr/lib/os-release"
    );
    assert_eq!(
        fs.read_file("/etc/../usr/./lib//os-release", SMALL)
            .unwrap(),
        os
    );
    assert_eq!(
        fs.symlink_metadata("/etc/os-release").unwrap().kind,
        FileKind::Symlink
    );
    assert_eq!(
        fs.read_link("/etc/os-release").unwrap(),
        b"../usr/lib/os-release"
    );

    let passwd = String::from_utf8(fs.read_file("/etc/passwd", SMALL).unwrap()).unwrap();
    assert!(passwd.starts_with("root:x:0:0:root:/root:/bin/bash\n"));
    assert_eq!(passwd.lines().count(), 42);
    let shadow = fs.metadata("/etc/shadow").unwrap();
    assert_eq!((shadow.kind, shadow.mode), (FileKind::File, 0o640));
    assert_eq!(
        fs.read_file("/etc/shadow", SMALL).unwrap().len() as u64,
        shadow.size
    );

    let etc = fs.read_dir("/etc").unwrap();
    assert!(etc.len() >= 260, "{} entries in /etc", etc.len());
    assert!(
        etc.iter()
            .any(|e| e.name == b"ssh" && e.kind == FileKind::Directory)
    );
    assert!(
        etc.iter()
            .any(|e| e.name == b"os-release" && e.kind == FileKind::Symlink)
    );
    let mut ssh: Vec<String> = fs
        .read_dir("/etc/ssh")
        .unwrap()
        .iter()
        .map(|e| e.name_lossy())
        .collect();
    ssh.sort();
    assert_eq!(ssh.len(), 7, "{ssh:?}");
    assert_eq!(ssh[0], "ssh_host_ecdsa_key");
    assert_eq!(
        fs.metadata("/etc/ssh/ssh_host_ed25519_key").unwrap().mode,
        0o600
    );

    let homes = fs.read_dir("/home").unwrap();
    assert_eq!(homes.len(), 40);
    for h in &homes {
        let keys = format!("/home/{}/.ssh/authorized_keys", h.name_lossy());
        let k = fs.read_file(&keys, SMALL).unwrap();
        assert!(String::from_utf8_lossy(&k).contains(&format!("{}@builder", h.name_lossy())));
        assert_eq!(fs.metadata(&keys).unwrap().mode, 0o600);
    }
    let root = fs.metadata("/root").unwrap();
    assert_eq!((root.kind, root.mode), (FileKind::Directory, 0o700));
    assert!(
        fs.read_file("/root/.bash_history", SMALL)
            .unwrap()
            .starts_with(b"aws configure")
    );
    // mkfs.xfs's prototype file has no sticky bit; mke2fs -d copies it.
    let sticky = if fs.kind().starts_with("ext") {
        0o1000
    } else {
        0
    };
    assert_eq!(fs.metadata("/tmp").unwrap().mode, 0o777 | sticky);

    // Through a symlinked directory (merged /usr).
    assert!(
        fs.read_file("/bin/bash", SMALL)
            .unwrap()
            .starts_with(b"\x7fELF")
    );
    assert!(matches!(
        fs.read_file("/etc/loop-a", SMALL),
        Err(DiskError::TooManySymlinks(_))
    ));
    assert!(matches!(
        fs.read_file("/etc/nope", SMALL),
        Err(DiskError::NotFound(_))
    ));
    assert!(matches!(
        fs.read_file("/etc/passwd/x", SMALL),
        Err(DiskError::NotADirectory(_))
    ));
    assert!(matches!(
        fs.read_file("/etc", SMALL),
        Err(DiskError::NotAFile(_))
    ));
    assert!(matches!(
        fs.read_dir("/etc/passwd"),
        Err(DiskError::NotADirectory(_))
    ));
    let big = fs.metadata("/var/log/big.log").unwrap();
    assert_eq!(big.size, 64 << 20);
    assert!(
        matches!(fs.read_file("/var/log/big.log", SMALL), Err(DiskError::TooLarge { size, .. }) if size == 64 << 20)
    );

    let mut files = 0;
    fs.walk("/usr/share/doc", 100_000, |_, e| {
        files += usize::from(e.kind == FileKind::File);
        true
    })
    .unwrap();
    assert_eq!(files, 250 * 16);
}

fn contents(meter: &Meter) -> (PartitionTable, Vec<(u32, Content)>) {
    let v = read_volume(meter).unwrap();
    (
        v.table,
        v.partitions
            .iter()
            .map(|(p, c)| (p.number, c.clone()))
            .collect(),
    )
}

#[test]
fn amazon_linux_2023_like_xfs_root_on_1_beside_bios_boot_and_efi() {
    let meter = Meter::new(device("al2023"), Budget::default());
    let (table, parts) = contents(&meter);
    assert_eq!(table, PartitionTable::Gpt);
    assert_eq!(
        parts,
        vec![
            (1, Content::Xfs { v5: true }),
            (127, Content::BiosBoot),
            (128, Content::Fat)
        ]
    );
    let mut fs = root_of(&meter);
    assert_eq!(fs.kind(), "XFS");
    check_root(&mut fs, "Amazon Linux");
}

#[test]
fn ubuntu_like_ext4_root_on_1_efi_on_15_boot_on_16() {
    let meter = Meter::new(device("ubuntu"), Budget::default());
    let (table, parts) = contents(&meter);
    assert_eq!(table, PartitionTable::Gpt);
    assert_eq!(
        parts,
        vec![
            (1, Content::Ext("ext4")),
            (14, Content::BiosBoot),
            (15, Content::Fat),
            (16, Content::Ext("ext4"))
        ]
    );
    let mut fs = root_of(&meter);
    check_root(&mut fs, "Ubuntu");
    // /boot is a file system of its own, and not the root.
    let volume = read_volume(&meter).unwrap();
    let boot = &volume.partitions[3].0;
    let mut boot = volume.open(&meter, boot).unwrap();
    assert!(
        boot.read_file("/grub/grub.cfg", SMALL)
            .unwrap()
            .starts_with(b"set default")
    );
    assert!(matches!(boot.metadata("/etc"), Err(DiskError::NotFound(_))));
}

#[test]
fn debian_like_ext3_root_on_4_after_efi_ext2_boot_and_swap() {
    let meter = Meter::new(device("debian"), Budget::default());
    let (_, parts) = contents(&meter);
    assert_eq!(
        parts,
        vec![
            (1, Content::Fat),
            (2, Content::Ext("ext2")),
            (3, Content::Swap),
            (4, Content::Ext("ext3"))
        ]
    );
    let mut fs = root_of(&meter);
    assert_eq!(fs.kind(), "ext3");
    check_root(&mut fs, "Debian");
}

#[test]
fn unpartitioned_ext4_volume_is_the_root() {
    let meter = Meter::new(device("plain-ext4"), Budget::default());
    assert_eq!(
        contents(&meter),
        (PartitionTable::None, vec![(0, Content::Ext("ext4"))])
    );
    check_root(&mut root_of(&meter), "Ubuntu");
}

#[test]
fn mbr_disk_with_boot_swap_and_an_xfs_v4_root_on_3() {
    let meter = Meter::new(device("mbr"), Budget::default());
    assert_eq!(
        contents(&meter),
        (
            PartitionTable::Mbr,
            vec![
                (1, Content::Ext("ext4")),
                (2, Content::Swap),
                (3, Content::Xfs { v5: false })
            ]
        )
    );
    let mut fs = root_of(&meter);
    assert_eq!(fs.kind(), "XFS v4");
    check_root(&mut fs, "CentOS");
}

#[test]
fn a_second_data_volume_is_read_under_the_same_budget_and_has_no_root() {
    let meter = Meter::new(device("al2023"), Budget::default());
    root_of(&meter).read_file("/etc/passwd", SMALL).unwrap();
    let before = meter.stats();
    let data = meter.attach(device("data"));
    let volume = read_volume(&data).unwrap();
    assert!(volume.open_root(&data).unwrap().is_none());
    let (part, _) = volume.linux_file_systems().next().unwrap();
    let mut fs = volume.open(&data, part).unwrap();
    assert!(
        fs.read_file("/README", SMALL)
            .unwrap()
            .starts_with(b"second volume")
    );
    assert_eq!(fs.read_dir("/data").unwrap().len(), 20);
    // One account for both volumes.
    assert!(meter.stats().blocks > before.blocks);
    assert_eq!(meter.stats(), data.stats());
}

/// Reads what the content check reads (the next issue): /etc/passwd,
/// /etc/shadow, /etc/ssh/*, every home's .ssh and dot files, /root.
/// Returns the number of files read.
fn read_check_paths(meter: &Meter) -> Result<usize, DiskError> {
    let volume = read_volume(meter)?;
    let Some(mut fs) = volume.open_root(meter)? else {
        return Ok(0);
    };
    let mut n = 0;
    let mut read = |fs: &mut FileSystem, path: &str| -> Result<(), DiskError> {
        match fs.read_file(path, SMALL) {
            Ok(_) | Err(DiskError::TooLarge { .. }) | Err(DiskError::NotAFile(_)) => {
                n += 1;
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    read(&mut fs, "/etc/passwd")?;
    read(&mut fs, "/etc/shadow")?;
    for e in fs.read_dir("/etc/ssh")? {
        read(&mut fs, &format!("/etc/ssh/{}", e.name_lossy()))?;
    }
    let mut homes: Vec<String> = fs
        .read_dir("/home")?
        .iter()
        .map(|e| format!("/home/{}", e.name_lossy()))
        .collect();
    homes.push("/root".into());
    for home in homes {
        for e in fs.read_dir(&home)? {
            let name = e.name_lossy();
            if !name.starts_with('.') {
                continue;
            }
            let path = format!("{home}/{name}");
            match e.kind {
                FileKind::File => read(&mut fs, &path)?,
                FileKind::Directory => {
                    for f in fs.read_dir(&path)? {
                        if f.kind == FileKind::File {
                            read(&mut fs, &format!("{path}/{}", f.name_lossy()))?;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(n)
}

#[test]
fn the_content_check_paths_cost_few_snapshot_blocks() {
    // Figures for the report: distinct 512 KiB blocks, bytes asked, reads.
    for (name, max_blocks) in [
        ("al2023", 40),
        ("ubuntu", 40),
        ("debian", 40),
        ("mbr", 40),
        ("plain-ext4", 40),
    ] {
        let meter = Meter::new(device(name), Budget::default());
        let files = read_check_paths(&meter).unwrap();
        let s = meter.stats();
        eprintln!(
            "{name}: {files} files; {} blocks of 512 KiB ({} MiB to transfer), {} reads, {} bytes asked",
            s.blocks,
            s.blocks / 2,
            s.reads,
            s.bytes
        );
        assert!(files >= 2 + 6 + 40 * 4 + 3, "{name}: {files} files");
        assert!(s.blocks <= max_blocks, "{name}: {s:?}");
    }
}

// ------------------------------------------------------------ hostile bytes

/// The budget the hostile tests hold the readers to: far above what a real
/// image needs (see above), far below the volumes' sizes.
fn tight() -> Budget {
    Budget {
        max_blocks: 200,
        max_bytes: 64 << 20,
        max_reads: 20_000,
        ..Budget::default()
    }
}

fn within(stats: ReadStats, b: Budget) {
    assert!(
        stats.blocks <= b.max_blocks && stats.bytes <= b.max_bytes && stats.reads <= b.max_reads,
        "{stats:?}"
    );
}

/// A device whose reported size is cut short, as a truncated upload would be.
struct Truncated(Arc<dyn BlockDevice>, u64);

impl BlockDevice for Truncated {
    fn size(&self) -> u64 {
        self.1
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        match offset.checked_add(buf.len() as u64) {
            Some(end) if end <= self.1 => self.0.read_at(offset, buf),
            _ => Err(DiskError::OutOfRange {
                offset,
                len: buf.len() as u64,
                size: self.1,
            }),
        }
    }
}

const LAYOUTS: [&str; 6] = ["al2023", "ubuntu", "debian", "plain-ext4", "mbr", "data"];

#[test]
fn truncated_images_end_in_could_not_read() {
    for name in LAYOUTS {
        for cut in [0u64, 511, 4096, 1 << 20, 20 << 20, 64 << 20, 300 << 20] {
            let meter = Meter::new(Arc::new(Truncated(device(name), cut)), tight());
            let result = read_check_paths(&meter);
            within(meter.stats(), tight());
            match result {
                Err(e) => assert!(e.report().starts_with("could not read: "), "{e}"),
                // Only the data volume, which has nothing to read: every
                // other one's file system is larger than what is left of
                // the volume, and is refused as Linux refuses to mount it.
                Ok(n) => assert!(
                    name == "data" && n == 0,
                    "{name} cut at {cut}: read {n} files"
                ),
            }
        }
    }
}

/// Records which ranges a clean read touched: the fuzzer mutates there, in
/// the metadata the readers really parse, not in 8 GiB of holes.
struct Recorder(Arc<dyn BlockDevice>, Mutex<Vec<(u64, usize)>>);

impl BlockDevice for Recorder {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.1.lock().unwrap().push((offset, buf.len()));
        self.0.read_at(offset, buf)
    }
}

/// The image with some bytes XORed.
struct Mutated(Arc<dyn BlockDevice>, BTreeMap<u64, u8>);

impl BlockDevice for Mutated {
    fn size(&self) -> u64 {
        self.0.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        self.0.read_at(offset, buf)?;
        for (at, x) in self.1.range(offset..offset + buf.len() as u64) {
            buf[(at - offset) as usize] ^= x;
        }
        Ok(())
    }
}

/// xorshift64*: deterministic, so a failing iteration can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One mutation of the ranges a clean read touched: bit flips, bytes set to
/// 0x00/0xFF, or a 32-bit field set to a huge value.
fn mutate(rng: &mut Rng, ranges: &[(u64, usize)]) -> BTreeMap<u64, u8> {
    let mut flips = BTreeMap::new();
    for _ in 0..1 + rng.below(12) {
        let (start, len) = ranges[rng.below(ranges.len() as u64) as usize];
        let at = start + rng.below(len as u64);
        match rng.below(4) {
            0 => {
                flips.insert(at, 1u8 << rng.below(8));
            }
            1 => {
                flips.insert(at, 0xFF);
            }
            2 => {
                for i in 0..4 {
                    flips.insert((at & !3) + i, 0x7F);
                }
            }
            _ => {
                flips.insert(at, rng.next() as u8 | 1);
            }
        }
    }
    flips
}

/// Every layout, `iterations` mutated reads each (`read`: what is read),
/// on a worker thread the test watches: a panic or an iteration over 30 s
/// (a hang) fails with the layout and the seed to replay.
fn fuzz(layouts: &[&str], iterations: u64, read: fn(&Meter) -> Result<usize, DiskError>) {
    let budget = tight();
    for name in layouts {
        let base = device(name);
        let recorder = Arc::new(Recorder(Arc::clone(&base), Mutex::new(Vec::new())));
        let _ = read(&Meter::new(recorder.clone(), Budget::default()));
        let ranges = recorder.1.lock().unwrap().clone();
        assert!(!ranges.is_empty());
        let (tx, rx) = mpsc::channel();
        let worker_name = name.to_string();
        std::thread::spawn(move || {
            for i in 0..iterations {
                let seed = 0x9E37_79B9_7F4A_7C15u64 ^ (i + 1).wrapping_mul(0x1000_0001);
                let flips = mutate(&mut Rng(seed), &ranges);
                let meter = Meter::new(Arc::new(Mutated(Arc::clone(&base), flips)), budget);
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&meter)));
                let ok = outcome.is_ok();
                if tx
                    .send((i, seed, ok, meter.stats(), outcome.ok().map(|r| r.is_ok())))
                    .is_err()
                    || !ok
                {
                    return;
                }
            }
            drop(worker_name);
        });
        let (mut good, mut errors) = (0, 0);
        for i in 0..iterations {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok((_, seed, false, _, _)) => {
                    panic!("{name}: iteration {i} (seed {seed:#x}) panicked")
                }
                Ok((_, _, true, stats, read_ok)) => {
                    within(stats, budget);
                    if read_ok == Some(true) {
                        good += 1
                    } else {
                        errors += 1
                    }
                }
                Err(e) => panic!("{name}: iteration {i} did not finish within 30 s ({e}): a hang"),
            }
        }
        eprintln!(
            "fuzz {name}: {iterations} mutated reads, {good} read through, {errors} ended in could not read"
        );
    }
}

#[test]
fn fuzzed_images_end_in_a_result_within_the_budget() {
    // `make fuzz` runs many more (DISK_FUZZ_ITERATIONS).
    let n = std::env::var("DISK_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let layouts: Vec<&str> = LAYOUTS
        .iter()
        .chain(&["hostile-ext4", "hostile-xfs"])
        .copied()
        .collect();
    fuzz(&layouts, n, read_check_paths);
}

#[test]
fn a_directory_cycle_ends_in_an_error_within_the_budget() {
    for (name, cycle) in [
        ("hostile-ext4", "/etc/sub/back"),
        ("hostile-xfs", "/etc/sub/f"),
    ] {
        let meter = Meter::new(device(name), tight());
        let mut fs = root_of(&meter);
        // The cycle resolves like any hard link: /etc/sub/<cycle>/sub/... is /etc/sub/...
        assert_eq!(
            fs.metadata(cycle).unwrap().kind,
            FileKind::Directory,
            "{name}"
        );
        let long = format!(
            "{cycle}/sub{}/hostname",
            cycle.trim_start_matches("/etc/sub")
        );
        assert_eq!(fs.read_file(&long, SMALL).unwrap(), b"hostile\n", "{name}");
        let err = fs.walk("/etc", 100_000, |_, _| true).unwrap_err();
        assert!(err.report().contains("directory cycle"), "{name}: {err}");
        within(meter.stats(), tight());
    }
}

#[test]
fn a_huge_size_field_ends_in_an_error_within_the_budget() {
    for name in ["hostile-ext4", "hostile-xfs"] {
        let meter = Meter::new(device(name), tight());
        let mut fs = root_of(&meter);
        let err = fs.read_file("/etc/passwd", SMALL).unwrap_err();
        assert!(
            matches!(err, DiskError::TooLarge { .. } | DiskError::Corrupt { .. }),
            "{name}: {err}"
        );
        // A directory claiming 2^47 bytes: listed from what it holds, or refused.
        match fs.read_dir("/home") {
            Ok(entries) => assert_eq!(entries.len(), 1, "{name}"),
            Err(e) => assert!(e.report().starts_with("could not read: "), "{name}: {e}"),
        }
        if name == "hostile-ext4" {
            let err = fs.read_file("/lnk", SMALL).unwrap_err();
            assert!(err.report().starts_with("could not read: "), "{err}");
        }
        within(meter.stats(), tight());
    }
}

#[test]
fn names_that_are_not_utf8_are_listed_walked_and_read_as_bytes() {
    for name in ["hostile-ext4", "hostile-xfs"] {
        let meter = Meter::new(device(name), tight());
        let mut fs = root_of(&meter);
        let listed: Vec<Vec<u8>> = fs
            .read_dir("/srv")
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert!(listed.contains(&b"\xffodd".to_vec()), "{name}: {listed:?}");
        let mut walked = Vec::new();
        fs.walk("/srv", 1000, |path, _| {
            walked.push(path.to_vec());
            true
        })
        .unwrap();
        assert!(
            walked.contains(&b"/srv/\xffodd/inner".to_vec()),
            "{name}: {walked:?}"
        );
        assert_eq!(
            fs.read_file(&b"/srv/\xffodd/inner"[..], SMALL).unwrap(),
            b"found\n"
        );
    }
}

#[test]
fn a_budget_too_small_for_the_reads_says_so() {
    let budget = Budget {
        max_blocks: 4,
        ..Budget::default()
    };
    let meter = Meter::new(device("al2023"), budget);
    let err = read_check_paths(&meter).unwrap_err();
    assert!(matches!(err, DiskError::OverBudget(_)), "{err}");
    assert!(
        err.report()
            .starts_with("could not read: over the read budget"),
        "{}",
        err.report()
    );
    within(meter.stats(), budget);

    let meter = Meter::new(
        device("ubuntu"),
        Budget {
            max_volume_bytes: 4 << 30,
            ..Budget::default()
        },
    );
    let err = read_check_paths(&meter).unwrap_err();
    assert!(
        err.report()
            .contains("(8 GiB) is larger than the read budget allows (4 GiB)"),
        "{}",
        err.report()
    );
}

// ------------------------------------------------------- the content check

const PLANTED: &str = "PLANTED-SECRET-7f3a";

/// What tests/images/build.py's `planted_tree` plants, kind by kind.
fn planted_findings() -> Vec<Finding> {
    use Kind::*;
    let mut expected: Vec<Finding> = [
        (AuthorizedKeys, "/root/.ssh/authorized_keys", Some("root")),
        (
            AuthorizedKeys,
            "/home/ann/.ssh/authorized_keys2",
            Some("ann"),
        ),
        (
            AuthorizedKeys,
            "/home/bob/.ssh/authorized_keys2",
            Some("bob"),
        ),
        (HostKeys, "/etc/ssh/ssh_host_ed25519_key", None),
        (Histories, "/home/ann/.bash_history", Some("ann")),
        (Histories, "/srv/svc/.psql_history", Some("svc")),
        (Histories, "/home/orphan/.python_history", None),
        (Histories, "/home/\u{fffd}x/.bash_history", None),
        (Histories, "/root/.bash_history", Some("root")),
        (Credentials, "/home/ann/.aws/credentials", Some("ann")),
        (Credentials, "/home/ann/.docker/config.json", Some("ann")),
        (Credentials, "/root/.git-credentials", Some("root")),
        (Credentials, "/home/bob/.aws/config", Some("bob")),
        (Credentials, "/home/bob/.netrc", Some("bob")),
        (Credentials, "/home/bob/.pgpass", Some("bob")),
        (Credentials, "/home/bob/.npmrc", Some("bob")),
        (Credentials, "/home/bob/.config/gh/hosts.yml", Some("bob")),
        (Credentials, "/home/bob/.kube/config", Some("bob")),
        (Credentials, "/etc/environment", None),
        (Credentials, "/etc/profile.d/build.sh", None),
        (PasswordLogin, "/etc/shadow", Some("ann")),
        (PasswordLogin, "/etc/shadow", Some("nopass")),
        (PasswordLogin, "/etc/ssh/sshd_config", None),
        (
            PasswordLogin,
            "/etc/ssh/sshd_config.d/50-cloud-init.conf",
            None,
        ),
        (
            InstanceData,
            "/var/lib/cloud/instances/i-0123456789abcdef0/user-data.txt",
            None,
        ),
    ]
    .into_iter()
    .map(|(kind, path, account)| Finding::new(kind, path.as_bytes(), account))
    .collect();
    expected.sort();
    expected
}

/// The content check over every Linux file system of one image: the
/// findings of each, in table order.
fn check_image(meter: &Meter) -> Result<Vec<Vec<Finding>>, DiskError> {
    let volume = read_volume(meter)?;
    let mut all = Vec::new();
    for (part, _) in volume.linux_file_systems() {
        let mut fs = volume.open(meter, part)?;
        all.push(content::check_file_system(&mut fs)?);
    }
    Ok(all)
}

/// Nothing planted shows in what a person, a log or a tag would see.
fn assert_no_secret(findings: &[Finding]) {
    let outcome = content::Outcome::Read {
        findings: findings.to_vec(),
        file_systems: vec![],
    };
    let shown = [
        format!("{findings:?}"),
        format!("{outcome:?}"),
        outcome.to_string(),
        serde_json::to_string(&outcome).unwrap(),
        content::summary(findings, 256),
        findings.iter().map(|f| format!("{f}\n")).collect(),
    ];
    for text in shown {
        for secret in [PLANTED, "PLANTED000000000", "Q9vVx0cK1p2r3s4t"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[test]
fn every_kind_planted_is_found_with_its_path_and_account_on_ext4_and_xfs_partitioned_or_not() {
    for name in [
        "planted-xfs",
        "planted-ext4",
        "planted-xfs-plain",
        "planted-ext4-plain",
    ] {
        let meter = Meter::new(device(name), Budget::default());
        let found = check_image(&meter).unwrap();
        assert_eq!(found.len(), 1, "{name}: one Linux file system");
        assert_eq!(found[0], planted_findings(), "{name}");
        let kinds: BTreeSet<Kind> = found[0].iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), Kind::ALL.len(), "{name}: every kind");
        assert_no_secret(&found[0]);
        let summary = content::summary(&found[0], 256);
        assert!(
            summary.starts_with(
                "authorized-keys, host-keys, histories, credentials, password-login, instance-data: "
            ) && summary.chars().count() <= 256
                && summary.ends_with(" more"),
            "{summary}"
        );
        eprintln!("{name}: {} findings, {:?}", found[0].len(), meter.stats());
    }
}

#[test]
fn a_clean_image_has_no_finding() {
    for name in ["clean-xfs", "clean-ext4-plain"] {
        let meter = Meter::new(device(name), Budget::default());
        assert_eq!(check_image(&meter).unwrap(), vec![vec![]], "{name}");
    }
}

#[test]
fn a_system_file_over_the_read_bound_makes_the_file_system_unreadable() {
    let meter = Meter::new(device("oversize-ext4-plain"), Budget::default());
    let err = check_image(&meter).unwrap_err();
    assert!(
        matches!(&err, DiskError::TooLarge { path, max, .. } if path == "/etc/profile.d/huge.sh" && *max == content::MAX_FILE_BYTES),
        "{err}"
    );
}

#[test]
fn a_volume_without_etc_is_checked_as_homes_at_its_top() {
    let meter = Meter::new(device("planted-home"), Budget::default());
    assert_eq!(
        check_image(&meter).unwrap(),
        vec![vec![Finding::new(
            Kind::AuthorizedKeys,
            b"/carol/.ssh/authorized_keys",
            None
        )]]
    );
}

#[test]
fn the_check_of_a_realistic_root_costs_few_snapshot_blocks() {
    // root_tree: 40 homes with keys and histories, 3 host keys, root's.
    for (name, max_blocks) in [("al2023", 48), ("ubuntu", 48), ("mbr", 48)] {
        let meter = Meter::new(device(name), Budget::default());
        let found = check_image(&meter).unwrap();
        let s = meter.stats();
        let root: &Vec<Finding> = found.iter().max_by_key(|f| f.len()).unwrap();
        let count = |kind| root.iter().filter(|f| f.kind == kind).count();
        eprintln!(
            "{name}: {} findings; {} blocks of 512 KiB, {} reads, {} bytes asked",
            root.len(),
            s.blocks,
            s.reads,
            s.bytes
        );
        assert_eq!(count(Kind::AuthorizedKeys), 41, "{name}");
        assert_eq!(count(Kind::HostKeys), 3, "{name}");
        assert!(s.blocks <= max_blocks, "{name}: {s:?}");
    }
}

#[test]
fn hostile_and_fuzzed_images_end_in_findings_or_could_not_read_within_the_budget() {
    for name in ["hostile-ext4", "hostile-xfs"] {
        let meter = Meter::new(device(name), tight());
        match check_image(&meter) {
            Ok(_) => {}
            Err(e) => assert!(e.report().starts_with("could not read: "), "{name}: {e}"),
        }
        within(meter.stats(), tight());
    }
    let n = std::env::var("DISK_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    fuzz(&["planted-xfs", "planted-ext4-plain"], n, |meter| {
        check_image(meter).map(|found| found.iter().map(Vec::len).sum())
    });
}

#[test]
fn a_budget_too_small_for_the_check_says_so() {
    let budget = Budget {
        max_blocks: 3,
        ..Budget::default()
    };
    let meter = Meter::new(device("planted-xfs"), budget);
    let err = check_image(&meter).unwrap_err();
    assert!(matches!(err, DiskError::OverBudget(_)), "{err}");
}
