//! A source's copies in its target regions: finding them (by the provenance
//! tag the function writes when it starts one), starting the missing ones,
//! and bringing each found copy where its source says, published once it is
//! available or taken down with its source. A copy is decided on by
//! [`plan`](crate::plan) like any AMI, with its source's facts in hand, so
//! one stack (the source region's) finishes the job in every region. Regions
//! are worked concurrently, with a bound; one region's failure never hides
//! another's.

use futures::{StreamExt, stream};
use tracing::{info, warn};

use crate::config::{Config, StatusTag};
use crate::ec2::{self, CopyRequest, Ec2Error};
use crate::model::{Image, ImageId, ImageState, Intent, RegionName};
use crate::publisher::{Invocation, Observed};
use crate::report::{Action, CopyOutcome, ImageOutcome, Status};

/// Brings the source's copy in each of `targets` where the source's facts
/// say, `copy_concurrency` regions at a time; starts missing copies when
/// `new_copies`. Results come back in the order of `targets`.
pub(crate) async fn sync(
    inv: &Invocation<'_>,
    source: &Observed,
    targets: &[RegionName],
    new_copies: bool,
    intent: Intent,
) -> Vec<CopyOutcome> {
    let mut results: Vec<(usize, CopyOutcome)> = stream::iter(targets.iter().enumerate())
        .map(|(i, target)| async move {
            let mut copy = CopyOutcome::new(target.clone());
            if let Err(e) = sync_one(inv, source, target, new_copies, intent, &mut copy).await {
                warn!(image_id = %source.image.id, region = %source.image.region, target = %target, error = %e, "copy failed");
                copy.error = Some(e.to_string());
            }
            (i, copy)
        })
        .buffer_unordered(inv.config().copy_concurrency)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, copy)| copy).collect()
}

async fn sync_one(
    inv: &Invocation<'_>,
    source: &Observed,
    target: &RegionName,
    new_copies: bool,
    intent: Intent,
    copy: &mut CopyOutcome,
) -> Result<(), Ec2Error> {
    let config = inv.config();
    let run = inv.run(target).map_err(|e| Ec2Error {
        operation: "CopyImage",
        region: target.clone(),
        image_id: Some(source.image.id.clone()),
        code: "UnknownRegion".into(),
        message: e.to_string(),
    })?;
    let client = run.client()?;
    let source_key = config.status_tag(StatusTag::Source);
    let source_ref = format!("{}/{}", source.image.region, source.image.id);
    let found = ec2::find_tagged_owned_image(&client, target, &source_key, &source_ref).await?;
    let Some(found) = found else {
        if new_copies && source.image.public {
            let id = start(
                config,
                &client,
                &source.image,
                target,
                &source_key,
                &source_ref,
            )
            .await?;
            info!(image_id = %source.image.id, region = %source.image.region, target = %target, copy_id = %id, "copy started");
            copy.image_id = Some(id);
            copy.state = Some(ImageState::Pending.as_str().to_owned());
            copy.started = true;
        }
        return Ok(());
    };
    copy.image_id = Some(found.id.clone());
    copy.state = Some(found.state.as_str().to_owned());
    copy.public = found.public;
    if found.state == ImageState::Pending {
        // Nothing to decide until it is available: its own event, or the
        // source's next run, takes it from there.
        return Ok(());
    }
    if matches!(found.state, ImageState::Failed | ImageState::Disabled) {
        // EC2 answers the same ClientToken with this copy again, so copying
        // again would not help: its owner decides.
        return Err(Ec2Error {
            operation: "CopyImage",
            region: target.clone(),
            image_id: Some(source.image.id.clone()),
            code: "CopyUnusable".into(),
            message: format!(
                "the copy {} is {}; deregister it (README: failed copies)",
                found.id,
                found.state.as_str()
            ),
        });
    }
    let observed = Observed {
        image: found,
        at: std::time::Instant::now(),
    };
    let outcome = inv.reconcile(run, observed, intent, Some(source)).await;
    absorb(copy, outcome);
    info!(image_id = %source.image.id, region = %source.image.region, target = %target, copy_id = ?copy.image_id, state = ?copy.state, public = copy.public, action = ?copy.action, "copy");
    Ok(())
}

/// What reconciling the copy did, in the copy's entry of its source's outcome.
fn absorb(copy: &mut CopyOutcome, outcome: ImageOutcome) {
    match outcome.action {
        Action::Published => copy.public = true,
        Action::Withdrawn if outcome.errors.is_empty() => copy.public = false,
        _ => {}
    }
    copy.action = Some(outcome.action);
    copy.status = outcome.status;
    copy.reasons = outcome.reasons;
    if !outcome.errors.is_empty() {
        copy.error = Some(outcome.errors.join("; "));
    }
}

/// Starts a copy in `target` (the call is made there) and returns its id.
async fn start(
    config: &Config,
    client: &aws_sdk_ec2::Client,
    source: &Image,
    target: &RegionName,
    source_key: &str,
    source_ref: &str,
) -> Result<ImageId, Ec2Error> {
    let tags = copy_tags(config, source, source_key, source_ref);
    // Deterministic: a concurrent or repeated run gets the same copy from
    // EC2 instead of a second one.
    let client_token = format!("{}/{}/{}", source.region, source.id, target);
    let request = CopyRequest {
        source,
        target_region: target,
        client_token: &client_token,
        tags: &tags,
    };
    ec2::copy_image(client, request).await
}

/// The source's own tags (not the function's status tags, nor AWS's
/// reserved ones), plus the provenance tag that stops the copy from fanning
/// out again and names the source it follows.
fn copy_tags(
    config: &Config,
    source: &Image,
    source_key: &str,
    source_ref: &str,
) -> Vec<(String, String)> {
    source
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with(&config.status_tag_prefix) && !k.starts_with("aws:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(std::iter::once((
            source_key.to_owned(),
            source_ref.to_owned(),
        )))
        .collect()
}

/// Each copy's failure, naming its region.
pub(crate) fn failures(copies: &[CopyOutcome]) -> Vec<String> {
    copies
        .iter()
        .filter_map(|c| {
            c.error
                .as_ref()
                .map(|e| format!("copy in {} failed: {e}", c.region))
        })
        .collect()
}

/// The status of a source that is public in its own region, given its copies.
pub(crate) fn source_status(region: &RegionName, copies: &[CopyOutcome]) -> (Status, String) {
    let failed = failures(copies);
    if !failed.is_empty() {
        return (
            Status::Error,
            format!("public in {region}; {}", failed.join("; ")),
        );
    }
    // A copy its owner took down on its own (status withdrawn or held) is
    // not waited for; nor is a region where no copy may be started.
    let settled = |c: &CopyOutcome| {
        matches!(c.status, Some(Status::Withdrawn | Status::Held)) || c.image_id.is_none()
    };
    let waiting: Vec<String> = copies
        .iter()
        .filter(|c| !c.public && !settled(c))
        .map(|c| {
            let id = c.image_id.as_ref().map(ImageId::as_str).unwrap_or("?");
            let state = match c.status {
                Some(status) if c.state.as_deref() == Some("available") => status.as_str(),
                _ => c.state.as_deref().unwrap_or("unknown"),
            };
            format!("{} {id} {state}", c.region)
        })
        .collect();
    if !waiting.is_empty() {
        return (
            Status::Copying,
            format!(
                "public in {region}; copies not public yet: {}",
                waiting.join(", ")
            ),
        );
    }
    let public: Vec<&str> = copies
        .iter()
        .filter(|c| c.public)
        .map(|c| c.region.as_str())
        .collect();
    if public.is_empty() {
        (Status::Public, format!("public in {region}"))
    } else {
        (
            Status::Public,
            format!("public in {region} and copies in {}", public.join(", ")),
        )
    }
}
