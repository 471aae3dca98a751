//! The same binary, run by a person outside Lambda, with the person's own
//! AWS credentials (the standard chain: environment, `--profile` or
//! `AWS_PROFILE`, SSO, ...). Every command only reads:
//!
//! - `plan` (plan.rs): what the function would do, as a table;
//! - `ls` (ls.rs): a directory of an AMI's root file system, read through
//!   the EBS direct APIs (src/snapshot.rs): what the function sees inside;
//! - `history` (history.rs): what the function did, from its ledger;
//! - `check` (check.rs): the content check of an AMI (src/content/), a
//!   linter for an image before it is tagged.
//!
//! This file holds what they share: the usage, the one option parser
//! (`--region`, `--profile`, `--json`, `--help`), the AWS configuration,
//! reading an AMI's snapshots, and what to do about a failed call.
//! `main.rs` only chooses between these and Lambda.

mod check;
mod history;
mod ls;
mod plan;

use std::process::ExitCode;

use crate::clients::Clients;
use crate::ec2::NO_CREDENTIALS;
use crate::model::{EbsSnapshot, ImageId, RegionName};

pub use check::Check;
pub use history::History;
pub use ls::{Ls, render_listing};
pub use plan::{Plan, Target, config, explain, payloads, render};

pub const USAGE: &str = "\
ami-publisher: publishes EC2 AMIs tagged for publishing (an AWS Lambda function).

Run by Lambda (AWS_LAMBDA_RUNTIME_API set), the binary is the function. Run by
a person, it previews what the function would do; it never changes anything:

    ami-publisher plan --region REGION AMI_ID...   what the function would do with these AMIs
    ami-publisher plan --region REGION --sweep      what the next scheduled sweep would do
    ami-publisher ls --region REGION AMI_ID PATH    list a directory of the AMI's root file system
    ami-publisher history --region REGION [--table-region HOME] [AMI_ID]  what the function did, from its ledger
    ami-publisher check --region REGION AMI_ID      what the AMI holds that must not be made public
    ami-publisher --help                            this text

Options of every command:
    --region REGION    the region the function runs in (its AMIs' region)
    --profile NAME     the AWS profile to read with (default: the standard chain)
    --json             print JSON instead of a table (plan, history, check)

The function's configuration comes from the same environment variables it
reads on Lambda (PUBLISH_TAG_KEY, TARGET_REGIONS, KEEP_PUBLIC_PER_FAMILY, ...,
see the README), with the same defaults. Reading needs ec2:Describe*,
ec2:Get*, ec2:ListImagesInRecycleBin and servicequotas:GetServiceQuota.

`ls` reads the AMI's snapshots through the EBS direct APIs, without
launching anything; it needs ec2:DescribeImages, ebs:ListSnapshotBlocks and
ebs:GetSnapshotBlock (--profile too). It prints one entry a line, a directory
ending in `/`, a symbolic link in `@`.

`history` reads the function's ledger (--table NAME, or LEDGER_TABLE: the
stack's output LedgerTableName), in --table-region (the stack's region;
default REGION): every AMI of REGION the function recorded, or one, with
each change, when and why (--json as JSON). A stack records its copies in
other regions in its own table: `--region us-west-2 --table-region
us-east-1`. It needs dynamodb:Query on the table.

`check` reads every Linux file system of the AMI's volumes the same way as
`ls` (the same permissions) and prints what must not be made public: SSH
authorized keys, host keys, histories, credentials, password logins, the
build's user data. Each finding is a kind, a path and an account, never
what the file holds.

Exit status: 0 done, 1 the preview (or the listing, or the history) could
not read everything, 2 bad usage. `check`: 0 clean, 1 findings, 2 bad usage,
3 could not read the AMI (it says why).";

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Help,
    Plan(Plan),
    Ls(Ls),
    History(History),
    Check(Check),
}

/// Parses the arguments after the program's name. An error is one line
/// for a person (empty for `--help` after a command: the usage says it all).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut args = args.iter().map(String::as_str);
    match args.next() {
        None => Err("no command given".into()),
        Some("--help" | "-h" | "help") => Ok(Command::Help),
        Some("plan") => plan::parse(args).map(Command::Plan),
        Some("ls") => ls::parse(args).map(Command::Ls),
        Some("history") => {
            history::parse(args, std::env::var("LEDGER_TABLE").ok()).map(Command::History)
        }
        Some("check") => check::parse(args).map(Command::Check),
        Some(other) => Err(format!("unknown command `{other}`")),
    }
}

/// Runs a parsed command; its exit status.
pub async fn run(command: &Command) -> ExitCode {
    match command {
        Command::Help => {
            say(&format!("{USAGE}\n"));
            ExitCode::SUCCESS
        }
        Command::Plan(p) => plan::run(p).await,
        Command::Ls(l) => ls::run(l).await,
        Command::History(h) => history::run(h).await,
        Command::Check(c) => check::run(c).await,
    }
}

/// An argument other than the common options, for the command to take.
pub(crate) enum Arg<'a> {
    /// Starts with `-`: the command's own option, or unknown.
    Flag(&'a str),
    /// An AMI id, a path, ...
    Word(&'a str),
}

/// The options every command takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Common {
    pub region: RegionName,
    pub profile: Option<String>,
    pub json: bool,
}

/// The one option parser: `--region`, `--profile`, `--json` (when the
/// command has it) and `--help` here; everything else goes to `other`, with
/// the arguments that follow so an option of its own can take its value.
/// The region is required by every command.
pub(crate) fn parse_options<'a, I: Iterator<Item = &'a str>>(
    mut args: I,
    takes_json: bool,
    mut other: impl FnMut(Arg<'a>, &mut I) -> Result<(), String>,
) -> Result<Common, String> {
    let (mut region, mut profile, mut json) = (None, None, false);
    while let Some(arg) = args.next() {
        match arg {
            "--region" => {
                let value = args.next().ok_or("--region needs a region")?;
                region = Some(RegionName::parse(value)?);
            }
            "--profile" => {
                profile = Some(args.next().ok_or("--profile needs a name")?.to_owned());
            }
            "--json" if takes_json => json = true,
            "--help" | "-h" => return Err(String::new()),
            flag if flag.starts_with('-') => other(Arg::Flag(flag), &mut args)?,
            word => other(Arg::Word(word), &mut args)?,
        }
    }
    Ok(Common {
        region: region.ok_or("--region is required")?,
        profile,
        json,
    })
}

/// What a command says of an option it does not take.
pub(crate) fn unknown(flag: &str) -> String {
    format!("unknown option `{flag}`")
}

/// The AWS configuration of a person's command: the standard credential
/// chain (or the profile), the region given, the process's one HTTPS client.
pub(crate) async fn sdk_config(
    region: &RegionName,
    profile: Option<&str>,
) -> aws_config::SdkConfig {
    let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(crate::http_client::shared())
        .region(aws_config::Region::new(region.as_str().to_owned()));
    if let Some(profile) = profile {
        sdk = sdk.profile_name(profile);
    }
    sdk.load().await
}

/// The AMI's EBS snapshots, from DescribeImages, or why they can't be read
/// ("could not read: ...", with what to do when the call failed).
pub(crate) async fn snapshots_of(
    clients: &Clients,
    region: &RegionName,
    image: &ImageId,
) -> Result<Vec<EbsSnapshot>, String> {
    let could_not = |why: String| format!("could not read: {why}");
    let ec2 = clients
        .ec2(region)
        .ok_or_else(|| could_not(format!("no EC2 client for {region}")))?;
    let found = crate::ec2::describe_image(&ec2, region, image)
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
                "{image} is not an AMI this account can see in {region}"
            ))
        })?;
    if found.snapshots.is_empty() {
        return Err(could_not(format!(
            "{image} has no EBS snapshot (an instance-store AMI, or no block device mapping)"
        )));
    }
    Ok(found.snapshots)
}

/// What a person can do about a failed read, by its error code.
pub(crate) fn what_to_do(failure: &str) -> Option<&'static str> {
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

/// Writes to stdout; a reader that went away (`| head`) is not an error.
pub(crate) fn say(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(text.as_bytes());
}

#[cfg(test)]
pub(crate) fn test_args(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            ("plan --region", "--region needs a region"),
            (
                "check --region us-east-1 --profile",
                "--profile needs a name",
            ),
        ] {
            let err = parse(&test_args(line)).unwrap_err();
            assert!(err.contains(says), "{line:?}: {err}");
        }
        assert_eq!(parse(&test_args("--help")), Ok(Command::Help));
        // --help after a command: the usage, with nothing else to say.
        assert_eq!(parse(&test_args("ls --help")), Err(String::new()));
    }

    #[test]
    fn every_command_shares_the_region_profile_and_json_options() {
        let common = |line: &str, json: bool| {
            let args = test_args(line);
            let mut words = Vec::new();
            let parsed = parse_options(args.iter().map(String::as_str), json, |arg, _| match arg {
                Arg::Word(w) => {
                    words.push(w.to_owned());
                    Ok(())
                }
                Arg::Flag(f) => Err(unknown(f)),
            });
            (parsed, words)
        };
        let (parsed, words) = common("--profile p a --region eu-west-1 --json b", true);
        assert_eq!(
            parsed,
            Ok(Common {
                region: RegionName::parse("eu-west-1").unwrap(),
                profile: Some("p".into()),
                json: true
            })
        );
        assert_eq!(words, ["a", "b"]);
        // A command without --json does not take it.
        let (parsed, _) = common("--region eu-west-1 --json", false);
        assert_eq!(parsed, Err("unknown option `--json`".into()));
    }
}
