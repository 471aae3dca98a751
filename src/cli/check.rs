//! `ami-publisher check`: the content check (src/content/) of one AMI, run
//! by a person or a CI job before the AMI is tagged for publishing: every
//! Linux file system of its volumes read through the EBS direct APIs with
//! the person's own credentials, the findings printed (a table, or JSON).
//!
//! Exit status: 0 clean, 1 findings, 2 bad usage, 3 could not read (why on
//! stderr). "Could not read" is not 1: a CI step must tell "this image
//! leaks" from "this image could not be checked" (an NTFS volume, LVM,
//! missing permissions), and must never take either for clean.

use std::fmt::Write as _;
use std::process::ExitCode;

use serde::Serialize;

use super::{Arg, parse_options, say, sdk_config, snapshots_of, unknown};
use crate::clients::Clients;
use crate::content::{self, Outcome};
use crate::model::{ImageId, RegionName};
use crate::snapshot::ReadOptions;

/// The exit status of an AMI the check could not read.
pub const COULD_NOT_READ: u8 = 3;

/// `check --region R [--profile P] [--json] ami-...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub region: RegionName,
    pub profile: Option<String>,
    pub image: ImageId,
    pub json: bool,
}

pub(super) fn parse<'a>(args: impl Iterator<Item = &'a str>) -> Result<Check, String> {
    let mut image = None;
    let common = parse_options(args, true, |arg, _| {
        match arg {
            Arg::Flag(flag) => return Err(unknown(flag)),
            Arg::Word(id) if image.is_none() => image = Some(ImageId::parse(id)?),
            Arg::Word(extra) => {
                return Err(format!("check takes one AMI id; `{extra}` is one too many"));
            }
        }
        Ok(())
    })?;
    Ok(Check {
        region: common.region,
        profile: common.profile,
        image: image.ok_or("name the AMI id to check")?,
        json: common.json,
    })
}

/// Checks the AMI and prints what was found; the exit status says which.
pub(super) async fn run(check: &Check) -> ExitCode {
    let sdk = sdk_config(&check.region, check.profile.as_deref()).await;
    let clients = Clients::from_sdk_config(&sdk);
    let outcome = outcome(check, &clients).await;
    if check.json {
        let report = Report {
            image_id: &check.image,
            region: &check.region,
            outcome: &outcome,
        };
        say(&format!(
            "{}\n",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ));
    } else if let Outcome::Read { .. } = outcome {
        say(&render(&check.image, &check.region, &outcome));
    }
    match outcome {
        Outcome::Unreadable { .. } => {
            eprintln!("ami-publisher: {outcome}");
            ExitCode::from(COULD_NOT_READ)
        }
        Outcome::Read { ref findings, .. } if findings.is_empty() => ExitCode::SUCCESS,
        Outcome::Read { .. } => ExitCode::FAILURE,
    }
}

/// The AMI described (its snapshots), then checked.
async fn outcome(check: &Check, clients: &Clients) -> Outcome {
    let unreadable = |line: String| Outcome::Unreadable {
        reason: line
            .strip_prefix("could not read: ")
            .map_or(line.clone(), str::to_owned),
    };
    let snapshots = match snapshots_of(clients, &check.region, &check.image).await {
        Ok(snapshots) => snapshots,
        Err(line) => return unreadable(line),
    };
    let Some(ebs) = clients.ebs(&check.region) else {
        return unreadable(format!("no EBS client for {}", check.region));
    };
    content::check_ami(&ebs, &snapshots, ReadOptions::default())
        .await
        .outcome
}

/// The JSON printed: the outcome with the AMI it is of.
#[derive(Serialize)]
struct Report<'a> {
    image_id: &'a ImageId,
    region: &'a RegionName,
    #[serde(flatten)]
    outcome: &'a Outcome,
}

/// The findings as a table a person reads, then what was read.
pub fn render(image: &ImageId, region: &RegionName, outcome: &Outcome) -> String {
    let mut out = String::new();
    let (findings, file_systems) = match outcome {
        Outcome::Read {
            findings,
            file_systems,
        } => (findings, file_systems),
        Outcome::Unreadable { .. } => {
            let _ = writeln!(out, "{image} in {region}: {outcome}");
            return out;
        }
    };
    if findings.is_empty() {
        let _ = writeln!(
            out,
            "{image} in {region}: clean (nothing found at the paths the check reads)"
        );
    } else {
        let _ = writeln!(
            out,
            "{image} in {region}: {} finding(s), not to be made public as it is",
            findings.len()
        );
        let width = findings
            .iter()
            .map(|f| f.account.as_deref().map_or(1, |a| a.chars().count()))
            .max()
            .unwrap_or(1)
            .max("account".len());
        let _ = writeln!(out, "{:<16} {:<width$} path", "kind", "account");
        for f in findings {
            let _ = writeln!(
                out,
                "{:<16} {:<width$} {}",
                f.kind.name(),
                f.account.as_deref().unwrap_or("-"),
                f.path
            );
        }
    }
    let _ = writeln!(out, "\nRead ({}):", file_systems.len());
    for fs in file_systems {
        let _ = writeln!(out, "  {fs}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Command, parse as parse_command, test_args as args};
    use super::*;
    use crate::content::{Finding, Kind};

    #[test]
    fn check_takes_a_region_one_ami_and_json() {
        assert_eq!(
            parse_command(&args("check --region eu-west-1 ami-12345678 --json")),
            Ok(Command::Check(Check {
                region: RegionName::parse("eu-west-1").unwrap(),
                profile: None,
                image: ImageId::parse("ami-12345678").unwrap(),
                json: true,
            }))
        );
        for (line, says) in [
            ("check ami-12345678", "--region is required"),
            ("check --region us-east-1", "name the AMI id to check"),
            ("check --region us-east-1 ami-XYZ", "not an AMI id"),
            (
                "check --region us-east-1 ami-12345678 ami-87654321",
                "one too many",
            ),
            (
                "check --region us-east-1 --deep ami-12345678",
                "unknown option `--deep`",
            ),
        ] {
            let err = parse_command(&args(line)).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn the_table_has_a_row_a_finding_and_says_what_was_read() {
        let image = ImageId::parse("ami-12345678").unwrap();
        let region = RegionName::parse("us-east-1").unwrap();
        let outcome = Outcome::Read {
            findings: vec![
                Finding::new(
                    Kind::AuthorizedKeys,
                    b"/root/.ssh/authorized_keys",
                    Some("root"),
                ),
                Finding::new(Kind::HostKeys, b"/etc/ssh/ssh_host_rsa_key", None),
            ],
            file_systems: vec!["/dev/xvda (snap-1) partition 1: XFS".into()],
        };
        assert_eq!(
            render(&image, &region, &outcome),
            "ami-12345678 in us-east-1: 2 finding(s), not to be made public as it is\n\
             kind             account path\n\
             authorized-keys  root    /root/.ssh/authorized_keys\n\
             host-keys        -       /etc/ssh/ssh_host_rsa_key\n\
             \n\
             Read (1):\n  /dev/xvda (snap-1) partition 1: XFS\n"
        );
        let clean = Outcome::Read {
            findings: vec![],
            file_systems: vec![],
        };
        assert!(render(&image, &region, &clean).starts_with("ami-12345678 in us-east-1: clean"));
        let json = serde_json::to_value(Report {
            image_id: &image,
            region: &region,
            outcome: &outcome,
        })
        .unwrap();
        assert_eq!(json["image_id"], "ami-12345678");
        assert_eq!(json["result"], "read");
        assert_eq!(json["findings"][0]["account"], "root");
    }
}
