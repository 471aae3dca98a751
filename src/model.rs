//! Plain data the rest of the crate reasons about: validated names (image
//! ids, regions) and the facts about an AMI and its region that decide
//! whether it may be public. No SDK types here, so the pure modules
//! (eligibility, plan) and their tests need no client.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

/// An AMI id: `ami-` and 8 or 17 lowercase letters or digits. Real ids are
/// hexadecimal; AWS's own documentation samples use ids such as
/// `ami-0123456789example`, so letters beyond `f` are accepted too.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ImageId(String);

impl ImageId {
    pub fn parse(text: &str) -> Result<Self, String> {
        let suffix = text
            .strip_prefix("ami-")
            .ok_or_else(|| format!("`{text}` is not an AMI id (expected ami-...)"))?;
        let well_formed = matches!(suffix.len(), 8 | 17)
            && suffix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if well_formed {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is not an AMI id (expected ami- and 8 or 17 lowercase letters or digits)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An AWS region name such as `us-east-1`, `us-gov-west-1`,
/// `ap-southeast-2` or `eusc-de-east-1`: lowercase words and a number,
/// joined by hyphens, at least three parts, the first of two letters or more.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RegionName(String);

impl RegionName {
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('-').collect();
        let well_formed = parts.len() >= 3
            && parts[0].len() >= 2
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
            && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
            && !parts[parts.len() - 1].is_empty();
        if well_formed {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "`{text}` is not a region name (expected a name such as us-east-1)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The AWS partition the region belongs to (`aws`, `aws-cn`,
    /// `aws-us-gov`, ...), from its name. CopyImage can't copy across
    /// partitions, and ARNs name the partition.
    pub fn partition(&self) -> &'static str {
        const PREFIXES: [(&str, &str); 7] = [
            ("cn-", "aws-cn"),
            ("us-gov-", "aws-us-gov"),
            ("us-isob-", "aws-iso-b"),
            ("us-isof-", "aws-iso-f"),
            ("us-iso-", "aws-iso"),
            ("eu-isoe-", "aws-iso-e"),
            ("eusc-", "aws-eusc"),
        ];
        PREFIXES
            .iter()
            .find(|(prefix, _)| self.0.starts_with(prefix))
            .map_or("aws", |(_, partition)| partition)
    }
}

impl fmt::Display for RegionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a copy came from: the value of its provenance tag
/// (`publish:source`), `REGION/ami-...`, written by the function when it
/// starts the copy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SourceRef {
    pub region: RegionName,
    pub image_id: ImageId,
}

impl SourceRef {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (region, id) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not REGION/ami-..."))?;
        Ok(Self {
            region: RegionName::parse(region)?,
            image_id: ImageId::parse(id)?,
        })
    }
}

impl fmt::Display for SourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.region, self.image_id)
    }
}

/// What an invocation asks for one AMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Intent {
    /// Bring it to the state its tags ask for (every trigger).
    Reconcile,
    /// Make it and its copies private now, whatever its tags: the emergency
    /// path (direct payload `"action": "unpublish"`).
    Unpublish,
    /// A copy of an AMI an unpublish request reached: private now, whatever
    /// its tags; afterwards it follows its source again.
    FollowUnpublish,
    /// Bring a retired AMI (and its copies) to the state its tags ask for,
    /// its retirement set aside: its family's public release, which
    /// rotation retired it for, was withdrawn or held
    /// (`RESTORE_ON_WITHDRAW`).
    Restore,
}

/// The AMI states EC2 reports (`DescribeImages` `State`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageState {
    Available,
    Pending,
    Failed,
    Deregistered,
    Disabled,
    Other(String),
}

impl ImageState {
    /// Pending or available: not failed, disabled or deregistered.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Pending | Self::Available)
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "available" => Self::Available,
            "pending" => Self::Pending,
            "failed" => Self::Failed,
            "deregistered" => Self::Deregistered,
            "disabled" => Self::Disabled,
            other => Self::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Available => "available",
            Self::Pending => "pending",
            Self::Failed => "failed",
            Self::Deregistered => "deregistered",
            Self::Disabled => "disabled",
            Self::Other(other) => other,
        }
    }
}

/// What `DescribeImages` tells about one AMI, reduced to what publishing needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub id: ImageId,
    pub region: RegionName,
    pub name: Option<String>,
    pub description: Option<String>,
    pub owner_id: Option<String>,
    /// Found by `DescribeImages` with `Owners=["self"]`: the only test of
    /// ownership that does not need the account id.
    pub owned: bool,
    pub state: ImageState,
    pub public: bool,
    /// Device names of block device mappings whose EBS volume is encrypted.
    pub encrypted_devices: Vec<String>,
    /// Device names of EBS mappings EC2 gave no `Encrypted` flag for: not
    /// known to be unencrypted, so treated as a reason to stay private.
    pub unknown_encryption: Vec<String>,
    /// Backed by instance store (`RootDeviceType` `instance-store`), not EBS.
    pub instance_store: bool,
    /// The snapshots of the EBS mappings that have one, the root device's
    /// first, then in mapping order: the volumes reading the image reads.
    pub snapshots: Vec<EbsSnapshot>,
    /// Deregistration protection is on (with or without a cool-down).
    pub deregistration_protected: bool,
    pub product_codes: Vec<String>,
    pub creation_date: Option<OffsetDateTime>,
    pub deprecation_time: Option<OffsetDateTime>,
    pub tags: BTreeMap<String, String>,
}

/// One EBS volume of an AMI: the device it is mapped to and the snapshot
/// it is made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EbsSnapshot {
    pub device: String,
    pub snapshot_id: String,
}

/// Who set the image block public access state of a region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BpaManager {
    Account,
    /// An organization's declarative policy: the account can't change it.
    DeclarativePolicy,
    Other(String),
}

/// Image block public access (`GetImageBlockPublicAccessState`) in a region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlockPublicAccess {
    Unblocked,
    BlockNewSharing { managed_by: BpaManager },
}

/// Formats a time as EC2 does (`2027-11-01T10:20:00Z`, RFC 3339 in UTC).
pub fn format_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Parses a time as EC2 gives it (`2026-11-01T10:20:30.000Z`).
pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// The status the function writes on an AMI (`publish:status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Public in its region, and every copy is public too.
    Public,
    /// Public in its region; some copies are not public yet.
    Copying,
    /// Pending: will be published when it becomes available.
    Pending,
    /// Must stay private; `publish:reason` says why.
    Rejected,
    /// A step failed; the function's retry or the sweep will try again.
    Error,
    /// Made private again (with its copies) because its owner no longer asks
    /// for it: the publish tag was removed, or its source's was.
    Withdrawn,
    /// Made private by an unpublish request; stays private, whatever its
    /// tags, until the owner deletes this status tag.
    Held,
    /// Made private by rotation: newer public AMIs of its family replaced
    /// it; stays private until the owner deletes this status tag.
    Retired,
    /// Published by the function, and now private past its deprecation
    /// time: AWS removes public sharing from outdated AMIs (EC2 User Guide,
    /// "Make an AMI public"), as Image Builder's lifecycle or its owner may;
    /// the function does not make it public again.
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Copying => "copying",
            Self::Pending => "pending",
            Self::Rejected => "rejected",
            Self::Error => "error",
            Self::Withdrawn => "withdrawn",
            Self::Held => "held",
            Self::Retired => "retired",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Public,
            Self::Copying,
            Self::Pending,
            Self::Rejected,
            Self::Error,
            Self::Withdrawn,
            Self::Held,
            Self::Retired,
            Self::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_names_of_every_partition_parse_and_others_do_not() {
        for good in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-2",
            "cn-north-1",
            "eusc-de-east-1",
        ] {
            assert_eq!(
                RegionName::parse(good).map(|r| r.to_string()),
                Ok(good.to_owned())
            );
        }
        for bad in [
            "",
            "us-east",
            "u-east-1",
            "US-EAST-1",
            "us_east_1",
            "us-east-1a",
            "us--east-1",
            "us-east-",
        ] {
            assert!(RegionName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn regions_know_their_partition() {
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("ap-southeast-2", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(
                RegionName::parse(region).unwrap().partition(),
                partition,
                "{region}"
            );
        }
    }

    #[test]
    fn source_refs_round_trip_and_malformed_ones_are_refused() {
        let text = "us-east-1/ami-0a1b2c3d4e5f60001";
        assert_eq!(
            SourceRef::parse(text).map(|s| s.to_string()),
            Ok(text.to_owned())
        );
        for bad in [
            "",
            "us-east-1",
            "ami-0a1b2c3d4e5f60001",
            "us-east-1/ami-x",
            "x/ami-12345678",
        ] {
            assert!(SourceRef::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn image_ids_are_ami_and_8_or_17_lowercase_alphanumerics() {
        for good in [
            "ami-12345678",
            "ami-0a1b2c3d4e5f60001",
            "ami-0123456789example",
        ] {
            assert!(ImageId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ami-",
            "ami-1234567",
            "ami-123456789",
            "AMI-12345678",
            "ami-ABCDEF12",
            "snap-12345678",
            "ami-1234567/",
        ] {
            assert!(ImageId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
