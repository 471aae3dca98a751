//! One AMI brought to its desired state: the facts the decision needs
//! (the AMI, its source if it is a copy, the region's block public access
//! state) read, [`plan::decide`](crate::plan::decide) asked, and its
//! decision handed to the capability that carries it out
//! ([`publish`](crate::publish), [`takedown`](crate::takedown)) or ended
//! with the status it calls for. Facts that went stale before an
//! irreversible step are read again, once.

use futures::future::LocalBoxFuture;
use tracing::info;

use crate::config::{Config, StatusTag};
use crate::ec2::Ec2Error;
use crate::event::Cause;
use crate::invocation::{
    CALLS_TO_START_AN_AMI, Invocation, Observed, RegionRun, deferred, failed, not_found,
};
use crate::ledger;
use crate::model::{Image, ImageId, Intent, Status};
use crate::plan::{self, Decision, Facts, SourceFacts};
use crate::publish;
use crate::report::{Action, ImageOutcome};
use crate::takedown;

/// [`reconcile`], boxed: the context's [`Reconcile`](crate::invocation::Reconcile)
/// (a source's copies are reconciled through it, inside the source's own
/// reconcile, so the future must have a known size).
pub(crate) fn boxed<'r>(
    inv: &'r Invocation<'r>,
    run: &'r RegionRun<'r>,
    observed: Observed,
    intent: Intent,
    source: Option<&'r Observed>,
) -> LocalBoxFuture<'r, ImageOutcome> {
    Box::pin(reconcile(inv, run, observed, intent, source))
}

/// Reads the AMI, then reconciles it (an event's or a direct request's AMI).
pub(crate) async fn reconcile_by_id(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    id: &ImageId,
    cause: Cause,
    intent: Intent,
) -> ImageOutcome {
    if !inv.has_time_for(CALLS_TO_START_AN_AMI) {
        return deferred(id, &run.region);
    }
    let mut observed = match inv.read(&run.region, id).await {
        Ok(Some(observed)) => observed,
        Ok(None) => return not_found(id, &run.region),
        Err(e) => return failed(id, &run.region, e),
    };
    // A run may be making it public right now, its status not written yet:
    // the ledger knows (its intent is recorded before `all`). Asked when it
    // matters and the tags can't tell: an unpublish request, or its owner
    // removing the publish tag from an AMI without the function's status.
    let untagged_now =
        cause == Cause::TagChanged && !plan::is_tagged(&observed.image, inv.config());
    let asks_ledger = intent == Intent::Unpublish || untagged_now;
    if asks_ledger
        && !has_status(&observed.image, inv)
        && let Err(e) = remember(inv, run, &mut observed).await
    {
        return failed(id, &run.region, e);
    }
    reconcile(inv, run, observed, intent, None).await
}

fn has_status(image: &Image, inv: &Invocation<'_>) -> bool {
    plan::status_of(image, inv.config()).is_some()
}

/// Where the AMI carries no status of the function's, what the ledger
/// remembers stands in for it: `public` when the function made it (or is
/// making it) public. The status tag is written again by the run.
pub(crate) async fn remember(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    observed: &mut Observed,
) -> Result<(), Ec2Error> {
    let Some(ledger) = inv.ledger()? else {
        return Ok(());
    };
    let state = ledger::state_of(&ledger, &run.region, &observed.image.id).await?;
    if state.is_some_and(ledger::State::published) {
        stand_in(&mut observed.image, inv.config());
    }
    Ok(())
}

/// The ledger's memory as the AMI's status (see [`remember`]).
pub(crate) fn stand_in(image: &mut Image, config: &Config) {
    let status_key = config.status_tag(StatusTag::Status);
    if !image.tags.contains_key(&status_key) {
        info!(image_id = %image.id, region = %image.region, "no status tag: the ledger's memory stands in for it");
        image
            .tags
            .insert(status_key, Status::Public.as_str().to_owned());
    }
}

/// Brings one AMI to its desired state (a source's copies with it).
/// `source` is a copy's source when the caller has just read it.
pub(crate) async fn reconcile(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    mut observed: Observed,
    intent: Intent,
    mut source: Option<&Observed>,
) -> ImageOutcome {
    // A second attempt only when the facts went stale before an
    // irreversible step; then everything is read again.
    for _ in 0..2 {
        match attempt(inv, run, &observed, intent, source).await {
            Attempt::Done(outcome) => return outcome,
            Attempt::Stale => {
                source = None;
                match inv.read(&run.region, &observed.image.id).await {
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
        run.region, inv.function.fresh_facts
    ));
    outcome
}

async fn attempt(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    observed: &Observed,
    intent: Intent,
    given_source: Option<&Observed>,
) -> Attempt {
    let config = inv.config();
    let image = &observed.image;
    let mut read_source = None;
    let source = match (plan::source_needed(image, config, intent), given_source) {
        (None, _) => SourceFacts::NotNeeded,
        (Some(_), Some(given)) => SourceFacts::Found(&given.image),
        (Some(source), None) => match inv.read(&source.region, &source.image_id).await {
            Ok(found) => {
                read_source = found;
                read_source
                    .as_ref()
                    .map_or(SourceFacts::Missing, |s| SourceFacts::Found(&s.image))
            }
            Err(e) => {
                let why = format!("could not read its source {source}");
                return Attempt::Done(inv.fail(run, image, e, &why).await);
            }
        },
    };
    let source_at = given_source.or(read_source.as_ref()).map(|s| s.at);
    let bpa = if plan::needs_bpa(image, config) {
        match run.bpa().await {
            Ok(bpa) => Some(bpa),
            Err(e) => {
                let why = "could not read the region's image block public access state";
                return Attempt::Done(inv.fail(run, image, e, why).await);
            }
        }
    } else {
        None
    };
    let facts = Facts { image, bpa, source };
    let decision = plan::decide(facts, intent, config, inv.now);
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
            inv.finish(
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
            inv.finish(run, image, rejected, Status::Rejected, text)
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
            inv.finish(run, image, left, Status::Public, reason).await
        }
        Decision::Publish(steps) => {
            let oldest = source_at.map_or(observed.at, |s| s.min(observed.at));
            match publish::publish(inv, run, image, oldest, steps).await {
                Some(outcome) => outcome,
                None => return Attempt::Stale,
            }
        }
        Decision::Withdraw(withdrawal) => takedown::withdraw(inv, run, image, withdrawal).await,
    };
    Attempt::Done(done)
}

/// How an attempt to reconcile an AMI ended.
enum Attempt {
    Done(ImageOutcome),
    /// Its facts (or its source's) were older than [`FRESH_FACTS`](crate::invocation::FRESH_FACTS) right
    /// before an irreversible step: read them again and decide again.
    Stale,
}
