//! What to do with one AMI, as a pure function of its facts (and, for a
//! copy, its source's, read in the source's region), its region's block
//! public access state, the configuration, what the invocation asks and the
//! time. The runners (`publisher`, `copies`) carry the decision out; no
//! decision here needs a client, so every rule is tested without one.

use time::{Duration, OffsetDateTime};

use crate::config::{Config, ContentCheck, MAX_DEPRECATE_AFTER_DAYS, StatusTag};
use crate::content;
use crate::eligibility::{self, Reason, SourceProblem};
use crate::model::{BlockPublicAccess, Image, ImageState, Intent, RegionName, SourceRef, Status};

#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Nothing to do: not the function's to touch (untagged and never
    /// reported on, failed, deregistered or disabled), held, or settled.
    /// Nothing is written.
    Skip { reason: String },
    /// Pending: its own `available` event (or the sweep) publishes it.
    Wait,
    /// It must stay private; the owner is told why on the AMI.
    Reject { reasons: Vec<Reason> },
    /// Eligible (or public already): bring it to the published state.
    Publish(Steps),
    /// Its owner no longer asks for it (or asks for it to be private now):
    /// make it, and the copies that follow it, private.
    Withdraw(Withdrawal),
    /// The publish tag is gone but `UNPUBLISH_ON_UNTAG` is false: it stays
    /// public, and its status says so.
    LeavePublic,
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
    /// Target regions whose copy is looked after (a source's only): found,
    /// published once available, started when missing and `new_copies`.
    pub copy_to: Vec<RegionName>,
    /// Whether missing copies may be started: not for a source whose
    /// deprecation time has passed (a copy shares its source's).
    pub new_copies: bool,
}

/// A take-down.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdrawal {
    pub why: WithdrawReason,
    /// It is public now: remove the group `all`.
    pub make_private: bool,
    /// Target regions whose copy follows it (a source's take-down).
    pub copies_in: Vec<RegionName>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WithdrawReason {
    /// The publish tag (or its value) was removed.
    Untagged,
    /// An unpublish request (direct payload).
    Requested,
    /// A copy whose source no longer asks for it.
    Source {
        source: SourceRef,
        problem: SourceProblem,
    },
    /// Published by the function, now private past its deprecation time:
    /// not made public again (its copies follow).
    Expired { at: OffsetDateTime },
}

impl Withdrawal {
    /// `held` after an unpublish request (it stays private whatever its
    /// tags), `expired` past its deprecation time, `withdrawn` otherwise
    /// (tagging it again publishes it again).
    pub fn status(&self) -> Status {
        match self.why {
            WithdrawReason::Requested => Status::Held,
            WithdrawReason::Expired { .. } => Status::Expired,
            _ => Status::Withdrawn,
        }
    }
}

/// What is known of a copy's source when deciding about the copy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SourceFacts<'a> {
    /// Not a copy, or the decision does not need its source.
    NotNeeded,
    /// Looked for in the source's region and not found.
    Missing,
    Found(&'a Image),
}

/// Everything a decision reads.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub image: &'a Image,
    /// The image's region's block public access state, when [`needs_bpa`].
    pub bpa: Option<&'a BlockPublicAccess>,
    /// The copy's source, when [`source_needed`].
    pub source: SourceFacts<'a>,
    /// The content check's verdict, when [`needs_content_check`].
    pub content: Option<&'a content::Outcome>,
}

/// Whether deciding about the AMI needs the content check's verdict: a
/// source AMI (a copy has its source's content) that is private, tagged,
/// available, eligible as far as its own facts tell, and not kept private
/// by its status, so that it may be made public now. Copies and public
/// AMIs are never read.
pub fn needs_content_check(
    image: &Image,
    config: &Config,
    intent: Intent,
    now: OffsetDateTime,
) -> bool {
    let kept_private = match status_of(image, config) {
        Some(Status::Held) => true,
        Some(Status::Retired) => intent != Intent::Restore,
        _ => false,
    };
    config.content_check != ContentCheck::Off
        && matches!(intent, Intent::Reconcile | Intent::Restore)
        && !image.public
        && !is_copy(image, config)
        && is_tagged(image, config)
        && !kept_private
        && expired(image, status_of(image, config), now).is_none()
        && image.deprecation_time.is_none_or(|at| at > now)
        && eligibility::check(image, None).is_empty()
}

/// What the content check's verdict means for making the AMI public, with
/// the owner's acknowledgement (`publish-allow`) applied: the reasons to
/// keep it private (none under `CONTENT_CHECK=report`), and the verdict
/// as reported.
pub fn judge_content(
    image: &Image,
    verdict: Option<&content::Outcome>,
    config: &Config,
) -> (Vec<Reason>, Option<content::Outcome>) {
    if config.content_check == ContentCheck::Off || is_copy(image, config) {
        return (Vec::new(), None);
    }
    let Some(verdict) = verdict else {
        return (vec![Reason::ContentNotChecked], None);
    };
    let allow_key = config.allow_tag_key();
    let acknowledged = match image
        .tags
        .get(&allow_key)
        .map(|v| content::parse_acknowledged(v))
    {
        None => Default::default(),
        Some(Ok(kinds)) => kinds,
        Some(Err(unknown)) => {
            let reason = Reason::UnknownAcknowledged {
                key: allow_key,
                names: unknown.0,
            };
            return (vec![reason], Some(verdict.clone()));
        }
    };
    let verdict = verdict.clone().acknowledged(&acknowledged);
    let reasons = match (&verdict, config.content_check) {
        (_, ContentCheck::Report | ContentCheck::Off) => Vec::new(),
        (content::Outcome::Read { findings, .. }, _) if !findings.is_empty() => {
            vec![Reason::Content {
                summary: content::summary(findings, CONTENT_SUMMARY_CHARS),
                allow_key,
            }]
        }
        (content::Outcome::Unreadable { reason }, _) if !config.publish_unreadable => {
            vec![Reason::ContentUnreadable {
                reason: reason.clone(),
            }]
        }
        _ => Vec::new(),
    };
    (reasons, Some(verdict))
}

/// The most characters of a content summary in a reason: the reason tag
/// holds 256 with the words around it.
const CONTENT_SUMMARY_CHARS: usize = 150;

/// The `publish:content` tag's value for a verdict (as judged, with the
/// owner's acknowledgement applied; `acknowledged` when findings were
/// acknowledged away).
pub fn content_tag(raw: &content::Outcome, judged: &content::Outcome) -> &'static str {
    match judged {
        content::Outcome::Unreadable { .. } => "unreadable",
        content::Outcome::Read { findings, .. } if !findings.is_empty() => "findings",
        _ if !raw.findings().is_empty() => "acknowledged",
        _ => "clean",
    }
}

pub fn is_tagged(image: &Image, config: &Config) -> bool {
    image.tags.get(&config.publish_tag_key) == Some(&config.publish_tag_value)
}

/// The status the function last wrote on the AMI.
pub fn status_of(image: &Image, config: &Config) -> Option<Status> {
    image
        .tags
        .get(&config.status_tag(StatusTag::Status))
        .and_then(|s| Status::parse(s))
}

/// Public, and its status says the function made it so. Only such an AMI
/// is ever made private because its tag (or its source's) was removed.
pub fn made_public_by_function(image: &Image, config: &Config) -> bool {
    image.public
        && matches!(
            status_of(image, config),
            Some(Status::Public | Status::Copying | Status::Error)
        )
}

/// Whether an unpublish request may act on the AMI: public by the
/// function's doing (or held already), or private with a status of the
/// function's (a hold on what it took down, or has not published yet).
/// Never a public AMI the function did not make public, nor an AMI it never
/// reported on: an unpublish request is no way to take down anything else.
pub fn published_by_function(image: &Image, config: &Config) -> bool {
    let status = status_of(image, config);
    if image.public {
        made_public_by_function(image, config) || status == Some(Status::Held)
    } else {
        status.is_some()
    }
}

/// When a tagged AMI the function published became outdated: private now,
/// its status still the function's public one, its deprecation time past.
fn expired(image: &Image, status: Option<Status>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let was_public = matches!(
        status,
        Some(Status::Public | Status::Copying | Status::Error | Status::Expired)
    );
    let at = image.deprecation_time.filter(|at| *at <= now)?;
    (was_public && !image.public && image.owned).then_some(at)
}

/// Whether the function should turn the AMI's deregistration protection on:
/// it is public (or about to be), `PROTECT_PUBLIC` is on, and it is not
/// protected yet.
pub fn needs_protection(image: &Image, config: &Config) -> bool {
    config.protect_public && image.public && image.owned && !image.deregistration_protected
}

/// Whether the AMI's deregistration protection is on because the function
/// turned it on (its marker tag says so): only that is ever turned off.
pub fn protected_by_function(image: &Image, config: &Config) -> bool {
    image.deregistration_protected
        && image
            .tags
            .get(&config.status_tag(StatusTag::Protected))
            .is_some_and(|v| v == "true")
}

/// When the AMI's release was made: a source's creation date, a copy's
/// source's (recorded on the copy when it was made), else its own.
pub fn release_date(image: &Image, config: &Config) -> Option<OffsetDateTime> {
    image
        .tags
        .get(&config.status_tag(StatusTag::SourceCreated))
        .and_then(|t| crate::model::parse_time(t))
        .or(image.creation_date)
}

/// The AMI's family (the value of `FAMILY_TAG_KEY`), when rotation is on.
pub fn family_of<'a>(image: &'a Image, config: &Config) -> Option<&'a str> {
    config.keep_public_per_family?;
    image
        .tags
        .get(&config.family_tag_key)
        .map(String::as_str)
        .filter(|f| !f.is_empty())
}

/// Failed, deregistered and disabled AMIs are left alone.
fn is_terminal(state: &ImageState) -> bool {
    matches!(
        state,
        ImageState::Failed | ImageState::Deregistered | ImageState::Disabled
    )
}

/// A copy carries the provenance tag the function writes when it starts it,
/// and never fans out again.
pub fn is_copy(image: &Image, config: &Config) -> bool {
    image
        .tags
        .contains_key(&config.status_tag(StatusTag::Source))
}

/// The copy's source, from its provenance tag (`None`: not a copy, or a tag
/// the function did not write).
pub fn source_of(image: &Image, config: &Config) -> Option<SourceRef> {
    let tag = image.tags.get(&config.status_tag(StatusTag::Source))?;
    SourceRef::parse(tag).ok()
}

/// Whether deciding needs the region's image block public access state:
/// only for a tagged AMI that is not public yet (turning BPA on does not
/// affect AMIs that are already public).
pub fn needs_bpa(image: &Image, config: &Config, intent: Intent) -> bool {
    let kept_private = match status_of(image, config) {
        Some(Status::Held) => true,
        // A restore makes a retired AMI public again: BPA applies.
        Some(Status::Retired) => intent != Intent::Restore,
        _ => false,
    };
    is_tagged(image, config) && !image.public && !is_terminal(&image.state) && !kept_private
}

/// The source a decision about this AMI must read first: a tagged copy's
/// (whether it may be, or stay, public depends on it).
pub fn source_needed(image: &Image, config: &Config, intent: Intent) -> Option<SourceRef> {
    let wanted = matches!(intent, Intent::Reconcile | Intent::Restore)
        && is_tagged(image, config)
        && !is_terminal(&image.state)
        && status_of(image, config) != Some(Status::Held);
    if wanted {
        source_of(image, config)
    } else {
        None
    }
}

/// Whether a sweep can leave the AMI alone without a call: [`decide`]
/// would change nothing.
pub fn is_settled(image: &Image, config: &Config) -> bool {
    let status = status_of(image, config);
    if matches!(
        status,
        Some(Status::Held | Status::Retired | Status::Expired)
    ) {
        // A held AMI's copies are the sweep's to check (CopyIndex::settles).
        return !image.public;
    }
    if is_tagged(image, config) {
        return image.public && status == Some(Status::Public);
    }
    // Untagged: settled once withdrawn, the function's protection off.
    // (Left public when UNPUBLISH_ON_UNTAG is false, it is reconciled again,
    // at no cost once its status says so.)
    status.is_none() || (status == Some(Status::Withdrawn) && !protected_by_function(image, config))
}

pub fn decide(facts: Facts<'_>, intent: Intent, config: &Config, now: OffsetDateTime) -> Decision {
    let image = facts.image;
    if matches!(intent, Intent::Unpublish | Intent::FollowUnpublish) {
        return unpublish(image, intent, config);
    }
    if is_terminal(&image.state) {
        return Decision::Skip {
            reason: format!("state is {}", image.state.as_str()),
        };
    }
    let status = status_of(image, config);
    if status == Some(Status::Retired) && !image.public && intent != Intent::Restore {
        return Decision::Skip {
            reason: format!(
                "retired: newer public AMIs of its family replaced it; delete the tag {} to let it be published again",
                config.status_tag(StatusTag::Status)
            ),
        };
    }
    if status == Some(Status::Held) {
        // The owner asked for it to be private: it stays so, with its
        // copies, whatever its tags, until the owner deletes the status tag.
        return Decision::Withdraw(Withdrawal {
            why: WithdrawReason::Requested,
            make_private: image.public,
            copies_in: copy_targets(image, config),
        });
    }
    if !is_tagged(image, config) {
        return untagged(image, status, config);
    }
    if let Some(at) = expired(image, status, now) {
        // Not fought: the function never makes it public again.
        return Decision::Withdraw(Withdrawal {
            why: WithdrawReason::Expired { at },
            make_private: false,
            copies_in: copy_targets(image, config),
        });
    }
    if is_copy(image, config) {
        return decide_copy(facts, config, now);
    }
    if image.public && image.owned {
        // Public already: AWS checked eligibility when it was shared, and
        // BPA does not apply any more. Only the missing steps remain, and no
        // new copy of a source whose deprecation time has passed.
        // (Another account's public AMI falls through to the checks: it is
        // rejected as not owned, and never copied.)
        let change = deprecation_change(image, config, now);
        let deprecated = change.is_err() || image.deprecation_time.is_some_and(|d| d <= now);
        return Decision::Publish(Steps {
            deprecate_at: change.unwrap_or(None),
            make_public: false,
            copy_to: copy_targets(image, config),
            new_copies: !deprecated,
        });
    }

    let mut reasons = eligibility::check(image, facts.bpa);
    let deprecate_at = match deprecation_change(image, config, now) {
        Ok(at) => at,
        Err(reason) => {
            reasons.push(reason);
            None
        }
    };
    if reasons.is_empty() {
        // Last: what is inside matters only for an AMI that may be public
        // otherwise (and only such an AMI is read).
        reasons = judge_content(image, facts.content, config).0;
    }
    match settle(reasons) {
        Some(decision) => decision,
        None => Decision::Publish(Steps {
            deprecate_at,
            make_public: true,
            copy_to: copy_targets(image, config),
            new_copies: true,
        }),
    }
}

/// An unpublish request (or a copy's share of its source's): the AMI and
/// its copies private now, whatever their tags, if the function published
/// them.
fn unpublish(image: &Image, intent: Intent, config: &Config) -> Decision {
    if !image.owned {
        return Decision::Skip {
            reason: "not owned by this account: only its owner can make it private".into(),
        };
    }
    if intent == Intent::Unpublish && !published_by_function(image, config) {
        return Decision::Skip {
            reason: format!(
                "unpublish refused: the function did not publish it (it has no {} of the function's, or it is public by another hand); to keep it from being published remove the tag {}, to make it private remove the launch permission of group all yourself",
                config.status_tag(StatusTag::Status),
                config.publish_tag_key
            ),
        };
    }
    let why = match (intent, source_of(image, config)) {
        (Intent::FollowUnpublish, Some(source)) => WithdrawReason::Source {
            source,
            problem: SourceProblem::Held,
        },
        _ => WithdrawReason::Requested,
    };
    Decision::Withdraw(Withdrawal {
        why,
        make_private: image.public,
        copies_in: copy_targets(image, config),
    })
}

/// `Wait` when being pending is the only reason, `Reject` when there is any
/// other, `None` when there is none.
fn settle(reasons: Vec<Reason>) -> Option<Decision> {
    let waiting_only = reasons
        == [Reason::NotAvailable {
            state: ImageState::Pending,
        }];
    if waiting_only {
        Some(Decision::Wait)
    } else if reasons.is_empty() {
        None
    } else {
        Some(Decision::Reject { reasons })
    }
}

/// An AMI without the publish tag and value.
fn untagged(image: &Image, status: Option<Status>, config: &Config) -> Decision {
    let not_tagged = || Decision::Skip {
        reason: format!(
            "not tagged {}={}",
            config.publish_tag_key, config.publish_tag_value
        ),
    };
    if status.is_none() {
        // Never reported on: the function did not make it public and never
        // makes it private.
        return not_tagged();
    }
    if made_public_by_function(image, config) {
        return if config.unpublish_on_untag {
            Decision::Withdraw(Withdrawal {
                why: WithdrawReason::Untagged,
                make_private: true,
                copies_in: copy_targets(image, config),
            })
        } else {
            Decision::LeavePublic
        };
    }
    let withdrawn_and_unprotected =
        status == Some(Status::Withdrawn) && !protected_by_function(image, config);
    if image.public || withdrawn_and_unprotected || !image.owned {
        // Public, but not by the function's doing; or withdrawn already.
        return not_tagged();
    }
    // Private with a status that no longer holds (rejected, pending, ...):
    // say it was withdrawn, and have any copy follow.
    Decision::Withdraw(Withdrawal {
        why: WithdrawReason::Untagged,
        make_private: false,
        copies_in: copy_targets(image, config),
    })
}

/// A tagged copy: public only while its source, read in the source's
/// region, is owned, tagged for publishing and public; deprecated when its
/// source is, never later.
fn decide_copy(facts: Facts<'_>, config: &Config, now: OffsetDateTime) -> Decision {
    let image = facts.image;
    let Some(source) = source_of(image, config) else {
        return Decision::Reject {
            reasons: vec![Reason::MalformedSource {
                tag: config.status_tag(StatusTag::Source),
            }],
        };
    };
    let checked = match facts.source {
        SourceFacts::Found(found) => source_problem(found, config, now),
        SourceFacts::Missing | SourceFacts::NotNeeded => Err(SourceProblem::NotFound),
    };
    let deprecate_to = match checked {
        Ok(at) => at,
        Err(problem) => return copy_without_source(image, source, problem, config),
    };
    let deprecate_at = match image.deprecation_time {
        Some(existing) if existing <= deprecate_to => None,
        _ => Some(deprecate_to),
    };
    if image.public && image.owned {
        return Decision::Publish(Steps {
            deprecate_at,
            make_public: false,
            copy_to: Vec::new(),
            new_copies: false,
        });
    }
    let mut reasons = eligibility::check(image, facts.bpa);
    if let Some(at) = image.deprecation_time.filter(|at| *at <= now) {
        reasons.push(Reason::Deprecated { at });
    }
    match settle(reasons) {
        Some(decision) => decision,
        None => Decision::Publish(Steps {
            deprecate_at,
            make_public: true,
            copy_to: Vec::new(),
            new_copies: false,
        }),
    }
}

/// A copy whose source does not vouch for it.
fn copy_without_source(
    image: &Image,
    source: SourceRef,
    problem: SourceProblem,
    config: &Config,
) -> Decision {
    let owner_stopped_asking = matches!(
        problem,
        SourceProblem::NotTagged { .. } | SourceProblem::Held
    );
    if image.public {
        if made_public_by_function(image, config) && owner_stopped_asking {
            if config.unpublish_on_untag || problem == SourceProblem::Held {
                return Decision::Withdraw(Withdrawal {
                    why: WithdrawReason::Source { source, problem },
                    make_private: true,
                    copies_in: Vec::new(),
                });
            }
            return Decision::LeavePublic;
        }
        // Public already, and nothing says its owner wants it private (its
        // source was deregistered, or deprecated): left as it is.
        return Decision::Skip {
            reason: format!("public; its source {source} {problem}: left as it is"),
        };
    }
    if status_of(image, config) == Some(Status::Withdrawn) {
        return Decision::Skip {
            reason: "withdrawn with its source".into(),
        };
    }
    let mut reasons = vec![Reason::Source { source, problem }];
    reasons.extend(
        eligibility::check(image, None)
            .into_iter()
            .filter(|r| !matches!(r, Reason::NotAvailable { .. })),
    );
    Decision::Reject { reasons }
}

/// Whether a copy's source, as read, still vouches for its copies (owned,
/// tagged, public, not held, not deprecated).
pub fn vouches_for_copies(
    source: &Image,
    config: &Config,
    now: OffsetDateTime,
) -> Result<(), SourceProblem> {
    source_problem(source, config, now).map(|_| ())
}

/// Whether a copy's source vouches for it; if it does, the deprecation time
/// its copies share.
fn source_problem(
    source: &Image,
    config: &Config,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, SourceProblem> {
    if !source.owned {
        return Err(SourceProblem::NotOwned);
    }
    if status_of(source, config) == Some(Status::Held) {
        return Err(SourceProblem::Held);
    }
    if !is_tagged(source, config) {
        return Err(SourceProblem::NotTagged {
            key: config.publish_tag_key.clone(),
            value: config.publish_tag_value.clone(),
        });
    }
    if !source.public {
        return Err(SourceProblem::NotPublic);
    }
    let at = copies_deprecate_at(source, config).ok_or(SourceProblem::NotFound)?;
    if at <= now {
        return Err(SourceProblem::Deprecated { at });
    }
    Ok(at)
}

/// The deprecation time of a public source's copies: the source's own, or
/// what the policy or AWS's default will give it, whichever is earliest,
/// rounded down to the minute (EC2 rounds seconds to the nearest minute,
/// which could make a copy outlive its source by 30 seconds).
pub(crate) fn copies_deprecate_at(source: &Image, config: &Config) -> Option<OffsetDateTime> {
    let created = source.creation_date;
    let policy = config
        .deprecate_after_days
        .and_then(|days| created?.checked_add(Duration::days(i64::from(days))));
    let aws_default =
        created.and_then(|c| c.checked_add(Duration::days(i64::from(MAX_DEPRECATE_AFTER_DAYS))));
    [source.deprecation_time, policy]
        .into_iter()
        .flatten()
        .min()
        .or(aws_default)
        .and_then(floor_to_minute)
}

fn floor_to_minute(at: OffsetDateTime) -> Option<OffsetDateTime> {
    at.replace_second(0).ok()?.replace_nanosecond(0).ok()
}

/// The deprecation time to set, if it must change: creation + the
/// configured days, rounded down to the minute (EC2 keeps minutes only, so
/// the next run sees the same value). An earlier existing time is kept.
fn deprecation_change(
    image: &Image,
    config: &Config,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, Reason> {
    let deprecated = image.deprecation_time.filter(|at| *at <= now);
    let Some(days) = config.deprecate_after_days else {
        return match deprecated {
            Some(at) => Err(Reason::Deprecated { at }),
            None => Ok(None),
        };
    };
    let created = image.creation_date.ok_or(Reason::UnknownCreationDate)?;
    let target = created
        .checked_add(Duration::days(i64::from(days)))
        .and_then(floor_to_minute)
        .ok_or(Reason::UnknownCreationDate)?;
    let existing = image.deprecation_time.filter(|e| *e <= target);
    if let Some(at) = existing.and(deprecated) {
        return Err(Reason::Deprecated { at });
    }
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

/// The regions a source's copies live in; none for a copy.
pub fn copy_targets(image: &Image, config: &Config) -> Vec<RegionName> {
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
    use crate::model::{BpaManager, ImageId};
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-28 12:00 UTC);
    const SOURCE_ID: &str = "ami-0a1b2c3d4e5f60001";
    const COPY_ID: &str = "ami-0c0c0c0c0c0c00001";

    /// The configuration of `vars`, the content check off unless they
    /// turn it on (its own tests do).
    fn config(vars: &[(&str, &str)]) -> Config {
        let base = [("AWS_REGION", "us-east-1"), ("CONTENT_CHECK", "off")];
        Config::from_vars(&[&base[..], vars].concat()).unwrap()
    }

    fn region(name: &str) -> RegionName {
        RegionName::parse(name).unwrap()
    }

    const UNBLOCKED: Option<&BlockPublicAccess> = Some(&BlockPublicAccess::Unblocked);

    /// Reconciles `image` (not a copy) with BPA off.
    fn decide_image(image: &Image, c: &Config) -> Decision {
        let facts = Facts {
            image,
            bpa: UNBLOCKED,
            source: SourceFacts::NotNeeded,
            content: None,
        };
        decide(facts, Intent::Reconcile, c, NOW)
    }

    fn decide_copy_of(copy: &Image, source: SourceFacts<'_>, c: &Config) -> Decision {
        let facts = Facts {
            image: copy,
            bpa: UNBLOCKED,
            source,
            content: None,
        };
        decide(facts, Intent::Reconcile, c, NOW)
    }

    fn with_tags(mut image: Image, tags: &[(&str, &str)]) -> Image {
        for (k, v) in tags {
            image.tags.insert((*k).into(), (*v).into());
        }
        image
    }

    fn untag(mut image: Image) -> Image {
        image.tags.remove("publish");
        image
    }

    /// A source made public by the function, deprecated by AWS's default.
    fn public_source() -> Image {
        Image {
            public: true,
            deprecation_time: Some(datetime!(2028-11-01 00:00:30 UTC)),
            ..with_tags(eligible_image(), &[("publish:status", "public")])
        }
    }

    /// A copy of `public_source()` in us-west-2, available and private.
    fn copy() -> Image {
        Image {
            id: ImageId::parse(COPY_ID).unwrap(),
            region: region("us-west-2"),
            creation_date: Some(datetime!(2026-11-20 00:00 UTC)),
            ..with_tags(
                eligible_image(),
                &[("publish:source", &format!("us-east-1/{SOURCE_ID}"))],
            )
        }
    }

    fn public_copy() -> Image {
        Image {
            public: true,
            deprecation_time: Some(datetime!(2028-11-01 00:00 UTC)),
            ..with_tags(copy(), &[("publish:status", "public")])
        }
    }

    fn publish(deprecate_at: Option<OffsetDateTime>, make_public: bool) -> Decision {
        Decision::Publish(Steps {
            deprecate_at,
            make_public,
            copy_to: vec![],
            new_copies: true,
        })
    }

    #[test]
    fn eligible_image_is_made_public_without_deprecation_by_default() {
        assert_eq!(
            decide_image(&eligible_image(), &config(&[])),
            publish(None, true)
        );
    }

    #[test]
    fn untagged_or_wrongly_tagged_image_is_skipped() {
        let mut image = eligible_image();
        image.tags.clear();
        assert!(matches!(
            decide_image(&image, &config(&[])),
            Decision::Skip { .. }
        ));
        image.tags.insert("publish".into(), "Public".into());
        assert!(matches!(
            decide_image(&image, &config(&[])),
            Decision::Skip { .. }
        ));
        assert!(!needs_bpa(&image, &config(&[]), Intent::Reconcile));
    }

    #[test]
    fn custom_publish_tag_is_what_counts() {
        let c = config(&[("PUBLISH_TAG_KEY", "release"), ("PUBLISH_TAG_VALUE", "yes")]);
        assert!(matches!(
            decide_image(&eligible_image(), &c),
            Decision::Skip { .. }
        ));
        let image = with_tags(eligible_image(), &[("release", "yes")]);
        assert!(matches!(decide_image(&image, &c), Decision::Publish(_)));
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
                decide_image(&image, &config(&[])),
                Decision::Skip { .. }
            ));
            assert!(!needs_bpa(&image, &config(&[]), Intent::Reconcile));
        }
    }

    #[test]
    fn pending_image_waits_but_pending_and_encrypted_is_rejected() {
        let pending = Image {
            state: ImageState::Pending,
            ..eligible_image()
        };
        assert_eq!(decide_image(&pending, &config(&[])), Decision::Wait);
        let encrypted = Image {
            encrypted_devices: vec!["/dev/xvda".into()],
            ..pending
        };
        assert!(matches!(
            decide_image(&encrypted, &config(&[])),
            Decision::Reject { reasons } if reasons.len() == 2
        ));
    }

    #[test]
    fn bpa_blocked_rejects() {
        let bpa = BlockPublicAccess::BlockNewSharing {
            managed_by: BpaManager::DeclarativePolicy,
        };
        let facts = Facts {
            image: &eligible_image(),
            bpa: Some(&bpa),
            source: SourceFacts::NotNeeded,
            content: None,
        };
        assert_eq!(
            decide(facts, Intent::Reconcile, &config(&[]), NOW),
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
        assert!(!needs_bpa(&image, &config(&[]), Intent::Reconcile));
        let facts = Facts {
            image: &image,
            bpa: None,
            source: SourceFacts::NotNeeded,
            content: None,
        };
        assert_eq!(
            decide(facts, Intent::Reconcile, &config(&[]), NOW),
            publish(None, false)
        );
    }

    #[test]
    fn deprecation_is_creation_plus_days_rounded_to_the_minute() {
        let image = Image {
            creation_date: Some(datetime!(2026-11-01 10:20:30.5 UTC)),
            ..eligible_image()
        };
        let Decision::Publish(steps) =
            decide_image(&image, &config(&[("DEPRECATE_AFTER_DAYS", "365")]))
        else {
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
        assert_eq!(decide_image(&earlier, &c), publish(None, true));
        let same = Image {
            deprecation_time: Some(datetime!(2026-12-01 00:00 UTC)),
            ..eligible_image()
        };
        assert_eq!(
            decide_image(&same, &c),
            publish(None, true),
            "a second run changes nothing"
        );
        let later = Image {
            deprecation_time: Some(datetime!(2028-01-01 00:00 UTC)),
            public: true,
            ..eligible_image()
        };
        assert_eq!(
            decide_image(&later, &c),
            publish(Some(datetime!(2026-12-01 00:00 UTC)), false)
        );
    }

    #[test]
    fn deprecation_already_past_rejects_a_private_image() {
        let c = config(&[("DEPRECATE_AFTER_DAYS", "1")]);
        let old = Image {
            creation_date: Some(datetime!(2025-01-01 00:00 UTC)),
            ..eligible_image()
        };
        assert_eq!(
            decide_image(&old, &c),
            Decision::Reject {
                reasons: vec![Reason::PastDeprecation {
                    at: datetime!(2025-01-02 00:00 UTC)
                }]
            }
        );
    }

    #[test]
    fn a_public_source_past_its_deprecation_gets_no_new_copies() {
        let c = config(&[
            ("DEPRECATE_AFTER_DAYS", "1"),
            ("TARGET_REGIONS", "us-west-2"),
        ]);
        let old = Image {
            creation_date: Some(datetime!(2025-01-01 00:00 UTC)),
            public: true,
            ..eligible_image()
        };
        assert_eq!(
            decide_image(&old, &c),
            Decision::Publish(Steps {
                deprecate_at: None,
                make_public: false,
                copy_to: vec![region("us-west-2")],
                new_copies: false,
            }),
            "its existing copies are still looked after, no new one is started"
        );
        // The same without a policy: the date AWS (or the owner) set has passed.
        let deprecated = Image {
            deprecation_time: Some(datetime!(2026-11-01 00:00 UTC)),
            ..old
        };
        let c = config(&[("TARGET_REGIONS", "us-west-2")]);
        assert!(matches!(
            decide_image(&deprecated, &c),
            Decision::Publish(Steps {
                new_copies: false,
                ..
            })
        ));
        assert!(matches!(
            decide_image(&public_source(), &c),
            Decision::Publish(Steps {
                new_copies: true,
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
            decide_image(&image, &c),
            Decision::Reject {
                reasons: vec![Reason::Deprecated {
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
            decide_image(&image, &c),
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
        assert_eq!(
            decide_image(&image, &config(&[("DEPRECATE_AFTER_DAYS", "10")])),
            Decision::Reject {
                reasons: vec![Reason::UnknownCreationDate]
            }
        );
    }

    #[test]
    fn source_is_copied_to_every_target_but_its_own_region() {
        let c = config(&[("TARGET_REGIONS", "us-west-2,us-east-1,eu-west-1")]);
        let Decision::Publish(steps) = decide_image(&eligible_image(), &c) else {
            panic!()
        };
        assert_eq!(
            steps.copy_to,
            vec![region("us-west-2"), region("eu-west-1")]
        );
    }

    #[test]
    fn ineligible_source_is_not_copied() {
        let c = config(&[("TARGET_REGIONS", "us-west-2")]);
        let image = Image {
            product_codes: vec!["code".into()],
            ..eligible_image()
        };
        assert!(matches!(decide_image(&image, &c), Decision::Reject { .. }));
    }

    // ---- copies follow their source ----

    #[test]
    fn a_copy_of_a_tagged_public_source_is_published_with_the_sources_deprecation() {
        let c = config(&[("TARGET_REGIONS", "us-west-2,eu-west-1")]);
        let source = public_source();
        assert!(is_copy(&copy(), &c));
        assert_eq!(
            source_needed(&copy(), &c, Intent::Reconcile).map(|s| s.to_string()),
            Some(format!("us-east-1/{SOURCE_ID}"))
        );
        assert_eq!(
            decide_copy_of(&copy(), SourceFacts::Found(&source), &c),
            Decision::Publish(Steps {
                // The source's time, rounded down: never later than it.
                deprecate_at: Some(datetime!(2028-11-01 00:00 UTC)),
                make_public: true,
                copy_to: vec![],
                new_copies: false,
            }),
            "a copy never fans out again"
        );
    }

    #[test]
    fn a_copy_deprecated_later_than_its_source_is_moved_to_the_sources_date() {
        let c = config(&[("DEPRECATE_AFTER_DAYS", "365")]);
        let source = Image {
            deprecation_time: None,
            ..public_source()
        };
        // The source's policy date: 2026-11-01 + 365 days.
        let later = Image {
            deprecation_time: Some(datetime!(2028-11-20 00:00 UTC)),
            ..public_copy()
        };
        assert_eq!(
            decide_copy_of(&later, SourceFacts::Found(&source), &c),
            Decision::Publish(Steps {
                deprecate_at: Some(datetime!(2027-11-01 00:00 UTC)),
                make_public: false,
                copy_to: vec![],
                new_copies: false,
            })
        );
        let earlier = Image {
            deprecation_time: Some(datetime!(2027-06-01 00:00 UTC)),
            ..public_copy()
        };
        assert!(matches!(
            decide_copy_of(&earlier, SourceFacts::Found(&source), &c),
            Decision::Publish(Steps {
                deprecate_at: None,
                ..
            })
        ));
    }

    #[test]
    fn a_copy_of_a_withdrawn_source_stays_private_and_says_why() {
        let c = config(&[]);
        let withdrawn = untag(with_tags(
            public_source(),
            &[("publish:status", "withdrawn")],
        ));
        let Decision::Reject { reasons } =
            decide_copy_of(&copy(), SourceFacts::Found(&withdrawn), &c)
        else {
            panic!("a copy of an untagged source must stay private")
        };
        assert_eq!(
            reasons[0].to_string(),
            format!("its source us-east-1/{SOURCE_ID} is not tagged publish=public")
        );
    }

    #[test]
    fn a_copy_is_not_published_unless_its_source_is_owned_tagged_and_public() {
        let c = config(&[]);
        let private = Image {
            public: false,
            ..public_source()
        };
        let foreign = Image {
            owned: false,
            ..public_source()
        };
        let held = with_tags(public_source(), &[("publish:status", "held")]);
        let wrong_value = with_tags(public_source(), &[("publish", "Public")]);
        let deprecated = Image {
            deprecation_time: Some(datetime!(2026-11-01 00:00 UTC)),
            ..public_source()
        };
        for (source, problem) in [
            (SourceFacts::Missing, "no longer exists"),
            (SourceFacts::Found(&private), "is not public"),
            (SourceFacts::Found(&foreign), "is not owned by this account"),
            (SourceFacts::Found(&held), "held"),
            (
                SourceFacts::Found(&wrong_value),
                "is not tagged publish=public",
            ),
            (
                SourceFacts::Found(&deprecated),
                "was deprecated at 2026-11-01T00:00:00Z",
            ),
        ] {
            let decision = decide_copy_of(&copy(), source, &c);
            let Decision::Reject { reasons } = &decision else {
                panic!("{problem}: {decision:?}")
            };
            let text = reasons[0].to_string();
            assert!(
                text.starts_with(&format!("its source us-east-1/{SOURCE_ID}"))
                    && text.contains(problem),
                "{text}"
            );
        }
    }

    #[test]
    fn a_public_copy_is_withdrawn_when_its_source_is_untagged_or_held() {
        let c = config(&[]);
        let untagged = untag(public_source());
        let held = with_tags(public_source(), &[("publish:status", "held")]);
        for source in [&untagged, &held] {
            assert!(matches!(
                decide_copy_of(&public_copy(), SourceFacts::Found(source), &c),
                Decision::Withdraw(Withdrawal {
                    why: WithdrawReason::Source { .. },
                    make_private: true,
                    ..
                })
            ));
        }
        // Left alone when nothing says the owner wants it private.
        assert!(matches!(
            decide_copy_of(&public_copy(), SourceFacts::Missing, &c),
            Decision::Skip { .. }
        ));
        // With UNPUBLISH_ON_UNTAG=false it stays public, but a hold still counts.
        let keep = config(&[("UNPUBLISH_ON_UNTAG", "false")]);
        assert_eq!(
            decide_copy_of(&public_copy(), SourceFacts::Found(&untagged), &keep),
            Decision::LeavePublic
        );
        assert!(matches!(
            decide_copy_of(&public_copy(), SourceFacts::Found(&held), &keep),
            Decision::Withdraw(_)
        ));
    }

    #[test]
    fn a_malformed_provenance_tag_fails_closed() {
        let c = config(&[]);
        let odd = with_tags(copy(), &[("publish:source", "somewhere")]);
        assert!(is_copy(&odd, &c));
        assert_eq!(source_needed(&odd, &c, Intent::Reconcile), None);
        assert!(matches!(
            decide_copy_of(&odd, SourceFacts::NotNeeded, &c),
            Decision::Reject { .. }
        ));
    }

    // ---- take-down ----

    #[test]
    fn untagging_a_public_source_withdraws_it_and_its_copies() {
        let c = config(&[("TARGET_REGIONS", "us-west-2,eu-west-1")]);
        let untagged = untag(public_source());
        assert_eq!(
            decide_image(&untagged, &c),
            Decision::Withdraw(Withdrawal {
                why: WithdrawReason::Untagged,
                make_private: true,
                copies_in: vec![region("us-west-2"), region("eu-west-1")],
            })
        );
        assert!(!is_settled(&untagged, &c));
        let keep = config(&[("UNPUBLISH_ON_UNTAG", "false")]);
        assert_eq!(decide_image(&untagged, &keep), Decision::LeavePublic);
    }

    #[test]
    fn an_ami_the_function_did_not_make_public_is_never_made_private() {
        let c = config(&[("TARGET_REGIONS", "us-west-2")]);
        // No status tag: never touched.
        let public = untag(Image {
            public: true,
            ..eligible_image()
        });
        assert!(matches!(decide_image(&public, &c), Decision::Skip { .. }));
        assert!(is_settled(&public, &c));
        // Rejected by the function, then made public by someone else.
        let by_hand = with_tags(public.clone(), &[("publish:status", "rejected")]);
        assert!(matches!(decide_image(&by_hand, &c), Decision::Skip { .. }));
    }

    #[test]
    fn an_untagged_private_ami_with_a_stale_status_is_marked_withdrawn() {
        let c = config(&[("TARGET_REGIONS", "us-west-2")]);
        let stale = untag(with_tags(
            eligible_image(),
            &[("publish:status", "rejected")],
        ));
        assert_eq!(
            decide_image(&stale, &c),
            Decision::Withdraw(Withdrawal {
                why: WithdrawReason::Untagged,
                make_private: false,
                copies_in: vec![region("us-west-2")],
            })
        );
        let done = with_tags(stale, &[("publish:status", "withdrawn")]);
        assert!(matches!(decide_image(&done, &c), Decision::Skip { .. }));
        assert!(is_settled(&done, &c));
    }

    #[test]
    fn an_unpublish_request_for_an_ami_the_function_did_not_publish_is_refused() {
        let c = config(&[("TARGET_REGIONS", "us-west-2")]);
        let public_by_hand = Image {
            public: true,
            tags: [("team".to_owned(), "x".to_owned())].into(),
            ..eligible_image()
        };
        let rejected_but_public = Image {
            public: true,
            ..with_tags(eligible_image(), &[("publish:status", "rejected")])
        };
        // Tagged, never reported on: nothing of the function's to take down.
        let never_seen = eligible_image();
        for image in [public_by_hand, rejected_but_public, never_seen] {
            let facts = Facts {
                image: &image,
                bpa: None,
                source: SourceFacts::NotNeeded,
                content: None,
            };
            let Decision::Skip { reason } = decide(facts, Intent::Unpublish, &c, NOW) else {
                panic!("{image:?} must not be taken down")
            };
            assert!(
                reason.starts_with("unpublish refused: the function did not publish it"),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_private_ami_past_its_deprecation_time_is_never_made_public() {
        let deprecated = Image {
            deprecation_time: Some(datetime!(2026-11-28 11:59 UTC)),
            ..eligible_image()
        };
        for c in [config(&[]), config(&[("DEPRECATE_AFTER_DAYS", "700")])] {
            assert_eq!(
                decide_image(&deprecated, &c),
                Decision::Reject {
                    reasons: vec![Reason::Deprecated {
                        at: datetime!(2026-11-28 11:59 UTC)
                    }]
                },
                "with and without DEPRECATE_AFTER_DAYS"
            );
        }
        let later = Image {
            deprecation_time: Some(datetime!(2026-11-28 12:01 UTC)),
            ..eligible_image()
        };
        assert!(matches!(
            decide_image(&later, &config(&[])),
            Decision::Publish(Steps {
                make_public: true,
                ..
            })
        ));
    }

    #[test]
    fn an_ami_published_then_made_private_past_its_deprecation_is_expired_not_published_again() {
        let c = config(&[("TARGET_REGIONS", "us-west-2")]);
        for status in ["public", "copying", "error"] {
            let outdated = Image {
                public: false,
                deprecation_time: Some(datetime!(2026-11-01 00:00 UTC)),
                ..with_tags(eligible_image(), &[("publish:status", status)])
            };
            let Decision::Withdraw(w) = decide_image(&outdated, &c) else {
                panic!("{status}: not made public again")
            };
            assert_eq!(
                w.why,
                WithdrawReason::Expired {
                    at: datetime!(2026-11-01 00:00 UTC)
                }
            );
            assert_eq!(w.status(), Status::Expired);
            assert!(!w.make_private);
            assert_eq!(w.copies_in, vec![region("us-west-2")], "its copies follow");
            let expired = with_tags(outdated, &[("publish:status", "expired")]);
            assert!(is_settled(&expired, &c), "the sweep leaves it alone");
            assert!(matches!(
                decide_image(&expired, &c),
                Decision::Withdraw(Withdrawal {
                    why: WithdrawReason::Expired { .. },
                    ..
                })
            ));
        }
        // Made private by hand before its deprecation time: drift, repaired.
        let private_by_hand = Image {
            public: false,
            ..public_source()
        };
        assert!(matches!(
            decide_image(&private_by_hand, &c),
            Decision::Publish(Steps {
                make_public: true,
                ..
            })
        ));
    }

    #[test]
    fn an_unpublish_request_holds_the_ami_and_its_copies_whatever_the_tags() {
        let c = config(&[("TARGET_REGIONS", "us-west-2")]);
        let rejected = with_tags(eligible_image(), &[("publish:status", "rejected")]);
        for image in [public_source(), untag(public_source()), rejected] {
            let facts = Facts {
                image: &image,
                bpa: None,
                source: SourceFacts::NotNeeded,
                content: None,
            };
            let Decision::Withdraw(w) = decide(facts, Intent::Unpublish, &c, NOW) else {
                panic!()
            };
            assert_eq!(w.why, WithdrawReason::Requested);
            assert_eq!(w.status(), Status::Held);
            assert_eq!(w.make_private, image.public);
            assert_eq!(w.copies_in, vec![region("us-west-2")]);
        }
        // A copy reached through its source's request is withdrawn, not
        // held: it follows its source again once the source is released.
        let copy = copy();
        let facts = Facts {
            image: &copy,
            bpa: None,
            source: SourceFacts::NotNeeded,
            content: None,
        };
        let Decision::Withdraw(w) = decide(facts, Intent::FollowUnpublish, &c, NOW) else {
            panic!()
        };
        assert_eq!(w.status(), Status::Withdrawn);
        assert!(matches!(
            w.why,
            WithdrawReason::Source {
                problem: SourceProblem::Held,
                ..
            }
        ));
        // Held: every event or sweep keeps it and its copies private.
        let held = with_tags(public_source(), &[("publish:status", "held")]);
        for public in [false, true] {
            let held = Image {
                public,
                ..held.clone()
            };
            assert_eq!(
                decide_image(&held, &c),
                Decision::Withdraw(Withdrawal {
                    why: WithdrawReason::Requested,
                    make_private: public,
                    copies_in: vec![region("us-west-2")],
                })
            );
            assert!(!needs_bpa(&held, &c, Intent::Reconcile));
            assert_eq!(
                is_settled(&held, &c),
                !public,
                "its copies: CopyIndex::settles"
            );
        }
    }

    #[test]
    fn a_retired_ami_stays_private_whatever_its_tags() {
        let c = config(&[("KEEP_PUBLIC_PER_FAMILY", "2")]);
        let retired = with_tags(eligible_image(), &[("publish:status", "retired")]);
        assert!(matches!(decide_image(&retired, &c), Decision::Skip { .. }));
        assert!(is_settled(&retired, &c));
        assert!(!needs_bpa(&retired, &c, Intent::Reconcile));
    }

    #[test]
    fn protection_is_turned_on_for_public_amis_and_off_only_where_the_function_set_it() {
        let c = config(&[]);
        assert!(needs_protection(&public_source(), &c));
        assert!(!needs_protection(&eligible_image(), &c), "private");
        assert!(!needs_protection(
            &public_source(),
            &config(&[("PROTECT_PUBLIC", "false")])
        ));
        let protected = Image {
            deregistration_protected: true,
            ..public_source()
        };
        assert!(!needs_protection(&protected, &c));
        assert!(
            !protected_by_function(&protected, &c),
            "someone else turned it on"
        );
        let ours = with_tags(protected, &[("publish:protected", "true")]);
        assert!(protected_by_function(&ours, &c));
    }

    #[test]
    fn settled_amis_need_no_call_in_a_sweep() {
        let c = config(&[]);
        assert!(is_settled(&public_source(), &c));
        assert!(!is_settled(&eligible_image(), &c));
        let copying = with_tags(public_source(), &[("publish:status", "copying")]);
        assert!(!is_settled(&copying, &c));
    }

    fn found(kinds: &[content::Kind]) -> content::Outcome {
        content::Outcome::Read {
            findings: kinds
                .iter()
                .map(|k| content::Finding::new(*k, b"/root/.bash_history", Some("root")))
                .collect(),
            file_systems: vec!["/dev/xvda: ext4".into()],
        }
    }

    fn decide_with_content(image: &Image, verdict: &content::Outcome, c: &Config) -> Decision {
        let facts = Facts {
            image,
            bpa: UNBLOCKED,
            source: SourceFacts::NotNeeded,
            content: Some(verdict),
        };
        decide(facts, Intent::Reconcile, c, NOW)
    }

    #[test]
    fn under_enforce_a_finding_keeps_the_ami_private_and_names_the_kind() {
        let c = config(&[("CONTENT_CHECK", "enforce")]);
        let image = eligible_image();
        assert!(needs_content_check(&image, &c, Intent::Reconcile, NOW));
        let Decision::Reject { reasons } =
            decide_with_content(&image, &found(&[content::Kind::Histories]), &c)
        else {
            panic!("not rejected")
        };
        let text = reasons[0].to_string();
        assert!(
            text.contains("histories") && text.contains("publish-allow"),
            "{text}"
        );
        assert!(matches!(
            decide_with_content(&image, &found(&[]), &c),
            Decision::Publish(Steps {
                make_public: true,
                ..
            })
        ));
    }

    #[test]
    fn report_publishes_with_findings_and_off_never_reads() {
        let image = eligible_image();
        let report = config(&[("CONTENT_CHECK", "report")]);
        let verdict = found(&[content::Kind::HostKeys]);
        assert!(matches!(
            decide_with_content(&image, &verdict, &report),
            Decision::Publish(_)
        ));
        assert_eq!(
            judge_content(&image, Some(&verdict), &report).1,
            Some(verdict.clone())
        );
        assert!(!needs_content_check(
            &image,
            &config(&[]),
            Intent::Reconcile,
            NOW
        ));
    }

    #[test]
    fn an_unreadable_ami_is_rejected_unless_unreadable_ones_may_be_published() {
        let image = eligible_image();
        let unreadable = content::Outcome::Unreadable {
            reason: "NTFS".into(),
        };
        let enforce = config(&[("CONTENT_CHECK", "enforce")]);
        assert!(matches!(
            decide_with_content(&image, &unreadable, &enforce),
            Decision::Reject { .. }
        ));
        let publish = config(&[
            ("CONTENT_CHECK", "enforce"),
            ("CONTENT_CHECK_UNREADABLE", "publish"),
        ]);
        assert!(matches!(
            decide_with_content(&image, &unreadable, &publish),
            Decision::Publish(_)
        ));
        assert_eq!(plan_tag(&unreadable, &enforce), "unreadable");
    }

    fn plan_tag(raw: &content::Outcome, c: &Config) -> &'static str {
        let judged = judge_content(&eligible_image(), Some(raw), c).1.unwrap();
        content_tag(raw, &judged)
    }

    #[test]
    fn the_owner_acknowledges_kinds_on_one_ami_and_unknown_kinds_are_refused() {
        let c = config(&[("CONTENT_CHECK", "enforce")]);
        let verdict = found(&[content::Kind::HostKeys]);
        let acknowledged = with_tags(eligible_image(), &[("publish-allow", "host-keys")]);
        assert!(matches!(
            decide_with_content(&acknowledged, &verdict, &c),
            Decision::Publish(_)
        ));
        let judged = judge_content(&acknowledged, Some(&verdict), &c).1.unwrap();
        assert_eq!(content_tag(&verdict, &judged), "acknowledged");
        let unknown = with_tags(eligible_image(), &[("publish-allow", "host-keys,secrets")]);
        let Decision::Reject { reasons } = decide_with_content(&unknown, &verdict, &c) else {
            panic!("not rejected")
        };
        assert!(reasons[0].to_string().contains("secrets"));
    }

    #[test]
    fn no_verdict_with_the_check_on_keeps_it_private_and_copies_are_never_read() {
        let c = config(&[("CONTENT_CHECK", "enforce")]);
        assert!(matches!(
            decide_image(&eligible_image(), &c),
            Decision::Reject { reasons } if reasons == [Reason::ContentNotChecked]
        ));
        let copy = with_tags(
            eligible_image(),
            &[("publish:source", "us-east-1/ami-0a1b2c3d4e5f60009")],
        );
        assert!(!needs_content_check(&copy, &c, Intent::Reconcile, NOW));
        let public = Image {
            public: true,
            ..eligible_image()
        };
        assert!(!needs_content_check(&public, &c, Intent::Reconcile, NOW));
    }
}
