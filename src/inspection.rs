//! What is inside a source AMI, as the publish decision needs it: the
//! content check's verdict (src/content/), read through the EBS direct APIs
//! once per content. An AMI's snapshots never change, so a verdict is bound
//! to its snapshot ids and kept in the ledger: replays and sweeps read the
//! ledger's verdict (one `GetItem`, only for an AMI that carries the
//! function's `publish:content` tag, which says a verdict was recorded),
//! never the volumes again. The tag is a hint, never the verdict: one
//! forged by hand finds no verdict in the ledger for these snapshots, and
//! the AMI is read again.
//!
//! A verdict read here is recorded with the AMI's intent to be made public
//! (the same `UpdateItem`), or on its own when the AMI stays private
//! ([`record_if_kept_private`]). What could not be read is not recorded:
//! the next run tries again. Copies are never read: a copy has its
//! source's content, which was checked before the source was made public.

use tracing::info;

use crate::config::StatusTag;
use crate::content;
use crate::ec2::Ec2Error;
use crate::invocation::{Invocation, RegionRun};
use crate::ledger::{self, ContentRecord};
use crate::model::{Image, ImageId};
use crate::snapshot::ReadOptions;

/// The content check's verdict on `image` (see the module's doc).
pub(crate) async fn verdict(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    image: &Image,
) -> Result<content::Outcome, Ec2Error> {
    let snapshots = snapshot_ids(image);
    let ledger = inv.ledger()?;
    let tagged = image
        .tags
        .contains_key(&inv.config().status_tag(StatusTag::Content));
    if let Some(ledger) = ledger.as_ref().filter(|_| tagged) {
        let kept = ledger::content_of(ledger, &run.region, &image.id).await?;
        let known = kept
            .filter(|k| k.snapshots == snapshots)
            .and_then(|k| serde_json::from_str::<content::Outcome>(&k.verdict).ok());
        if let Some(known) = known {
            info!(image_id = %image.id, region = %run.region, verdict = %known, "content check: the ledger's verdict for these snapshots");
            return Ok(known);
        }
    }
    let client = inv
        .function
        .clients
        .ebs(&run.region)
        .ok_or_else(|| no_client(run))?;
    let checked = content::check_ami(&client, &image.snapshots, ReadOptions::default()).await;
    info!(
        image_id = %image.id,
        region = %run.region,
        verdict = %checked.outcome,
        blocks_fetched = checked.fetch.fetched,
        "content check: read"
    );
    if matches!(checked.outcome, content::Outcome::Read { .. })
        && ledger.is_some()
        && let Ok(verdict) = serde_json::to_string(&checked.outcome)
    {
        let record = ContentRecord { snapshots, verdict };
        lock(inv).insert(image.id.clone(), record);
    }
    Ok(checked.outcome)
}

/// The verdict read for `id` in this invocation, not recorded yet, to go
/// in with its intent to be made public.
pub(crate) fn take_unrecorded(inv: &Invocation<'_>, id: &ImageId) -> Option<ContentRecord> {
    lock(inv).remove(id)
}

/// Records the verdict read for an AMI that stays private (a rejection),
/// so that the next run does not read it again. Nothing in a preview.
pub(crate) async fn record_if_kept_private(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    id: &ImageId,
) -> Result<(), Ec2Error> {
    let Some(record) = take_unrecorded(inv, id) else {
        return Ok(());
    };
    match inv.ledger()? {
        Some(ledger) if !inv.preview() => {
            ledger::record_content(&ledger, &run.region, id, &record).await
        }
        _ => Ok(()),
    }
}

/// An AMI's snapshots as its verdict is bound to them.
fn snapshot_ids(image: &Image) -> String {
    let ids: Vec<&str> = image
        .snapshots
        .iter()
        .map(|s| s.snapshot_id.as_str())
        .collect();
    ids.join(",")
}

fn lock<'i>(
    inv: &'i Invocation<'_>,
) -> std::sync::MutexGuard<'i, std::collections::HashMap<ImageId, ContentRecord>> {
    inv.verdicts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn no_client(run: &RegionRun<'_>) -> Ec2Error {
    Ec2Error::permanent(
        "ListSnapshotBlocks",
        &run.region,
        None,
        "NoClient",
        format!("no EBS client for {}", run.region),
    )
}
