//! The same binary, run by a person outside Lambda: `ami-publisher plan`
//! previews what the function would do, with the user's own AWS credentials
//! (the standard chain: environment, `--profile` or `AWS_PROFILE`, SSO,
//! ...), and prints it as a table. It never writes: its publisher previews
//! every request, whatever it says. Arguments are parsed here, and the
//! preview rendered here; `main.rs` only chooses between this and Lambda.
//!
//! `ami-publisher ls` lists a directory of an AMI's root file system, read
//! through the EBS direct APIs (src/snapshot.rs) with the same credentials:
//! what the function sees inside an image. Its arguments, its run and its
//! listing are here too.

use std::fmt::Write as _;

use crate::config::{Config, ConfigError};
use crate::ec2::NO_CREDENTIALS;
use crate::error::Error;
use crate::model::{ImageId, RegionName};
use crate::report::{Action, CopyOutcome, ImageOutcome, Outcome};

pub const USAGE: &str = "\
ami-publisher: publishes EC2 AMIs tagged for publishing (an AWS Lambda function).

Run by Lambda (AWS_LAMBDA_RUNTIME_API set), the binary is the function. Run by
a person, it previews what the function would do; it never changes anything:

    ami-publisher plan --region REGION AMI_ID...   what the function would do with these AMIs
    ami-publisher plan --region REGION --sweep      what the next scheduled sweep would do
    ami-publisher ls --region REGION AMI_ID PATH    list a directory of the AMI's root file system
    ami-publisher history --region REGION [AMI_ID]  what the function did to the AMIs, from its ledger
    ami-publisher --help                            this text

Options of plan:
    --region REGION    the region the function runs in (its AMIs' region)
    --profile NAME     the AWS profile to read with (default: the standard chain)
    --json             print the function's JSON outcome instead of the table

The function's configuration comes from the same environment variables it
reads on Lambda (PUBLISH_TAG_KEY, TARGET_REGIONS, KEEP_PUBLIC_PER_FAMILY, ...,
see the README), with the same defaults. Reading needs ec2:Describe*,
ec2:Get*, ec2:ListImagesInRecycleBin and servicequotas:GetServiceQuota.

`ls` reads the AMI's snapshots through the EBS direct APIs, without
launching anything; it needs ec2:DescribeImages, ebs:ListSnapshotBlocks and
ebs:GetSnapshotBlock (--profile too). It prints one entry a line, a directory
ending in `/`, a symbolic link in `@`.

`history` reads the function's ledger (--table NAME, or LEDGER_TABLE: the
stack's output LedgerTableName) in REGION: every AMI of that region the
function recorded, or one, with each change, when and why (--json as
JSON). It needs dynamodb:Query on the table.

Exit status: 0 done, 1 the preview (or the listing, or the history) could
not read everything, 2 bad usage.";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Plan(Plan),
    Ls(Ls),
    History(History),
}

/// `history --region R [--table T] [--json] [ami-...]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct History {
    /// The region whose AMIs to show; the ledger is read there too.
    pub region: RegionName,
    pub profile: Option<String>,
    /// The ledger's table: `--table`, else LEDGER_TABLE.
    pub table: String,
    pub image: Option<ImageId>,
    pub json: bool,
}

/// `ls --region R ami-... PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ls {
    pub region: RegionName,
    pub profile: Option<String>,
    pub image: ImageId,
    /// Bytes, as given (a Linux name need not be UTF-8).
    pub path: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub region: RegionName,
    pub profile: Option<String>,
    pub json: bool,
    pub what: Target,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Images(Vec<ImageId>),
    Sweep,
}

/// Parses the arguments after the program's name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter().map(String::as_str);
    match args.next() {
        None => Err("no command given".into()),
        Some("--help" | "-h" | "help") => Ok(Command::Help),
        Some("plan") => parse_plan(args).map(Command::Plan),
        Some("ls") => parse_ls(args).map(Command::Ls),
        Some("history") => {
            parse_history(args, std::env::var("LEDGER_TABLE").ok()).map(Command::History)
        }
        Some(other) => Err(format!("unknown command `{other}`")),
    }
}

fn parse_plan<'a>(mut args: impl Iterator<Item = &'a str>) -> Result<Plan, String> {
    let (mut region, mut profile, mut json, mut sweep) = (None, None, false, false);
    let mut images = Vec::new();
    while let Some(arg) = args.next() {
        match arg {
            "--region" => {
                let value = args.next().ok_or("--region needs a region")?;
                region = Some(RegionName::parse(value)?);
            }
            "--profile" => {
                profile = Some(args.next().ok_or("--profile needs a name")?.to_owned());
            }
            "--json" => json = true,
            "--sweep" => sweep = true,
            "--help" | "-h" => return Err("".into()),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            id => images.push(ImageId::parse(id)?),
        }
    }
    let region = region.ok_or("--region is required")?;
    let what = match (sweep, images.is_empty()) {
        (true, true) => Target::Sweep,
        (false, false) => Target::Images(images),
        (true, false) => return Err("--sweep takes no AMI ids".into()),
        (false, true) => return Err("name AMI ids, or --sweep".into()),
    };
    Ok(Plan {
        region,
        profile,
        json,
        what,
    })
}

fn parse_history<'a>(
    mut args: impl Iterator<Item = &'a str>,
    ledger_table: Option<String>,
) -> Result<History, String> {
    let (mut region, mut profile, mut table, mut image, mut json) = (
        None,
        None,
        ledger_table.filter(|t| !t.is_empty()),
        None,
        false,
    );
    while let Some(arg) = args.next() {
        match arg {
            "--region" => {
                let value = args.next().ok_or("--region needs a region")?;
                region = Some(RegionName::parse(value)?);
            }
            "--profile" => {
                profile = Some(args.next().ok_or("--profile needs a name")?.to_owned());
            }
            "--table" => table = Some(args.next().ok_or("--table needs a name")?.to_owned()),
            "--json" => json = true,
            "--help" | "-h" => return Err("".into()),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            id if image.is_none() => image = Some(ImageId::parse(id)?),
            extra => {
                return Err(format!(
                    "history takes at most one AMI id; `{extra}` is one too many"
                ));
            }
        }
    }
    Ok(History {
        region: region.ok_or("--region is required")?,
        profile,
        table: table.ok_or(
            "name the ledger's table: --table NAME or LEDGER_TABLE (the stack's output LedgerTableName)",
        )?,
        image,
        json,
    })
}

fn parse_ls<'a>(mut args: impl Iterator<Item = &'a str>) -> Result<Ls, String> {
    let (mut region, mut profile, mut image, mut path) = (None, None, None, None);
    while let Some(arg) = args.next() {
        match arg {
            "--region" => {
                let value = args.next().ok_or("--region needs a region")?;
                region = Some(RegionName::parse(value)?);
            }
            "--profile" => {
                profile = Some(args.next().ok_or("--profile needs a name")?.to_owned());
            }
            "--help" | "-h" => return Err("".into()),
            flag if flag.starts_with('-') => return Err(format!("unknown option `{flag}`")),
            id if image.is_none() => image = Some(ImageId::parse(id)?),
            p if path.is_none() => {
                if !p.starts_with('/') {
                    return Err(format!(
                        "`{p}` is not an absolute path (it starts at the root: /etc)"
                    ));
                }
                path = Some(p.as_bytes().to_vec());
            }
            extra => {
                return Err(format!(
                    "ls takes one AMI id and one path; `{extra}` is one too many"
                ));
            }
        }
    }
    Ok(Ls {
        region: region.ok_or("--region is required")?,
        profile,
        image: image.ok_or("name an AMI id and a path")?,
        path: path.ok_or("name the path to list, e.g. /etc")?,
    })
}

/// Lists `ls.path` in the AMI's root file system: the AMI described with
/// EC2 (its snapshots), then read through the EBS direct APIs. The error is
/// one line for a person: "could not read: ...".
pub async fn ls(ls: &Ls, clients: &crate::clients::Clients) -> Result<String, String> {
    use crate::disk::DiskError;
    let could_not = |why: String| format!("could not read: {why}");
    let ec2 = clients
        .ec2(&ls.region)
        .ok_or_else(|| could_not(format!("no EC2 client for {}", ls.region)))?;
    let image = crate::ec2::describe_image(&ec2, &ls.region, &ls.image)
        .await
        .map_err(|e| {
            let failure = e.to_string();
            match what_to_do(&failure) {
                Some(todo) => could_not(format!("{failure}; {todo}")),
                None => could_not(failure),
            }
        })?
        .ok_or_else(|| {
            could_not(format!(
                "{} is not an AMI this account can see in {}",
                ls.image, ls.region
            ))
        })?;
    if image.snapshots.is_empty() {
        return Err(could_not(format!(
            "{} has no EBS snapshot (an instance-store AMI, or no block device mapping)",
            ls.image
        )));
    }
    let ebs = clients
        .ebs(&ls.region)
        .ok_or_else(|| could_not(format!("no EBS client for {}", ls.region)))?;
    let path = ls.path.clone();
    let (entries, _, _) = crate::snapshot::read_root(
        &ebs,
        &image.snapshots,
        crate::snapshot::ReadOptions::default(),
        move |root| root.read_dir(&path),
    )
    .await
    .map_err(|e: DiskError| e.report())?;
    Ok(render_listing(entries))
}

/// One entry a line, sorted by name's bytes, as `ls -F` marks them: `/` a
/// directory, `@` a symbolic link.
pub fn render_listing(mut entries: Vec<crate::disk::DirEntry>) -> String {
    use crate::disk::FileKind;
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = String::new();
    for entry in entries {
        let mark = match entry.kind {
            FileKind::Directory => "/",
            FileKind::Symlink => "@",
            FileKind::File | FileKind::Other => "",
        };
        let _ = writeln!(out, "{}{mark}", entry.name_lossy());
    }
    out
}

/// The function's configuration for a preview in `region`: the environment
/// the function reads, its region the one given.
pub fn config(plan: &Plan) -> Result<Config, ConfigError> {
    let region = plan.region.as_str().to_owned();
    Config::from_lookup(|name| {
        if name == "AWS_REGION" {
            Some(region.clone())
        } else {
            std::env::var(name).ok()
        }
    })
}

/// The payloads the preview sends the (previewing) publisher, one per AMI
/// or one sweep.
pub fn payloads(plan: &Plan) -> Vec<serde_json::Value> {
    let region = plan.region.as_str();
    match &plan.what {
        Target::Sweep => {
            vec![serde_json::json!({"sweep": true, "region": region, "dry_run": true})]
        }
        Target::Images(ids) => ids
            .iter()
            .map(|id| serde_json::json!({"image_id": id, "region": region, "dry_run": true}))
            .collect(),
    }
}

/// What an action means in a preview.
fn would(action: Action) -> &'static str {
    match action {
        Action::Published => "make public",
        Action::AlreadyPublic => "keep public",
        Action::Rejected => "keep private",
        Action::Waiting => "wait (pending)",
        Action::Withdrawn => "make private",
        Action::KeptPrivate => "keep private",
        Action::Deferred => "leave for later",
        Action::Skipped => "leave alone",
        Action::Failed => "fail",
        Action::Retired => "retire",
    }
}

/// The preview as a table a person reads: per AMI what the function would
/// do and why, its copies and retirements; then every step it would take;
/// then the public AMI quota of each region it looked at.
/// The table of a preview. `failed`: some of it could not be read (its
/// errors are on stderr, see [`explain`]); the table then claims nothing
/// about what it did not read.
pub fn render(config: &Config, outcomes: &[Outcome], failed: bool) -> String {
    let mut out = String::new();
    let targets: Vec<&str> = config
        .target_regions
        .iter()
        .map(RegionName::as_str)
        .collect();
    let _ = writeln!(
        out,
        "Preview: nothing was changed. Function in {}, TARGET_REGIONS={}{}.",
        config.home_region,
        if targets.is_empty() {
            "(none)".to_owned()
        } else {
            targets.join(",")
        },
        config
            .keep_public_per_family
            .map(|k| format!(", KEEP_PUBLIC_PER_FAMILY={k}"))
            .unwrap_or_default(),
    );
    let images: Vec<&ImageOutcome> = outcomes.iter().flat_map(|o| &o.images).collect();
    let _ = writeln!(out);
    if images.is_empty() && failed {
        let _ = writeln!(
            out,
            "Could not read the AMIs (the error says why): nothing is known of them."
        );
    } else if images.is_empty() {
        let _ = writeln!(out, "Nothing to do: every AMI is as its tags ask.");
    } else {
        let _ = writeln!(out, "{:<22} {:<14} {:<16} why", "AMI", "region", "would");
        for image in images {
            row(&mut out, image);
        }
    }
    let steps: Vec<String> = outcomes
        .iter()
        .flat_map(|o| &o.steps)
        .map(|s| format!("  {:<14} {s}", s.region().as_str()))
        .collect();
    if steps.is_empty() && failed {
        // Nothing read, nothing to say of what would be written.
    } else if steps.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Steps: none (nothing would be written).");
    } else {
        let _ = writeln!(out);
        let _ = writeln!(out, "Steps it would take ({}):", steps.len());
        for step in steps {
            let _ = writeln!(out, "{step}");
        }
    }
    let quotas: Vec<String> = outcomes
        .iter()
        .flat_map(|o| &o.quotas)
        .map(|q| {
            format!(
                "  {:<14} quota {} ({}), {} public after these steps, headroom {}, {} in the Recycle Bin",
                q.region.as_str(),
                q.quota,
                q.quota_source,
                q.public,
                q.headroom,
                q.in_recycle_bin
            )
        })
        .collect();
    if !quotas.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Public AMI quota:");
        for quota in quotas {
            let _ = writeln!(out, "{quota}");
        }
    }
    let deferred: usize = outcomes.iter().map(|o| o.deferred).sum();
    if deferred > 0 {
        let _ = writeln!(out, "\n{deferred} AMI(s) left for later (out of time).");
    }
    out
}

/// A preview's error for a person: one line per failure, what could not be
/// read, where, and what to do about it.
pub fn explain(error: &Error) -> Vec<String> {
    let failures = match error {
        Error::Incomplete { failures } => failures.clone(),
        Error::Sweep { error, .. } => vec![error.to_string()],
        other => return vec![other.to_string()],
    };
    failures
        .into_iter()
        .map(|failure| match what_to_do(&failure) {
            Some(todo) => format!("could not read: {failure}; {todo}"),
            None => format!("could not read: {failure}"),
        })
        .collect()
}

/// What a person can do about a failed read, by its error code.
fn what_to_do(failure: &str) -> Option<&'static str> {
    let has = |code: &str| failure.contains(&format!(": {code}: "));
    if has(NO_CREDENTIALS) {
        Some(
            "give credentials as the AWS CLI takes them: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, --profile NAME (or AWS_PROFILE), or `aws sso login`",
        )
    } else if has("UnauthorizedOperation") || has("AccessDenied") || has("AuthFailure") {
        Some(
            "your credentials may not make that call: a preview needs the reads of the function's role (README, IAM permissions: ReadImagesAndRegionSettings, ReadQuotas)",
        )
    } else if has("DispatchFailure") || has("TimeoutError") || has("ResponseError") {
        Some("EC2 did not answer: check the network, the region, and AWS_ENDPOINT_URL if it is set")
    } else {
        None
    }
}

fn row(out: &mut String, image: &ImageOutcome) {
    let why = image
        .reasons
        .iter()
        .chain(image.errors.iter())
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    let _ = writeln!(
        out,
        "{:<22} {:<14} {:<16} {why}",
        image.image_id.as_str(),
        image.region.as_str(),
        would(image.action),
    );
    for copy in &image.copies {
        let _ = writeln!(
            out,
            "  copy in {:<12} {}",
            copy.region.as_str(),
            copy_line(copy)
        );
    }
    for retired in &image.retired {
        let _ = writeln!(
            out,
            "  {} {} in {}: a newer public AMI of its family",
            would(retired.action),
            retired.image_id,
            retired.region
        );
    }
}

fn copy_line(copy: &CopyOutcome) -> String {
    let id = copy.image_id.as_ref().map_or("(new)", ImageId::as_str);
    let what = match (copy.started, copy.action) {
        (true, _) => "start a copy".to_owned(),
        (false, Some(action)) => would(action).to_owned(),
        (false, None) => copy.state.clone().unwrap_or_else(|| "no copy".to_owned()),
    };
    let why = copy.reasons.join("; ");
    let error = copy.error.as_deref().unwrap_or_default();
    format!("{id:<22} {what}{}{}", sep(&why), sep(error))
}

fn sep(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn plan_for_amis_or_a_sweep() {
        assert_eq!(
            parse(&args(
                "plan --region us-east-1 ami-12345678 ami-87654321 --json"
            )),
            Ok(Command::Plan(Plan {
                region: RegionName::parse("us-east-1").unwrap(),
                profile: None,
                json: true,
                what: Target::Images(vec![
                    ImageId::parse("ami-12345678").unwrap(),
                    ImageId::parse("ami-87654321").unwrap()
                ]),
            }))
        );
        let Ok(Command::Plan(plan)) =
            parse(&args("plan --sweep --region eu-west-1 --profile prod"))
        else {
            panic!()
        };
        assert_eq!(
            (plan.what, plan.profile.as_deref()),
            (Target::Sweep, Some("prod"))
        );
        assert_eq!(parse(&args("--help")), Ok(Command::Help));
    }

    #[test]
    fn ls_takes_a_region_an_ami_and_an_absolute_path() {
        assert_eq!(
            parse(&args("ls --region eu-west-1 ami-12345678 /etc/ssh")),
            Ok(Command::Ls(Ls {
                region: RegionName::parse("eu-west-1").unwrap(),
                profile: None,
                image: ImageId::parse("ami-12345678").unwrap(),
                path: b"/etc/ssh".to_vec(),
            }))
        );
        for (line, says) in [
            ("ls ami-12345678 /etc", "--region is required"),
            ("ls --region us-east-1 /etc", "is not an AMI id"),
            ("ls --region us-east-1 ami-12345678", "name the path"),
            (
                "ls --region us-east-1 ami-12345678 etc",
                "not an absolute path",
            ),
            ("ls --region us-east-1 ami-12345678 / /etc", "one too many"),
            (
                "ls --region us-east-1 --recursive ami-12345678 /",
                "unknown option",
            ),
        ] {
            let err = parse(&args(line)).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn a_listing_is_sorted_and_marked_like_ls_f() {
        use crate::disk::{DirEntry, FileKind};
        let entry = |name: &[u8], kind| DirEntry {
            name: name.to_vec(),
            kind,
        };
        let text = render_listing(vec![
            entry(b"ssh", FileKind::Directory),
            entry(b"passwd", FileKind::File),
            entry(b"localtime", FileKind::Symlink),
            entry(b"caf\xe9", FileKind::File),
        ]);
        assert_eq!(text, "caf\u{fffd}\nlocaltime@\npasswd\nssh/\n");
    }

    #[test]
    fn history_takes_its_table_from_the_flag_or_ledger_table() {
        let parsed = |line: &str, env: Option<&str>| {
            let args = args(line);
            parse_history(
                args.iter().skip(1).map(String::as_str),
                env.map(str::to_owned),
            )
        };
        let history = parsed(
            "history --region us-east-1 ami-12345678 --json",
            Some("from-env"),
        )
        .unwrap();
        assert_eq!(history.table, "from-env");
        assert_eq!(
            history.image.as_ref().map(ImageId::as_str),
            Some("ami-12345678")
        );
        assert!(history.json);
        let named = parsed("history --region us-east-1 --table mine", Some("from-env")).unwrap();
        assert_eq!((named.table.as_str(), named.image), ("mine", None));
        for (line, env, says) in [
            (
                "history --region us-east-1",
                None,
                "name the ledger's table",
            ),
            (
                "history --region us-east-1",
                Some(""),
                "name the ledger's table",
            ),
            ("history --table t", None, "--region is required"),
            (
                "history --region us-east-1 --table t ami-12345678 ami-87654321",
                None,
                "one too many",
            ),
        ] {
            let err = parsed(line, env).unwrap_err();
            assert!(err.contains(says), "{line}: {err}");
        }
    }

    #[test]
    fn bad_usage_says_what_is_wrong() {
        for (line, says) in [
            ("", "no command"),
            ("publish ami-12345678", "unknown command `publish`"),
            ("plan ami-12345678", "--region is required"),
            ("plan --region us-east-1", "name AMI ids, or --sweep"),
            (
                "plan --region us-east-1 --sweep ami-12345678",
                "--sweep takes no AMI ids",
            ),
            ("plan --region us-east-1 ami-XYZ", "not an AMI id"),
            ("plan --region Mars ami-12345678", "not a region name"),
            (
                "plan --region us-east-1 --force ami-12345678",
                "unknown option `--force`",
            ),
        ] {
            let err = parse(&args(line)).unwrap_err();
            assert!(err.contains(says), "{line:?}: {err}");
        }
    }

    #[test]
    fn every_payload_is_a_dry_run() {
        let Ok(Command::Plan(plan)) =
            parse(&args("plan --region us-east-1 ami-12345678 ami-87654321"))
        else {
            panic!()
        };
        let payloads = payloads(&plan);
        assert_eq!(payloads.len(), 2);
        assert!(payloads.iter().all(|p| p["dry_run"] == true));
    }
}
