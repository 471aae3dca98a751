//! A sweep of one region: the copies in every target region listed up
//! front (once per region), then every AMI of the account in the region
//! that carries the publish tag key or the function's status tag and is not
//! settled, reconciled while there is time to finish it before the
//! deadline; the rest is left to the next sweep. One region's failure to
//! list its copies never stops the sweep: it is reported once.

use std::collections::HashSet;
use std::time::Instant;

use futures::{StreamExt, future, stream};
use tracing::{info, warn};

use crate::config::StatusTag;
use crate::copies;
use crate::ec2::{self, Ec2Error};
use crate::error::Error;
use crate::invocation::{CALLS_TO_START_AN_AMI, Invocation, Observed};
use crate::ledger;
use crate::model::{ImageId, Intent, RegionName};
use crate::plan;
use crate::reconcile;
use crate::report::{ImageOutcome, Outcome, RegionFailure};

/// Every AMI of the account in the region that carries the publish tag
/// key or the function's status tag and is not settled yet (with, for a
/// source, its copies in every target region), reconciled with the facts
/// the listings gave (read again before anything is made public on a
/// listing older than [`FRESH_FACTS`](crate::invocation::FRESH_FACTS)). The copies are listed up front,
/// once per target region. An AMI is started only while there is time
/// to finish it before the deadline; the rest is left to the next sweep.
pub(crate) async fn sweep(inv: &mut Invocation<'_>, region: &RegionName) -> Result<Outcome, Error> {
    let config = inv.config();
    let run = inv.run(region)?;
    let sweep_error = |error| Error::Sweep {
        region: region.clone(),
        error: Box::new(error),
    };
    let client = run.client().map_err(sweep_error)?;
    // The copies first: whether a source is settled depends on them.
    let index = copies::index(inv, region).await;
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
    // What the function made public here, by its own memory: where an
    // AMI's tags say otherwise (deleted, or forged), the ledger decides.
    let published = published_by_ledger(inv, region)
        .await
        .map_err(sweep_error)?;
    let status_key = config.status_tag(StatusTag::Status);
    let mut listed = HashSet::new();
    let todo = ec2::list_owned_images_with_tag_keys(
        &client,
        region,
        &[&config.publish_tag_key, &status_key],
        |image| {
            listed.insert(image.id.clone());
            let overruled =
                published.contains(&image.id) && reconcile::ledger_disagrees(image, config);
            overruled || !(plan::is_settled(image, config) && index.settles(image, config))
        },
    )
    .await
    .map_err(sweep_error)?;
    let listed_at = Instant::now();
    let observed = |image| Observed {
        image,
        at: listed_at,
    };
    let mut todo: Vec<(RegionName, Observed)> = todo
        .into_iter()
        .map(|mut image| {
            if published.contains(&image.id) {
                reconcile::stand_in(&mut image, config);
            }
            (region.clone(), observed(image))
        })
        .collect();
    let lost = lost_tags(inv, region, &published, &listed)
        .await
        .map_err(sweep_error)?;
    todo.extend(lost.into_iter().map(|o| (region.clone(), o)));
    // Public copies whose source this sweep neither listed nor remembers
    // (its tags are gone, or it is): each reconciled on its own, in its
    // region, its source read there.
    let known: HashSet<ImageId> = listed.union(&published).cloned().collect();
    let orphans = index.orphans(region, &known);
    todo.extend(orphans.into_iter().map(|(r, copy)| (r, observed(copy))));
    let listed = listed.len();
    inv.copy_index = Some(index);
    let inv = &*inv;
    info!(region = %region, listed, to_reconcile = todo.len(), "sweep");
    let to_reconcile = todo.len();
    let mut outcomes: Vec<ImageOutcome> = stream::iter(todo)
        .take_while(|_| future::ready(inv.has_time_for(CALLS_TO_START_AN_AMI)))
        .map(|(region, observed)| async move {
            // Every region of a copy the index lists has its run.
            match inv.run(&region) {
                Ok(run) => {
                    reconcile::reconcile_then_restore(inv, run, observed, Intent::Reconcile).await
                }
                Err(e) => {
                    let mut failed =
                        ImageOutcome::new(observed.image.id, region, crate::report::Action::Failed);
                    failed.errors.push(e.to_string());
                    failed
                }
            }
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

/// The AMIs the ledger says the function made (or is making) public in
/// `region`: one Query, paginated (none without a ledger).
async fn published_by_ledger(
    inv: &Invocation<'_>,
    region: &RegionName,
) -> Result<HashSet<ImageId>, Ec2Error> {
    let Some(ledger) = inv.ledger()? else {
        return Ok(HashSet::new());
    };
    let entries = ledger::published_in(&ledger, region).await?;
    Ok(entries.into_iter().map(|e| e.image_id).collect())
}

/// The AMIs the ledger says the function made public in `region` that the
/// tag listing did not find (their tags were deleted: `delete-tags` with no
/// tag list deletes them all), read by id. Where the function's status tag
/// is gone, the ledger's memory stands in for it (`public`), so that the
/// decision takes down what its owner no longer asks for, copies included.
async fn lost_tags(
    inv: &Invocation<'_>,
    region: &RegionName,
    published: &HashSet<ImageId>,
    listed: &HashSet<ImageId>,
) -> Result<Vec<Observed>, Ec2Error> {
    let config = inv.config();
    let mut lost = Vec::new();
    for id in published {
        if listed.contains(id) || !inv.has_time_for(CALLS_TO_START_AN_AMI) {
            continue;
        }
        let Some(mut observed) = inv.read(region, id).await? else {
            continue; // deregistered: nothing public is left of it
        };
        if observed.image.owned {
            reconcile::stand_in(&mut observed.image, config);
        }
        lost.push(observed);
    }
    Ok(lost)
}
