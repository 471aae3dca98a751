//! A sweep of one region: the copies in every target region listed up
//! front (once per region), then every AMI of the account in the region
//! that carries the publish tag key or the function's status tag and is not
//! settled, reconciled while there is time to finish it before the
//! deadline; the rest is left to the next sweep. One region's failure to
//! list its copies never stops the sweep: it is reported once.

use std::time::Instant;

use futures::{StreamExt, future, stream};
use tracing::{info, warn};

use crate::config::StatusTag;
use crate::copies;
use crate::ec2;
use crate::error::Error;
use crate::invocation::{CALLS_TO_START_AN_AMI, Invocation, Observed};
use crate::model::{Intent, RegionName};
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
    inv.copy_index = Some(index);
    let inv = &*inv;
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
            reconcile::reconcile(inv, run, observed, Intent::Reconcile, None)
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
