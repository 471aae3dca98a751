//! Families and rotation: a region keeps the newest `KEEP_PUBLIC_PER_FAMILY`
//! public AMIs of each family (the value of `FAMILY_TAG_KEY`), and the older
//! ones the function published are retired: made private, status
//! `retired`, deprecated at once with `DEPRECATE_RETIRED`, their
//! deregistration protection removed if the function set it. Nothing is
//! deregistered, no AMI the function did not publish is touched, and a
//! family's last public AMI is never retired. When a new AMI of a family
//! would go over the region's public AMI quota, the family's oldest is
//! retired first (only while another of its public AMIs remains), then the
//! new one is published.
//!
//! When its owner withdraws or holds a family's public release (a broken
//! build pulled), the newest release rotation retired is made public
//! again, with its copies (`RESTORE_ON_WITHDRAW`), if it is still tagged,
//! not deprecated and within the quota: a family is not left with nothing
//! public because its newest release was pulled. Retirements and
//! restorations are recorded in the ledger with their reasons.
//!
//! Which AMIs to retire, and which to restore, is a pure function of the
//! family's AMIs ([`retirements`], [`room_maker`], [`restorable`]); the
//! rest carries it out.

use std::time::Instant;

use time::{Duration, OffsetDateTime};
use tracing::info;

use crate::config::{Config, StatusTag};
use crate::ec2;
use crate::invocation::{CALLS_FOR_A_WRITE, Invocation, Observed, RegionRun, record};
use crate::ledger::State;
use crate::model::{Image, ImageId, ImageState, Intent, Status};
use crate::plan;
use crate::report::{Action, ImageOutcome};
use crate::steps::Step;

/// The order of releases: a copy counts from its source's creation date
/// (one made again later is not newer); ties by creation date, then id.
fn release_key<'a>(
    image: &'a Image,
    config: &Config,
) -> (Option<OffsetDateTime>, Option<OffsetDateTime>, &'a ImageId) {
    (
        plan::release_date(image, config),
        image.creation_date,
        &image.id,
    )
}

/// The family's public AMIs (owned), newest release first.
fn public_newest_first<'a>(members: &'a [Image], config: &Config) -> Vec<&'a Image> {
    let mut public: Vec<&Image> = members.iter().filter(|m| m.public && m.owned).collect();
    public.sort_by(|a, b| release_key(b, config).cmp(&release_key(a, config)));
    public
}

/// The public AMIs of a family in one region to retire once one of them was
/// made public: all but the newest `keep`, among those the function
/// published. The newest is always kept, so a family keeps a public AMI.
pub fn retirements<'a>(members: &'a [Image], keep: usize, config: &Config) -> Vec<&'a Image> {
    public_newest_first(members, config)
        .into_iter()
        .skip(keep.max(1))
        .filter(|m| plan::made_public_by_function(m, config))
        .collect()
}

/// Whether `coming` is older than the `keep` newest public AMIs of its
/// family: made public, it would be the one rotation retires at once.
pub fn superseded(members: &[Image], coming: &Image, keep: usize, config: &Config) -> bool {
    let coming_key = release_key(coming, config);
    let newer = public_newest_first(members, config)
        .into_iter()
        .filter(|m| m.id != coming.id && release_key(m, config) > coming_key)
        .count();
    newer >= keep.max(1)
}

/// Whether releases of `coming`'s family newer than it, public or about to
/// be made public (a sweep that found several new releases at once), number
/// the `keep` that rotation keeps: then `coming` would be retired by the
/// same run that made it public, and is not made public. (Should a newer
/// one then be refused, the family still keeps the public AMIs it had:
/// rotation retires them only once a newer one is public.)
pub fn overtaken(members: &[Image], coming: &Image, keep: usize, config: &Config) -> bool {
    let coming_key = release_key(coming, config);
    let newer = members
        .iter()
        .filter(|m| {
            m.id != coming.id
                && (m.public && m.owned || about_to_be_public(m, config))
                && release_key(m, config) > coming_key
        })
        .count();
    newer >= keep.max(1)
}

/// A release the function will make public as soon as its turn comes:
/// tagged, never published or pending, and eligible as far as its own
/// facts tell.
fn about_to_be_public(image: &Image, config: &Config) -> bool {
    !image.public
        && plan::is_tagged(image, config)
        && matches!(plan::status_of(image, config), None | Some(Status::Pending))
        && crate::eligibility::check(image, None).is_empty()
}

/// The public AMI of a family to retire before `coming` is made public,
/// when the region's quota has no room: the oldest the function published
/// that rotation would retire anyway once `coming` is public (never one
/// newer than `coming`), and only while another public AMI of the family
/// remains (a family is never left without one because the publish after
/// it failed).
pub fn room_maker<'a>(
    members: &'a [Image],
    coming: &Image,
    keep: usize,
    config: &Config,
) -> Option<&'a Image> {
    let public: Vec<&Image> = public_newest_first(members, config)
        .into_iter()
        .filter(|m| m.id != coming.id)
        .collect();
    if public.len() < 2 || public.len() < keep || superseded(members, coming, keep, config) {
        return None;
    }
    // Once `coming` is public, the newest `keep - 1` of these stay.
    let coming_key = release_key(coming, config);
    public
        .into_iter()
        .skip(keep.max(1) - 1)
        .rev()
        .find(|m| plan::made_public_by_function(m, config) && release_key(m, config) < coming_key)
}

/// The release to make public again once `pulled` (public until its owner
/// withdrew or held it) is private: the newest of its family that rotation
/// retired (status `retired`) and released before it, still tagged for
/// publishing, available, not deprecated by `now`; only while fewer than
/// `keep` of the family are public.
pub fn restorable<'a>(
    members: &'a [Image],
    pulled: &Image,
    keep: usize,
    config: &Config,
    now: OffsetDateTime,
) -> Option<&'a Image> {
    let others = || members.iter().filter(|m| m.id != pulled.id);
    let public = others().filter(|m| m.public && m.owned).count();
    if public >= keep.max(1) {
        return None;
    }
    let pulled_key = release_key(pulled, config);
    others()
        .filter(|m| {
            !m.public
                && m.owned
                && m.state == ImageState::Available
                && plan::status_of(m, config) == Some(Status::Retired)
                && plan::is_tagged(m, config)
                && m.deprecation_time.is_none_or(|at| at > now)
                && release_key(m, config) < pulled_key
        })
        .max_by(|a, b| release_key(a, config).cmp(&release_key(b, config)))
}

/// After `pulled`, a public release of a family, was withdrawn or held:
/// makes public again the release [`restorable`] names, through the same
/// decision and steps as any publish (eligibility, the quota, its
/// copies), its retirement set aside. `None`: nothing to restore.
pub(crate) async fn restore(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    pulled: &Image,
) -> Option<ImageOutcome> {
    let config = inv.config();
    let name = plan::family_of(pulled, config)?;
    let keep = config.keep_public_per_family?;
    if !config.restore_on_withdraw || !inv.has_time_for(CALLS_FOR_A_WRITE) {
        return None;
    }
    let listed = match run.client() {
        Ok(client) => {
            ec2::list_owned_images_tagged(&client, &run.region, &config.family_tag_key, name).await
        }
        Err(e) => Err(e),
    };
    let members = match listed {
        Ok(members) => members,
        Err(e) => {
            let mut failed =
                ImageOutcome::new(pulled.id.clone(), run.region.clone(), Action::Failed);
            failed.reasons.push(format!(
                "its family {name} could not be read to restore a retired release"
            ));
            record(&mut failed, e);
            return Some(failed);
        }
    };
    let candidate = restorable(&members, pulled, usize::from(keep), config, inv.now)?;
    info!(image_id = %candidate.id, region = %run.region, pulled = %pulled.id, family = name, "restoring the newest retired release of the family");
    let observed = Observed {
        image: candidate.clone(),
        at: Instant::now(),
    };
    Some(inv.reconcile(run, observed, Intent::Restore, None).await)
}

/// A family's AMIs in one region, read once before one of them is made
/// public: whether it may be, which to retire to make room, and, once it
/// is, which it replaces.
#[derive(Debug)]
pub(crate) struct Family {
    name: String,
    keep: usize,
    members: Vec<Image>,
    /// The family's turn in this invocation, from the read until the AMI
    /// is public and rotated (dropped with the family).
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

impl Family {
    /// The family of `image` in its region, when it has one and
    /// `KEEP_PUBLIC_PER_FAMILY` is set.
    pub(crate) async fn read(
        inv: &Invocation<'_>,
        run: &RegionRun<'_>,
        image: &Image,
    ) -> Result<Option<Self>, ec2::Ec2Error> {
        let config = inv.config();
        let (Some(name), Some(keep)) = (
            plan::family_of(image, config),
            config.keep_public_per_family,
        ) else {
            return Ok(None);
        };
        let client = run.client()?;
        let turn = inv.family_turn(&run.region, name).await;
        let members =
            ec2::list_owned_images_tagged(&client, &run.region, &config.family_tag_key, name)
                .await?;
        Ok(Some(Self {
            name: name.to_owned(),
            keep: usize::from(keep),
            members,
            _turn: turn,
        }))
    }

    /// The family's AMI `id` as the listing saw it.
    pub(crate) fn member(&self, id: &ImageId) -> Option<&Image> {
        self.members.iter().find(|m| &m.id == id)
    }

    /// Why `coming` is not made public, if it is older than the newest
    /// releases its family keeps, public or about to be made public (see
    /// [`overtaken`]). One reason for both, whichever of them got its turn
    /// first, so that a sweep's preview and its run say the same.
    pub(crate) fn supersedes(&self, coming: &Image, config: &Config) -> Option<String> {
        overtaken(&self.members, coming, self.keep, config).then(|| {
            format!(
                "not made public: {} newer releases of family {} are public or being made public in {} (the newest {} are kept)",
                self.keep, self.name, coming.region, self.keep
            )
        })
    }
}

/// After `published` became public: retires what its family no longer keeps
/// (`already` were retired by this run: a preview did not make them private).
pub(crate) async fn rotate(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    published: &Image,
    family: &Family,
    already: &[ImageId],
) -> Vec<ImageOutcome> {
    let config = inv.config();
    // The listing was read before `published` was public.
    let members: Vec<Image> = family
        .members
        .iter()
        .filter(|m| m.id != published.id && !already.contains(&m.id))
        .cloned()
        .chain(std::iter::once(published.clone()))
        .collect();
    let mut retired = Vec::new();
    // Never itself: the run that published it (or finishes its rotation)
    // goes on with it public; a release superseded meanwhile is the next
    // release's to retire.
    let victims = retirements(&members, family.keep, config)
        .into_iter()
        .filter(|v| v.id != published.id);
    for victim in victims {
        retired.push(retire(inv, run, victim, &published.id, &family.name).await);
    }
    retired
}

/// Before `coming` is made public in a region without quota room: retires
/// its family's oldest, if rotation allows. `None`: nothing to retire.
pub(crate) async fn make_room(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    coming: &Image,
    family: &Family,
) -> Option<ImageOutcome> {
    let victim = room_maker(&family.members, coming, family.keep, inv.config())?;
    info!(image_id = %coming.id, region = %run.region, retiring = %victim.id, "no room in the public AMI quota: retiring the family's oldest first");
    Some(retire(inv, run, victim, &coming.id, &family.name).await)
}

/// Makes `victim` private (and deprecated, and unprotected, as configured)
/// with status `retired`.
async fn retire(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    victim: &Image,
    replaced_by: &ImageId,
    family: &str,
) -> ImageOutcome {
    let config = inv.config();
    let region = &run.region;
    let mut outcome = ImageOutcome::new(victim.id.clone(), region.clone(), Action::Retired);
    if !inv.has_time_for(CALLS_FOR_A_WRITE + 2) {
        outcome.action = Action::Deferred;
        return outcome;
    }
    let client = match run.client() {
        Ok(client) => client,
        Err(e) => {
            record(&mut outcome, e);
            return outcome;
        }
    };
    let private = Step::MakePrivate {
        region: region.clone(),
        image_id: victim.id.clone(),
    };
    match inv
        .write(private, ec2::make_private(&client, region, &victim.id))
        .await
    {
        Ok(_) => inv.quotas.give_back(region).await,
        Err(e) => {
            record(&mut outcome, e);
            outcome.action = Action::Failed;
            return outcome;
        }
    }
    if config.deprecate_retired
        && let Some(at) = deprecate_now(inv.clock())
        && victim.deprecation_time.is_none_or(|d| d > at)
    {
        let step = Step::Deprecate {
            region: region.clone(),
            image_id: victim.id.clone(),
            at,
        };
        if let Err(e) = inv
            .write(
                step,
                ec2::enable_deprecation(&client, region, &victim.id, at),
            )
            .await
        {
            record(&mut outcome, e);
        }
    }
    unprotect(inv, run, &client, victim, &mut outcome).await;
    let keep = config.keep_public_per_family.unwrap_or_default();
    let reason = format!(
        "retired: {replaced_by} is a newer public AMI of family {family} in {region} (the newest {keep} are kept public)"
    );
    // Private now, so its entry no longer says the function keeps it
    // public (the sweep would otherwise take it for public by the
    // function's doing).
    if let Err(e) = inv
        .record_private(region, &victim.id, State::Retired, &reason)
        .await
    {
        record(&mut outcome, e);
    }
    // Private now: retired, whatever else failed (a deprecation or the
    // protection), so that nothing publishes it again.
    if !outcome.is_clean() {
        outcome.action = Action::Failed;
    }
    info!(image_id = %victim.id, region = %region, replaced_by = %replaced_by, "retired");
    inv.finish(run, victim, outcome, Status::Retired, reason)
        .await
}

/// Turns off the deregistration protection the function turned on (and
/// records that it did), before an AMI leaves the public.
pub(crate) async fn unprotect(
    inv: &Invocation<'_>,
    run: &RegionRun<'_>,
    client: &ec2::Client,
    image: &Image,
    outcome: &mut ImageOutcome,
) {
    let config = inv.config();
    if !plan::protected_by_function(image, config) {
        return;
    }
    let step = Step::Unprotect {
        region: run.region.clone(),
        image_id: image.id.clone(),
    };
    let call = ec2::set_deregistration_protection(client, &run.region, &image.id, false);
    match inv.write(step, call).await {
        Ok(_) => outcome
            .tags
            .push((config.status_tag(StatusTag::Protected), "false".into())),
        Err(e) => record(outcome, e),
    }
}

/// "Now" as a deprecation time EC2 takes: the first whole minute at least
/// 30 s ahead (EC2 keeps minutes and refuses a time in the past, and the
/// call may wait its turn in EC2's bucket first).
fn deprecate_now(now: OffsetDateTime) -> Option<OffsetDateTime> {
    let soonest = now.checked_add(Duration::seconds(30))?;
    let minute = soonest.replace_second(0).ok()?.replace_nanosecond(0).ok()?;
    if minute == soonest {
        Some(minute)
    } else {
        minute.checked_add(Duration::minutes(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::tests::eligible_image;
    use crate::model::ImageId;
    use time::macros::datetime;

    fn config() -> Config {
        Config::from_vars(&[("AWS_REGION", "us-east-1"), ("KEEP_PUBLIC_PER_FAMILY", "3")]).unwrap()
    }

    /// A public AMI of family "base" the function published, created on `day`.
    fn member(n: u8, day: u8, status: &str) -> Image {
        let mut image = eligible_image();
        image.id = ImageId::parse(&format!("ami-0f0f0f0f0f0f000{n:02}")).unwrap();
        image.public = true;
        image.creation_date =
            Some(datetime!(2026-11-01 00:00 UTC) + Duration::days(i64::from(day)));
        image.tags.insert("family".into(), "base".into());
        image.tags.insert("publish:status".into(), status.into());
        image
    }

    /// A new, private AMI of the family, newer than every `member`.
    fn newest() -> Image {
        let mut image = member(99, 30, "pending");
        image.public = false;
        image
    }

    fn ids(images: &[&Image]) -> Vec<String> {
        images.iter().map(|i| i.id.to_string()).collect()
    }

    #[test]
    fn the_newest_are_kept_and_the_older_ones_the_function_published_retired() {
        let members: Vec<Image> = (1..=5).map(|n| member(n, n, "public")).collect();
        assert_eq!(
            ids(&retirements(&members, 3, &config())),
            ["ami-0f0f0f0f0f0f00002", "ami-0f0f0f0f0f0f00001"]
        );
        assert!(retirements(&members, 5, &config()).is_empty());
    }

    #[test]
    fn amis_the_function_did_not_publish_or_private_ones_are_never_retired() {
        let mut members: Vec<Image> = (1..=4).map(|n| member(n, n, "public")).collect();
        members[0].tags.remove("publish:status"); // published by hand
        members[1].public = false; // private already
        let retired = retirements(&members, 1, &config());
        assert_eq!(ids(&retired), ["ami-0f0f0f0f0f0f00003"]);
    }

    #[test]
    fn the_last_public_ami_of_a_family_is_never_retired() {
        let members = vec![member(1, 1, "public")];
        assert!(retirements(&members, 1, &config()).is_empty());
        assert_eq!(
            room_maker(&members, &newest(), 1, &config()),
            None,
            "it would leave the family none"
        );
    }

    #[test]
    fn room_is_made_with_the_oldest_only_when_rotation_would_retire_it_anyway() {
        let members: Vec<Image> = (1..=3).map(|n| member(n, n, "public")).collect();
        assert_eq!(
            room_maker(&members, &newest(), 3, &config()).map(|i| i.id.to_string()),
            Some("ami-0f0f0f0f0f0f00001".into())
        );
        // Under the keep count, the new one would not push any out.
        assert_eq!(room_maker(&members, &newest(), 4, &config()), None);
        // The oldest was published by hand: the next oldest of the function's.
        let mut by_hand = members.clone();
        by_hand[0].tags.remove("publish:status");
        assert_eq!(
            room_maker(&by_hand, &newest(), 2, &config()).map(|i| i.id.to_string()),
            Some("ami-0f0f0f0f0f0f00002".into())
        );
    }

    #[test]
    fn an_older_ami_coming_late_never_pushes_out_a_newer_one() {
        let members: Vec<Image> = (2..=4).map(|n| member(n, n, "public")).collect();
        let mut late = member(1, 1, "pending");
        late.public = false;
        // Older than the 3 kept: made public, it would be retired at once.
        assert!(superseded(&members, &late, 3, &config()));
        assert_eq!(room_maker(&members, &late, 3, &config()), None);
        // Among the newest 3 once public (day 3 of 2..=4): the oldest makes
        // room, never one newer than it.
        let mut middle = member(9, 3, "pending");
        middle.public = false;
        middle.creation_date = Some(datetime!(2026-11-04 12:00 UTC));
        assert!(!superseded(&members, &middle, 3, &config()));
        assert_eq!(
            room_maker(&members, &middle, 3, &config()).map(|i| i.id.to_string()),
            Some("ami-0f0f0f0f0f0f00002".into())
        );
        assert_eq!(
            room_maker(&members, &middle, 2, &config()).map(|i| i.id.to_string()),
            Some("ami-0f0f0f0f0f0f00002".into()),
            "keeping 2, day 4 and the middle one stay"
        );
    }

    #[test]
    fn deprecating_now_is_the_first_whole_minute_at_least_30_s_ahead() {
        assert_eq!(
            deprecate_now(datetime!(2026-11-28 12:00:30 UTC)),
            Some(datetime!(2026-11-28 12:01 UTC))
        );
        assert_eq!(
            deprecate_now(datetime!(2026-11-28 12:00:31 UTC)),
            Some(datetime!(2026-11-28 12:02 UTC))
        );
        assert_eq!(
            deprecate_now(datetime!(2026-11-28 12:00:00 UTC)),
            Some(datetime!(2026-11-28 12:01 UTC))
        );
    }

    /// A family of `keep = 1`: day 1 and 2 retired, day 3 pulled (private).
    fn pulled_family() -> (Vec<Image>, Image) {
        let mut members: Vec<Image> = (1..=3).map(|d| member(d, d, "retired")).collect();
        for m in &mut members {
            m.public = false;
        }
        let mut pulled = members.pop().unwrap();
        pulled
            .tags
            .insert("publish:status".into(), "withdrawn".into());
        members.push(pulled.clone());
        (members, pulled)
    }

    fn keep_one() -> Config {
        Config::from_vars(&[("AWS_REGION", "us-east-1"), ("KEEP_PUBLIC_PER_FAMILY", "1")]).unwrap()
    }

    const NOW: OffsetDateTime = datetime!(2026-12-01 00:00 UTC);

    #[test]
    fn the_newest_retired_release_older_than_the_pulled_one_is_restored() {
        let (members, pulled) = pulled_family();
        assert_eq!(
            restorable(&members, &pulled, 1, &keep_one(), NOW).map(|i| i.id.to_string()),
            Some("ami-0f0f0f0f0f0f00002".into())
        );
    }

    #[test]
    fn nothing_is_restored_while_the_family_keeps_enough_public() {
        let (mut members, pulled) = pulled_family();
        members[0].public = true;
        members[0]
            .tags
            .insert("publish:status".into(), "public".into());
        assert_eq!(restorable(&members, &pulled, 1, &keep_one(), NOW), None);
        assert_eq!(
            restorable(&members, &pulled, 2, &keep_one(), NOW).map(|i| i.id.to_string()),
            Some("ami-0f0f0f0f0f0f00002".into()),
            "keeping 2, one public leaves room for the retired one"
        );
    }

    #[test]
    fn an_untagged_deprecated_or_newer_retired_release_is_not_restored() {
        let (members, pulled) = pulled_family();
        let only = |change: &dyn Fn(&mut Image)| {
            let mut members = members.clone();
            change(&mut members[1]);
            restorable(&members, &pulled, 1, &keep_one(), NOW).map(|i| i.id.to_string())
        };
        let day_1 = Some("ami-0f0f0f0f0f0f00001".to_owned());
        assert_eq!(only(&|m| drop(m.tags.remove("publish"))), day_1, "untagged");
        assert_eq!(
            only(&|m| m.deprecation_time = Some(NOW)),
            day_1,
            "deprecated by now"
        );
        assert_eq!(
            only(&|m| drop(m.tags.insert("publish:status".into(), "withdrawn".into()))),
            day_1,
            "not retired by rotation"
        );
        assert_eq!(
            only(&|m| m.creation_date = Some(datetime!(2026-11-10 00:00 UTC))),
            day_1,
            "released after the pulled one"
        );
    }

    #[test]
    fn a_release_newer_ones_about_to_be_public_would_retire_is_overtaken() {
        let config = keep_one();
        let mut members: Vec<Image> = (1..=3).map(|d| member(d, d, "public")).collect();
        for m in &mut members[1..] {
            m.public = false;
            m.tags.remove("publish:status");
        }
        let middle = members[1].clone();
        assert!(!superseded(&members, &middle, 1, &config));
        assert!(overtaken(&members, &middle, 1, &config), "day 3 is coming");
        assert!(!overtaken(&members, &members[2], 1, &config), "the newest");
        // A newer release that can't be made public (encrypted) overtakes
        // nothing, nor does one its owner rejected or held.
        for change in [
            |m: &mut Image| m.encrypted_devices = vec!["/dev/xvda".into()],
            |m: &mut Image| drop(m.tags.insert("publish:status".into(), "held".into())),
            |m: &mut Image| drop(m.tags.remove("publish")),
        ] {
            let mut members = members.clone();
            change(&mut members[2]);
            assert!(!overtaken(&members, &middle, 1, &config));
        }
    }
}
