//! `make bench`'s EBS reads (bench/run.py --only ebs): runs the content
//! check the function runs before a publish,
//! `ami_publisher::content::check_ami` with the library's defaults
//! (`ReadOptions::default()`), over an AMI's EBS snapshots through the EBS
//! direct APIs, and prints what it cost and what it found as one JSON line
//! (the findings' count and kinds, never their paths' content).
//!
//!     ebs_read REGION AMI_ID
//!
//! The endpoint and credentials come from the environment, as for the
//! binary (bench/run.py points them at the emulator).

use std::time::Instant;

use ami_publisher::clients::Clients;
use ami_publisher::content::{self, Outcome};
use ami_publisher::model::{ImageId, RegionName};
use ami_publisher::snapshot::ReadOptions;

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
    let checked = content::check_ami(&ebs, &image.snapshots, options).await;
    let wall = start.elapsed();
    let (read, fetch) = (checked.read, checked.fetch);
    let (result, file_systems, reason) = match &checked.outcome {
        Outcome::Read { file_systems, .. } => ("read", file_systems.clone(), None),
        Outcome::Unreadable { reason } => ("unreadable", Vec::new(), Some(reason.clone())),
    };
    let kinds: Vec<&str> = checked
        .outcome
        .findings()
        .iter()
        .map(|f| f.kind.name())
        .collect();
    Ok(serde_json::json!({
        "outcome": result,
        "verdict": checked.outcome.to_string(),
        "unreadable_reason": reason,
        "file_systems": file_systems,
        "findings": kinds.len(),
        "finding_kinds": kinds,
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
