//! Publishing one AMI as [`plan`](crate::plan) decided: its deprecation
//! date first (once public, it can only move earlier), then, in its
//! family's turn, a slot in the region's public AMI quota (rotation making
//! room when it may) and the group `all` on facts no older than
//! [`FRESH_FACTS`](crate::invocation::FRESH_FACTS), deregistration
//! protection, the rotation of its family, its copies, and the status it
//! ends with. Copies and rotation are their own modules; this one orders
//! the steps.

use std::time::Instant;

use time::OffsetDateTime;

use tracing::info;

use crate::config::{Config, StatusTag};
use crate::copies;
use crate::ec2::{self, Ec2Error};
use crate::invocation::{CALLS_FOR_A_WRITE, Invocation, Observed, RegionRun, deferred, record};
use crate::ledger::{self, State, Written};
use crate::model::{Image, ImageId, Intent, RegionName, Status, format_time};
use crate::plan::{self, Steps};
use crate::report::{Action, ImageOutcome};
use crate::rotation;
use crate::steps::Step;

/// Why a publish stopped short of an outcome: the AMI must be read again
/// and decided again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Again {
    /// Its facts were too old to make it public on, or another run
    /// recorded a change in the ledger while this one made it public.
    Stale,
    /// A copy's source, read again right before the copy was to be made
    /// public, no longer vouches for it (untagged, held, made private
    /// since the facts in hand were read): nothing was made public.
    SourceChanged,
}

/// The content check's verdict on an AMI being published, as reported:
/// on the AMI as a tag, in its outcome in full.
#[derive(Clone, Debug)]
pub(crate) struct ContentReport {
    pub tag: (String, String),
    pub verdict: crate::content::Outcome,
}

/// Carries out a publish; [`Again`] when the AMI must be read again and
/// decided again.
pub(crate) async fn publish(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    image: &Image,
    facts_at: Instant,
    steps: Steps,
    intent: Intent,
    content: Option<ContentReport>,
) -> Result<ImageOutcome, Again> {
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
    if let Some(content) = content {
        outcome.tags.push(content.tag);
        outcome.content = Some(content.verdict);
    }
    let writes = steps.deprecate_at.is_some() || steps.make_public;
    // Making it public: the quota's reads, `all`, protection, and the
    // ledger's intent and result.
    let public_calls = 3 + inv.ledger_calls(2);
    if writes && !inv.has_time_for(CALLS_FOR_A_WRITE + u32::from(steps.make_public) * public_calls)
    {
        return Ok(deferred(&image.id, &image.region));
    }
    let client = match run.client() {
        Ok(client) => client,
        Err(e) => return Ok(inv.fail(run, image, e, "no client").await),
    };
    let mut after = image.clone();
    if let Some(at) = steps.deprecate_at {
        deprecate(inv, run, &client, at, &mut after, &mut outcome).await;
    }
    let mut family = None;
    let mut recorded = None;
    // The deprecation date goes on first: once public, an AMI's
    // deprecation date can only move earlier.
    if steps.make_public && outcome.is_clean() {
        match make_public_in_turn(inv, run, &client, image, facts_at, intent).await {
            Err(NotTried::Stale) => return Err(Again::Stale),
            Err(NotTried::Superseded(reason)) => {
                info!(image_id = %image.id, region = %image.region, action = "skipped", reason = %reason, "decision");
                outcome.action = Action::Skipped;
                outcome.reasons.push(reason.clone());
                return Ok(inv
                    .finish(run, image, outcome, Status::Retired, reason)
                    .await);
            }
            Ok(Tried {
                made,
                family: read,
                room_made,
            }) => {
                family = read;
                outcome.retired.extend(room_made);
                match made {
                    Ok(version) => {
                        info!(image_id = %image.id, region = %image.region, "made public");
                        outcome.action = Action::Published;
                        after.public = true;
                        recorded = version;
                    }
                    Err(Refusal::Quota(reason)) => {
                        outcome.action = Action::Rejected;
                        outcome.reasons.push(reason);
                    }
                    Err(Refusal::Stale) => {
                        info!(image_id = %image.id, region = %image.region, action = "deferred", "facts went stale before its turn to be made public: left for the next run");
                        outcome.action = Action::Deferred;
                        outcome.reasons.push(format!(
                            "left for the next run: its facts were older than {:?} when its turn came to be made public",
                            inv.function.fresh_facts
                        ));
                        return Ok(outcome);
                    }
                    Err(Refusal::SourceChanged) => return Err(Again::SourceChanged),
                    Err(Refusal::Call(e)) => record(&mut outcome, e),
                }
            }
        }
    }
    if outcome.is_clean() && plan::needs_protection(&after, inv.config()) {
        protect(inv, run, &client, &mut after, &mut outcome).await;
    }
    if let Rotated::RetiredMeanwhile =
        rotate_family(inv, run, image, &after, &mut family, &mut outcome).await
    {
        return Ok(outcome);
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
            inv,
            &source,
            &steps.copy_to,
            steps.new_copies,
            // A restored source's copies were retired with it.
            intent,
        )
        .await;
        if outcome.copies.iter().any(|c| c.source_changed) {
            // A copy read this AMI again and found it changed (untagged,
            // held) since the facts this run holds: its status must not be
            // written from them. Read again, decide again.
            info!(image_id = %image.id, region = %image.region, "changed since it was read (a copy found it so): reading it again");
            return Err(Again::Stale);
        }
    }
    if let Some(version) = recorded
        && !record_public(inv, run, image, version, &mut outcome).await
    {
        // Overtaken: a take-down recorded since the intent wins. What this
        // run made public is made private again if the ledger now says so
        // (the tags may not: the take-down may have come before `all`);
        // then the AMI is read again and decided again.
        if undo_if_taken_down(inv, run, &client, image, &mut outcome).await {
            return Err(Again::Stale);
        }
    }
    let (status, reason) = status_after_publish(inv.config(), image, &mut outcome, ends_public);
    Ok(inv.finish(run, image, outcome, status, reason).await)
}

/// Sets the AMI's deprecation time (before it is public: once public, it
/// can only move earlier).
async fn deprecate(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    client: &ec2::Client,
    at: OffsetDateTime,
    after: &mut Image,
    outcome: &mut ImageOutcome,
) {
    let step = Step::Deprecate {
        region: run.region.clone(),
        image_id: after.id.clone(),
        at,
    };
    let call = ec2::enable_deprecation(client, &run.region, &after.id, at);
    match inv.write(step, call).await {
        Ok(_) => after.deprecation_time = Some(at),
        Err(e) => record(outcome, e),
    }
}

/// How the family's rotation after a publish ended.
enum Rotated {
    Done,
    /// A newer release of its family retired the AMI while this run waited
    /// for the family's turn: that is its state now.
    RetiredMeanwhile,
}

/// Retires what the AMI's family no longer keeps once it is public; a
/// public AMI left in `error` may have a rotation to finish (a retirement
/// failed), for which its family is read now. `family`: as read before the
/// AMI was made public, if it was; it stays the caller's, since the
/// family's turn lasts until the status tags are written.
async fn rotate_family(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    image: &Image,
    after: &Image,
    family: &mut Option<rotation::Family>,
    outcome: &mut ImageOutcome,
) -> Rotated {
    let rotation_unfinished =
        image.public && plan::status_of(image, inv.config()) == Some(Status::Error);
    if rotation_unfinished && family.is_none() && outcome.is_clean() {
        match rotation::Family::read(inv, run, after).await {
            Ok(read) => *family = read,
            Err(e) => record(outcome, e),
        }
        if family
            .as_ref()
            .and_then(|f| f.member(&image.id))
            .is_some_and(|me| !me.public)
        {
            outcome.action = Action::Skipped;
            outcome
                .reasons
                .push("retired meanwhile by a newer release of its family".into());
            return Rotated::RetiredMeanwhile;
        }
    }
    if (outcome.action == Action::Published || rotation_unfinished)
        && let Some(family) = family.as_ref()
    {
        let already: Vec<ImageId> = outcome.retired.iter().map(|r| r.image_id.clone()).collect();
        let retired = rotation::rotate(inv, run, after, family, &already).await;
        outcome.retired.extend(retired);
    }
    Rotated::Done
}

/// Takes a public slot in the region's quota (retiring the family's
/// oldest first when there is no room and rotation allows it), then
/// adds the group `all`; the slot is given back if EC2 refuses. Returns
/// the AMI retired to make room, if any.
async fn make_public(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    client: &ec2::Client,
    image: &Image,
    facts_at: Instant,
    family: Option<&rotation::Family>,
    intent: Intent,
) -> (Result<Recorded, Refusal>, Option<ImageOutcome>) {
    let mut room_made = None;
    let mut slot = inv.take_public_slot(&run.region).await;
    if matches!(slot, Ok(Err(_)))
        && let Some(family) = family
    {
        room_made = rotation::make_room(inv, run, image, family).await;
        if room_made
            .as_ref()
            .is_some_and(|r| r.action == Action::Retired)
        {
            slot = inv.take_public_slot(&run.region).await;
        }
    }
    (
        add_all(inv, run, client, image, slot, facts_at, intent).await,
        room_made,
    )
}

/// The ledger's version of the intent recorded before `all` was added
/// (`None`: no ledger, or a preview).
type Recorded = Option<u64>;

/// Adds the group `all`, in the slot taken for it, after the intent is
/// recorded in the ledger (nothing is made public without it); the slot is
/// given back if either is refused.
async fn add_all(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    client: &ec2::Client,
    image: &Image,
    slot: Result<Result<(), String>, Ec2Error>,
    facts_at: Instant,
    intent: Intent,
) -> Result<Recorded, Refusal> {
    slot.map_err(Refusal::Call)?.map_err(Refusal::Quota)?;
    if let Err(refusal) = source_still_vouches(inv, image).await {
        inv.quotas.give_back(&run.region).await;
        return Err(refusal);
    }
    let recorded = match record_intent(inv, run, image, intent).await {
        Ok(recorded) => recorded,
        Err(e) => {
            inv.quotas.give_back(&run.region).await;
            return Err(Refusal::Call(e));
        }
    };
    let step = Step::MakePublic {
        region: run.region.clone(),
        image_id: image.id.clone(),
    };
    // The facts' age is checked again once the call has its turn in
    // EC2's bucket: no AMI is made public on facts older than that.
    let not_after = facts_at + inv.function.fresh_facts;
    let call = ec2::make_public(client, &run.region, &image.id, not_after);
    let made = inv.write(step, call).await;
    if made.is_err() {
        inv.quotas.give_back(&run.region).await;
    }
    match made {
        Ok(_) => Ok(recorded),
        Err(e) if e.code == ec2::FACTS_TOO_OLD => Err(Refusal::Stale),
        Err(e) => Err(Refusal::Call(e)),
    }
}

/// A copy's source, read in its region right before the copy is made
/// public: the facts the decision had may be a sweep's listing, up to
/// [`FRESH_FACTS`](crate::invocation::FRESH_FACTS) old, and the owner may
/// have untagged or held the source since (a copy must never be public
/// while its source's owner no longer asks). Nothing to read for a source.
async fn source_still_vouches(inv: &Invocation<'_>, image: &Image) -> Result<(), Refusal> {
    let config = inv.config();
    let Some(source) = plan::source_of(image, config) else {
        return Ok(());
    };
    let found = inv
        .read(&source.region, &source.image_id)
        .await
        .map_err(Refusal::Call)?;
    match found.map(|s| plan::vouches_for_copies(&s.image, config, inv.now)) {
        Some(Ok(())) => Ok(()),
        _ => {
            info!(image_id = %image.id, region = %image.region, source = %source, "its source no longer vouches for it, read right before making it public: deciding again");
            Err(Refusal::SourceChanged)
        }
    }
}

/// Records in the ledger that the AMI is about to be made public.
async fn record_intent(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    image: &Image,
    intent: Intent,
) -> Result<Recorded, Ec2Error> {
    if inv.preview() {
        return Ok(None);
    }
    let Some(ledger) = inv.ledger()? else {
        return Ok(None);
    };
    let why = match intent {
        Intent::Restore => {
            "restored: the release of its family that rotation retired it for was withdrawn or held"
        }
        _ => "about to add the group all",
    };
    // The content verdict read for it goes in with the intent: one write.
    let content = crate::inspection::take_unrecorded(inv, &image.id);
    let version = ledger::intend_public(
        &ledger,
        &run.region,
        &image.id,
        why,
        inv.clock(),
        content.as_ref(),
    )
    .await?;
    Ok(Some(version))
}

/// After its result was overtaken in the ledger: makes the AMI private again
/// when the ledger's state is a take-down. `false` when that failed (the
/// outcome says why; the AMI stays in `error` for the next run).
async fn undo_if_taken_down(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    client: &ec2::Client,
    image: &Image,
    outcome: &mut ImageOutcome,
) -> bool {
    let state = match inv.ledger() {
        Ok(Some(ledger)) => ledger::state_of(&ledger, &run.region, &image.id).await,
        Ok(None) => return true,
        Err(e) => Err(e),
    };
    let taken_down = match state {
        Ok(state) => state.is_some_and(|s| !s.published()),
        Err(e) => {
            record(outcome, e);
            return false;
        }
    };
    if !taken_down {
        return true;
    }
    let step = Step::MakePrivate {
        region: run.region.clone(),
        image_id: image.id.clone(),
    };
    info!(image_id = %image.id, region = %run.region, "taken down in the ledger while this run made it public: made private again");
    match inv
        .write(step, ec2::make_private(client, &run.region, &image.id))
        .await
    {
        Ok(_) => true,
        Err(e) => {
            record(outcome, e);
            false
        }
    }
}

/// Records in the ledger that the AMI the run made public is public, on
/// the condition that nothing was recorded since its intent: `false` when
/// another run recorded a change meanwhile (a hold, a take-down), so this
/// run must read the AMI again and decide again.
async fn record_public(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    image: &Image,
    version: u64,
    outcome: &mut ImageOutcome,
) -> bool {
    let written = match inv.ledger() {
        Ok(Some(ledger)) => {
            let why = format!("public in {}", run.region);
            ledger::record(
                &ledger,
                &run.region,
                &image.id,
                State::Public,
                &why,
                inv.clock(),
                Some(version),
            )
            .await
        }
        Ok(None) => return true,
        Err(e) => Err(e),
    };
    match written {
        Ok(Written::At(_)) => true,
        Ok(Written::Overtaken) => {
            info!(image_id = %image.id, region = %run.region, "another run recorded a change in the ledger meanwhile: reading it again");
            false
        }
        Err(e) => {
            record(outcome, e);
            true
        }
    }
}

/// The make-public part of a publish, tried in its family's turn: made
/// public, or refused; with the family as read (when it has one and
/// rotation is on) and the AMI retired to make room, if any.
struct Tried {
    made: Result<Recorded, Refusal>,
    family: Option<rotation::Family>,
    room_made: Option<ImageOutcome>,
}

/// Why the make-public part of a publish was not tried.
enum NotTried {
    /// Its family's newer releases (public, or about to be made public)
    /// would retire it at once: why.
    Superseded(String),
    /// Its facts are too old to make it public on: read them again.
    Stale,
}

/// Reads rotation's view of the AMI's family once, in the family's turn:
/// an AMI its family's newer releases would retire at once is not made
/// public; the listing then says what to retire to make room, and what the
/// AMI replaces. Then makes it public.
async fn make_public_in_turn(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    client: &ec2::Client,
    image: &Image,
    facts_at: Instant,
    intent: Intent,
) -> Result<Tried, NotTried> {
    let family = match rotation::Family::read(inv, run, image).await {
        Ok(family) => family,
        // Not made public without knowing what rotation would do.
        Err(e) => {
            return Ok(Tried {
                made: Err(Refusal::Call(e)),
                family: None,
                room_made: None,
            });
        }
    };
    // Read again (the family's turn may have been waited for) unless the
    // facts leave time for the quota, a retirement and the wait for EC2's
    // bucket before the publish itself, which checks their age once more.
    let fresh = inv.function.fresh_facts;
    if facts_at.elapsed() + fresh / 6 > fresh {
        info!(image_id = %image.id, region = %image.region, "facts too old to make it public on: reading them again");
        return Err(NotTried::Stale);
    }
    if let Some(reason) = family
        .as_ref()
        .and_then(|f| f.supersedes(image, inv.config()))
    {
        return Err(NotTried::Superseded(reason));
    }
    let (made, room_made) =
        make_public(inv, run, client, image, facts_at, family.as_ref(), intent).await;
    Ok(Tried {
        made,
        family,
        room_made,
    })
}

/// Turns deregistration protection on, with the marker that says the
/// function set it (so that only the function's protection is removed).
async fn protect(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    client: &ec2::Client,
    after: &mut Image,
    outcome: &mut ImageOutcome,
) {
    let step = Step::Protect {
        region: run.region.clone(),
        image_id: after.id.clone(),
    };
    let call = ec2::set_deregistration_protection(client, &run.region, &after.id, true);
    match inv.write(step, call).await {
        Ok(_) => {
            after.deregistration_protected = true;
            let marker = (inv.config().status_tag(StatusTag::Protected), "true".into());
            outcome.tags.push(marker);
        }
        Err(e) => record(outcome, e),
    }
}

/// The status and reason a publish ends with.
fn status_after_publish(
    config: &Config,
    image: &Image,
    outcome: &mut ImageOutcome,
    ends_public: bool,
) -> (Status, String) {
    let unfinished = |r: &ImageOutcome| matches!(r.action, Action::Failed | Action::Deferred);
    let retirement_failed = outcome.retired.iter().any(unfinished);
    if !outcome.errors.is_empty() {
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
    } else if let Some(source) = plan::source_of(image, config) {
        (
            Status::Public,
            format!("public in {} (copy of {source})", image.region),
        )
    } else {
        copies::source_status(&image.region, &outcome.copies)
    }
}

/// Why an AMI was not made public.
enum Refusal {
    /// No headroom in the region's public AMI quota (the reason says so).
    Quota(String),
    /// Its facts grew too old while it waited for its turn.
    Stale,
    /// A copy's source no longer vouches for it, read right before.
    SourceChanged,
    Call(Ec2Error),
}
