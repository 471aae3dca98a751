//! `make bench`'s EBS reads (bench/run.py --only ebs): reads, from an AMI's
//! root file system through the EBS direct APIs, the paths the content
//! check reads (/etc/passwd, /etc/shadow, /etc/ssh/*, every home's .ssh and
//! dot files, /root's), with the library's own code and defaults, and
//! prints what it cost as one JSON line.
//!
//!     ebs_read REGION AMI_ID
//!
//! The endpoint and credentials come from the environment, as for the
//! binary (bench/run.py points them at the emulator).

use std::time::Instant;

use ami_publisher::clients::Clients;
use ami_publisher::disk::{DiskError, FileKind, FileSystem};
use ami_publisher::model::{ImageId, RegionName};
use ami_publisher::snapshot::{self, ReadOptions};

/// Small files are read whole up to this; larger ones only have their size read.
const SMALL: u64 = 1 << 20;

/// Reads one file, or notes its size when it is larger than a small read.
fn read(root: &mut FileSystem, path: &[u8], files: &mut u64) -> Result<(), DiskError> {
    match root.read_file(path, SMALL) {
        Ok(_) => *files += 1,
        Err(DiskError::TooLarge { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// A directory's dot files, and its .ssh's files.
fn dot_files(root: &mut FileSystem, dir: &[u8], files: &mut u64) -> Result<(), DiskError> {
    for entry in root.read_dir(dir)? {
        if !entry.name.starts_with(b".") {
            continue;
        }
        let path = [dir, b"/", &entry.name].concat();
        match entry.kind {
            FileKind::File => read(root, &path, files)?,
            FileKind::Directory if entry.name == b".ssh" => {
                for key in root.read_dir(&path)? {
                    if key.kind == FileKind::File {
                        read(root, &[&path[..], b"/", &key.name].concat(), files)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_paths(root: &mut FileSystem) -> Result<u64, DiskError> {
    let mut files = 0;
    read(root, b"/etc/passwd", &mut files)?;
    read(root, b"/etc/shadow", &mut files)?;
    for entry in root.read_dir("/etc/ssh")? {
        if entry.kind == FileKind::File {
            read(root, &[&b"/etc/ssh/"[..], &entry.name].concat(), &mut files)?;
        }
    }
    for home in root.read_dir("/home")? {
        if home.kind == FileKind::Directory {
            dot_files(root, &[&b"/home/"[..], &home.name].concat(), &mut files)?;
        }
    }
    dot_files(root, b"/root", &mut files)?;
    Ok(files)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(region), Some(image)) = (args.first(), args.get(1)) else {
        eprintln!("usage: ebs_read REGION AMI_ID");
        return std::process::ExitCode::from(2);
    };
    match run(region, image).await {
        Ok(line) => {
            println!("{line}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ebs_read: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(region: &str, image: &str) -> Result<String, String> {
    let region = RegionName::parse(region)?;
    let image = ImageId::parse(image)?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(ami_publisher::http_client::shared())
        .region(aws_config::Region::new(region.as_str().to_owned()))
        .load()
        .await;
    let clients = Clients::from_sdk_config(&sdk);
    let ec2 = clients.ec2(&region).ok_or("no EC2 client")?;
    let ebs = clients.ebs(&region).ok_or("no EBS client")?;
    let image = ami_publisher::ec2::describe_image(&ec2, &region, &image)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no such AMI")?;
    let options = ReadOptions::default();
    let start = Instant::now();
    let (files, read, fetch) = snapshot::read_root(&ebs, &image.snapshots, options, check_paths)
        .await
        .map_err(|e| e.report())?;
    let wall = start.elapsed();
    Ok(serde_json::json!({
        "files_read": files,
        "blocks_touched": read.blocks,
        "zero_blocks": fetch.zero_blocks,
        "blocks_fetched": fetch.fetched,
        "refetched": fetch.refetched,
        "bytes_transferred": fetch.bytes,
        "list_calls": fetch.list_calls,
        "reads": read.reads,
        "bytes_read": read.bytes,
        "concurrency": options.concurrency,
        "cache_bytes": options.cache_bytes,
        "wall_ms": wall.as_secs_f64() * 1000.0,
        "peak_rss_bytes": peak_rss_bytes(),
    })
    .to_string())
}

/// VmHWM from /proc/self/status (what the rest of make bench reports as
/// peak RSS), in bytes; 0 when it can't be read.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}
