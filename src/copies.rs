//! A source's copies in its target regions: finding them (by the provenance
//! tag the function writes when it starts one), starting the missing ones
//! and replacing dead ones, and bringing each live copy where its source
//! says, published once it is available or taken down with its source. A
//! copy is decided on by [`plan`](crate::plan) like any AMI, with its
//! source's facts in hand, so one stack (the source region's) finishes the
//! job in every region. Regions are worked concurrently, with a bound; one
//! region's failure never hides another's.
//!
//! Before a copy is started in a region, the region is checked for what
//! would keep the copy from ever being public there: an instance-store
//! source (its copy needs S3 permissions the role does not have), EBS
//! encryption by default (the copy would come out encrypted), no headroom
//! in the public AMI quota.

use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use tracing::{info, warn};

use crate::config::{Config, StatusTag};
use crate::copy_index::CopyIndex;
use crate::ec2::{self, CopyRequest, Ec2Error, Seen};
use crate::invocation::{CALLS_FOR_A_WRITE, Invocation, Observed, RegionRun};
use crate::model::{Image, ImageId, ImageState, Intent, RegionName, SourceRef, Status};
use crate::plan;
use crate::report::{Action, CopyOutcome, ImageOutcome};
use crate::steps::Step;

/// How often a source's copy in one region may be replaced in one run (a
/// dead copy, then a token EC2 answers with a dead copy again, ...).
const MAX_REPLACEMENTS: u32 = 3;

/// How long a copy just started may take to show in DescribeImages (EC2 is
/// eventually consistent) before the function concludes that the id EC2
/// answered is an old, dead copy.
const VISIBLE_AFTER: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

/// Lists the copies in every target region but `home`.
pub(crate) async fn index(inv: &Invocation<'_>, home: &RegionName) -> CopyIndex {
    let config = inv.config();
    let source_key = config.status_tag(StatusTag::Source);
    let targets: Vec<&RegionName> = config
        .target_regions
        .iter()
        .filter(|r| *r != home)
        .collect();
    let listings: Vec<Result<(RegionName, Vec<Image>), Ec2Error>> = stream::iter(targets)
        .map(|region| {
            let source_key = &source_key;
            async move {
                let run = inv.run(region).map_err(|e| {
                    Ec2Error::permanent(
                        "DescribeImages",
                        region,
                        None,
                        "UnknownRegion",
                        e.to_string(),
                    )
                })?;
                let client = run.client()?;
                let copies =
                    ec2::list_owned_images_with_tag_keys(&client, region, &[source_key], |_| true)
                        .await?;
                Ok((region.clone(), copies))
            }
        })
        .buffer_unordered(config.copy_concurrency)
        .collect()
        .await;
    CopyIndex::new(&source_key, listings)
}

/// Brings the source's copy in each of `targets` where the source's facts
/// say, `copy_concurrency` regions at a time; starts (or replaces) missing
/// copies when `new_copies`. Results come back in the order of `targets`.
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
                refuse(&mut copy, e);
            }
            (i, copy)
        })
        .buffer_unordered(inv.config().copy_concurrency)
        .collect()
        .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, copy)| copy).collect()
}

/// A failed call in a region: one a retry may fix is the copy's error (the
/// invocation fails, so Lambda retries); one it can't is a rejection of that
/// region, with what the owner can do.
fn refuse(copy: &mut CopyOutcome, e: Ec2Error) {
    warn!(target = %copy.region, error = %e, transient = e.transient, "copy failed");
    if e.transient {
        copy.error = Some(e.to_string());
    } else {
        reject(copy, e.advice());
    }
}

fn reject(copy: &mut CopyOutcome, reason: String) {
    copy.action = Some(Action::Rejected);
    copy.reasons.push(reason);
}

fn defer(copy: &mut CopyOutcome, why: &str) {
    copy.action = Some(Action::Deferred);
    copy.reasons.push(format!("left for the next run: {why}"));
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
    let run = inv.run(target).map_err(|e| {
        Ec2Error::permanent(
            "CopyImage",
            target,
            Some(&source.image.id),
            "UnknownRegion",
            e.to_string(),
        )
    })?;
    let client = run.client()?;
    let source_key = config.status_tag(StatusTag::Source);
    let source_ref = format!("{}/{}", source.image.region, source.image.id);
    if let Some(unlisted) = inv
        .copy_index
        .as_ref()
        .and_then(|index| index.unlisted.get(target))
    {
        // Failed once for this sweep already: not asked again per source.
        return Err(unlisted.clone());
    }
    let indexed = inv
        .copy_index
        .as_ref()
        .and_then(|index| Some((index.copies(target, &source_ref)?, index.listed_at()?)));
    let (found, found_at) = match indexed {
        Some(indexed) => indexed,
        None => (
            ec2::list_owned_images_tagged(&client, target, &source_key, &source_ref).await?,
            Instant::now(),
        ),
    };
    let (mut live, dead): (Vec<Image>, Vec<Image>) =
        found.into_iter().partition(|c| c.state.is_live());
    // Should two live copies ever exist, the oldest is the copy.
    live.sort_by_key(|c| c.creation_date);
    let Some(found) = live.into_iter().next() else {
        if new_copies && source.image.public {
            start(inv, run, &client, source, copy, &dead).await?;
        } else if let Some(d) = dead.first() {
            copy.image_id = Some(d.id.clone());
            copy.state = Some(d.state.as_str().to_owned());
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
    let observed = Observed {
        image: found,
        at: found_at,
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
    copy.retired = outcome.retired;
    copy.source_changed = outcome.source_changed;
    if !outcome.errors.is_empty() {
        copy.error = Some(outcome.errors.join("; "));
    }
}

/// Starts the source's copy in the region, after the checks that would keep
/// it from ever being public there; replaces a dead copy EC2 answers with.
async fn start(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    client: &ec2::Client,
    source: &Observed,
    copy: &mut CopyOutcome,
    dead: &[Image],
) -> Result<(), Ec2Error> {
    let target = &run.region;
    let image = &source.image;
    if image.instance_store {
        reject(
            copy,
            "instance-store AMIs are not copied (their copies go through S3, which the role may not use): publish it in its own region, or build an EBS-backed AMI".into(),
        );
        return Ok(());
    }
    if !inv.has_time_for(CALLS_FOR_A_WRITE + 3) {
        copy.action = Some(Action::Deferred);
        return Ok(());
    }
    if run.encrypts_by_default().await? {
        reject(
            copy,
            format!(
                "EBS encryption by default is on in {target}: a copy there would be encrypted, and an encrypted AMI can't be public; turn it off there (DisableEbsEncryptionByDefault) or remove {target} from TARGET_REGIONS"
            ),
        );
        return Ok(());
    }
    if let Err(no_headroom) = inv.take_public_slot(target).await? {
        reject(copy, no_headroom);
        return Ok(());
    }
    request_copy(inv, run, client, image, copy, dead).await
}

/// Asks EC2 for the copy under the token of the source's generation of
/// copies; a dead copy EC2 answers with is replaced under a new token (at
/// most [`MAX_REPLACEMENTS`] times), each new generation recorded on the
/// source first. The public slot taken for the copy is given back unless a
/// copy was started.
async fn request_copy(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    client: &ec2::Client,
    image: &Image,
    copy: &mut CopyOutcome,
    dead: &[Image],
) -> Result<(), Ec2Error> {
    let config = inv.config();
    let target = &run.region;
    let source_key = config.status_tag(StatusTag::Source);
    let generation_key = config.status_tag(StatusTag::Generation);
    let source_ref = format!("{}/{}", image.region, image.id);
    let tags = marker_tags(config, image, &source_key, &source_ref);
    let dead_ids: Vec<&ImageId> = dead.iter().map(|d| &d.id).collect();
    // A copy may have been started before (the source carries the
    // function's status): the id EC2 answers may then be an old, dead one.
    let copied_before = plan::status_of(image, config).is_some() || !dead.is_empty();
    let mut generation = generation_of(image, config);
    for _ in 0..=MAX_REPLACEMENTS {
        if !inv.has_time_for(CALLS_FOR_A_WRITE + 1) {
            inv.quotas.give_back(target).await;
            defer(copy, "the invocation's deadline is near");
            return Ok(());
        }
        // The token names the generation of the copy: a run that repeats the
        // same start gets the same copy from EC2, a replacement a new one.
        let client_token = format!("{}/{}/{}/{generation}", image.region, image.id, target);
        let request = CopyRequest {
            source: image,
            target_region: target,
            client_token: &client_token,
            tags: &tags,
        };
        let step = Step::Copy {
            region: target.clone(),
            source: SourceRef {
                region: image.region.clone(),
                image_id: image.id.clone(),
            },
        };
        match inv.write(step, ec2::copy_image(client, request)).await {
            Ok(None) => {
                // A preview: the copy would be started.
                copy.started = true;
                copy.state = Some(ImageState::Pending.as_str().to_owned());
                return Ok(());
            }
            Ok(Some(id)) if dead_ids.contains(&&id) => {}
            Ok(Some(id)) => {
                // A token used before may answer with an old copy: look.
                let alive = if copied_before {
                    is_alive(inv, client, target, &id).await?
                } else {
                    Some(true)
                };
                match alive {
                    Some(true) => {
                        info!(image_id = %image.id, region = %image.region, target = %target, copy_id = %id, generation, "copy started");
                        copy.image_id = Some(id);
                        copy.state = Some(ImageState::Pending.as_str().to_owned());
                        copy.started = true;
                        return Ok(());
                    }
                    Some(false) => {}
                    None => {
                        // No time left to tell a new copy from an old, dead
                        // one: the next run looks, rather than risk a second
                        // live copy.
                        copy.image_id = Some(id);
                        defer(copy, "no time to check the copy EC2 answered with");
                        return Ok(());
                    }
                }
            }
            // The token was used for another request (the source's tags
            // changed since): whatever it made is not a live copy, or the
            // lookup above would have found it.
            Err(e) if e.code == "IdempotentParameterMismatch" => {}
            Err(e) => {
                inv.quotas.give_back(target).await;
                return Err(e);
            }
        }
        // The token is spent: EC2 answers it with a dead copy.
        generation += 1;
        info!(image_id = %image.id, target = %target, generation, "the copy EC2 answered with is dead: replacing it");
        // Recorded on the source first, so that every later run uses the
        // new token too (runs that race write the same number).
        let home = inv.run(&image.region).map_err(|e| {
            Ec2Error::permanent(
                "CreateTags",
                &image.region,
                Some(&image.id),
                "UnknownRegion",
                e.to_string(),
            )
        })?;
        let tag = [(generation_key.clone(), generation.to_string())];
        let step = Step::NewGeneration {
            region: image.region.clone(),
            image_id: image.id.clone(),
            generation,
        };
        let home_client = home.client()?;
        inv.write(
            step,
            ec2::create_tags(&home_client, &image.region, &image.id, &tag),
        )
        .await?;
    }
    inv.quotas.give_back(target).await;
    Err(Ec2Error::permanent(
        "CopyImage",
        target,
        Some(&image.id),
        "CopyUnusable",
        format!(
            "EC2 answered {MAX_REPLACEMENTS} new copy requests with dead copies; the next run tries again"
        ),
    ))
}

/// Whether the copy EC2 answered with is pending or available, given a few
/// seconds to show if EC2 does not know it yet (a copy just started may not
/// be visible at once); still unknown after them, it is an old, dead one.
/// `None`: the deadline left no time to wait and see.
async fn is_alive(
    inv: &Invocation<'_>,
    client: &ec2::Client,
    region: &RegionName,
    id: &ImageId,
) -> Result<Option<bool>, Ec2Error> {
    for wait in VISIBLE_AFTER {
        match ec2::describe_own_image(client, region, id).await? {
            Seen::Found(state) => return Ok(Some(state.is_live())),
            Seen::Gone => return Ok(Some(false)),
            Seen::Unknown if inv.has_time_for(CALLS_FOR_A_WRITE + 1) => {
                tokio::time::sleep(wait).await;
            }
            Seen::Unknown => return Ok(None),
        }
    }
    Ok(Some(false))
}

/// The generation of the source's copies: how often a dead one was replaced.
fn generation_of(image: &Image, config: &Config) -> u32 {
    image
        .tags
        .get(&config.status_tag(StatusTag::Generation))
        .and_then(|g| g.parse().ok())
        .unwrap_or(0)
}

/// The tags the function gives a copy at its creation: the provenance tag
/// that stops the copy from fanning out again and names the source it
/// follows (the role's CopyCreatesMarkedImage asks for it), and the
/// source's creation date (the release's, by which rotation orders a
/// family's copies). The source's own tags, the publish tag among them,
/// come from EC2 (CopyImageTags): the role may never write the publish or
/// family key (template.yaml, DenyPublishAndFamilyTagKeys), so a copy is
/// tagged for publishing only if its source is.
fn marker_tags(
    config: &Config,
    source: &Image,
    source_key: &str,
    source_ref: &str,
) -> Vec<(String, String)> {
    let created = source.creation_date.map(|created| {
        (
            config.status_tag(StatusTag::SourceCreated),
            crate::model::format_time(created),
        )
    });
    std::iter::once((source_key.to_owned(), source_ref.to_owned()))
        .chain(created)
        .collect()
}

/// Each copy's failure a retry may fix, naming its region.
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
    // not waited for; nor is a region where no copy may be started (the
    // source is deprecated).
    let settled = |c: &CopyOutcome| {
        matches!(c.status, Some(Status::Withdrawn | Status::Held))
            || (c.image_id.is_none() && c.action.is_none() && !c.started)
    };
    let waiting: Vec<String> = copies
        .iter()
        .filter(|c| !c.public && !settled(c))
        .map(|c| {
            let id = c.image_id.as_ref().map(ImageId::as_str).unwrap_or("(none)");
            let state = match (c.action, c.status) {
                (Some(Action::Rejected), _) => {
                    format!("rejected: {}", c.reasons.join("; "))
                }
                (Some(Action::Deferred), _) => "left for the next run".to_owned(),
                (_, Some(status)) if c.state.as_deref() == Some("available") => {
                    status.as_str().to_owned()
                }
                _ => c.state.clone().unwrap_or_else(|| "unknown".to_owned()),
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
