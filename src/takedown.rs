//! Taking an AMI down: made private (its owner untagged it, its source
//! was, or an unpublish request holds it), the protection the function set
//! removed, and its copies taken down with it. The status says how things
//! stand, so that running again writes nothing; a take-down not finished
//! stays `error` (a hold stays `held`) for the next run to finish.

use std::time::Instant;

use tracing::info;

use crate::config::{Config, StatusTag};
use crate::copies;
use crate::ec2;
use crate::invocation::{CALLS_FOR_A_WRITE, Invocation, Observed, RegionRun, deferred, record};
use crate::ledger::State;
use crate::model::{Image, Intent, RegionName, Status};
use crate::plan::{self, WithdrawReason, Withdrawal};
use crate::report::{Action, ImageOutcome};
use crate::rotation;
use crate::steps::Step;

/// Carries out a take-down: the AMI, then the copies that follow it.
pub(crate) async fn withdraw(
    inv: &Invocation<'_>,
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
    let mut outcome = ImageOutcome::new(image.id.clone(), image.region.clone(), Action::Withdrawn);
    let calls =
        CALLS_FOR_A_WRITE + u32::from(!withdrawal.copies_in.is_empty()) * 2 + inv.ledger_calls(1);
    if !inv.has_time_for(calls) {
        return deferred(&image.id, &image.region);
    }
    // Recorded first: a run that is making it public meanwhile then finds
    // its own result refused by the ledger, and decides again.
    if withdrawal.make_private || plan::status_of(image, inv.config()) != Some(withdrawal.status())
    {
        record_take_down(inv, run, image, &withdrawal, &mut outcome).await;
    }
    let mut after = image.clone();
    if withdrawal.make_private {
        let step = Step::MakePrivate {
            region: run.region.clone(),
            image_id: image.id.clone(),
        };
        let result = match run.client() {
            Ok(client) => inv
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
        rotation::unprotect(inv, run, &client, image, &mut outcome).await;
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
        outcome.copies = copies::sync(inv, &source, &withdrawal.copies_in, false, intent).await;
    }
    let changed = withdrawal.make_private
        || outcome
            .copies
            .iter()
            .any(|c| c.action == Some(Action::Withdrawn))
        || !outcome.tags.is_empty()
        || plan::status_of(image, inv.config()) != Some(withdrawal.status());
    if !changed {
        outcome.action = Action::KeptPrivate;
    }
    let (mut status, reason) = withdrawn_status(inv.config(), &withdrawal, &outcome);
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
    let pulled = withdrawal.make_private
        && !incomplete
        && matches!(
            withdrawal.why,
            WithdrawReason::Untagged | WithdrawReason::Requested
        );
    let mut done = inv.finish(run, image, outcome, status, reason).await;
    if pulled {
        // Its owner pulled a public release: the one rotation retired in
        // its favour takes its place again, once this run is done with it
        // (reconcile::reconcile_then_restore).
        done.pulled = Some(Box::new(image.clone()));
    }
    done
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
        WithdrawReason::Expired { at } => format!(
            "its deprecation time {} has passed and it is no longer public (AWS removes public sharing from outdated AMIs; an Image Builder lifecycle policy or its owner may have made it private): not made public again",
            crate::model::format_time(*at)
        ),
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

/// Records the take-down in the ledger, whatever was recorded before (a
/// take-down wins). A failure is the outcome's to report; the take-down
/// goes on (making private is the safe direction).
async fn record_take_down(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    image: &Image,
    withdrawal: &Withdrawal,
    outcome: &mut ImageOutcome,
) {
    let state = match withdrawal.status() {
        Status::Held => State::Held,
        Status::Expired => State::Expired,
        _ => State::Withdrawn,
    };
    let why = match &withdrawal.why {
        WithdrawReason::Untagged => "the publish tag was removed".to_owned(),
        WithdrawReason::Requested => "an unpublish request".to_owned(),
        WithdrawReason::Source { source, problem } => format!("its source {source} {problem}"),
        WithdrawReason::Expired { .. } => "private past its deprecation time".to_owned(),
    };
    if let Err(e) = inv
        .record_private(&run.region, &image.id, state, &why)
        .await
    {
        record(outcome, e);
    }
}
