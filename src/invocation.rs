//! The run's context: what one invocation knows and may do. Its deadline
//! (`has_time_for`), a run per region with the region's block public access
//! state and EBS encryption by default read at most once, the public AMI
//! quota's books (`take_public_slot`), the steps it records (`write`, which
//! a preview only reports), families' turns, reads of an AMI (`read`) and
//! the status tags that end each AMI's run (`finish`). Every capability
//! (publish, copies, rotation, take-down, sweep) works over it; it knows
//! none of them. How an AMI is decided and carried out lives above it, in
//! [`reconcile`](crate::reconcile).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::future::LocalBoxFuture;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::clients::Clients;
use crate::config::{Config, StatusTag};
use crate::copy_index::CopyIndex;
use crate::ec2::{self, Ec2Error};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::model::{BlockPublicAccess, Image, ImageId, Intent, RegionName, Status};
use crate::quota::{QuotaCache, Quotas};
use crate::report::{Action, ImageOutcome, tag_value};
use crate::steps::Step;

/// No AMI is made public on facts older than this: a sweep's listing, or a
/// copy's source read earlier in a long run, is read again first. (IAM's
/// tag condition is the second line of defence, not the first.)
pub const FRESH_FACTS: Duration = Duration::from_secs(60);

/// Calls, at the call limit each, an AMI may need before its first write
/// (its source, BPA, the quota's three reads) plus that write and the status
/// tags: a sweep starts an AMI only with this much time left.
pub(crate) const CALLS_TO_START_AN_AMI: u32 = 6;
/// A write and the status tags after it.
pub(crate) const CALLS_FOR_A_WRITE: u32 = 2;

/// What every invocation of the process shares, built once: configuration,
/// clients, the quota cache, and how old facts may be when an AMI is made
/// public on them.
pub(crate) struct FunctionState {
    pub config: Config,
    pub clients: Clients,
    pub quota_cache: QuotaCache,
    pub fresh_facts: Duration,
}

/// How the run brings one AMI to its desired state
/// ([`reconcile::reconcile`](crate::reconcile::reconcile), handed to the
/// context when it is made). A source's copies are AMIs too, reconciled the
/// same way with their source in hand: through this, `copies` does so
/// without importing the module that calls it.
pub(crate) type Reconcile = for<'r> fn(
    &'r Invocation<'r>,
    &'r RegionRun<'r>,
    Observed,
    Intent,
    Option<&'r Observed>,
) -> LocalBoxFuture<'r, ImageOutcome>;

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

    pub async fn bpa(&self) -> Result<&BlockPublicAccess, Ec2Error> {
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
        format!("no client for {region}"),
    )
}

/// One invocation: the function, the time it started, its deadline, a run
/// per region it may act in (no client is built until a region is used),
/// the public AMI quota's books, and in a sweep the copies found up front.
pub(crate) struct Invocation<'a> {
    pub function: &'a FunctionState,
    /// When the invocation started, by the function's clock.
    pub now: OffsetDateTime,
    /// The same moment on the monotonic clock (see [`Invocation::clock`]).
    started: Instant,
    deadline: Option<Instant>,
    runs: HashMap<RegionName, RegionRun<'a>>,
    pub quotas: Quotas,
    pub copy_index: Option<CopyIndex>,
    /// How an AMI is reconciled, for the capabilities that reconcile AMIs
    /// other than their own (a source's copies): see [`Reconcile`].
    reconcile: Reconcile,
    /// A preview: every write is reported, none is made.
    preview: bool,
    /// The writes made (or, in a preview, that would be), in order.
    steps: std::sync::Mutex<Vec<Step>>,
    /// One turn at a time per family and region: a sweep works AMIs at
    /// once, and two of one family must not both read it before either is
    /// public (each would keep the other; both could retire the same one).
    family_turns: std::sync::Mutex<HashMap<(RegionName, String), FamilyTurn>>,
    /// Content verdicts read in this invocation and not recorded in the
    /// ledger yet: each goes in with the AMI's intent to be made public
    /// (one write, not two), or on its own when the AMI is rejected
    /// (src/inspection.rs).
    pub verdicts: std::sync::Mutex<HashMap<ImageId, crate::ledger::ContentRecord>>,
}

/// A family's turn in one region (see `Invocation::family_turn`).
type FamilyTurn = Arc<tokio::sync::Mutex<()>>;

impl<'a> Invocation<'a> {
    pub fn new(
        function: &'a FunctionState,
        now: OffsetDateTime,
        deadline: Option<SystemTime>,
        preview: bool,
        reconcile: Reconcile,
    ) -> Self {
        let runs = function
            .config
            .regions()
            .map(|region| {
                let run = RegionRun {
                    region: region.clone(),
                    clients: &function.clients,
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
            function,
            now,
            started: Instant::now(),
            verdicts: Default::default(),
            deadline,
            runs,
            quotas: Quotas::default(),
            copy_index: None,
            reconcile,
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
    pub fn steps(&self) -> Vec<Step> {
        let mut steps = self.steps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        steps.sort();
        steps
    }

    /// The function's clock now: its time at the start plus the time since.
    /// For a time EC2 compares with its own "now" (a deprecation "now" must
    /// not be in the past by the time the call is made).
    pub fn clock(&self) -> OffsetDateTime {
        self.now + self.started.elapsed()
    }

    pub fn config(&self) -> &'a Config {
        &self.function.config
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
        let per_call = self.function.clients.limits().operation_timeout;
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
            .take(&self.function.clients, &self.function.quota_cache, region)
            .await?;
        Ok(taken.map_err(|no| no.reason()))
    }

    /// Whether this invocation only previews: every write reported, none made.
    pub fn preview(&self) -> bool {
        self.preview
    }

    /// `calls` when the ledger is written to (one is configured and this is
    /// no preview), for the time a step needs; 0 otherwise.
    pub fn ledger_calls(&self, calls: u32) -> u32 {
        if self.config().ledger_table.is_some() && !self.preview {
            calls
        } else {
            0
        }
    }

    /// The ledger, when one is configured (`LEDGER_TABLE`).
    pub fn ledger(&self) -> Result<Option<Ledger>, Ec2Error> {
        let Some(table) = &self.config().ledger_table else {
            return Ok(None);
        };
        let region = &self.config().home_region;
        let client = self
            .function
            .clients
            .dynamodb(region)
            .ok_or_else(|| no_client(region))?;
        Ok(Some(Ledger {
            client,
            table: table.clone(),
            region: region.clone(),
        }))
    }

    /// Records a change that makes or keeps the AMI private (a take-down,
    /// a retirement) in the ledger, whatever was recorded before: such a
    /// change wins over a run making it public meanwhile. Nothing in a
    /// preview, or without a ledger.
    pub async fn record_private(
        &self,
        region: &RegionName,
        id: &ImageId,
        state: crate::ledger::State,
        why: &str,
    ) -> Result<(), Ec2Error> {
        if self.preview() {
            return Ok(());
        }
        let Some(ledger) = self.ledger()? else {
            return Ok(());
        };
        crate::ledger::record(&ledger, region, id, state, why, self.clock(), None)
            .await
            .map(|_| ())
    }

    /// The AMI as the account sees it now, in any region (a copy's source
    /// may live in a region the function does not act in).
    pub async fn read(
        &self,
        region: &RegionName,
        id: &ImageId,
    ) -> Result<Option<Observed>, Ec2Error> {
        let client = self
            .function
            .clients
            .ec2(region)
            .ok_or_else(|| no_client(region))?;
        let image = ec2::describe_image(&client, region, id).await?;
        Ok(image.map(|image| Observed {
            image,
            at: Instant::now(),
        }))
    }

    /// Reconciles `observed` as the run reconciles any AMI (a source's
    /// copies are reconciled this way, with their source in hand).
    pub async fn reconcile(
        &self,
        run: &RegionRun<'_>,
        observed: Observed,
        intent: Intent,
        source: Option<&Observed>,
    ) -> ImageOutcome {
        (self.reconcile)(self, run, observed, intent, source).await
    }

    /// A read failed before anything could be decided.
    pub async fn fail(
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
    pub async fn finish(
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

pub(crate) fn not_found(id: &ImageId, region: &RegionName) -> ImageOutcome {
    info!(image_id = %id, region = %region, action = "skipped", "AMI not found");
    let mut outcome = ImageOutcome::new(id.clone(), region.clone(), Action::Skipped);
    outcome
        .reasons
        .push("not found: deregistered, or not visible to this account".into());
    outcome
}

pub(crate) fn failed(id: &ImageId, region: &RegionName, error: Ec2Error) -> ImageOutcome {
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
