//! What to do with one AMI, as a pure function of its facts, its region's
//! block public access state, the configuration and the time. The runner
//! (`publisher`) carries the decision out; `dry-run` style tests read it.

use time::{Duration, OffsetDateTime};

use crate::config::{Config, StatusTag};
use crate::eligibility::{self, Reason};
use crate::model::{BlockPublicAccess, Image, ImageState, RegionName};

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Not the function's to touch: not tagged for publishing, or failed,
    /// deregistered or disabled. Nothing is written.
    Skip { reason: String },
    /// Pending: its own `available` event (or the sweep) publishes it.
    Wait,
    /// It must stay private; the owner is told why on the AMI.
    Reject { reasons: Vec<Reason> },
    /// Eligible (or public already): bring it to the published state.
    Publish(Steps),
}

/// The changes a publish needs; each is absent when already in place, so a
/// second run does nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Steps {
    /// Set the deprecation time (before the AMI is made public: once public,
    /// it can only be moved earlier).
    pub deprecate_at: Option<OffsetDateTime>,
    /// Add the group `all` to the launch permission.
    pub make_public: bool,
    /// Regions the AMI must have a copy in (found or started).
    pub copy_to: Vec<RegionName>,
}

pub fn is_tagged(image: &Image, config: &Config) -> bool {
    image.tags.get(&config.publish_tag_key) == Some(&config.publish_tag_value)
}

/// Failed, deregistered and disabled AMIs are left alone.
fn is_terminal(state: &ImageState) -> bool {
    matches!(
        state,
        ImageState::Failed | ImageState::Deregistered | ImageState::Disabled
    )
}

/// Whether deciding needs the region's image block public access state:
/// only for a tagged AMI that is not public yet (turning BPA on does not
/// affect AMIs that are already public).
pub fn needs_bpa(image: &Image, config: &Config) -> bool {
    is_tagged(image, config) && !image.public && !is_terminal(&image.state)
}

/// A copy never fans out again: it carries the source tag.
pub fn is_copy(image: &Image, config: &Config) -> bool {
    image
        .tags
        .contains_key(&config.status_tag(StatusTag::Source))
}

pub fn decide(
    image: &Image,
    bpa: Option<&BlockPublicAccess>,
    config: &Config,
    now: OffsetDateTime,
) -> Decision {
    if !is_tagged(image, config) {
        return Decision::Skip {
            reason: format!(
                "not tagged {}={}",
                config.publish_tag_key, config.publish_tag_value
            ),
        };
    }
    if is_terminal(&image.state) {
        return Decision::Skip {
            reason: format!("state is {}", image.state.as_str()),
        };
    }
    if image.public && image.owned {
        // Public already: AWS checked eligibility when the owner shared it,
        // and BPA does not apply any more. Only the missing steps remain.
        // (Another account's public AMI falls through to the checks: it is
        // rejected as not owned, and never copied.)
        return Decision::Publish(Steps {
            deprecate_at: deprecation_change(image, config, now).unwrap_or(None),
            make_public: false,
            copy_to: copy_targets(image, config),
        });
    }

    let mut reasons = eligibility::check(image, bpa);
    let deprecate_at = match deprecation_change(image, config, now) {
        Ok(at) => at,
        Err(reason) => {
            reasons.push(reason);
            None
        }
    };
    let waiting_only = reasons
        == [Reason::NotAvailable {
            state: ImageState::Pending,
        }];
    if waiting_only {
        return Decision::Wait;
    }
    if !reasons.is_empty() {
        return Decision::Reject { reasons };
    }
    Decision::Publish(Steps {
        deprecate_at,
        make_public: true,
        copy_to: copy_targets(image, config),
    })
}

/// The deprecation time to set, if it must change: creation + the
/// configured days, rounded down to the minute (EC2 keeps minutes only, so
/// the next run sees the same value). An earlier existing time is kept.
fn deprecation_change(
    image: &Image,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, Reason> {
    let Some(days) = config.deprecate_after_days else {
        return Ok(None);
    };
    let created = image.creation_date.ok_or(Reason::UnknownCreationDate)?;
    let target = created
        .checked_add(Duration::days(i64::from(days)))
        .and_then(|t| t.replace_second(0).ok())
        .and_then(|t| t.replace_nanosecond(0).ok())
        .ok_or(Reason::UnknownCreationDate)?;
    let existing = image.deprecation_time.filter(|e| *e <= target);
    let effective = existing.unwrap_or(target);
    if effective <= now {
        // EC2 refuses a deprecation time in the past; publishing an AMI the
        // policy (or an earlier date already set) says is deprecated is not
        // what the owner wants.
        return Err(Reason::PastDeprecation { at: effective });
    }
    Ok(if existing.is_some() {
        None
    } else {
        Some(target)
    })
}

fn copy_targets(image: &Image, config: &Config) -> Vec<RegionName> {
    if is_copy(image, config) {
        return Vec::new();
    }
    config
        .target_regions
        .iter()
        .filter(|r| **r != image.region)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eligibility::tests::eligible_image;
    use crate::model::BpaManager;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_vars(&[&[("AWS_REGION", "us-east-1")], vars].concat()).unwrap()
    }

    fn region(name: &str) -> RegionName {
        RegionName::parse(name).unwrap()
    }

    const UNBLOCKED: Option<&BlockPublicAccess> = Some(&BlockPublicAccess::Unblocked);

    #[test]
    fn eligible_image_is_made_public_without_deprecation_by_default() {
        assert_eq!(
            decide(&eligible_image(), UNBLOCKED, &config(&[]), NOW),
            Decision::Publish(Steps {
                deprecate_at: None,
                make_public: true,
                copy_to: vec![]
            })
        );
    }

    #[test]
    fn untagged_or_wrongly_tagged_image_is_skipped() {
        let mut image = eligible_image();
        image.tags.clear();
        assert!(matches!(
            decide(&image, UNBLOCKED, &config(&[]), NOW),
            Decision::Skip { .. }
        ));
        image.tags.insert("publish".into(), "Public".into());
        assert!(matches!(
            decide(&image, UNBLOCKED, &config(&[]), NOW),
            Decision::Skip { .. }
        ));
        assert!(!needs_bpa(&image, &config(&[])));
    }

    #[test]
    fn custom_publish_tag_is_what_counts() {
        let c = config(&[("PUBLISH_TAG_KEY", "release"), ("PUBLISH_TAG_VALUE", "yes")]);
        assert!(matches!(
            decide(&eligible_image(), UNBLOCKED, &c, NOW),
            Decision::Skip { .. }
        ));
        let mut image = eligible_image();
        image.tags.insert("release".into(), "yes".into());
        assert!(matches!(
            decide(&image, UNBLOCKED, &c, NOW),
            Decision::Publish(_)
        ));
    }

    #[test]
    fn terminal_states_are_left_alone() {
        for state in [
            ImageState::Failed,
            ImageState::Deregistered,
            ImageState::Disabled,
        ] {
            let image = Image {
                state,
                ..eligible_image()
            };
            assert!(matches!(
                decide(&image, UNBLOCKED, &config(&[]), NOW),
                Decision::Skip { .. }
            ));
            assert!(!needs_bpa(&image, &config(&[])));
        }
    }

    #[test]
    fn pending_image_waits_but_pending_and_encrypted_is_rejected() {
        let pending = Image {
            state: ImageState::Pending,
            ..eligible_image()
        };
        assert_eq!(
            decide(&pending, UNBLOCKED, &config(&[]), NOW),
            Decision::Wait
        );
        let encrypted = Image {
            encrypted_devices: vec!["/dev/xvda".into()],
            ..pending
        };
        assert!(matches!(
            decide(&encrypted, UNBLOCKED, &config(&[]), NOW),
            Decision::Reject { reasons } if reasons.len() == 2
        ));
    }

    #[test]
    fn bpa_blocked_rejects() {
        let bpa = BlockPublicAccess::BlockNewSharing {
            managed_by: BpaManager::DeclarativePolicy,
        };
        assert_eq!(
            decide(&eligible_image(), Some(&bpa), &config(&[]), NOW),
            Decision::Reject {
                reasons: vec![Reason::BlockPublicAccess {
                    managed_by: BpaManager::DeclarativePolicy
                }]
            }
        );
    }

    #[test]
    fn already_public_image_needs_no_bpa_and_no_launch_permission_change() {
        let image = Image {
            public: true,
            ..eligible_image()
        };
        assert!(!needs_bpa(&image, &config(&[])));
        assert_eq!(
            decide(&image, None, &config(&[]), NOW),
            Decision::Publish(Steps {
                deprecate_at: None,
                make_public: false,
                copy_to: vec![]
            })
        );
    }

    #[test]
    fn deprecation_is_creation_plus_days_rounded_to_the_minute() {
        let image = Image {
            creation_date: Some(datetime!(2026-11-01 10:20:30.5 UTC)),
            ..eligible_image()
        };
        let Decision::Publish(steps) = decide(
            &image,
            UNBLOCKED,
            &config(&[("DEPRECATE_AFTER_DAYS", "365")]),
            NOW,
        ) else {
            panic!("should publish")
        };
        assert_eq!(steps.deprecate_at, Some(datetime!(2027-11-01 10:20 UTC)));
    }

    #[test]
    fn earlier_existing_deprecation_is_kept_and_later_one_is_moved_earlier() {
        let c = config(&[("DEPRECATE_AFTER_DAYS", "30")]);
        let earlier = Image {
            deprecation_time: Some(datetime!(2026-11-29 00:00 UTC)),
            ..eligible_image()
        };
        let Decision::Publish(steps) = decide(&earlier, UNBLOCKED, &c, NOW) else {
            panic!()
        };
        assert_eq!(steps.deprecate_at, None);
        let same = Image {
            deprecation_time: Some(datetime!(2026-12-01 00:00 UTC)),
            ..eligible_image()
        };
        let Decision::Publish(steps) = decide(&same, UNBLOCKED, &c, NOW) else {
            panic!()
        };
        assert_eq!(steps.deprecate_at, None, "a second run changes nothing");
        let later = Image {
            deprecation_time: Some(datetime!(2028-01-01 00:00 UTC)),
            public: true,
            ..eligible_image()
        };
        let Decision::Publish(steps) = decide(&later, None, &c, NOW) else {
            panic!()
        };
        assert_eq!(steps.deprecate_at, Some(datetime!(2026-12-01 00:00 UTC)));
    }

    #[test]
    fn deprecation_already_past_rejects_a_private_image() {
        let c = config(&[("DEPRECATE_AFTER_DAYS", "1")]);
        let old = Image {
            creation_date: Some(datetime!(2025-01-01 00:00 UTC)),
            ..eligible_image()
        };
        assert_eq!(
            decide(&old, UNBLOCKED, &c, NOW),
            Decision::Reject {
                reasons: vec![Reason::PastDeprecation {
                    at: datetime!(2025-01-02 00:00 UTC)
                }]
            }
        );
        let public = Image {
            public: true,
            ..old
        };
        assert!(matches!(
            decide(&public, None, &c, NOW),
            Decision::Publish(Steps {
                deprecate_at: None,
                ..
            })
        ));
    }

    #[test]
    fn an_earlier_deprecation_already_past_rejects_too() {
        let c = config(&[("DEPRECATE_AFTER_DAYS", "30")]);
        let image = Image {
            creation_date: Some(datetime!(2026-10-01 00:00 UTC)),
            deprecation_time: Some(datetime!(2026-10-11 00:00 UTC)),
            ..eligible_image()
        };
        assert_eq!(
            decide(&image, UNBLOCKED, &c, NOW),
            Decision::Reject {
                reasons: vec![Reason::PastDeprecation {
                    at: datetime!(2026-10-11 00:00 UTC)
                }]
            }
        );
    }

    #[test]
    fn another_accounts_public_ami_is_rejected_and_never_copied() {
        let c = config(&[("TARGET_REGIONS", "us-west-2")]);
        let image = Image {
            owned: false,
            owner_id: Some("137112412989".into()),
            public: true,
            ..eligible_image()
        };
        assert_eq!(
            decide(&image, UNBLOCKED, &c, NOW),
            Decision::Reject {
                reasons: vec![Reason::NotOwned {
                    owner_id: Some("137112412989".into())
                }]
            }
        );
    }

    #[test]
    fn unknown_creation_date_with_a_deprecation_policy_rejects() {
        let image = Image {
            creation_date: None,
            ..eligible_image()
        };
        let decision = decide(
            &image,
            UNBLOCKED,
            &config(&[("DEPRECATE_AFTER_DAYS", "10")]),
            NOW,
        );
        assert_eq!(
            decision,
            Decision::Reject {
                reasons: vec![Reason::UnknownCreationDate]
            }
        );
    }

    #[test]
    fn source_is_copied_to_every_target_but_its_own_region() {
        let c = config(&[("TARGET_REGIONS", "us-west-2,us-east-1,eu-west-1")]);
        let Decision::Publish(steps) = decide(&eligible_image(), UNBLOCKED, &c, NOW) else {
            panic!()
        };
        assert_eq!(
            steps.copy_to,
            vec![region("us-west-2"), region("eu-west-1")]
        );
    }

    #[test]
    fn a_copy_never_fans_out_again() {
        let c = config(&[("TARGET_REGIONS", "us-west-2,eu-west-1")]);
        let mut copy = eligible_image();
        copy.region = region("us-west-2");
        copy.tags.insert(
            "publish:source".into(),
            "us-east-1/ami-0a1b2c3d4e5f60009".into(),
        );
        assert!(is_copy(&copy, &c));
        let Decision::Publish(steps) = decide(&copy, UNBLOCKED, &c, NOW) else {
            panic!()
        };
        assert!(steps.copy_to.is_empty());
    }

    #[test]
    fn ineligible_source_is_not_copied() {
        let c = config(&[("TARGET_REGIONS", "us-west-2")]);
        let image = Image {
            product_codes: vec!["code".into()],
            ..eligible_image()
        };
        assert!(matches!(
            decide(&image, UNBLOCKED, &c, NOW),
            Decision::Reject { .. }
        ));
    }
}
