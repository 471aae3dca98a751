//! Carries out the decisions of [`plan`](crate::plan) for an invocation:
//! one AMI, or a sweep of a region. Copies fan out concurrently with a
//! bound; every region's result is kept, and a failure anywhere is reported
//! (as an error, so Lambda retries) only after everything else was done.

use std::time::{Duration, SystemTime};

use futures::{StreamExt, future, stream};
use lambda_runtime::Diagnostic;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::config::{Config, StatusTag};
use crate::ec2::{self, Clients, CopyRequest, Ec2Error};
use crate::event::{self, EventError, Trigger};
use crate::model::{BlockPublicAccess, Image, ImageId, ImageState, RegionName, format_time};
use crate::plan::{self, Decision, Steps};
use crate::report::{Action, CopyOutcome, ImageOutcome, Outcome, Status, tag_value};

/// Why an invocation failed. Each kind maps to a stable Lambda `errorType`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    #[error(
        "region {region} is not one this function works in (its own region {home} and TARGET_REGIONS)"
    )]
    UnknownRegion {
        region: RegionName,
        home: RegionName,
    },
    #[error("sweep of {region} could not list the AMIs tagged for publishing: {error}")]
    Sweep {
        region: RegionName,
        error: Box<Ec2Error>,
    },
    #[error("{} failure(s), everything else done: {}", failures.len(), failures.join("; "))]
    Incomplete { failures: Vec<String> },
}

impl From<Error> for Diagnostic {
    fn from(error: Error) -> Self {
        let error_type = match &error {
            Error::InvalidEvent(_) => "InvalidEvent",
            Error::UnknownRegion { .. } => "UnknownRegion",
            Error::Sweep { .. } => "SweepFailed",
            Error::Incomplete { .. } => "PublishIncomplete",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}

/// How long before the invocation's deadline a sweep stops starting work on
/// further AMIs: enough for the AMIs under way to finish (SDK retries
/// included). What it leaves is the next sweep's.
const SWEEP_DEADLINE_MARGIN: Duration = Duration::from_secs(30);

/// The function: configuration and clients, built once, borrowed by every
/// invocation.
pub struct Publisher {
    config: Config,
    clients: Clients,
    clock: fn() -> OffsetDateTime,
}

/// One invocation's work in one region: the client, and the region's block
/// public access state, asked for at most once and only when needed.
struct RegionRun<'a> {
    region: &'a RegionName,
    client: &'a aws_sdk_ec2::Client,
    bpa: OnceCell<BlockPublicAccess>,
}

impl RegionRun<'_> {
    async fn bpa(&self) -> Result<&BlockPublicAccess, Ec2Error> {
        self.bpa
            .get_or_try_init(|| ec2::block_public_access(self.client, self.region))
            .await
    }
}

impl Publisher {
    pub fn new(config: Config, clients: Clients) -> Self {
        Self {
            config,
            clients,
            clock: OffsetDateTime::now_utc,
        }
    }

    /// Replaces the clock (tests pin "now" to check deprecation dates).
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }

    /// Handles one invocation payload, with no deadline.
    pub async fn handle(&self, payload: &Value) -> Result<Outcome, Error> {
        self.handle_until(payload, None).await
    }

    /// Handles one invocation payload; a sweep leaves the AMIs it has no
    /// time for before `deadline` to the next sweep.
    pub async fn handle_until(
        &self,
        payload: &Value,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, Error> {
        // An invalid event is logged by lambda_runtime with the error it returns.
        let trigger = event::parse(
            payload,
            &self.config.publish_tag_key,
            &self.config.home_region,
        )?;
        let outcome = match trigger {
            Trigger::Ignored { reason } => {
                info!(reason = %reason, "event ignored");
                Outcome {
                    trigger: "ignored",
                    cause: None,
                    region: None,
                    ignored: Some(reason),
                    images: Vec::new(),
                    deferred: 0,
                }
            }
            Trigger::Image {
                image_id,
                region,
                cause,
            } => {
                let run = self.region_run(&region)?;
                let image = self.reconcile_by_id(&run, &image_id).await;
                Outcome {
                    trigger: "image",
                    cause: Some(cause),
                    region: Some(region.clone()),
                    ignored: None,
                    images: vec![image],
                    deferred: 0,
                }
            }
            Trigger::Sweep { region } => {
                let run = self.region_run(&region)?;
                let (images, deferred) = self.sweep(&run, deadline).await?;
                Outcome {
                    trigger: "sweep",
                    cause: None,
                    region: Some(region.clone()),
                    ignored: None,
                    images,
                    deferred,
                }
            }
        };
        outcome.log_summary();
        let failures = outcome.failures();
        if failures.is_empty() {
            Ok(outcome)
        } else {
            warn!(
                outcome = %serde_json::to_string(&outcome).unwrap_or_default(),
                "incomplete: returning an error so the invocation is retried"
            );
            Err(Error::Incomplete { failures })
        }
    }

    fn region_run<'a>(&'a self, region: &'a RegionName) -> Result<RegionRun<'a>, Error> {
        let client = self
            .clients
            .get(region)
            .ok_or_else(|| Error::UnknownRegion {
                region: region.clone(),
                home: self.config.home_region.clone(),
            })?;
        Ok(RegionRun {
            region,
            client,
            bpa: OnceCell::new(),
        })
    }

    async fn reconcile_by_id(&self, run: &RegionRun<'_>, id: &ImageId) -> ImageOutcome {
        match ec2::describe_image(run.client, run.region, id).await {
            Ok(Some(image)) => self.reconcile(run, image).await,
            Ok(None) => {
                info!(image_id = %id, region = %run.region, action = "skipped", "AMI not found");
                let mut outcome =
                    ImageOutcome::new(id.clone(), run.region.clone(), Action::Skipped);
                outcome
                    .reasons
                    .push("not found: deregistered, or not visible to this account".into());
                outcome
            }
            Err(e) => {
                let mut outcome = ImageOutcome::new(id.clone(), run.region.clone(), Action::Failed);
                outcome.errors.push(e.to_string());
                outcome
            }
        }
    }

    /// Every AMI of the account in the region tagged for publishing that is
    /// not public with status `public` yet, reconciled with the facts the
    /// listing gave (no second DescribeImages). Returns the outcomes and how
    /// many AMIs were left for the next sweep for lack of time.
    async fn sweep(
        &self,
        run: &RegionRun<'_>,
        deadline: Option<SystemTime>,
    ) -> Result<(Vec<ImageOutcome>, usize), Error> {
        let config = &self.config;
        let images = ec2::list_owned_images_tagged(
            run.client,
            run.region,
            &config.publish_tag_key,
            &config.publish_tag_value,
        )
        .await
        .map_err(|error| Error::Sweep {
            region: run.region.clone(),
            error: Box::new(error),
        })?;
        let status_key = config.status_tag(StatusTag::Status);
        let listed = images.len();
        let todo: Vec<Image> = images
            .into_iter()
            .filter(|i| {
                !(i.public
                    && i.tags.get(&status_key).map(String::as_str) == Some(Status::Public.as_str()))
            })
            .collect();
        info!(region = %run.region, listed, to_reconcile = todo.len(), "sweep");
        let to_reconcile = todo.len();
        let has_time = || deadline.is_none_or(|d| SystemTime::now() + SWEEP_DEADLINE_MARGIN < d);
        let mut outcomes: Vec<ImageOutcome> = stream::iter(todo)
            .take_while(|_| future::ready(has_time()))
            .map(|image| self.reconcile(run, image))
            .buffer_unordered(config.copy_concurrency)
            .collect()
            .await;
        outcomes.sort_by(|a, b| a.image_id.cmp(&b.image_id));
        let deferred = to_reconcile - outcomes.len();
        if deferred > 0 {
            warn!(region = %run.region, deferred, "sweep out of time: the rest is left to the next sweep");
        }
        Ok((outcomes, deferred))
    }

    /// Brings one AMI, whose facts are known, to its desired state.
    async fn reconcile(&self, run: &RegionRun<'_>, image: Image) -> ImageOutcome {
        let bpa = if plan::needs_bpa(&image, &self.config) {
            match run.bpa().await {
                Ok(bpa) => Some(bpa),
                Err(e) => {
                    let outcome =
                        ImageOutcome::new(image.id.clone(), image.region.clone(), Action::Failed);
                    return self
                        .finish(run, &image, outcome, Status::Error, e.to_string())
                        .await;
                }
            }
        } else {
            None
        };
        let decision = plan::decide(&image, bpa, &self.config, (self.clock)());
        let outcome = |action| ImageOutcome::new(image.id.clone(), image.region.clone(), action);
        match decision {
            Decision::Skip { reason } => {
                info!(image_id = %image.id, region = %image.region, action = "skipped", reason = %reason, "decision");
                let mut skipped = outcome(Action::Skipped);
                skipped.reasons.push(reason);
                skipped
            }
            Decision::Wait => {
                info!(image_id = %image.id, region = %image.region, action = "waiting", "decision");
                let reason = "waiting for the AMI to become available".to_owned();
                self.finish(
                    run,
                    &image,
                    outcome(Action::Waiting),
                    Status::Pending,
                    reason,
                )
                .await
            }
            Decision::Reject { reasons } => {
                let reasons: Vec<String> = reasons.iter().map(ToString::to_string).collect();
                info!(image_id = %image.id, region = %image.region, action = "rejected", reasons = ?reasons, "decision");
                let mut rejected = outcome(Action::Rejected);
                rejected.reasons = reasons;
                let text = rejected.reasons.join("; ");
                self.finish(run, &image, rejected, Status::Rejected, text)
                    .await
            }
            Decision::Publish(steps) => self.publish(run, &image, steps).await,
        }
    }

    async fn publish(&self, run: &RegionRun<'_>, image: &Image, steps: Steps) -> ImageOutcome {
        info!(
            image_id = %image.id,
            region = %image.region,
            make_public = steps.make_public,
            deprecate_at = steps.deprecate_at.map(format_time),
            copy_to = ?steps.copy_to.iter().map(RegionName::as_str).collect::<Vec<_>>(),
            "decision: publish"
        );
        let mut outcome = ImageOutcome::new(
            image.id.clone(),
            image.region.clone(),
            Action::AlreadyPublic,
        );
        let mut deprecation = image.deprecation_time;
        if let Some(at) = steps.deprecate_at {
            match ec2::enable_deprecation(run.client, run.region, &image.id, at).await {
                Ok(()) => deprecation = Some(at),
                Err(e) => outcome.errors.push(e.to_string()),
            }
        }
        // The deprecation date goes on first: once public, an AMI's
        // deprecation date can only move earlier.
        if steps.make_public && outcome.errors.is_empty() {
            match ec2::make_public(run.client, run.region, &image.id).await {
                Ok(()) => {
                    info!(image_id = %image.id, region = %image.region, "made public");
                    outcome.action = Action::Published;
                }
                Err(e) => outcome.errors.push(e.to_string()),
            }
        }
        outcome.deprecation_time = deprecation.map(format_time);
        // Copies only of a source whose own steps succeeded: a copy must not
        // become public in its region while its source stays private.
        if outcome.errors.is_empty() {
            outcome.copies = self.ensure_copies(image, &steps.copy_to).await;
        }

        let (status, reason) = if outcome.errors.is_empty() {
            copies_status(&image.region, &outcome.copies)
        } else {
            outcome.action = Action::Failed;
            (Status::Error, outcome.errors.join("; "))
        };
        self.finish(run, image, outcome, status, reason).await
    }

    /// Writes the status tags (only when they change) and completes the outcome.
    async fn finish(
        &self,
        run: &RegionRun<'_>,
        image: &Image,
        mut outcome: ImageOutcome,
        status: Status,
        reason: String,
    ) -> ImageOutcome {
        let tags = [
            (
                self.config.status_tag(StatusTag::Status),
                status.as_str().to_owned(),
            ),
            (
                self.config.status_tag(StatusTag::Reason),
                tag_value(&reason),
            ),
        ];
        let unchanged = tags.iter().all(|(k, v)| image.tags.get(k) == Some(v));
        if !unchanged
            && let Err(e) = ec2::create_tags(run.client, run.region, &image.id, &tags).await
        {
            outcome.errors.push(e.to_string());
            outcome.action = Action::Failed;
        }
        outcome.status = Some(status);
        outcome
    }

    /// Finds or starts a copy in each target region, `copy_concurrency` at a
    /// time; results come back in the configured order.
    async fn ensure_copies(&self, source: &Image, targets: &[RegionName]) -> Vec<CopyOutcome> {
        let mut results: Vec<(usize, CopyOutcome)> = stream::iter(targets.iter().enumerate())
            .map(|(i, target)| async move { (i, self.ensure_copy(source, target).await) })
            .buffer_unordered(self.config.copy_concurrency)
            .collect()
            .await;
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, copy)| copy).collect()
    }

    async fn ensure_copy(&self, source: &Image, target: &RegionName) -> CopyOutcome {
        let mut copy = CopyOutcome {
            region: target.clone(),
            image_id: None,
            state: None,
            public: false,
            started: false,
            error: None,
        };
        let Some(client) = self.clients.get(target) else {
            copy.error = Some(format!("no EC2 client for {target}"));
            return copy;
        };
        let source_key = self.config.status_tag(StatusTag::Source);
        let source_ref = format!("{}/{}", source.region, source.id);
        let result = match ec2::find_tagged_owned_image(client, target, &source_key, &source_ref)
            .await
        {
            Ok(Some(found)) if matches!(found.state, ImageState::Failed | ImageState::Disabled) => {
                // EC2 answers the same ClientToken with this copy again, so
                // copying again would not help: its owner decides.
                Err(Ec2Error {
                    operation: "CopyImage",
                    region: target.clone(),
                    image_id: Some(source.id.clone()),
                    code: "CopyUnusable".into(),
                    message: format!(
                        "the copy {} is {}; deregister it (README: failed copies)",
                        found.id,
                        found.state.as_str()
                    ),
                })
            }
            Ok(Some(found)) => {
                // The copy's own stack reports on it (e.g. rejected by
                // BPA in its region): show that rather than its EC2 state.
                let state = match found.tags.get(&self.config.status_tag(StatusTag::Status)) {
                    Some(status) if !found.public => status.clone(),
                    _ => found.state.as_str().to_owned(),
                };
                Ok((found.id, state, found.public, false))
            }
            Ok(None) => {
                let tags = self.copy_tags(source, &source_key, &source_ref);
                // Deterministic: a concurrent or repeated run gets the same
                // copy from EC2 instead of a second one.
                let client_token = format!("{}/{}/{}", source.region, source.id, target);
                let request = CopyRequest {
                    source,
                    target_region: target,
                    client_token: &client_token,
                    tags: &tags,
                };
                ec2::copy_image(client, request)
                    .await
                    .map(|id| (id, "pending".to_owned(), false, true))
            }
            Err(e) => Err(e),
        };
        match result {
            Ok((id, state, public, started)) => {
                info!(image_id = %source.id, region = %source.region, target = %target, copy_id = %id, state = %state, started, "copy");
                copy.image_id = Some(id);
                copy.state = Some(state);
                copy.public = public;
                copy.started = started;
            }
            Err(e) => {
                warn!(image_id = %source.id, region = %source.region, target = %target, error = %e, "copy failed");
                copy.error = Some(e.to_string());
            }
        }
        copy
    }

    /// The source's own tags (not the function's status tags, nor AWS's
    /// reserved ones), plus the provenance tag that stops the copy from
    /// fanning out again.
    fn copy_tags(
        &self,
        source: &Image,
        source_key: &str,
        source_ref: &str,
    ) -> Vec<(String, String)> {
        source
            .tags
            .iter()
            .filter(|(k, _)| {
                !k.starts_with(&self.config.status_tag_prefix) && !k.starts_with("aws:")
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain(std::iter::once((
                source_key.to_owned(),
                source_ref.to_owned(),
            )))
            .collect()
    }
}

/// The status of a source that is public in its own region, given its copies.
fn copies_status(region: &RegionName, copies: &[CopyOutcome]) -> (Status, String) {
    let failed: Vec<String> = copies
        .iter()
        .filter_map(|c| {
            c.error
                .as_ref()
                .map(|e| format!("copy to {} failed: {e}", c.region))
        })
        .collect();
    if !failed.is_empty() {
        return (
            Status::Error,
            format!("public in {region}; {}", failed.join("; ")),
        );
    }
    let waiting: Vec<String> = copies
        .iter()
        .filter(|c| !c.public)
        .map(|c| {
            let id = c.image_id.as_ref().map(ImageId::as_str).unwrap_or("?");
            format!(
                "{} {id} {}",
                c.region,
                c.state.as_deref().unwrap_or("unknown")
            )
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
    if copies.is_empty() {
        (Status::Public, format!("public in {region}"))
    } else {
        let regions: Vec<&str> = copies.iter().map(|c| c.region.as_str()).collect();
        (
            Status::Public,
            format!("public in {region} and copies in {}", regions.join(", ")),
        )
    }
}
