//! Reading an AMI's volumes through the EBS direct APIs, against the
//! emulator: disk images like real AMIs' (tests/images/build.py) uploaded
//! the way coldsnap does, an AMI registered over them, then read by the
//! function's own code (src/snapshot.rs over src/ebs.rs) with its clients.

use std::collections::HashMap;

use ami_publisher::disk::{Budget, DiskError, FileKind};
use ami_publisher::model::{EbsSnapshot, ImageId, RegionName};
use ami_publisher::snapshot::{self, ReadOptions};
use serde_json::{Value, json};

use super::HOME;
use crate::common::{Emulator, disk_images};

/// Uploads each image (the first the root) and registers an AMI over
/// them; returns the AMI's snapshots as `DescribeImages` tells them.
async fn ami_over(emu: &Emulator, images: &[&str]) -> Vec<EbsSnapshot> {
    let snapshots: Vec<Value> = images
        .iter()
        .map(|name| {
            let path = disk_images().join(format!("{name}.img"));
            json!({"snapshot_id": emu.upload_image(HOME, &path)})
        })
        .collect();
    let id = emu.seed(json!({"region": HOME, "name": images.join("+"), "snapshots": snapshots}));
    let region = RegionName::parse(HOME).unwrap();
    let clients = emu.clients(HOME).await;
    let image = ami_publisher::ec2::describe_image(
        &clients.ec2(&region).unwrap(),
        &region,
        &ImageId::parse(&id).unwrap(),
    )
    .await
    .unwrap()
    .expect("the AMI just registered");
    let described: Vec<&str> = image
        .snapshots
        .iter()
        .map(|s| s.snapshot_id.as_str())
        .collect();
    let uploaded: Vec<&str> = snapshots
        .iter()
        .map(|s| s["snapshot_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        described, uploaded,
        "the root's snapshot first, then the others"
    );
    emu.clear_calls();
    image.snapshots
}

async fn ebs_client(emu: &Emulator) -> aws_sdk_ebs::Client {
    emu.clients(HOME)
        .await
        .ebs(&RegionName::parse(HOME).unwrap())
        .unwrap()
}

/// GetSnapshotBlock calls that reached the emulator (an injected fault's
/// too), by (snapshot, block).
fn block_calls(emu: &Emulator) -> HashMap<(String, u64), u64> {
    let mut calls = HashMap::new();
    for call in emu.get("/_emulator/calls?service=ebs")["calls"]
        .as_array()
        .unwrap()
    {
        if call["action"] == "GetSnapshotBlock" {
            let key = (
                call["snapshot_id"].as_str().unwrap().to_owned(),
                call["block_index"].as_u64().unwrap(),
            );
            *calls.entry(key).or_default() += 1;
        }
    }
    calls
}

/// What every realistic root holds (tests/images/build.py's root_tree).
fn check_root(
    root: &mut ami_publisher::disk::FileSystem,
) -> Result<(String, usize, String), DiskError> {
    let os = String::from_utf8_lossy(&root.read_file("/etc/os-release", 1 << 16)?).into_owned();
    let homes = root.read_dir("/home")?.len();
    let passwd = String::from_utf8_lossy(&root.read_file("/etc/passwd", 1 << 16)?).into_owned();
    let ssh = root.read_dir("/etc/ssh")?;
    assert!(
        ssh.iter()
            .any(|e| e.name == b"ssh_host_ed25519_key" && e.kind == FileKind::File)
    );
    Ok((os, homes, passwd))
}

#[tokio::test]
async fn each_layout_is_read_block_by_block_and_no_block_is_fetched_twice() {
    let emu = Emulator::start();
    let ebs = ebs_client(&emu).await;
    for (image, os_name) in [
        ("al2023", "Amazon Linux"),
        ("ubuntu", "Ubuntu"),
        ("plain-ext4", "Ubuntu"),
        ("mbr", "CentOS"),
    ] {
        let snapshots = ami_over(&emu, &[image]).await;
        let ((os, homes, passwd), read, fetched) =
            snapshot::read_root(&ebs, &snapshots, ReadOptions::default(), check_root)
                .await
                .unwrap_or_else(|e| panic!("{image}: {}", e.report()));
        assert!(os.contains(os_name), "{image}: {os}");
        assert_eq!(homes, 40, "{image}");
        assert!(passwd.contains("user39:x:1039"), "{image}");

        let calls = block_calls(&emu);
        assert!(
            calls.values().all(|n| *n == 1),
            "{image}: a block fetched twice: {calls:?}"
        );
        assert_eq!(calls.len() as u64, fetched.fetched, "{image}: {fetched:?}");
        assert_eq!(fetched.refetched, 0, "{image}");
        assert_eq!(fetched.list_calls, 1, "{image}");
        // Every block fetched was one the readers touched; the others they
        // touched are not in the listing and cost no call.
        assert_eq!(
            fetched.fetched + fetched.zero_blocks,
            read.blocks,
            "{image}: {read:?} {fetched:?}"
        );
        eprintln!("{image}: {read:?} {fetched:?}");
    }
}

#[tokio::test]
async fn every_volume_of_an_ami_is_read_and_the_root_found_on_its_own() {
    let emu = Emulator::start();
    let ebs = ebs_client(&emu).await;
    let snapshots = ami_over(&emu, &["ubuntu", "data"]).await;
    let disks = snapshot::open(&ebs, &snapshots, ReadOptions::default())
        .await
        .unwrap();
    let (volumes, homes) = tokio::task::spawn_blocking(move || {
        let volumes = disks.read_volumes().unwrap();
        let mut root = disks.open_root().unwrap();
        let homes = root.read_dir("/home").unwrap().len();
        let kinds: Vec<Vec<String>> = volumes
            .iter()
            .map(|(_, v)| v.linux_file_systems().map(|(_, c)| c.to_string()).collect())
            .collect();
        (kinds, homes)
    })
    .await
    .unwrap();
    assert_eq!(volumes.len(), 2);
    assert_eq!(volumes[1].len(), 1, "the data volume's XFS: {volumes:?}");
    assert!(volumes[1][0].contains("XFS"), "{volumes:?}");
    assert_eq!(homes, 40);

    // Only the data volume: every volume read, and no root to be found.
    let data_only = vec![snapshots[1].clone()];
    let err = snapshot::read_root(&ebs, &data_only, ReadOptions::default(), |_| Ok(()))
        .await
        .unwrap_err();
    assert!(
        err.report()
            .starts_with("could not read: no root file system"),
        "{}",
        err.report()
    );
}

#[tokio::test]
async fn throttled_block_reads_are_retried() {
    let emu = Emulator::start();
    let ebs = ebs_client(&emu).await;
    let snapshots = ami_over(&emu, &["plain-ext4"]).await;
    emu.post(
        "/_emulator/faults",
        json!({"action": "GetSnapshotBlock", "error_code": "RequestThrottledException", "count": 2}),
    );
    let (found, _, fetched) =
        snapshot::read_root(&ebs, &snapshots, ReadOptions::default(), |root| {
            root.read_dir("/home").map(|e| e.len())
        })
        .await
        .unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(found, 40);
    // Two attempts refused, each tried again: two calls more than blocks.
    let calls: u64 = block_calls(&emu).values().sum();
    assert_eq!(calls, fetched.fetched + 2, "{fetched:?}");
    assert_eq!(fetched.refetched, 0);
}

#[tokio::test]
async fn a_snapshot_over_the_budget_is_refused_before_its_blocks_are_read() {
    let emu = Emulator::start();
    let ebs = ebs_client(&emu).await;
    let snapshots = ami_over(&emu, &["al2023"]).await;
    let small = ReadOptions {
        budget: Budget {
            max_volume_bytes: 4 << 30,
            ..Budget::default()
        },
        ..ReadOptions::default()
    };
    let err = snapshot::read_root(&ebs, &snapshots, small, |_| Ok(()))
        .await
        .unwrap_err();
    assert!(
        err.report().starts_with("could not read: snap-")
            && err
                .report()
                .contains("(8 GiB) is larger than the read budget allows (4 GiB)"),
        "{}",
        err.report()
    );
    assert!(block_calls(&emu).is_empty());

    // A budget of blocks: the readers stop at it, with no call beyond it.
    let few = ReadOptions {
        budget: Budget {
            max_blocks: 2,
            ..Budget::default()
        },
        ..ReadOptions::default()
    };
    let err = snapshot::read_root(&ebs, &snapshots, few, |root| root.read_dir("/home"))
        .await
        .unwrap_err();
    assert!(matches!(err, DiskError::OverBudget(_)), "{err:?}");
    assert!(
        err.report()
            .starts_with("could not read: over the read budget"),
        "{}",
        err.report()
    );
    // Fetching ahead keeps to the budget too.
    assert!(block_calls(&emu).len() <= 2, "{:?}", block_calls(&emu));
}

#[tokio::test]
async fn a_block_that_does_not_match_its_checksum_fails_the_read_and_is_never_data() {
    let emu = Emulator::start();
    let ebs = ebs_client(&emu).await;
    let snapshots = ami_over(&emu, &["plain-ext4"]).await;
    let root = snapshots[0].snapshot_id.clone();
    // Block 0 holds what every reading starts from (the partition table's
    // place, the ext4 superblock at 1 KiB). Every answer for it corrupted
    // (one bit flipped, the checksum EBS sent unchanged), however often
    // the reader asks.
    emu.post(
        "/_emulator/corrupt-blocks",
        json!({"snapshot_id": root, "block_index": 0, "count": 1000}),
    );
    let reached = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = reached.clone();
    let err = snapshot::read_root(&ebs, &snapshots, ReadOptions::default(), move |fs| {
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
        fs.read_dir("/home").map(|e| e.len())
    })
    .await
    .expect_err("a block whose data does not match its checksum read as data");
    let report = err.report();
    assert!(
        report.starts_with("could not read: ")
            && report.contains(&format!("block 0 of {root}"))
            && report.contains("checksum mismatch"),
        "{report}"
    );
    assert!(
        !reached.load(std::sync::atomic::Ordering::SeqCst),
        "a file system was opened over the corrupted block"
    );
    // The emulator did corrupt what the reader fetched.
    let corrupted = emu.get("/_emulator/corrupt-blocks")["corruptions"][0]["corrupted"]
        .as_u64()
        .unwrap();
    assert!(corrupted >= 1);
    assert_eq!(
        block_calls(&emu).get(&(root.clone(), 0)).copied(),
        Some(corrupted),
        "every fetch of block 0 was answered corrupted"
    );

    // The same AMI read once the corruption is gone: the failure was the
    // checksum's, not the image's.
    emu.post("/_emulator/reset", json!({}));
    let snapshots = ami_over(&emu, &["plain-ext4"]).await;
    let (homes, _, _) = snapshot::read_root(&ebs, &snapshots, ReadOptions::default(), |fs| {
        fs.read_dir("/home").map(|e| e.len())
    })
    .await
    .unwrap_or_else(|e| panic!("{}", e.report()));
    assert_eq!(homes, 40);
}

/// One corrupted answer is fetched again, as the EBS User Guide says to
/// ("consider the data not valid and retry your request"), and the read
/// goes on with the data that matches.
#[tokio::test]
async fn a_block_that_does_not_match_its_checksum_once_is_fetched_again() {
    let emu = Emulator::start();
    let ebs = ebs_client(&emu).await;
    let snapshots = ami_over(&emu, &["plain-ext4"]).await;
    let root = snapshots[0].snapshot_id.clone();
    emu.post(
        "/_emulator/corrupt-blocks",
        json!({"snapshot_id": root, "block_index": 0, "count": 1}),
    );

    let (homes, _, _) = snapshot::read_root(&ebs, &snapshots, ReadOptions::default(), |fs| {
        fs.read_dir("/home").map(|e| e.len())
    })
    .await
    .unwrap_or_else(|e| panic!("{}", e.report()));

    assert_eq!(homes, 40);
    assert_eq!(block_calls(&emu).get(&(root, 0)).copied(), Some(2));
}

#[tokio::test]
async fn the_content_check_reads_every_volume_once_and_names_no_secret() {
    use ami_publisher::content::{self, Finding, Kind, Outcome};
    let emu = Emulator::start();
    let ebs = ebs_client(&emu).await;
    // A planted ext4 root on GPT, and a volume as if mounted at /home.
    let snapshots = ami_over(&emu, &["planted-ext4", "planted-home"]).await;
    let checked = content::check_ami(&ebs, &snapshots, ReadOptions::default()).await;
    let Outcome::Read {
        findings,
        file_systems,
    } = &checked.outcome
    else {
        panic!("{}", checked.outcome)
    };
    assert_eq!(file_systems.len(), 2, "{file_systems:?}");
    let kinds: std::collections::BTreeSet<Kind> = findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds.len(), Kind::ALL.len(), "{findings:?}");
    assert_eq!(findings.len(), 26, "{findings:?}");
    assert!(findings.contains(&Finding::new(
        Kind::AuthorizedKeys,
        b"/dev/sdb:/carol/.ssh/authorized_keys",
        None
    )));
    let json = serde_json::to_string(&checked.outcome).unwrap();
    assert!(!json.contains("PLANTED-SECRET-7f3a") && !json.contains("PLANTED000000000"));
    // Every block fetched once, and only those the readers touched.
    let calls = block_calls(&emu);
    assert!(calls.values().all(|n| *n == 1), "{calls:?}");
    assert_eq!(calls.len() as u64, checked.fetch.fetched);
    assert_eq!(
        checked.fetch.fetched + checked.fetch.zero_blocks,
        checked.read.blocks
    );
    eprintln!("content check: {:?} {:?}", checked.read, checked.fetch);

    let clean = ami_over(&emu, &["clean-xfs"]).await;
    let checked = content::check_ami(&ebs, &clean, ReadOptions::default()).await;
    assert!(checked.outcome.is_clean(), "{}", checked.outcome);
}
