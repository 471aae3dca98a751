//! Configuration: read once from environment variables into a typed,
//! validated struct. Every bad value is an error naming the variable and the
//! value, so a misconfigured stack fails at start instead of at the first AMI.

use std::collections::BTreeSet;

use crate::model::RegionName;

/// AWS limits on tags (EC2 "Tag restrictions").
const MAX_TAG_KEY_CHARS: usize = 128;
const MAX_TAG_VALUE_CHARS: usize = 256;
/// AWS refuses a deprecation date more than 2 years after creation for a
/// public AMI; 730 days keeps every date within that limit.
pub const MAX_DEPRECATE_AFTER_DAYS: u16 = 730;
const MAX_COPY_CONCURRENCY: usize = 32;
const MAX_KEEP_PUBLIC_PER_FAMILY: u16 = 100;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The region the function runs in (`AWS_REGION`, set by Lambda).
    pub home_region: RegionName,
    /// The tag that asks for publishing; the match is exact.
    pub publish_tag_key: String,
    pub publish_tag_value: String,
    /// Prefix of the tags the function writes (`publish:status`, ...).
    pub status_tag_prefix: String,
    /// Deprecate each AMI this many days after its creation.
    pub deprecate_after_days: Option<u16>,
    /// Regions to copy source AMIs to, without duplicates, in the given order.
    pub target_regions: Vec<RegionName>,
    /// How many regions (and, in a sweep, AMIs) are worked at once.
    pub copy_concurrency: usize,
    /// Make an AMI the function published (and its copies) private again
    /// when its owner removes the publish tag.
    pub unpublish_on_untag: bool,
    /// The tag whose value names an AMI's family (a user tag: copies carry it).
    pub family_tag_key: String,
    /// Keep this many newest public AMIs of a family in each region and
    /// retire the older ones the function published; `None`: no rotation.
    pub keep_public_per_family: Option<u16>,
    /// Deprecate a retired AMI at once.
    pub deprecate_retired: bool,
    /// What a source AMI's content check does before it is made public.
    pub content_check: ContentCheck,
    /// Whether an AMI the content check can't read may still be published
    /// (`CONTENT_CHECK_UNREADABLE=publish`, for Windows AMIs).
    pub publish_unreadable: bool,
    /// When its owner withdraws or holds a family's public release, make
    /// public again the newest release rotation retired in its favour.
    pub restore_on_withdraw: bool,
    /// Protect every AMI the function makes public from deregistration.
    pub protect_public: bool,
    /// Keep each region's EC2 calls within EC2's documented request buckets
    /// (pace.rs); off only for an account whose limits were raised.
    pub pace_ec2_calls: bool,
    /// The ledger's DynamoDB table, in the function's region (the template
    /// sets it); `None`: no ledger, the AMIs' tags are all it remembers.
    pub ledger_table: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {variable}={value:?}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub reason: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &'static str| Var {
            name,
            value: lookup(name),
        };

        let home_region = var("AWS_REGION")
            .required()?
            .parse_with(RegionName::parse)?;
        let publish_tag_key = var("PUBLISH_TAG_KEY").or("publish").tag_key()?;
        let publish_tag_value = var("PUBLISH_TAG_VALUE").or("public").tag_value()?;
        let prefix_var = var("STATUS_TAG_PREFIX");
        let status_tag_prefix = prefix_var.clone().or("publish:").tag_key()?;
        let max_prefix_chars = MAX_TAG_KEY_CHARS - StatusTag::LONGEST_NAME_CHARS;
        if status_tag_prefix.chars().count() > max_prefix_chars {
            return Err(prefix_var.invalid(format!(
                "at most {max_prefix_chars} characters, so that the status tag keys fit AWS's {MAX_TAG_KEY_CHARS}"
            )));
        }
        // IAM matches tag keys in conditions without regard to case: so do
        // these checks, or the role's statements could mistake one for
        // another.
        let in_prefix = |key: &str| {
            key.to_lowercase()
                .starts_with(&status_tag_prefix.to_lowercase())
        };
        if in_prefix(&publish_tag_key) {
            // The function's own status tags would then count as a change of
            // the publish tag and trigger it again.
            return Err(prefix_var.invalid(format!(
                "the publish tag key `{publish_tag_key}` must not start with it"
            )));
        }
        let deprecate_after_days = var("DEPRECATE_AFTER_DAYS").optional_number(
            1,
            MAX_DEPRECATE_AFTER_DAYS,
            "AWS deprecates a public AMI at most 2 years after creation",
        )?;
        let target_regions = parse_target_regions(var("TARGET_REGIONS"), &home_region)?;
        let copy_concurrency = var("COPY_CONCURRENCY")
            .optional_number(1, MAX_COPY_CONCURRENCY as u16, "")?
            .map_or(4, usize::from);
        let unpublish_on_untag = var("UNPUBLISH_ON_UNTAG").boolean(true)?;
        let family_var = var("FAMILY_TAG_KEY");
        let family_tag_key = family_var.clone().or("family").tag_key()?;
        if family_tag_key.eq_ignore_ascii_case(&publish_tag_key) || in_prefix(&family_tag_key) {
            // A family is the owner's tag, copied onto copies; the publish
            // tag and the function's own tags mean something else.
            return Err(family_var.invalid(format!(
                "must be neither the publish tag key `{publish_tag_key}` nor start with the status prefix `{status_tag_prefix}`"
            )));
        }
        let keep_public_per_family = var("KEEP_PUBLIC_PER_FAMILY").optional_number(
            1,
            MAX_KEEP_PUBLIC_PER_FAMILY,
            "a family's last public AMI is never retired",
        )?;
        let deprecate_retired = var("DEPRECATE_RETIRED").boolean(false)?;
        let restore_on_withdraw = var("RESTORE_ON_WITHDRAW").boolean(true)?;
        let content_check = var("CONTENT_CHECK")
            .or("enforce")
            .parse_with(ContentCheck::parse)?;
        let publish_unreadable =
            var("CONTENT_CHECK_UNREADABLE")
                .or("reject")
                .parse_with(|text| match text.trim().to_ascii_lowercase().as_str() {
                    "reject" => Ok(false),
                    "publish" => Ok(true),
                    _ => Err("must be reject or publish".into()),
                })?;
        let protect_public = var("PROTECT_PUBLIC").boolean(true)?;
        let pace_ec2_calls = var("PACE_EC2_CALLS").boolean(true)?;
        let ledger_table = var("LEDGER_TABLE").table_name()?;

        Ok(Self {
            home_region,
            publish_tag_key,
            publish_tag_value,
            status_tag_prefix,
            deprecate_after_days,
            target_regions,
            copy_concurrency,
            unpublish_on_untag,
            family_tag_key,
            keep_public_per_family,
            deprecate_retired,
            content_check,
            publish_unreadable,
            restore_on_withdraw,
            protect_public,
            pace_ec2_calls,
            ledger_table,
        })
    }

    /// Reads configuration from name/value pairs (tests and tools); a later
    /// pair overrides an earlier one of the same name.
    pub fn from_vars(vars: &[(&str, &str)]) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            vars.iter()
                .rfind(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    /// Every region the function may act in: its own and the targets.
    pub fn regions(&self) -> impl Iterator<Item = &RegionName> {
        std::iter::once(&self.home_region).chain(
            self.target_regions
                .iter()
                .filter(|r| **r != self.home_region),
        )
    }

    /// The key of one of the function's own tags (`publish:status`, ...).
    pub fn status_tag(&self, tag: StatusTag) -> String {
        format!("{}{}", self.status_tag_prefix, tag.name())
    }

    /// The owner's acknowledgement of content findings on one AMI
    /// (`publish-allow=host-keys,histories`): the publish tag key with
    /// `-allow`. Like the publish tag, the role can never write it.
    pub fn allow_tag_key(&self) -> String {
        format!("{}-allow", self.publish_tag_key)
    }
}

/// `CONTENT_CHECK`: what the content check of a source AMI does before it
/// is made public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentCheck {
    /// A finding keeps the AMI private (`rejected`), as does an AMI that
    /// can't be read unless `CONTENT_CHECK_UNREADABLE=publish`.
    Enforce,
    /// Published; the findings are reported the same way.
    Report,
    /// Not read.
    Off,
}

impl ContentCheck {
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "enforce" => Ok(Self::Enforce),
            "report" => Ok(Self::Report),
            "off" => Ok(Self::Off),
            _ => Err("must be enforce, report or off".into()),
        }
    }
}

/// The tags the function writes, each named `STATUS_TAG_PREFIX` + its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusTag {
    /// `public`, `copying`, `pending`, `rejected` or `error`.
    Status,
    /// A short readable reason for the status.
    Reason,
    /// On a copy: `SOURCE_REGION/ami-...`; a copy never fans out again.
    Source,
    /// On a copy: its source's creation date, the release's: rotation
    /// orders a family's copies by it (a copy made again later is not newer).
    SourceCreated,
    /// On a source: how often one of its copies was found dead and replaced
    /// (part of the copy request's idempotency token).
    Generation,
    /// `true` when the function turned the AMI's deregistration protection
    /// on (it turns off only what it turned on).
    Protected,
    /// The content check's verdict on a source AMI: `clean`, `findings`,
    /// `acknowledged` (every finding's kind acknowledged by its owner) or
    /// `unreadable`; what it found is in the reason and the outcome.
    Content,
}

impl StatusTag {
    /// Room the prefix must leave in a tag key for the longest name.
    const LONGEST_NAME_CHARS: usize = 14;

    pub fn name(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Reason => "reason",
            Self::Source => "source",
            Self::SourceCreated => "source-created",
            Self::Generation => "generation",
            Self::Protected => "protected",
            Self::Content => "content",
        }
    }
}

fn parse_target_regions(var: Var, home: &RegionName) -> Result<Vec<RegionName>, ConfigError> {
    let Some(text) = var.value.as_deref().filter(|t| !t.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let mut seen = BTreeSet::new();
    let mut regions = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(var.invalid("empty region name in the list".into()));
        }
        let region = RegionName::parse(part).map_err(|e| var.invalid(e))?;
        if !seen.insert(region.clone()) {
            return Err(var.invalid(format!("region `{region}` is listed twice")));
        }
        if region.partition() != home.partition() {
            // CopyImage can't copy across partitions (GovCloud and China
            // need CreateStoreImageTask instead).
            return Err(var.invalid(format!(
                "region `{region}` is in partition {}, the function's region {home} in {}: CopyImage can't copy across partitions",
                region.partition(),
                home.partition()
            )));
        }
        regions.push(region);
    }
    Ok(regions)
}

/// One environment variable being read.
#[derive(Clone)]
struct Var {
    name: &'static str,
    value: Option<String>,
}

impl Var {
    fn invalid(&self, reason: String) -> ConfigError {
        ConfigError {
            variable: self.name,
            value: self.value.clone().unwrap_or_default(),
            reason,
        }
    }

    fn required(self) -> Result<Self, ConfigError> {
        match self.value.as_deref() {
            Some(v) if !v.is_empty() => Ok(self),
            _ => Err(self.invalid("must be set".into())),
        }
    }

    /// The value, or `default` when unset or empty.
    fn or(mut self, default: &str) -> Self {
        if self.value.as_deref().is_none_or(str::is_empty) {
            self.value = Some(default.to_owned());
        }
        self
    }

    fn text(&self) -> &str {
        self.value.as_deref().unwrap_or_default()
    }

    fn parse_with<T>(self, parse: impl Fn(&str) -> Result<T, String>) -> Result<T, ConfigError> {
        parse(self.text()).map_err(|e| self.invalid(e))
    }

    fn tag_key(self) -> Result<String, ConfigError> {
        let key = self.text();
        if key.chars().count() > MAX_TAG_KEY_CHARS {
            return Err(self.invalid(format!(
                "a tag key has at most {MAX_TAG_KEY_CHARS} characters"
            )));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(self.invalid("tag keys starting with aws: are reserved by AWS".into()));
        }
        Ok(key.to_owned())
    }

    fn tag_value(self) -> Result<String, ConfigError> {
        if self.text().chars().count() > MAX_TAG_VALUE_CHARS {
            return Err(self.invalid(format!(
                "a tag value has at most {MAX_TAG_VALUE_CHARS} characters"
            )));
        }
        Ok(self.text().to_owned())
    }

    /// A DynamoDB table name (3 to 255 of `a-z A-Z 0-9 _ - .`, DynamoDB's
    /// naming rules); unset or empty means `None`.
    fn table_name(&self) -> Result<Option<String>, ConfigError> {
        let name = self.text().trim();
        if name.is_empty() {
            return Ok(None);
        }
        let valid = (3..=255).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid {
            return Err(
                self.invalid("a DynamoDB table name: 3 to 255 letters, digits, _ - or .".into())
            );
        }
        Ok(Some(name.to_owned()))
    }

    /// `true` or `false` (any case); unset or empty means `default`.
    fn boolean(&self, default: bool) -> Result<bool, ConfigError> {
        match self.text().trim().to_ascii_lowercase().as_str() {
            "" => Ok(default),
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(self.invalid("must be true or false".into())),
        }
    }

    /// An optional whole number in `min..=max`; unset or empty means `None`.
    fn optional_number(&self, min: u16, max: u16, why: &str) -> Result<Option<u16>, ConfigError> {
        let text = self.text().trim();
        if text.is_empty() {
            return Ok(None);
        }
        match text.parse::<u16>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => {
                let why = if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                };
                Err(self.invalid(format!("must be a whole number from {min} to {max}{why}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&[&[("AWS_REGION", "us-east-1")], vars].concat())
    }

    fn error_for(vars: &[(&str, &str)]) -> ConfigError {
        config(vars).expect_err("configuration should be refused")
    }

    #[test]
    fn defaults_apply_when_only_the_region_is_set() {
        let c = config(&[]).unwrap();
        assert_eq!(c.home_region.as_str(), "us-east-1");
        assert_eq!(c.publish_tag_key, "publish");
        assert_eq!(c.publish_tag_value, "public");
        assert_eq!(c.status_tag_prefix, "publish:");
        assert_eq!(c.status_tag(StatusTag::Status), "publish:status");
        assert_eq!(c.deprecate_after_days, None);
        assert!(c.target_regions.is_empty());
        assert_eq!(c.copy_concurrency, 4);
        assert!(c.unpublish_on_untag);
        assert_eq!(c.family_tag_key, "family");
        assert_eq!(c.keep_public_per_family, None);
        assert!(!c.deprecate_retired);
        assert!(c.restore_on_withdraw);
        assert!(c.protect_public);
        assert!(c.pace_ec2_calls);
    }

    #[test]
    fn empty_values_mean_the_default() {
        let c = config(&[
            ("PUBLISH_TAG_KEY", ""),
            ("DEPRECATE_AFTER_DAYS", ""),
            ("TARGET_REGIONS", " "),
            ("COPY_CONCURRENCY", ""),
        ])
        .unwrap();
        assert_eq!(c.publish_tag_key, "publish");
        assert_eq!(c.deprecate_after_days, None);
        assert!(c.target_regions.is_empty());
        assert_eq!(c.copy_concurrency, 4);
    }

    #[test]
    fn every_variable_is_read() {
        let c = config(&[
            ("PUBLISH_TAG_KEY", "release"),
            ("PUBLISH_TAG_VALUE", "yes"),
            ("STATUS_TAG_PREFIX", "ami-publisher/"),
            ("DEPRECATE_AFTER_DAYS", "365"),
            ("TARGET_REGIONS", "eu-west-1, ca-west-1,ap-southeast-2"),
            ("COPY_CONCURRENCY", "8"),
            ("UNPUBLISH_ON_UNTAG", "False"),
            ("FAMILY_TAG_KEY", "os"),
            ("KEEP_PUBLIC_PER_FAMILY", "3"),
            ("DEPRECATE_RETIRED", "true"),
            ("RESTORE_ON_WITHDRAW", "false"),
            ("PROTECT_PUBLIC", "false"),
            ("PACE_EC2_CALLS", "false"),
        ])
        .unwrap();
        assert_eq!(c.publish_tag_key, "release");
        assert_eq!(c.publish_tag_value, "yes");
        assert_eq!(c.status_tag(StatusTag::Status), "ami-publisher/status");
        assert_eq!(c.deprecate_after_days, Some(365));
        let targets: Vec<&str> = c.target_regions.iter().map(RegionName::as_str).collect();
        assert_eq!(targets, ["eu-west-1", "ca-west-1", "ap-southeast-2"]);
        assert_eq!(c.copy_concurrency, 8);
        assert!(!c.unpublish_on_untag);
        assert_eq!(c.family_tag_key, "os");
        assert_eq!(c.keep_public_per_family, Some(3));
        assert!(c.deprecate_retired);
        assert!(!c.restore_on_withdraw);
        assert!(!c.protect_public);
        assert!(!c.pace_ec2_calls);
    }

    #[test]
    fn rotation_settings_are_checked() {
        for bad in ["0", "101", "all"] {
            let e = error_for(&[("KEEP_PUBLIC_PER_FAMILY", bad)]);
            assert_eq!(e.variable, "KEEP_PUBLIC_PER_FAMILY");
            assert!(e.reason.contains("1 to 100"), "{e}");
        }
        for bad in ["publish", "publish:family"] {
            assert_eq!(
                error_for(&[("FAMILY_TAG_KEY", bad)]).variable,
                "FAMILY_TAG_KEY"
            );
        }
        assert_eq!(
            error_for(&[("DEPRECATE_RETIRED", "yes")]).variable,
            "DEPRECATE_RETIRED"
        );
        assert_eq!(
            error_for(&[("PROTECT_PUBLIC", "1")]).variable,
            "PROTECT_PUBLIC"
        );
        assert_eq!(
            error_for(&[("PACE_EC2_CALLS", "off")]).variable,
            "PACE_EC2_CALLS"
        );
        for bad in ["ab", "my table", "ledger/1"] {
            assert_eq!(error_for(&[("LEDGER_TABLE", bad)]).variable, "LEDGER_TABLE");
        }
    }

    #[test]
    fn the_ledger_table_is_optional() {
        assert_eq!(config(&[]).unwrap().ledger_table, None);
        assert_eq!(
            config(&[("LEDGER_TABLE", "ami-publisher-ledger")])
                .unwrap()
                .ledger_table
                .as_deref(),
            Some("ami-publisher-ledger")
        );
    }

    #[test]
    fn unpublish_on_untag_is_true_or_false() {
        for bad in ["yes", "1", "off"] {
            let e = error_for(&[("UNPUBLISH_ON_UNTAG", bad)]);
            assert_eq!(e.variable, "UNPUBLISH_ON_UNTAG");
            assert!(e.reason.contains("true or false"), "{e}");
        }
        assert!(
            config(&[("UNPUBLISH_ON_UNTAG", "TRUE")])
                .unwrap()
                .unpublish_on_untag
        );
    }

    #[test]
    fn prefix_room_fits_the_longest_status_tag_name() {
        let longest = [
            StatusTag::Status,
            StatusTag::Reason,
            StatusTag::Source,
            StatusTag::SourceCreated,
            StatusTag::Generation,
            StatusTag::Protected,
        ]
        .map(|t| t.name().len())
        .into_iter()
        .max();
        assert_eq!(longest, Some(StatusTag::LONGEST_NAME_CHARS));
    }

    #[test]
    fn missing_region_is_named() {
        let e = Config::from_lookup(|_| None).unwrap_err();
        assert_eq!(e.variable, "AWS_REGION");
        assert!(e.to_string().contains("must be set"), "{e}");
    }

    #[test]
    fn malformed_home_region_is_refused() {
        let e = error_for(&[("AWS_REGION", "US_EAST")]);
        assert_eq!((e.variable, e.value.as_str()), ("AWS_REGION", "US_EAST"));
    }

    #[test]
    fn deprecation_days_outside_one_to_730_are_refused() {
        for bad in ["0", "731", "-1", "1.5", "two", "99999999"] {
            let e = error_for(&[("DEPRECATE_AFTER_DAYS", bad)]);
            assert_eq!(e.variable, "DEPRECATE_AFTER_DAYS");
            assert_eq!(e.value, bad);
            assert!(e.reason.contains("1 to 730"), "{e}");
        }
        assert_eq!(
            config(&[("DEPRECATE_AFTER_DAYS", "1")])
                .unwrap()
                .deprecate_after_days,
            Some(1)
        );
        assert_eq!(
            config(&[("DEPRECATE_AFTER_DAYS", "730")])
                .unwrap()
                .deprecate_after_days,
            Some(730)
        );
    }

    #[test]
    fn malformed_target_region_is_named() {
        let e = error_for(&[("TARGET_REGIONS", "us-west-2,eu west 1")]);
        assert_eq!(e.variable, "TARGET_REGIONS");
        assert!(e.reason.contains("`eu west 1`"), "{e}");
    }

    #[test]
    fn target_regions_of_another_partition_are_refused() {
        for other in ["us-gov-west-1", "cn-north-1"] {
            let e = error_for(&[("TARGET_REGIONS", &format!("us-west-2,{other}"))]);
            assert_eq!(e.variable, "TARGET_REGIONS");
            assert!(
                e.reason.contains(other) && e.reason.contains("partition"),
                "{e}"
            );
        }
        let gov = Config::from_vars(&[
            ("AWS_REGION", "us-gov-west-1"),
            ("TARGET_REGIONS", "us-gov-east-1"),
        ]);
        assert!(gov.is_ok(), "GovCloud to GovCloud is one partition");
    }

    #[test]
    fn duplicate_target_region_is_refused() {
        let e = error_for(&[("TARGET_REGIONS", "us-west-2,eu-west-1,us-west-2")]);
        assert!(e.reason.contains("us-west-2` is listed twice"), "{e}");
    }

    #[test]
    fn empty_entry_in_target_regions_is_refused() {
        let e = error_for(&[("TARGET_REGIONS", "us-west-2,,eu-west-1")]);
        assert!(e.reason.contains("empty region name"), "{e}");
    }

    #[test]
    fn home_region_among_targets_is_kept_in_the_list_but_not_worked_twice() {
        let c = config(&[("TARGET_REGIONS", "us-east-1,us-west-2")]).unwrap();
        let regions: Vec<&str> = c.regions().map(RegionName::as_str).collect();
        assert_eq!(regions, ["us-east-1", "us-west-2"]);
    }

    #[test]
    fn copy_concurrency_must_be_1_to_32() {
        for bad in ["0", "33", "many"] {
            let e = error_for(&[("COPY_CONCURRENCY", bad)]);
            assert_eq!(e.variable, "COPY_CONCURRENCY");
        }
    }

    #[test]
    fn publish_key_inside_the_status_prefix_is_refused() {
        let e = error_for(&[("PUBLISH_TAG_KEY", "publish:go")]);
        assert_eq!(e.variable, "STATUS_TAG_PREFIX");
        assert!(e.reason.contains("publish:go"), "{e}");
        // In any letter case: IAM's tag conditions ignore it.
        let e = error_for(&[("PUBLISH_TAG_KEY", "Publish:Go")]);
        assert_eq!(e.variable, "STATUS_TAG_PREFIX");
        let e = error_for(&[("FAMILY_TAG_KEY", "PUBLISH")]);
        assert_eq!(e.variable, "FAMILY_TAG_KEY");
    }

    #[test]
    fn reserved_and_oversized_tag_keys_are_refused() {
        assert_eq!(
            error_for(&[("PUBLISH_TAG_KEY", "aws:publish")]).variable,
            "PUBLISH_TAG_KEY"
        );
        let long = "k".repeat(129);
        assert_eq!(
            error_for(&[("PUBLISH_TAG_KEY", &long)]).variable,
            "PUBLISH_TAG_KEY"
        );
        let long_prefix = "p".repeat(115);
        assert_eq!(
            error_for(&[("STATUS_TAG_PREFIX", &long_prefix)]).variable,
            "STATUS_TAG_PREFIX"
        );
        let long_value = "v".repeat(257);
        assert_eq!(
            error_for(&[("PUBLISH_TAG_VALUE", &long_value)]).variable,
            "PUBLISH_TAG_VALUE"
        );
    }
}
