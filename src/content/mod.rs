//! The content check (issue 20, "Nothing private goes public"): what an
//! AMI's builder left behind that must not be shared, found by reading
//! every Linux file system of the AMI's EBS volumes through the EBS direct
//! APIs (src/snapshot.rs, src/disk/), without launching anything.
//!
//! This module owns the findings and their names, the check over one opened
//! file system ([`check_file_system`], synchronous and pure over what it
//! reads), the check of a whole AMI ([`check_ami`], async, every volume),
//! the summary a status tag can hold ([`summary`]), and the owner's
//! acknowledgement of kinds ([`parse_acknowledged`], [`without_acknowledged`]).
//! What a finding *means* for publishing (enforce, report, off) is the
//! publisher's decision, not this module's.
//!
//! **A finding never carries the content.** It is a kind, a path and an
//! account: the types have no field a key, a line or a secret could go in,
//! and the bytes read are dropped where they are judged (src/content/scan.rs).
//! The paths and accounts come from the image (directory names, `/etc/passwd`
//! and `/etc/shadow`'s first field), never from the judged files' text.
//!
//! Fail closed: what can't be read (LVM, LUKS, NTFS, an unknown file system,
//! the read budget spent, the EBS APIs refusing, a file the check needs over
//! its size bound) is [`Outcome::Unreadable`] with why, never "clean".

mod scan;
mod sshd;

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::disk::{DiskError, ReadStats};
use crate::ebs::Client;
use crate::model::EbsSnapshot;
use crate::snapshot::{self, FetchStats, ReadOptions};

pub use scan::{MAX_FILE_BYTES, MAX_HOMES, check_file_system};

/// What was found. The names (`authorized-keys`, ...) are stable: owners
/// write them in the acknowledgement tag, and the outcome and tags show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A non-empty `authorized_keys` / `authorized_keys2` (not only comments).
    AuthorizedKeys,
    /// An SSH host private key, `/etc/ssh/ssh_host_*_key`.
    HostKeys,
    /// A non-empty shell or tool history.
    Histories,
    /// A credential file, or an AWS access key id where one is looked for.
    Credentials,
    /// A usable password in `/etc/shadow`, or sshd allowing password or root logins.
    PasswordLogin,
    /// The build instance's user data, kept by cloud-init.
    InstanceData,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::AuthorizedKeys,
        Kind::HostKeys,
        Kind::Histories,
        Kind::Credentials,
        Kind::PasswordLogin,
        Kind::InstanceData,
    ];

    /// The stable kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AuthorizedKeys => "authorized-keys",
            Kind::HostKeys => "host-keys",
            Kind::Histories => "histories",
            Kind::Credentials => "credentials",
            Kind::PasswordLogin => "password-login",
            Kind::InstanceData => "instance-data",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing found: its kind, where, and whose. Nothing of what the file
/// holds: there is no field for it, so no log, tag, outcome or ledger entry
/// made from a finding can carry it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Finding {
    pub kind: Kind,
    /// The file's path in its file system, as the check named it (the home
    /// as `/etc/passwd` or `/home` gives it). On a file system other than
    /// the AMI's root, prefixed with where it is: `/dev/sdb partition 1:/x`.
    pub path: String,
    /// The account whose home holds the file, or `/etc/shadow`'s account.
    pub account: Option<String>,
}

impl Finding {
    /// A finding at `path` (bytes: Linux names need not be UTF-8). Control
    /// characters become `?`: a path from a hostile image must not rewrite
    /// a terminal or a log line.
    pub fn new(kind: Kind, path: &[u8], account: Option<&str>) -> Self {
        Finding {
            kind,
            path: printable(&String::from_utf8_lossy(path)),
            account: account.map(printable),
        }
    }
}

fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.path)?;
        if let Some(account) = &self.account {
            write!(f, " ({account})")?;
        }
        Ok(())
    }
}

/// What the check of one AMI came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every Linux file system of every volume was read: clean when
    /// `findings` is empty.
    Read {
        findings: Vec<Finding>,
        /// What was read, e.g. `/dev/xvda (snap-...) partition 1: XFS`.
        file_systems: Vec<String>,
    },
    /// Something could not be read, so nothing is claimed about the AMI.
    Unreadable {
        /// Why, without the "could not read: " the Display adds.
        reason: String,
    },
}

impl Outcome {
    pub fn unreadable(error: &DiskError) -> Self {
        Outcome::Unreadable {
            reason: error.to_string(),
        }
    }

    /// Read through with nothing found.
    pub fn is_clean(&self) -> bool {
        matches!(self, Outcome::Read { findings, .. } if findings.is_empty())
    }

    /// The outcome without the findings of kinds the owner acknowledged
    /// ([`parse_acknowledged`]); an unreadable AMI stays unreadable.
    pub fn acknowledged(self, kinds: &BTreeSet<Kind>) -> Outcome {
        match self {
            Outcome::Read {
                findings,
                file_systems,
            } => Outcome::Read {
                findings: without_acknowledged(&findings, kinds),
                file_systems,
            },
            unreadable => unreadable,
        }
    }

    pub fn findings(&self) -> &[Finding] {
        match self {
            Outcome::Read { findings, .. } => findings,
            Outcome::Unreadable { .. } => &[],
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Read { findings, .. } if findings.is_empty() => f.write_str("clean"),
            Outcome::Read { findings, .. } => f.write_str(&summary(findings, usize::MAX)),
            Outcome::Unreadable { reason } => write!(f, "could not read: {reason}"),
        }
    }
}

/// The check of one AMI, with what reading cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checked {
    pub outcome: Outcome,
    pub read: ReadStats,
    pub fetch: FetchStats,
}

/// Checks every Linux file system on the AMI's EBS volumes (`snapshots`,
/// from DescribeImages' block device mappings). Lists the snapshots, then
/// reads on one blocking thread (the readers are synchronous: see
/// src/snapshot.rs). Never an error: what can't be read is
/// [`Outcome::Unreadable`], saying why.
pub async fn check_ami(
    client: &Client,
    snapshots: &[EbsSnapshot],
    options: ReadOptions,
) -> Checked {
    let disks = match snapshot::open(client, snapshots, options).await {
        Ok(disks) => disks,
        Err(e) => {
            return Checked {
                outcome: Outcome::unreadable(&e),
                read: ReadStats::default(),
                fetch: FetchStats::default(),
            };
        }
    };
    let read = tokio::task::spawn_blocking(move || {
        let outcome = match check_disks(&disks) {
            Ok(outcome) => outcome,
            Err(e) => Outcome::unreadable(&e),
        };
        (outcome, disks.read_stats(), disks.fetch_stats())
    })
    .await;
    match read {
        Ok((outcome, read, fetch)) => Checked {
            outcome,
            read,
            fetch,
        },
        Err(e) => Checked {
            outcome: Outcome::Unreadable {
                reason: format!("the reading thread failed: {e}"),
            },
            read: ReadStats::default(),
            fetch: FetchStats::default(),
        },
    }
}

/// Every volume, every partition: a Linux file system is checked; boot,
/// EFI, swap and empty partitions hold none of the listed paths; anything
/// else (LVM, LUKS, NTFS, btrfs, unknown) makes the AMI unreadable, since
/// what it holds can't be seen, and so does an AMI with no Linux file
/// system at all.
fn check_disks(disks: &snapshot::AmiDisks) -> Result<Outcome, DiskError> {
    let volumes = disks.read_volumes()?;
    let mut findings = Vec::new();
    let mut file_systems = Vec::new();
    let mut root_seen = false;
    for ((snapshot, volume), (_, meter)) in volumes.iter().zip(disks.volumes()) {
        let place = format!("{} ({})", snapshot.device, snapshot.snapshot_id);
        let unseen: Vec<String> = volume
            .partitions
            .iter()
            .filter(|(_, c)| !c.is_linux_fs() && !c.is_boot_or_swap())
            .map(|(p, c)| format!("{} {c}", p.describe()))
            .collect();
        if !unseen.is_empty() {
            return Err(DiskError::Unsupported(format!(
                "{place}: {}",
                unseen.join(", ")
            )));
        }
        for (part, content) in volume.linux_file_systems() {
            let mut fs = volume
                .open(meter, part)
                .map_err(|e| located(&place, part, e))?;
            let mut found = check_file_system(&mut fs).map_err(|e| located(&place, part, e))?;
            // The first root file system's paths are the AMI's own paths;
            // any other file system's are named with where it is.
            let is_root =
                !root_seen && scan::is_root(&mut fs).map_err(|e| located(&place, part, e))?;
            root_seen |= is_root;
            if !is_root {
                let prefix = match part.number {
                    0 => snapshot.device.clone(),
                    n => format!("{} partition {n}", snapshot.device),
                };
                for f in &mut found {
                    f.path = format!("{prefix}:{}", f.path);
                }
            }
            findings.extend(found);
            file_systems.push(format!("{place} {}: {content}", part.describe()));
        }
    }
    // Volumes of nothing but EFI, swap or zeros: no file system to say
    // clean of, and an AMI that boots has one, so something was missed.
    if file_systems.is_empty() {
        return Err(DiskError::Unsupported(format!(
            "no Linux file system on the AMI's {} volume(s)",
            volumes.len()
        )));
    }
    findings.sort();
    findings.dedup();
    Ok(Outcome::Read {
        findings,
        file_systems,
    })
}

/// The error with the volume and partition it came from; the budget and
/// EBS failures are the AMI's, said as they are.
fn located(place: &str, part: &crate::disk::Partition, e: DiskError) -> DiskError {
    match e {
        e @ (DiskError::OverBudget(_) | DiskError::Io(_)) => e,
        e => DiskError::Unsupported(format!("{place} {}: {e}", part.describe())),
    }
}

/// The findings as `publish:reason` can hold them: the kinds, then the
/// first paths, within `max_chars` characters (EC2's tag values: 256),
/// ending in "and N more" when not every path fits.
///
/// `authorized-keys, histories: /root/.ssh/authorized_keys, /root/.bash_history and 3 more`
pub fn summary(findings: &[Finding], max_chars: usize) -> String {
    if findings.is_empty() {
        return String::new();
    }
    let kinds: BTreeSet<Kind> = findings.iter().map(|f| f.kind).collect();
    let head = format!(
        "{}: ",
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut out = head.clone();
    let mut shown = 0;
    for (i, finding) in findings.iter().enumerate() {
        let rest = findings.len() - i - 1;
        let sep = if i == 0 { "" } else { ", " };
        // Room for this path and, if others follow, for " and N more".
        let tail = if rest == 0 {
            0
        } else {
            format!(" and {rest} more").chars().count()
        };
        let need = out.chars().count() + sep.chars().count() + finding.path.chars().count() + tail;
        if need > max_chars {
            break;
        }
        out.push_str(sep);
        out.push_str(&finding.path);
        shown += 1;
    }
    if shown == 0 {
        // Not even one path fits: the first, cut short.
        let more = findings.len() - 1;
        let tail = if more == 0 {
            String::new()
        } else {
            format!(" and {more} more")
        };
        let room = max_chars
            .saturating_sub(head.chars().count() + tail.chars().count() + 1)
            .min(findings[0].path.chars().count());
        let cut: String = findings[0].path.chars().take(room).collect();
        out = format!("{head}{cut}…{tail}");
    } else if shown < findings.len() {
        out.push_str(&format!(" and {} more", findings.len() - shown));
    }
    // A limit too small even for the kinds: cut, never exceed it.
    out.chars().take(max_chars).collect()
}

/// Names in the acknowledgement tag that are no kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind(s) {}: the kinds are {}", .0.join(", "), Kind::ALL.map(Kind::name).join(", "))]
pub struct UnknownKinds(pub Vec<String>);

/// The kinds an owner acknowledges on one AMI, from the tag's value
/// (`host-keys,histories`): comma-separated names, spaces around them and
/// empty items ignored. An unknown name is an error naming it, never
/// ignored: a typo must not look like an acknowledgement that works, nor
/// silently acknowledge less than the owner meant without saying so.
pub fn parse_acknowledged(value: &str) -> Result<BTreeSet<Kind>, UnknownKinds> {
    let mut kinds = BTreeSet::new();
    let mut unknown = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match Kind::parse(name) {
            Some(kind) => {
                kinds.insert(kind);
            }
            None => unknown.push(printable(name)),
        }
    }
    if unknown.is_empty() {
        Ok(kinds)
    } else {
        Err(UnknownKinds(unknown))
    }
}

/// The findings whose kind the owner has not acknowledged.
pub fn without_acknowledged(findings: &[Finding], acknowledged: &BTreeSet<Kind>) -> Vec<Finding> {
    findings
        .iter()
        .filter(|f| !acknowledged.contains(&f.kind))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_sdk_ebs::operation::list_snapshot_blocks::ListSnapshotBlocksOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    fn f(kind: Kind, path: &str) -> Finding {
        Finding::new(kind, path.as_bytes(), None)
    }

    fn snap(device: &str, id: &str) -> EbsSnapshot {
        EbsSnapshot {
            device: device.into(),
            snapshot_id: id.into(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_ami_of_zeros_or_one_the_ebs_apis_refuse_is_unreadable_not_clean() {
        // Two 1 GiB volumes with no block written: nothing but zeros.
        let empty = mock!(Client::list_snapshot_blocks).then_output(|| {
            ListSnapshotBlocksOutput::builder()
                .volume_size(1)
                .block_size(512 * 1024)
                .build()
        });
        let client = mock_client!(aws_sdk_ebs, RuleMode::MatchAny, [&empty]);
        let snapshots = [
            snap("/dev/xvda", "snap-0123456789abcdef0"),
            snap("/dev/sdb", "snap-0123456789abcdef1"),
        ];
        let checked = check_ami(&client, &snapshots, ReadOptions::default()).await;
        assert_eq!(
            checked.outcome.to_string(),
            "could not read: no Linux file system on the AMI's 2 volume(s)"
        );
        assert_eq!(checked.fetch.fetched, 0);

        let none = check_ami(&client, &[], ReadOptions::default()).await;
        assert_eq!(
            none.outcome,
            Outcome::Unreadable {
                reason: "the AMI has no EBS snapshot to read".into()
            }
        );
    }

    #[test]
    fn kinds_have_stable_kebab_case_names_in_json_and_text() {
        for kind in Kind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(Kind::parse(kind.name()), Some(kind));
            assert_eq!(kind.to_string(), kind.name());
        }
        assert_eq!(
            Kind::ALL.map(Kind::name),
            [
                "authorized-keys",
                "host-keys",
                "histories",
                "credentials",
                "password-login",
                "instance-data"
            ]
        );
    }

    #[test]
    fn a_finding_is_its_kind_path_and_account_and_nothing_else() {
        let finding = Finding::new(
            Kind::AuthorizedKeys,
            b"/home/ann/.ssh/authorized_keys",
            Some("ann"),
        );
        assert_eq!(
            serde_json::to_value(&finding).unwrap(),
            serde_json::json!({"kind": "authorized-keys", "path": "/home/ann/.ssh/authorized_keys", "account": "ann"})
        );
        assert_eq!(
            finding.to_string(),
            "authorized-keys: /home/ann/.ssh/authorized_keys (ann)"
        );
        // Control characters from a hostile name are not passed on.
        let odd = Finding::new(Kind::Histories, b"/home/\x1b[2J\n\xff/.bash_history", None);
        assert_eq!(odd.path, "/home/?[2J?\u{fffd}/.bash_history");
    }

    #[test]
    fn the_outcome_serializes_with_its_result() {
        let read = Outcome::Read {
            findings: vec![f(Kind::HostKeys, "/etc/ssh/ssh_host_rsa_key")],
            file_systems: vec!["/dev/xvda (snap-1) partition 1: XFS".into()],
        };
        let json = serde_json::to_value(&read).unwrap();
        assert_eq!(json["result"], "read");
        assert_eq!(json["findings"][0]["kind"], "host-keys");
        assert_eq!(json["findings"][0]["account"], serde_json::Value::Null);
        let back: Outcome = serde_json::from_value(json).unwrap();
        assert_eq!(back, read);
        let unreadable = Outcome::unreadable(&DiskError::Unsupported("LVM".into()));
        assert_eq!(
            serde_json::to_value(&unreadable).unwrap(),
            serde_json::json!({"result": "unreadable", "reason": "LVM"})
        );
        assert_eq!(unreadable.to_string(), "could not read: LVM");
        assert!(!unreadable.is_clean() && unreadable.findings().is_empty());
        let clean = Outcome::Read {
            findings: vec![],
            file_systems: vec![],
        };
        assert!(clean.is_clean());
        assert_eq!(clean.to_string(), "clean");
    }

    #[test]
    fn the_summary_names_the_kinds_and_the_first_paths_within_256_characters() {
        let findings = vec![
            f(Kind::AuthorizedKeys, "/root/.ssh/authorized_keys"),
            f(Kind::Histories, "/root/.bash_history"),
        ];
        assert_eq!(
            summary(&findings, 256),
            "authorized-keys, histories: /root/.ssh/authorized_keys, /root/.bash_history"
        );
        let many: Vec<Finding> = (0..40)
            .map(|i| f(Kind::Histories, &format!("/home/user{i:02}/.bash_history")))
            .collect();
        let text = summary(&many, 256);
        assert!(text.chars().count() <= 256, "{text}");
        assert!(
            text.starts_with("histories: /home/user00/.bash_history, /home/user01/.bash_history")
        );
        let shown = text.matches(".bash_history").count();
        assert!(
            text.ends_with(&format!(" and {} more", 40 - shown)),
            "{text}"
        );
        // A path longer than the limit is cut, and the rest counted.
        let long = vec![
            f(Kind::Credentials, &format!("/{}", "x".repeat(600))),
            f(Kind::Credentials, "/root/.netrc"),
        ];
        let text = summary(&long, 256);
        assert_eq!(text.chars().count(), 256, "{text}");
        assert!(
            text.starts_with("credentials: /xxx") && text.ends_with("… and 1 more"),
            "{text}"
        );
        assert!(summary(&long, 5).chars().count() <= 5);
        assert_eq!(summary(&[], 256), "");
    }

    #[test]
    fn the_acknowledgement_names_kinds_and_refuses_unknown_ones() {
        assert_eq!(
            parse_acknowledged("host-keys,histories"),
            Ok(BTreeSet::from([Kind::HostKeys, Kind::Histories]))
        );
        assert_eq!(
            parse_acknowledged(" host-keys , ,instance-data,"),
            Ok(BTreeSet::from([Kind::HostKeys, Kind::InstanceData]))
        );
        assert_eq!(parse_acknowledged(""), Ok(BTreeSet::new()));
        let err = parse_acknowledged("host-keys,hostkeys,all").unwrap_err();
        assert_eq!(err, UnknownKinds(vec!["hostkeys".into(), "all".into()]));
        let text = err.to_string();
        assert!(
            text.starts_with(
                "unknown kind(s) hostkeys, all: the kinds are authorized-keys, host-keys"
            ),
            "{text}"
        );

        let findings = vec![
            f(Kind::HostKeys, "/etc/ssh/ssh_host_rsa_key"),
            f(Kind::Histories, "/root/.bash_history"),
            f(Kind::AuthorizedKeys, "/root/.ssh/authorized_keys"),
        ];
        let left = without_acknowledged(
            &findings,
            &BTreeSet::from([Kind::HostKeys, Kind::Histories]),
        );
        assert_eq!(
            left,
            vec![f(Kind::AuthorizedKeys, "/root/.ssh/authorized_keys")]
        );
        assert_eq!(without_acknowledged(&findings, &BTreeSet::new()), findings);
        let outcome = Outcome::Read {
            findings,
            file_systems: vec![],
        }
        .acknowledged(&Kind::ALL.into_iter().collect());
        assert!(outcome.is_clean());
        let unreadable = Outcome::Unreadable {
            reason: "LVM".into(),
        };
        assert_eq!(
            unreadable
                .clone()
                .acknowledged(&Kind::ALL.into_iter().collect()),
            unreadable
        );
    }
}
