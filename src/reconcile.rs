//! One AMI brought to its desired state: the facts the decision needs
//! (the AMI, its source if it is a copy, the region's block public access
//! state) read, [`plan::decide`](crate::plan::decide) asked, and its
//! decision handed to the capability that carries it out
//! ([`publish`](crate::publish), [`takedown`](crate::takedown)) or ended
//! with the status it calls for. Facts that went stale before an
//! irreversible step are read again, once.

use futures::future::LocalBoxFuture;
use tracing::{info, warn};

use crate::config::{Config, StatusTag};
use crate::ec2::Ec2Error;
use crate::event::Cause;
use crate::inspection;
use crate::invocation::{
    CALLS_TO_START_AN_AMI, Invocation, Observed, RegionRun, deferred, failed, not_found,
};
use crate::ledger;
use crate::model::{BlockPublicAccess, Image, ImageId, Intent, Status};
use crate::plan::{self, Decision, Facts, SourceFacts};
use crate::publish::{self, Again, ContentReport};
use crate::report::{Action, ImageOutcome};
use crate::rotation;
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
    // A run may be making it public right now, its status not written yet;
    // or its status tag was deleted or forged by hand: the ledger knows
    // (the intent is recorded before `all`). Asked when it matters and the
    // tags can't tell: an unpublish request, or its owner removing the
    // publish tag from an AMI with no status yet (a run may be making it
    // public) or from a public AMI whose tags don't say the function made
    // it public. (Not on a replay of a settled take-down: it has its
    // status, and it is private.)
    let image = &observed.image;
    let config = inv.config();
    let untagged_now = cause == Cause::TagChanged && !plan::is_tagged(image, config);
    let tags_cant_tell = plan::status_of(image, config).is_none()
        || (image.public && !plan::made_public_by_function(image, config));
    let asks_ledger = intent == Intent::Unpublish || (untagged_now && tags_cant_tell);
    if asks_ledger && let Err(e) = remember(inv, run, &mut observed).await {
        return failed(id, &run.region, e);
    }
    reconcile_then_restore(inv, run, observed, intent).await
}

/// Reconciles an AMI (not a copy: its source's run does that), then, if
/// its owner pulled it, restores the release of its family rotation
/// retired for it ([`rotation::restore`]). The restore runs here, after
/// the take-down's future is done, not inside it: a whole publish nested
/// in a take-down would be too deep for a thread's stack in a debug build.
pub(crate) async fn reconcile_then_restore(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    observed: Observed,
    intent: Intent,
) -> ImageOutcome {
    let mut outcome = reconcile(inv, run, observed, intent, None).await;
    if let Some(pulled) = outcome.pulled.take() {
        let restored = Box::pin(rotation::restore(inv, run, &pulled)).await;
        outcome.restored.extend(restored);
    }
    outcome
}

/// What the ledger remembers overrules the AMI's status tag (see
/// [`stand_in`]). The status tag is written again by the run.
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

/// The ledger says the function made the AMI public (or is making it so):
/// where its status tag says otherwise (deleted, or forged by hand), the
/// ledger decides, as status `public`; the run writes the status again.
/// A `held` tag is kept: a hold is recorded in the ledger before it is
/// tagged, so one the ledger missed (its write failed) is still honoured,
/// and it only ever keeps an AMI private.
pub(crate) fn stand_in(image: &mut Image, config: &Config) {
    if !ledger_disagrees(image, config) {
        return;
    }
    info!(image_id = %image.id, region = %image.region, status = ?plan::status_of(image, config), "the status tag disagrees with the ledger: the ledger's memory stands in for it");
    image.tags.insert(
        config.status_tag(StatusTag::Status),
        Status::Public.as_str().to_owned(),
    );
}

/// Whether the AMI's status tag disagrees with a ledger that says the
/// function made it public.
pub(crate) fn ledger_disagrees(image: &Image, config: &Config) -> bool {
    !matches!(
        plan::status_of(image, config),
        Some(Status::Public | Status::Copying | Status::Error | Status::Held)
    )
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
    let mut source_changed = false;
    for _ in 0..2 {
        match attempt(inv, run, &observed, intent, source).await {
            Ok(mut outcome) => {
                outcome.source_changed = source_changed;
                return outcome;
            }
            Err(again) => {
                // The source this run was handed no longer vouches for
                // the copy: the source's own run must not write its
                // status from what it read before (see `publish`).
                source_changed |= again == Again::SourceChanged && source.is_some();
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
                return Ok(inv.fail(run, image, e, &why).await);
            }
        },
    };
    let source_at = given_source.or(read_source.as_ref()).map(|s| s.at);
    let bpa = if plan::needs_bpa(image, config, intent) {
        match run.bpa().await {
            Ok(bpa) => Some(bpa),
            Err(e) => {
                let why = "could not read the region's image block public access state";
                return Ok(inv.fail(run, image, e, why).await);
            }
        }
    } else {
        None
    };
    // What is inside, read (or found in the ledger) only for an AMI that
    // may be made public now, and not when the region blocks sharing.
    let blocked = matches!(bpa, Some(BlockPublicAccess::BlockNewSharing { .. }));
    let content = if !blocked && plan::needs_content_check(image, config, intent, inv.now) {
        match inspection::verdict(inv, run, image).await {
            Ok(verdict) => Some(verdict),
            Err(e) => {
                let why = "could not read the content check's verdict";
                return Ok(inv.fail(run, image, e, why).await);
            }
        }
    } else {
        None
    };
    let facts = Facts {
        image,
        bpa,
        source,
        content: content.as_ref(),
    };
    let decision = plan::decide(facts, intent, config, inv.now);
    // The verdict as reported (the owner's acknowledgement applied), with
    // the tag that shows it.
    let report = content.as_ref().and_then(|raw| {
        let judged = plan::judge_content(image, Some(raw), config).1?;
        let tag = plan::content_tag(raw, &judged);
        Some(ContentReport {
            tag: (config.status_tag(StatusTag::Content), tag.to_owned()),
            verdict: judged,
        })
    });
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
            if let Some(report) = report {
                rejected.tags.push(report.tag);
                rejected.content = Some(report.verdict);
                // Kept private: its verdict recorded now, so that the next
                // run does not read it again (a failure only costs a read).
                if let Err(e) = inspection::record_if_kept_private(inv, run, &image.id).await {
                    warn!(image_id = %image.id, region = %image.region, error = %e, "the content verdict could not be recorded in the ledger: the next run reads the AMI again");
                }
            }
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
            match publish::publish(inv, run, image, oldest, steps, intent, report).await {
                Ok(outcome) => outcome,
                Err(again) => return Err(again),
            }
        }
        Decision::Withdraw(withdrawal) => takedown::withdraw(inv, run, image, withdrawal).await,
    };
    Ok(done)
}

/// How an attempt to reconcile an AMI ended: its outcome, or [`Again`]
/// when its facts (or its source's) were older than
/// [`FRESH_FACTS`](crate::invocation::FRESH_FACTS) right before an
/// irreversible step, or changed meanwhile: read them again and decide
/// again.
type Attempt = Result<ImageOutcome, Again>;
