//! `ami-publisher plan`: previews what the function would do, with the
//! person's own credentials, and prints it as a table (or the function's
//! JSON outcome). It never writes: its publisher previews every request,
//! whatever it says.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::{Arg, parse_options, say, sdk_config, unknown, what_to_do};
use crate::clients::Clients;
use crate::config::{Config, ConfigError};
use crate::error::Error;
use crate::model::{ImageId, RegionName};
use crate::publisher::Publisher;
use crate::report::{Action, CopyOutcome, ImageOutcome, Outcome};

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

/// `plan --region R [--profile P] [--json] (ami-... | --sweep)`.
pub(super) fn parse<'a>(args: impl Iterator<Item = &'a str>) -> Result<Plan, String> {
    let (mut sweep, mut images) = (false, Vec::new());
    let common = parse_options(args, true, |arg, _| {
        match arg {
            Arg::Flag("--sweep") => sweep = true,
            Arg::Flag(flag) => return Err(unknown(flag)),
            Arg::Word(id) => images.push(ImageId::parse(id)?),
        }
        Ok(())
    })?;
    let what = match (sweep, images.is_empty()) {
        (true, true) => Target::Sweep,
        (false, false) => Target::Images(images),
        (true, false) => return Err("--sweep takes no AMI ids".into()),
        (false, true) => return Err("name AMI ids, or --sweep".into()),
    };
    Ok(Plan {
        region: common.region,
        profile: common.profile,
        json: common.json,
        what,
    })
}

/// Runs the preview: 0 when everything was read, 1 when something could
/// not be (each failure on stderr), 2 for a bad configuration.
pub(super) async fn run(plan: &Plan) -> ExitCode {
    let config = match config(plan) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ami-publisher: {e}");
            return ExitCode::from(2);
        }
    };
    let sdk = sdk_config(&plan.region, plan.profile.as_deref()).await;
    let clients = Clients::from_sdk_config(&sdk);
    // Every request a preview, whatever it says: this command never writes.
    let publisher = Publisher::new(config.clone(), clients).preview_only();
    let mut outcomes = Vec::new();
    let mut failed = false;
    for payload in payloads(plan) {
        match publisher.handle(&payload).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                for line in explain(&e) {
                    eprintln!("ami-publisher: {line}");
                }
                failed = true;
            }
        }
    }
    if plan.json {
        say(&format!(
            "{}\n",
            serde_json::to_string_pretty(&outcomes).unwrap_or_default()
        ));
    } else {
        say(&render(&config, &outcomes, failed));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
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
    use super::super::{Command, parse, test_args as args};
    use super::*;

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
