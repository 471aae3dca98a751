//! What a run tells: the JSON outcome returned to Lambda, the status tags
//! written onto each AMI, and one summary log line per invocation.

use serde::Serialize;

use crate::event::Cause;
use crate::model::{Image, ImageId, RegionName, Status};
use crate::quota::QuotaReport;
use crate::steps::Step;

/// AWS's limit on a tag value.
const MAX_TAG_VALUE_CHARS: usize = 256;

/// What the run did with one AMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Made public by this run.
    Published,
    /// Was public before this run (missing steps, such as copies, were done).
    AlreadyPublic,
    Rejected,
    /// Pending; its own `available` event or the sweep publishes it.
    Waiting,
    /// Not the function's to touch (untagged, failed, deregistered, unknown).
    Skipped,
    /// Made private by this run (it, or a copy that follows it), or marked
    /// withdrawn or held.
    Withdrawn,
    /// Withdrawn or held already: private, with its copies, and kept so.
    KeptPrivate,
    /// Left for the next run: not enough time before the invocation's
    /// deadline to finish it, status tags included.
    Deferred,
    /// Made private by rotation (KEEP_PUBLIC_PER_FAMILY).
    Retired,
    /// A step failed; see `errors`.
    Failed,
}

/// A copy of a source AMI in one target region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CopyOutcome {
    pub region: RegionName,
    pub image_id: Option<ImageId>,
    /// `pending`, `available`, ... as EC2 reports it.
    pub state: Option<String>,
    pub public: bool,
    /// Whether this run started the copy (false: found by its source tag).
    pub started: bool,
    /// What this run did with the copy (absent: it only looked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// The status the copy carries (written by this run or an earlier one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    pub error: Option<String>,
    /// The older public AMIs of its family in its region it replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<ImageOutcome>,
    /// Its source had changed since the source's run read it (see
    /// [`ImageOutcome::source_changed`]).
    #[serde(skip)]
    pub source_changed: bool,
}

impl CopyOutcome {
    pub fn new(region: RegionName) -> Self {
        Self {
            region,
            image_id: None,
            state: None,
            public: false,
            started: false,
            action: None,
            status: None,
            reasons: Vec::new(),
            error: None,
            retired: Vec::new(),
            source_changed: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageOutcome {
    pub image_id: ImageId,
    pub region: RegionName,
    pub action: Action,
    /// The status written on the AMI (absent when nothing was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecation_time: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyOutcome>,
    /// The older public AMIs of its family (in its region) it replaced.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<ImageOutcome>,
    /// The content check's verdict on it (findings: kinds, paths and
    /// accounts, never any content), when it was checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<crate::content::Outcome>,
    /// The retired release of its family made public again after this one
    /// was withdrawn or held (`RESTORE_ON_WITHDRAW`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restored: Vec<ImageOutcome>,
    /// Failures a retry may fix (the invocation fails, so Lambda retries).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// A call was refused for good (a quota, a permission, ...): `reasons`
    /// says what the owner can do; nothing after it was attempted.
    #[serde(skip)]
    pub refused: bool,
    /// The function's other tags to write with the status (its marker of
    /// deregistration protection).
    #[serde(skip)]
    pub tags: Vec<(String, String)>,
    /// A copy's: its source, read again right before the copy was to be
    /// made public, had changed since the source's run read it.
    #[serde(skip)]
    pub source_changed: bool,
    /// A public release its owner pulled (withdrew or held), as it was:
    /// its family may have a retired release to restore.
    #[serde(skip)]
    pub pulled: Option<Box<Image>>,
}

impl ImageOutcome {
    pub fn new(image_id: ImageId, region: RegionName, action: Action) -> Self {
        Self {
            image_id,
            region,
            action,
            status: None,
            reasons: Vec::new(),
            deprecation_time: None,
            copies: Vec::new(),
            retired: Vec::new(),
            restored: Vec::new(),
            content: None,
            errors: Vec::new(),
            refused: false,
            source_changed: false,
            pulled: None,
            tags: Vec::new(),
        }
    }

    /// No call failed, for now or for good: the next step may go ahead.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && !self.refused
    }

    /// Every failure a retry may fix of this AMI, its copies and the AMIs
    /// it retired, each naming region and image.
    pub fn failures(&self) -> Vec<String> {
        let own = self
            .errors
            .iter()
            .map(|e| format!("{} in {}: {e}", self.image_id, self.region));
        let copies = self.copies.iter().filter_map(|c| {
            c.error
                .as_ref()
                .map(|e| format!("copy of {} to {}: {e}", self.image_id, c.region))
        });
        let others = self.others().flat_map(ImageOutcome::failures);
        own.chain(copies).chain(others).collect()
    }

    /// The other AMIs this AMI's run acted on: those it retired (its
    /// copies' too) and the release it restored.
    pub fn others(&self) -> impl Iterator<Item = &ImageOutcome> {
        self.retired
            .iter()
            .chain(self.copies.iter().flat_map(|c| &c.retired))
            .chain(&self.restored)
    }
}

/// The JSON returned for an invocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// `image`, `sweep` or `ignored`.
    pub trigger: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<RegionName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub images: Vec<ImageOutcome>,
    /// AMIs left to the next run because the invocation's deadline was near
    /// (a sweep's not started, and those given up before their first write).
    #[serde(skip_serializing_if = "is_zero")]
    pub deferred: usize,
    /// The public AMI quota of each region where something was to be made
    /// public or copied: the quota, the public AMIs, the headroom.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<QuotaReport>,
    /// Every action of the run, once each (its AMIs', their copies' and
    /// the AMIs they retired): a flat list for EventBridge rules to match
    /// on the outcome the OnSuccess destination sends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
    /// A preview (dry run): `steps` were reported, not made.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preview: bool,
    /// Every write the run made (or, in a preview, would make).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
    /// Target regions a sweep could not list copies in: their copies were
    /// left unchecked this time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unlisted_regions: Vec<RegionFailure>,
}

/// A region where a call every AMI depends on failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RegionFailure {
    pub region: RegionName,
    /// What failed, or, when a retry can't fix it, what the owner can do.
    pub error: String,
    /// A retry may fix it: the invocation fails (after everything else).
    pub transient: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Outcome {
    pub fn ignored(reason: String) -> Self {
        Self {
            trigger: "ignored",
            cause: None,
            region: None,
            ignored: Some(reason),
            images: Vec::new(),
            deferred: 0,
            quotas: Vec::new(),
            actions: Vec::new(),
            preview: false,
            steps: Vec::new(),
            unlisted_regions: Vec::new(),
        }
    }

    pub fn image(cause: Cause, region: RegionName, image: ImageOutcome) -> Self {
        let deferred = usize::from(image.action == Action::Deferred);
        Self {
            trigger: "image",
            cause: Some(cause),
            region: Some(region),
            ignored: None,
            images: vec![image],
            deferred,
            quotas: Vec::new(),
            actions: Vec::new(),
            preview: false,
            steps: Vec::new(),
            unlisted_regions: Vec::new(),
        }
    }

    /// A sweep's outcome; `not_started` AMIs were left for lack of time.
    pub fn sweep(region: RegionName, images: Vec<ImageOutcome>, not_started: usize) -> Self {
        let given_up = images
            .iter()
            .filter(|i| i.action == Action::Deferred)
            .count();
        Self {
            trigger: "sweep",
            cause: None,
            region: Some(region),
            ignored: None,
            images,
            deferred: not_started + given_up,
            quotas: Vec::new(),
            actions: Vec::new(),
            preview: false,
            steps: Vec::new(),
            unlisted_regions: Vec::new(),
        }
    }

    pub fn failures(&self) -> Vec<String> {
        let regions = self
            .unlisted_regions
            .iter()
            .filter(|r| r.transient)
            .map(|r| format!("copies in {} could not be listed: {}", r.region, r.error));
        self.images
            .iter()
            .flat_map(ImageOutcome::failures)
            .chain(regions)
            .collect()
    }

    /// Fills `actions` from the images, their copies and retirements.
    pub fn collect_actions(&mut self) {
        let mut actions: Vec<Action> = self
            .images
            .iter()
            .flat_map(|i| {
                let copies = i.copies.iter().filter_map(|c| c.action);
                let others = i.others().map(|r| r.action);
                std::iter::once(i.action).chain(copies).chain(others)
            })
            .collect();
        actions.sort();
        actions.dedup();
        self.actions = actions;
    }

    /// One structured log line with the counts of each action.
    pub fn log_summary(&self) {
        let count = |a: Action| self.images.iter().filter(|i| i.action == a).count();
        tracing::info!(
            trigger = self.trigger,
            region = self.region.as_ref().map(RegionName::as_str),
            images = self.images.len(),
            published = count(Action::Published),
            already_public = count(Action::AlreadyPublic),
            rejected = count(Action::Rejected),
            waiting = count(Action::Waiting),
            withdrawn = count(Action::Withdrawn),
            retired = self.images.iter().map(|i| i.retired.len()).sum::<usize>(),
            kept_private = count(Action::KeptPrivate),
            skipped = count(Action::Skipped),
            failed = count(Action::Failed),
            deferred = self.deferred,
            copies_started = self
                .images
                .iter()
                .flat_map(|i| &i.copies)
                .filter(|c| c.started)
                .count(),
            "summary"
        );
    }
}

/// The CloudWatch namespace of the function's metrics.
pub const METRICS_NAMESPACE: &str = "ami-publisher";

/// The counts of one invocation, as metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub published: usize,
    pub rejected: usize,
    pub withdrawn: usize,
    pub retired: usize,
    pub copies_started: usize,
    pub errors: usize,
}

impl Outcome {
    /// What the invocation did, counted: AMIs and copies alike.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts {
            errors: self.failures().len(),
            ..Counts::default()
        };
        let mut count = |action: Option<Action>| match action {
            Some(Action::Published) => counts.published += 1,
            Some(Action::Rejected) => counts.rejected += 1,
            Some(Action::Withdrawn) => counts.withdrawn += 1,
            Some(Action::Retired) => counts.retired += 1,
            _ => {}
        };
        for image in &self.images {
            count(Some(image.action));
            image.copies.iter().for_each(|c| count(c.action));
            image.others().for_each(|r| count(Some(r.action)));
        }
        counts.copies_started = self
            .images
            .iter()
            .flat_map(|i| &i.copies)
            .filter(|c| c.started)
            .count();
        counts
    }
}

/// One line of CloudWatch Embedded Metric Format (EMF) with the counts of
/// an invocation, dimension `Region`: CloudWatch Logs extracts the metrics
/// from it, no API call needed.
pub fn metrics_line(counts: Counts, region: &RegionName, timestamp_ms: u128) -> String {
    let metrics = [
        ("Published", counts.published),
        ("Rejected", counts.rejected),
        ("Withdrawn", counts.withdrawn),
        ("Retired", counts.retired),
        ("CopiesStarted", counts.copies_started),
        ("Errors", counts.errors),
    ];
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["Region"]],
                "Metrics": metrics
                    .iter()
                    .map(|(name, _)| serde_json::json!({"Name": name, "Unit": "Count"}))
                    .collect::<Vec<_>>(),
            }],
        },
        "Region": region.as_str(),
    });
    for (name, value) in metrics {
        line[name] = serde_json::json!(value);
    }
    line.to_string()
}

/// Cuts a tag value to AWS's 256-character limit, marking the cut.
pub fn tag_value(text: &str) -> String {
    if text.chars().count() <= MAX_TAG_VALUE_CHARS {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(MAX_TAG_VALUE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tag_values_are_kept_and_long_ones_cut_to_256_chars() {
        assert_eq!(tag_value("fine"), "fine");
        let exact = "é".repeat(256);
        assert_eq!(tag_value(&exact), exact);
        let long = "é".repeat(300);
        let cut = tag_value(&long);
        assert_eq!(cut.chars().count(), 256);
        assert!(cut.ends_with('…'));
    }

    /// The EMF specification's rules for a metric line (CloudWatch User
    /// Guide, "Specification: Embedded metric format").
    fn assert_emf(line: &str) -> serde_json::Value {
        let doc: serde_json::Value = serde_json::from_str(line).expect("one JSON object");
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_u64(), "Timestamp: ms since the epoch");
        let directives = aws["CloudWatchMetrics"]
            .as_array()
            .expect("CloudWatchMetrics");
        assert_eq!(directives.len(), 1);
        for directive in directives {
            let namespace = directive["Namespace"].as_str().expect("Namespace");
            assert!(!namespace.is_empty() && namespace.len() <= 1024);
            let dimension_sets = directive["Dimensions"].as_array().expect("Dimensions");
            for set in dimension_sets {
                let set = set.as_array().expect("a dimension set is an array");
                assert!(set.len() <= 30);
                for name in set {
                    let name = name.as_str().expect("dimension names are strings");
                    assert!(doc[name].is_string(), "dimension {name} is a string member");
                }
            }
            let metrics = directive["Metrics"].as_array().expect("Metrics");
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for metric in metrics {
                let name = metric["Name"].as_str().expect("Name");
                assert!(doc[name].is_number(), "metric {name} is a number member");
                assert_eq!(metric["Unit"], "Count");
            }
        }
        doc
    }

    #[test]
    fn the_metrics_line_is_embedded_metric_format_with_the_counts() {
        let region = RegionName::parse("us-east-1").unwrap();
        let mut image = ImageOutcome::new(
            ImageId::parse("ami-12345678").unwrap(),
            region.clone(),
            Action::Published,
        );
        image.copies.push(CopyOutcome {
            started: true,
            ..CopyOutcome::new(RegionName::parse("eu-west-1").unwrap())
        });
        image.copies.push(CopyOutcome {
            action: Some(Action::Rejected),
            ..CopyOutcome::new(RegionName::parse("us-west-2").unwrap())
        });
        image.retired.push(ImageOutcome::new(
            ImageId::parse("ami-87654321").unwrap(),
            region.clone(),
            Action::Retired,
        ));
        let mut outcome = Outcome::image(Cause::Direct, region.clone(), image);
        outcome.collect_actions();
        assert_eq!(
            outcome.actions,
            [Action::Published, Action::Rejected, Action::Retired]
        );

        let doc = assert_emf(&metrics_line(outcome.counts(), &region, 1_764_000_000_000));

        assert_eq!(doc["Region"], "us-east-1");
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            METRICS_NAMESPACE
        );
        let values: Vec<u64> = [
            "Published",
            "Rejected",
            "Withdrawn",
            "Retired",
            "CopiesStarted",
            "Errors",
        ]
        .iter()
        .map(|m| doc[m].as_u64().unwrap())
        .collect();
        assert_eq!(values, [1, 1, 0, 1, 1, 0]);
    }

    #[test]
    fn failures_name_region_and_image_for_own_and_copy_errors() {
        let region = RegionName::parse("us-east-1").unwrap();
        let id = ImageId::parse("ami-12345678").unwrap();
        let mut outcome = ImageOutcome::new(id.clone(), region, Action::Failed);
        outcome.errors.push("boom".into());
        outcome.copies.push(CopyOutcome {
            error: Some("throttled".into()),
            ..CopyOutcome::new(RegionName::parse("eu-west-1").unwrap())
        });
        assert_eq!(
            outcome.failures(),
            [
                "ami-12345678 in us-east-1: boom",
                "copy of ami-12345678 to eu-west-1: throttled"
            ]
        );
    }
}
