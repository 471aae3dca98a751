//! Carries out the decisions of [`plan`](crate::plan) for an invocation: one
//! AMI (a source, whose copies [`copies`](crate::copies) looks after, or a
//! copy), or a sweep of a region. Every AMI's and region's result is kept.
//! A failure a retry can fix (throttling, a server error, a timeout) is
//! returned as an error, so that Lambda retries, only after everything else
//! was done; one it can't (a quota, a refusal) is an outcome the owner is
//! told about on the AMI. Every step checks that it can still finish, status
//! tags included, before the invocation's deadline.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::{StreamExt, future, stream};
use lambda_runtime::Diagnostic;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::clients::Clients;
use crate::config::{Config, StatusTag};
use crate::copies::{self, CopyIndex};
use crate::ec2::{self, Ec2Error};
use crate::event::{self, EventError, Trigger};
use crate::model::{BlockPublicAccess, Image, ImageId, Intent, RegionName, format_time};
use crate::plan::{self, Decision, Facts, SourceFacts, Steps, WithdrawReason, Withdrawal};
use crate::quota::{QuotaCache, Quotas};
use crate::report::{
    Action, Counts, ImageOutcome, Outcome, RegionFailure, Status, metrics_line, tag_value,
};
use crate::rotation;
use crate::steps::Step;

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
    #[error("{} failure(s) a retry may fix, everything else done: {}", failures.len(), failures.join("; "))]
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

/// No AMI is made public on facts older than this: a sweep's listing, or a
/// copy's source read earlier in a long run, is read again first. (IAM's
/// tag condition is the second line of defence, not the first.)
pub const FRESH_FACTS: Duration = Duration::from_secs(60);

/// Calls, at the call limit each, an AMI may need before its first write
/// (its source, BPA, the quota's three reads) plus that write and the status
/// tags: a sweep starts an AMI only with this much time left.
const CALLS_TO_START_AN_AMI: u32 = 6;
/// A write and the status tags after it.
pub(crate) const CALLS_FOR_A_WRITE: u32 = 2;

/// The function: configuration and clients, built once, borrowed by every
/// invocation.
pub struct Publisher {
    pub(crate) config: Config,
    pub(crate) clients: Clients,
    clock: fn() -> OffsetDateTime,
    fresh_facts: Duration,
    pub(crate) quota_cache: QuotaCache,
    /// Every invocation is a preview (the `plan` command): nothing is written.
    preview_only: bool,
}

/// An AMI's facts and when they were read.
#[derive(Clone, Debug)]
pub(crate) struct Observed {
    pub image: Image,
    pub at: Instant,
}

/// One invocation's work in one region: the region's block public access
/// state and EBS encryption by default are asked for at most once, and only
/// when needed.
pub(crate) struct RegionRun<'a> {
    pub region: RegionName,
    clients: &'a Clients,
    bpa: OnceCell<BlockPublicAccess>,
    encrypts_by_default: OnceCell<bool>,
}

impl RegionRun<'_> {
    pub fn client(&self) -> Result<ec2::Client, Ec2Error> {
        self.clients
            .ec2(&self.region)
            .ok_or_else(|| no_client(&self.region))
    }

    async fn bpa(&self) -> Result<&BlockPublicAccess, Ec2Error> {
        let client = self.client()?;
        self.bpa
            .get_or_try_init(|| ec2::block_public_access(&client, &self.region))
            .await
    }

    pub async fn encrypts_by_default(&self) -> Result<bool, Ec2Error> {
        let client = self.client()?;
        self.encrypts_by_default
            .get_or_try_init(|| ec2::ebs_encryption_by_default(&client, &self.region))
            .await
            .copied()
    }
}

fn no_client(region: &RegionName) -> Ec2Error {
    Ec2Error::permanent(
        "(client)",
        region,
        None,
        "NoClient",
        format!("no EC2 client for {region}"),
    )
}

/// One invocation: the function, the time it started, its deadline, a run
/// per region it may act in (no client is built until a region is used),
/// the public AMI quota's books, and in a sweep the copies found up front.
pub(crate) struct Invocation<'a> {
    pub publisher: &'a Publisher,
    pub now: OffsetDateTime,
    deadline: Option<Instant>,
    runs: HashMap<RegionName, RegionRun<'a>>,
    pub quotas: Quotas,
    pub copy_index: Option<CopyIndex>,
    /// A preview: every write is reported, none is made.
    preview: bool,
    /// The writes made (or, in a preview, that would be), in order.
    steps: std::sync::Mutex<Vec<Step>>,
    /// One turn at a time per family and region: a sweep works AMIs at
    /// once, and two of one family must not both read it before either is
    /// public (each would keep the other; both could retire the same one).
    family_turns: std::sync::Mutex<HashMap<(RegionName, String), FamilyTurn>>,
}

/// A family's turn in one region (see `Invocation::family_turn`).
type FamilyTurn = Arc<tokio::sync::Mutex<()>>;

/// How an attempt to reconcile an AMI ended.
enum Attempt {
    Done(ImageOutcome),
    /// Its facts (or its source's) were older than [`FRESH_FACTS`] right
    /// before an irreversible step: read them again and decide again.
    Stale,
}

impl Publisher {
    /// The clients built from here on keep the configured pace
    /// (`PACE_EC2_CALLS`).
    pub fn new(config: Config, clients: Clients) -> Self {
        Self {
            clients: clients.with_pacing(config.pace_ec2_calls),
            config,
            clock: OffsetDateTime::now_utc,
            fresh_facts: FRESH_FACTS,
            quota_cache: QuotaCache::default(),
            preview_only: false,
        }
    }

    /// A publisher that only previews: every invocation is a dry run,
    /// whatever its payload says, and it prints no metrics (the `plan`
    /// command).
    pub fn preview_only(mut self) -> Self {
        self.preview_only = true;
        self
    }

    /// Replaces the clock (tests pin "now" to check deprecation dates).
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces how old facts may be when an AMI is made public on them
    /// (tests: zero makes every publish read its facts again first).
    pub fn with_fresh_facts(mut self, max_age: Duration) -> Self {
        self.fresh_facts = max_age;
        self
    }

    /// Handles one invocation payload, with no deadline.
    pub async fn handle(&self, payload: &Value) -> Result<Outcome, Error> {
        self.handle_until(payload, None).await
    }

    /// Handles one invocation payload; work that could not finish, status
    /// tags included, before `deadline` is left to the next run.
    pub async fn handle_until(
        &self,
        payload: &Value,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, Error> {
        self.handle_for(payload, None, deadline).await
    }

    /// Handles one invocation payload for the function of `account` (from
    /// the invoked function's ARN; events naming another account's AMI are
    /// refused), and prints its metrics line (report::metrics_line).
    pub async fn handle_for(
        &self,
        payload: &Value,
        account: Option<&str>,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, Error> {
        let result = self.handle_payload(payload, account, deadline).await;
        let (counts, region) = match &result {
            // A preview changed nothing: its line counts no action.
            Ok(outcome) if outcome.preview => (
                Counts {
                    errors: outcome.failures().len(),
                    ..Counts::default()
                },
                outcome.region.as_ref(),
            ),
            Ok(outcome) => (outcome.counts(), outcome.region.as_ref()),
            Err(_) => (
                Counts {
                    errors: 1,
                    ..Counts::default()
                },
                None,
            ),
        };
        let region = region.unwrap_or(&self.config.home_region);
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        // On stdout, one line, as CloudWatch Logs expects EMF (not for a
        // person's preview: there is no CloudWatch to read it).
        if !self.preview_only {
            use std::io::Write as _;
            let line = metrics_line(counts, region, now_ms) + "\n";
            let _ = std::io::stdout().write_all(line.as_bytes());
        }
        let outcome = result?;
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

    /// The outcome of a payload, failures a retry may fix included.
    async fn handle_payload(
        &self,
        payload: &Value,
        account: Option<&str>,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, Error> {
        // An invalid event is logged by lambda_runtime with the error it returns.
        let request = event::parse(payload, &self.config, account)?;
        let (trigger, preview) = (request.trigger, self.preview_only || request.preview);
        let mut inv = Invocation::new(self, deadline, preview);
        let mut outcome = match trigger {
            Trigger::Ignored { reason } => {
                info!(reason = %reason, "event ignored");
                Outcome::ignored(reason)
            }
            Trigger::Image {
                image_id,
                region,
                cause,
                intent,
            } => {
                let run = inv.run(&region)?;
                let image = inv.reconcile_by_id(run, &image_id, intent).await;
                Outcome::image(cause, region, image)
            }
            Trigger::Sweep { region } => inv.sweep(&region).await?,
        };
        outcome.quotas = inv.quotas.reports().await;
        outcome.preview = preview;
        outcome.steps = inv.steps();
        outcome.collect_actions();
        outcome.log_summary();
        Ok(outcome)
    }
}

impl<'a> Invocation<'a> {
    fn new(publisher: &'a Publisher, deadline: Option<SystemTime>, preview: bool) -> Self {
        let runs = publisher
            .config
            .regions()
            .map(|region| {
                let run = RegionRun {
                    region: region.clone(),
                    clients: &publisher.clients,
                    bpa: OnceCell::new(),
                    encrypts_by_default: OnceCell::new(),
                };
                (region.clone(), run)
            })
            .collect();
        // The deadline as a monotonic instant: the wall clock may step.
        let deadline = deadline.map(|d| {
            let left = d.duration_since(SystemTime::now()).unwrap_or_default();
            Instant::now() + left
        });
        Self {
            publisher,
            now: (publisher.clock)(),
            deadline,
            runs,
            quotas: Quotas::default(),
            copy_index: None,
            preview,
            steps: std::sync::Mutex::default(),
            family_turns: std::sync::Mutex::default(),
        }
    }

    /// Waits for the family's turn in the region; the turn lasts as long
    /// as the guard.
    pub(crate) async fn family_turn(
        &self,
        region: &RegionName,
        family: &str,
    ) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = {
            let mut turns = self.family_turns.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(
                turns
                    .entry((region.clone(), family.to_owned()))
                    .or_default(),
            )
        };
        turn.lock_owned().await
    }

    /// Makes a write, `call`, and reports it as `step`; in a preview only
    /// reports it (the call is never sent: a future does nothing until it
    /// is awaited). `Ok(None)`: previewed.
    pub async fn write<T>(
        &self,
        step: Step,
        call: impl Future<Output = Result<T, Ec2Error>>,
    ) -> Result<Option<T>, Ec2Error> {
        let done = if self.preview {
            None
        } else {
            Some(call.await?)
        };
        info!(step = %step, region = %step.region(), preview = self.preview, "step");
        self.steps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(step);
        Ok(done)
    }

    /// The writes of this invocation, in a stable order (regions and AMIs
    /// are worked concurrently).
    fn steps(&self) -> Vec<Step> {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        steps.sort();
        steps
    }

    pub fn config(&self) -> &'a Config {
        &self.publisher.config
    }

    /// The run of a region the function acts in (its own and the targets).
    pub fn run(&self, region: &RegionName) -> Result<&RegionRun<'a>, Error> {
        self.runs.get(region).ok_or_else(|| Error::UnknownRegion {
            region: region.clone(),
            home: self.config().home_region.clone(),
        })
    }

    /// Whether `calls` more calls, each at the call limit, still end before
    /// the invocation's deadline.
    pub fn has_time_for(&self, calls: u32) -> bool {
        let per_call = self.publisher.clients.limits().operation_timeout;
        self.deadline
            .is_none_or(|d| Instant::now() + per_call * calls <= d)
    }

    /// Takes a public slot in `region` (quota.rs); a failed count is an error
    /// like any call's.
    pub async fn take_public_slot(
        &self,
        region: &RegionName,
    ) -> Result<Result<(), String>, Ec2Error> {
        let taken = self
            .quotas
            .take(&self.publisher.clients, &self.publisher.quota_cache, region)
            .await?;
        Ok(taken.map_err(|no| no.reason()))
    }

    /// The AMI as the account sees it now, in any region (a copy's source
    /// may live in a region the function does not act in).
    pub async fn read(
        &self,
        region: &RegionName,
        id: &ImageId,
    ) -> Result<Option<Observed>, Ec2Error> {
        let client = self
            .publisher
            .clients
            .ec2(region)
            .ok_or_else(|| no_client(region))?;
        let image = ec2::describe_image(&client, region, id).await?;
        Ok(image.map(|image| Observed {
            image,
            at: Instant::now(),
        }))
    }

    async fn reconcile_by_id(
        &self,
        run: &RegionRun<'_>,
        id: &ImageId,
        intent: Intent,
    ) -> ImageOutcome {
        if !self.has_time_for(CALLS_TO_START_AN_AMI) {
            return deferred(id, &run.region);
        }
        match self.read(&run.region, id).await {
            Ok(Some(observed)) => self.reconcile(run, observed, intent, None).await,
            Ok(None) => not_found(id, &run.region),
            Err(e) => failed(id, &run.region, e),
        }
    }

    /// Every AMI of the account in the region that carries the publish tag
    /// key or the function's status tag and is not settled yet (with, for a
    /// source, its copies in every target region), reconciled with the facts
    /// the listings gave (read again before anything is made public on a
    /// listing older than [`FRESH_FACTS`]). The copies are listed up front,
    /// once per target region. An AMI is started only while there is time
    /// to finish it before the deadline; the rest is left to the next sweep.
    async fn sweep(&mut self, region: &RegionName) -> Result<Outcome, Error> {
        let config = self.config();
        let run = self.run(region)?;
        let sweep_error = |error| Error::Sweep {
            region: region.clone(),
            error: Box::new(error),
        };
        let client = run.client().map_err(sweep_error)?;
        // The copies first: whether a source is settled depends on them.
        let index = copies::index(self, region).await;
        let unlisted_regions: Vec<RegionFailure> = index
            .unlisted
            .values()
            .map(|e| RegionFailure {
                region: e.region.clone(),
                error: if e.transient {
                    e.to_string()
                } else {
                    e.advice()
                },
                transient: e.transient,
            })
            .collect();
        let status_key = config.status_tag(StatusTag::Status);
        let mut listed = 0;
        let todo = ec2::list_owned_images_with_tag_keys(
            &client,
            region,
            &[&config.publish_tag_key, &status_key],
            |image| {
                listed += 1;
                !(plan::is_settled(image, config) && index.settles(image, config))
            },
        )
        .await
        .map_err(sweep_error)?;
        let listed_at = Instant::now();
        self.copy_index = Some(index);
        let inv = &*self;
        let run = inv.run(region)?;
        info!(region = %region, listed, to_reconcile = todo.len(), "sweep");
        let to_reconcile = todo.len();
        let mut outcomes: Vec<ImageOutcome> = stream::iter(todo)
            .take_while(|_| future::ready(inv.has_time_for(CALLS_TO_START_AN_AMI)))
            .map(|image| {
                let observed = Observed {
                    image,
                    at: listed_at,
                };
                inv.reconcile(run, observed, Intent::Reconcile, None)
            })
            .buffer_unordered(config.copy_concurrency)
            .collect()
            .await;
        outcomes.sort_by(|a, b| a.image_id.cmp(&b.image_id));
        let not_started = to_reconcile - outcomes.len();
        let mut outcome = Outcome::sweep(region.clone(), outcomes, not_started);
        outcome.unlisted_regions = unlisted_regions;
        if outcome.deferred > 0 {
            warn!(region = %region, deferred = outcome.deferred, "sweep out of time: the rest is left to the next sweep");
        }
        Ok(outcome)
    }

    /// Brings one AMI to its desired state (a source's copies with it).
    /// `source` is a copy's source when the caller has just read it.
    pub async fn reconcile(
        &self,
        run: &RegionRun<'_>,
        mut observed: Observed,
        intent: Intent,
        mut source: Option<&Observed>,
    ) -> ImageOutcome {
        // A second attempt only when the facts went stale before an
        // irreversible step; then everything is read again.
        for _ in 0..2 {
            match self.attempt(run, &observed, intent, source).await {
                Attempt::Done(outcome) => return outcome,
                Attempt::Stale => {
                    source = None;
                    match self.read(&run.region, &observed.image.id).await {
                        Ok(Some(fresh)) => observed = fresh,
                        Ok(None) => return not_found(&observed.image.id, &run.region),
                        Err(e) => return failed(&observed.image.id, &run.region, e),
                    }
                }
            }
        }
        let id = &observed.image.id;
        let mut outcome = ImageOutcome::new(id.clone(), run.region.clone(), Action::Failed);
        outcome.errors.push(format!(
            "{id} in {}: its facts could not be read within {:?} of making it public; left for the next run",
            run.region, self.publisher.fresh_facts
        ));
        outcome
    }

    async fn attempt(
        &self,
        run: &RegionRun<'_>,
        observed: &Observed,
        intent: Intent,
        given_source: Option<&Observed>,
    ) -> Attempt {
        let config = self.config();
        let image = &observed.image;
        let mut read_source = None;
        let source = match (plan::source_needed(image, config, intent), given_source) {
            (None, _) => SourceFacts::NotNeeded,
            (Some(_), Some(given)) => SourceFacts::Found(&given.image),
            (Some(source), None) => match self.read(&source.region, &source.image_id).await {
                Ok(found) => {
                    read_source = found;
                    read_source
                        .as_ref()
                        .map_or(SourceFacts::Missing, |s| SourceFacts::Found(&s.image))
                }
                Err(e) => {
                    let why = format!("could not read its source {source}");
                    return Attempt::Done(self.fail(run, image, e, &why).await);
                }
            },
        };
        let source_at = given_source.or(read_source.as_ref()).map(|s| s.at);
        let bpa = if plan::needs_bpa(image, config) {
            match run.bpa().await {
                Ok(bpa) => Some(bpa),
                Err(e) => {
                    let why = "could not read the region's image block public access state";
                    return Attempt::Done(self.fail(run, image, e, why).await);
                }
            }
        } else {
            None
        };
        let facts = Facts { image, bpa, source };
        let decision = plan::decide(facts, intent, config, self.now);
        let outcome = |action| ImageOutcome::new(image.id.clone(), image.region.clone(), action);
        let done = match decision {
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
                    image,
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
                self.finish(run, image, rejected, Status::Rejected, text)
                    .await
            }
            Decision::LeavePublic => {
                let why = match plan::source_of(image, config) {
                    Some(source) => format!("its source {source} is no longer tagged"),
                    None => "the publish tag was removed".to_owned(),
                };
                let reason = format!("{why}; left public (UNPUBLISH_ON_UNTAG is false)");
                info!(image_id = %image.id, region = %image.region, action = "left-public", "decision");
                let mut left = outcome(Action::AlreadyPublic);
                left.reasons.push(reason.clone());
                self.finish(run, image, left, Status::Public, reason).await
            }
            Decision::Publish(steps) => {
                let oldest = source_at.map_or(observed.at, |s| s.min(observed.at));
                match self.publish(run, image, oldest, steps).await {
                    Some(outcome) => outcome,
                    None => return Attempt::Stale,
                }
            }
            Decision::Withdraw(withdrawal) => self.withdraw(run, image, withdrawal).await,
        };
        Attempt::Done(done)
    }

    /// Carries out a publish; `None` when the facts are too old to make the
    /// AMI public on.
    async fn publish(
        &self,
        run: &RegionRun<'_>,
        image: &Image,
        facts_at: Instant,
        steps: Steps,
    ) -> Option<ImageOutcome> {
        info!(
            image_id = %image.id,
            region = %image.region,
            make_public = steps.make_public,
            deprecate_at = steps.deprecate_at.map(format_time),
            copy_to = ?steps.copy_to.iter().map(RegionName::as_str).collect::<Vec<_>>(),
            new_copies = steps.new_copies,
            "decision: publish"
        );
        let mut outcome = ImageOutcome::new(
            image.id.clone(),
            image.region.clone(),
            Action::AlreadyPublic,
        );
        let writes = steps.deprecate_at.is_some() || steps.make_public;
        if writes && !self.has_time_for(CALLS_FOR_A_WRITE + u32::from(steps.make_public) * 3) {
            return Some(deferred(&image.id, &image.region));
        }
        let client = match run.client() {
            Ok(client) => client,
            Err(e) => return Some(self.fail(run, image, e, "no client").await),
        };
        let mut after = image.clone();
        if let Some(at) = steps.deprecate_at {
            let step = Step::Deprecate {
                region: run.region.clone(),
                image_id: image.id.clone(),
                at,
            };
            let call = ec2::enable_deprecation(&client, &run.region, &image.id, at);
            match self.write(step, call).await {
                Ok(_) => after.deprecation_time = Some(at),
                Err(e) => record(&mut outcome, e),
            }
        }
        let mut family = None;
        // The deprecation date goes on first: once public, an AMI's
        // deprecation date can only move earlier.
        let fresh = self.publisher.fresh_facts;
        if steps.make_public && outcome.is_clean() {
            // Rotation's view of the family (when it has one and rotation
            // is on), read once, in the family's turn: an AMI its family's
            // newer releases would retire at once is not made public; the
            // listing then says what to retire to make room, and what the
            // AMI replaces.
            let (made, room_made) = match rotation::Family::read(self, run, image).await {
                // Not made public without knowing what rotation would do.
                Err(e) => (Err(Refusal::Call(e)), None),
                Ok(read) => {
                    family = read;
                    // Read again (the family's turn may have been waited
                    // for) unless the facts leave time for the quota, a
                    // retirement and the wait for EC2's bucket before the
                    // publish itself, which checks their age once more.
                    if facts_at.elapsed() + fresh / 6 > fresh {
                        info!(image_id = %image.id, region = %image.region, "facts too old to make it public on: reading them again");
                        return None;
                    }
                    if let Some(reason) = family
                        .as_ref()
                        .and_then(|f| f.supersedes(image, self.config()))
                    {
                        info!(image_id = %image.id, region = %image.region, action = "skipped", reason = %reason, "decision");
                        outcome.action = Action::Skipped;
                        outcome.reasons.push(reason.clone());
                        return Some(
                            self.finish(run, image, outcome, Status::Retired, reason)
                                .await,
                        );
                    }
                    self.make_public(run, &client, image, facts_at, family.as_ref())
                        .await
                }
            };
            outcome.retired.extend(room_made);
            match made {
                Ok(()) => {
                    info!(image_id = %image.id, region = %image.region, "made public");
                    outcome.action = Action::Published;
                    after.public = true;
                }
                Err(Refusal::Quota(reason)) => {
                    outcome.action = Action::Rejected;
                    outcome.reasons.push(reason);
                }
                Err(Refusal::Stale) => {
                    info!(image_id = %image.id, region = %image.region, action = "deferred", "facts went stale before its turn to be made public: left for the next run");
                    outcome.action = Action::Deferred;
                    outcome.reasons.push(format!(
                        "left for the next run: its facts were older than {fresh:?} when its turn came to be made public"
                    ));
                    return Some(outcome);
                }
                Err(Refusal::Call(e)) => record(&mut outcome, e),
            }
        }
        if outcome.is_clean() && plan::needs_protection(&after, self.config()) {
            let step = Step::Protect {
                region: run.region.clone(),
                image_id: image.id.clone(),
            };
            let call = ec2::set_deregistration_protection(&client, &run.region, &image.id, true);
            match self.write(step, call).await {
                Ok(_) => {
                    after.deregistration_protected = true;
                    let marker = (
                        self.config().status_tag(StatusTag::Protected),
                        "true".into(),
                    );
                    outcome.tags.push(marker);
                }
                Err(e) => record(&mut outcome, e),
            }
        }
        // A public AMI left in `error` may have a rotation to finish (a
        // retirement failed): its family is read now.
        let rotation_unfinished =
            image.public && plan::status_of(image, self.config()) == Some(Status::Error);
        if rotation_unfinished && family.is_none() && outcome.is_clean() {
            match rotation::Family::read(self, run, &after).await {
                Ok(read) => family = read,
                Err(e) => record(&mut outcome, e),
            }
            if family
                .as_ref()
                .and_then(|f| f.member(&image.id))
                .is_some_and(|me| !me.public)
            {
                // A newer release of its family retired it while this run
                // waited for the family's turn: that is its state now.
                outcome.action = Action::Skipped;
                outcome
                    .reasons
                    .push("retired meanwhile by a newer release of its family".into());
                return Some(outcome);
            }
        }
        if (outcome.action == Action::Published || rotation_unfinished)
            && let Some(family) = &family
        {
            let already: Vec<ImageId> =
                outcome.retired.iter().map(|r| r.image_id.clone()).collect();
            let retired = rotation::rotate(self, run, &after, family, &already).await;
            outcome.retired.extend(retired);
        }
        // The family's turn lasts until the status tags are written (the
        // next release of the family must see this one as the function's).
        outcome.deprecation_time = after.deprecation_time.map(format_time);
        let ends_public = after.public;
        // Copies only of a source whose own steps succeeded: a copy must not
        // become public in its region while its source stays private.
        if outcome.is_clean() && !steps.copy_to.is_empty() {
            let source = Observed {
                image: after,
                at: facts_at,
            };
            outcome.copies = copies::sync(
                self,
                &source,
                &steps.copy_to,
                steps.new_copies,
                Intent::Reconcile,
            )
            .await;
        }

        let unfinished = |r: &ImageOutcome| matches!(r.action, Action::Failed | Action::Deferred);
        let retirement_failed = outcome.retired.iter().any(unfinished);
        let (status, reason) = if !outcome.errors.is_empty() {
            outcome.action = Action::Failed;
            (Status::Error, outcome.errors.join("; "))
        } else if retirement_failed {
            // Public, its family not rotated yet: `error`, so that the next
            // run (a retry, the sweep) finishes the rotation.
            let failed: Vec<String> = outcome
                .retired
                .iter()
                .filter(|r| unfinished(r))
                .map(|r| format!("retiring {} is not finished", r.image_id))
                .collect();
            (Status::Error, failed.join("; "))
        } else if outcome.refused && ends_public {
            // Public, with a step a retry can't fix left undone: `error`, not
            // `rejected`, so that it stays the function's to take down and
            // each sweep tries the step again.
            (Status::Error, outcome.reasons.join("; "))
        } else if outcome.action == Action::Rejected {
            (Status::Rejected, outcome.reasons.join("; "))
        } else if let Some(source) = plan::source_of(image, self.config()) {
            (
                Status::Public,
                format!("public in {} (copy of {source})", image.region),
            )
        } else {
            copies::source_status(&image.region, &outcome.copies)
        };
        Some(self.finish(run, image, outcome, status, reason).await)
    }

    /// Takes a public slot in the region's quota (retiring the family's
    /// oldest first when there is no room and rotation allows it), then
    /// adds the group `all`; the slot is given back if EC2 refuses. Returns
    /// the AMI retired to make room, if any.
    async fn make_public(
        &self,
        run: &RegionRun<'_>,
        client: &ec2::Client,
        image: &Image,
        facts_at: Instant,
        family: Option<&rotation::Family>,
    ) -> (Result<(), Refusal>, Option<ImageOutcome>) {
        let mut room_made = None;
        let mut slot = self.take_public_slot(&run.region).await;
        if matches!(slot, Ok(Err(_)))
            && let Some(family) = family
        {
            room_made = rotation::make_room(self, run, image, family).await;
            if room_made
                .as_ref()
                .is_some_and(|r| r.action == Action::Retired)
            {
                slot = self.take_public_slot(&run.region).await;
            }
        }
        (
            self.add_all(run, client, image, slot, facts_at).await,
            room_made,
        )
    }

    async fn add_all(
        &self,
        run: &RegionRun<'_>,
        client: &ec2::Client,
        image: &Image,
        slot: Result<Result<(), String>, Ec2Error>,
        facts_at: Instant,
    ) -> Result<(), Refusal> {
        slot.map_err(Refusal::Call)?.map_err(Refusal::Quota)?;
        let step = Step::MakePublic {
            region: run.region.clone(),
            image_id: image.id.clone(),
        };
        // The facts' age is checked again once the call has its turn in
        // EC2's bucket: no AMI is made public on facts older than that.
        let not_after = facts_at + self.publisher.fresh_facts;
        let call = ec2::make_public(client, &run.region, &image.id, not_after);
        let made = self.write(step, call).await;
        if made.is_err() {
            self.quotas.give_back(&run.region).await;
        }
        match made {
            Ok(_) => Ok(()),
            Err(e) if e.code == ec2::FACTS_TOO_OLD => Err(Refusal::Stale),
            Err(e) => Err(Refusal::Call(e)),
        }
    }

    /// Carries out a take-down: the AMI, then the copies that follow it.
    async fn withdraw(
        &self,
        run: &RegionRun<'_>,
        image: &Image,
        withdrawal: Withdrawal,
    ) -> ImageOutcome {
        info!(
            image_id = %image.id,
            region = %image.region,
            why = ?withdrawal.why,
            make_private = withdrawal.make_private,
            copies_in = ?withdrawal.copies_in.iter().map(RegionName::as_str).collect::<Vec<_>>(),
            "decision: withdraw"
        );
        let mut outcome =
            ImageOutcome::new(image.id.clone(), image.region.clone(), Action::Withdrawn);
        if !self.has_time_for(CALLS_FOR_A_WRITE + u32::from(!withdrawal.copies_in.is_empty()) * 2) {
            return deferred(&image.id, &image.region);
        }
        let mut after = image.clone();
        if withdrawal.make_private {
            let step = Step::MakePrivate {
                region: run.region.clone(),
                image_id: image.id.clone(),
            };
            let result = match run.client() {
                Ok(client) => self
                    .write(step, ec2::make_private(&client, &run.region, &image.id))
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => {
                    info!(image_id = %image.id, region = %image.region, "made private");
                    after.public = false;
                }
                Err(e) => record(&mut outcome, e),
            }
        }
        // The protection the function set comes off once the AMI is
        // private, also when an earlier run made it private and could not.
        if outcome.is_clean()
            && !after.public
            && let Ok(client) = run.client()
        {
            rotation::unprotect(self, run, &client, image, &mut outcome).await;
        }
        if !withdrawal.copies_in.is_empty() {
            // The copies decide with the source as it is now; an unpublish
            // request reaches them whatever their tags.
            let intent = match withdrawal.why {
                WithdrawReason::Requested => Intent::FollowUnpublish,
                _ => Intent::Reconcile,
            };
            let source = Observed {
                image: after,
                at: Instant::now(),
            };
            outcome.copies =
                copies::sync(self, &source, &withdrawal.copies_in, false, intent).await;
        }
        let changed = withdrawal.make_private
            || outcome
                .copies
                .iter()
                .any(|c| c.action == Some(Action::Withdrawn))
            || !outcome.tags.is_empty()
            || plan::status_of(image, self.config()) != Some(withdrawal.status());
        if !changed {
            outcome.action = Action::KeptPrivate;
        }
        let (mut status, reason) = withdrawn_status(self.config(), &withdrawal, &outcome);
        // A copy left public (a call failed, for good or not) keeps the
        // take-down unfinished: status `error`, so the next sweep tries it
        // again rather than taking the source as done.
        let incomplete = !outcome.is_clean()
            || outcome.copies.iter().any(|c| {
                c.error.is_some()
                    || matches!(c.action, Some(Action::Deferred | Action::Failed))
                    // Its region refused even the lookup: the copy may be public.
                    || (c.image_id.is_none() && c.action == Some(Action::Rejected))
            });
        if incomplete {
            outcome.action = Action::Failed;
            // A hold stays a hold; any other take-down not finished says
            // `error`, so that the next sweep takes it up again.
            if status != Status::Held {
                status = Status::Error;
            }
        }
        self.finish(run, image, outcome, status, reason).await
    }

    /// A read failed before anything could be decided.
    async fn fail(
        &self,
        run: &RegionRun<'_>,
        image: &Image,
        error: Ec2Error,
        what: &str,
    ) -> ImageOutcome {
        let mut outcome = ImageOutcome::new(image.id.clone(), image.region.clone(), Action::Failed);
        let reason = format!(
            "{what}: {}",
            if error.transient {
                error.to_string()
            } else {
                error.advice()
            }
        );
        // A refusal no retry fixes is `rejected`, as any other; but a public
        // AMI stays in `error`, the function's to take down.
        let status = if error.transient || image.public {
            Status::Error
        } else {
            Status::Rejected
        };
        record(&mut outcome, error);
        self.finish(run, image, outcome, status, reason).await
    }

    /// Writes the status tags (only when they change, and only on the
    /// account's own AMIs: IAM allows no other) and completes the outcome.
    pub(crate) async fn finish(
        &self,
        run: &RegionRun<'_>,
        image: &Image,
        mut outcome: ImageOutcome,
        status: Status,
        reason: String,
    ) -> ImageOutcome {
        let config = self.config();
        let tags: Vec<(String, String)> = [
            (
                config.status_tag(StatusTag::Status),
                status.as_str().to_owned(),
            ),
            (config.status_tag(StatusTag::Reason), tag_value(&reason)),
        ]
        .into_iter()
        .chain(outcome.tags.iter().cloned())
        .collect();
        let unchanged = tags.iter().all(|(k, v)| image.tags.get(k) == Some(v));
        if image.owned && !unchanged {
            let step = Step::Status {
                region: run.region.clone(),
                image_id: image.id.clone(),
                status,
            };
            let result = match run.client() {
                Ok(client) => self
                    .write(
                        step,
                        ec2::create_tags(&client, &run.region, &image.id, &tags),
                    )
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                outcome.action = Action::Failed;
                record(&mut outcome, e);
            }
        }
        if image.owned {
            outcome.status = Some(status);
        }
        outcome
    }
}

/// Why an AMI was not made public.
enum Refusal {
    /// No headroom in the region's public AMI quota (the reason says so).
    Quota(String),
    /// Its facts grew too old while it waited for its turn.
    Stale,
    Call(Ec2Error),
}

/// Records a failed call: one a retry may fix is an error (the invocation
/// fails, so Lambda retries); one it can't is a reason the owner is told,
/// with what to do about it.
pub(crate) fn record(outcome: &mut ImageOutcome, error: Ec2Error) {
    if error.transient {
        warn!(image_id = %outcome.image_id, region = %outcome.region, error = %error, "call failed; a retry may succeed");
        outcome.errors.push(error.to_string());
    } else {
        warn!(image_id = %outcome.image_id, region = %outcome.region, error = %error, "call refused; a retry won't help");
        outcome.reasons.push(error.advice());
        if outcome.action != Action::Withdrawn {
            outcome.action = Action::Rejected;
        }
        outcome.refused = true;
    }
}

/// The status and reason of an AMI after a take-down. The reason says how
/// things stand, not what this run did, so that running again writes
/// nothing.
fn withdrawn_status(
    config: &Config,
    withdrawal: &Withdrawal,
    outcome: &ImageOutcome,
) -> (Status, String) {
    let mut reason = match &withdrawal.why {
        WithdrawReason::Untagged => {
            format!(
                "the tag {} was removed, so it is private",
                config.publish_tag_key
            )
        }
        WithdrawReason::Requested => "unpublished on request, so it is private".to_owned(),
        WithdrawReason::Source { source, problem } => {
            format!("its source {source} {problem}, so it is private")
        }
    };
    let private_copies: Vec<&str> = outcome
        .copies
        .iter()
        .filter(|c| c.image_id.is_some() && !c.public && c.error.is_none())
        .map(|c| c.region.as_str())
        .collect();
    if !private_copies.is_empty() {
        reason.push_str(&format!(
            ", with its copies in {}",
            private_copies.join(", ")
        ));
    }
    let failed: Vec<String> = outcome
        .errors
        .iter()
        .chain(outcome.reasons.iter())
        .cloned()
        .chain(copies::failures(&outcome.copies))
        .collect();
    if !failed.is_empty() {
        reason.push_str(&format!("; {}", failed.join("; ")));
    }
    if withdrawal.status() == Status::Held {
        reason.push_str(&format!(
            "; delete the tag {} to let it be published again",
            config.status_tag(StatusTag::Status)
        ));
    }
    (withdrawal.status(), reason)
}

fn not_found(id: &ImageId, region: &RegionName) -> ImageOutcome {
    info!(image_id = %id, region = %region, action = "skipped", "AMI not found");
    let mut outcome = ImageOutcome::new(id.clone(), region.clone(), Action::Skipped);
    outcome
        .reasons
        .push("not found: deregistered, or not visible to this account".into());
    outcome
}

fn failed(id: &ImageId, region: &RegionName, error: Ec2Error) -> ImageOutcome {
    let mut outcome = ImageOutcome::new(id.clone(), region.clone(), Action::Failed);
    record(&mut outcome, error);
    outcome.action = Action::Failed;
    outcome
}

/// Left for the next run: not enough time to finish before the deadline.
pub(crate) fn deferred(id: &ImageId, region: &RegionName) -> ImageOutcome {
    info!(image_id = %id, region = %region, action = "deferred", "not enough time left before the deadline: left for the next run");
    let mut outcome = ImageOutcome::new(id.clone(), region.clone(), Action::Deferred);
    outcome
        .reasons
        .push("left for the next run: the invocation's deadline is near".into());
    outcome
}
