//! Whether AWS lets an AMI be public, as a pure function of its facts.
//! The rules are those of the EC2 documentation on making an AMI public;
//! every failing rule is reported, not just the first.

use std::fmt;

use time::OffsetDateTime;

use crate::model::{BlockPublicAccess, BpaManager, Image, ImageState, SourceRef};

/// One reason an AMI can't be made public (now).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `DescribeImages` with `Owners=["self"]` does not find it: only the
    /// owner can share an AMI.
    NotOwned { owner_id: Option<String> },
    /// Only `available` AMIs can be shared.
    NotAvailable { state: ImageState },
    /// Encrypted volumes, and snapshots of them, can't be public.
    Encrypted { devices: Vec<String> },
    /// EC2 did not say whether these EBS volumes are encrypted: fail closed.
    EncryptionUnknown { devices: Vec<String> },
    /// AMIs with product codes (AWS Marketplace) can't be public.
    ProductCodes { codes: Vec<String> },
    /// Image block public access is on in the region.
    BlockPublicAccess { managed_by: BpaManager },
    /// The configured deprecation date has passed already (EC2 refuses a
    /// deprecation time in the past).
    PastDeprecation { at: OffsetDateTime },
    /// Its deprecation time has passed: a deprecated AMI is not made public
    /// (AWS removes public sharing from outdated AMIs: EC2 User Guide, "Make
    /// an AMI public").
    Deprecated { at: OffsetDateTime },
    /// A deprecation policy is set but EC2 gave no creation date to count from.
    UnknownCreationDate,
    /// The provenance tag of a copy is not `REGION/ami-...`: the function did
    /// not write it, so the copy's source is unknown.
    MalformedSource { tag: String },
    /// The content check found what its builder left behind (a summary of
    /// kinds and paths, never the content): "Recommendations for creating
    /// shared Linux AMIs" (EC2 User Guide).
    Content { summary: String, allow_key: String },
    /// The content check could not read the AMI (and
    /// `CONTENT_CHECK_UNREADABLE` is not `publish`): nothing is claimed.
    ContentUnreadable { reason: String },
    /// The owner's acknowledgement tag names kinds the check does not know.
    UnknownAcknowledged { key: String, names: Vec<String> },
    /// The content check is on and has no verdict for the AMI (fail closed;
    /// the runner always reads one first).
    ContentNotChecked,
    /// A copy follows its source: it may be public only while its source,
    /// read in the source's region, is owned, tagged for publishing and public.
    Source {
        source: SourceRef,
        problem: SourceProblem,
    },
}

/// What keeps a copy's source from vouching for the copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceProblem {
    /// Deregistered, or not visible to the account.
    NotFound,
    NotOwned,
    /// It no longer carries the publish tag with the publish value.
    NotTagged {
        key: String,
        value: String,
    },
    /// Made private on request (status `held`).
    Held,
    /// Tagged, but not public (yet) in its region.
    NotPublic,
    /// Its deprecation time, which its copies share, has passed.
    Deprecated {
        at: OffsetDateTime,
    },
}

impl fmt::Display for SourceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("no longer exists"),
            Self::NotOwned => f.write_str("is not owned by this account"),
            Self::NotTagged { key, value } => write!(f, "is not tagged {key}={value}"),
            Self::Held => f.write_str("was made private on request (held)"),
            Self::NotPublic => f.write_str("is not public"),
            Self::Deprecated { at } => {
                write!(f, "was deprecated at {}", crate::model::format_time(*at))
            }
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOwned { owner_id: Some(owner) } => {
                write!(f, "owned by account {owner}, not this one")
            }
            Self::NotOwned { owner_id: None } => f.write_str("not owned by this account"),
            Self::NotAvailable { state } => write!(f, "state is {}, not available", state.as_str()),
            Self::Encrypted { devices } => write!(f, "encrypted EBS volume: {}", devices.join(", ")),
            Self::EncryptionUnknown { devices } => write!(
                f,
                "EC2 does not say whether EBS volume {} is encrypted",
                devices.join(", ")
            ),
            Self::ProductCodes { codes } => write!(f, "has product code: {}", codes.join(", ")),
            Self::BlockPublicAccess { managed_by } => match managed_by {
                BpaManager::Account => f.write_str(
                    "image block public access is on in the region (managed by the account: DisableImageBlockPublicAccess)",
                ),
                BpaManager::DeclarativePolicy => f.write_str(
                    "image block public access is on in the region (managed by a declarative policy of the organization)",
                ),
                BpaManager::Other(by) => write!(
                    f,
                    "image block public access is on in the region (managed by {by})"
                ),
            },
            Self::PastDeprecation { at } => write!(
                f,
                "its deprecation date by policy, {}, has passed",
                crate::model::format_time(*at)
            ),
            Self::Deprecated { at } => write!(
                f,
                "it was deprecated at {}: a deprecated AMI is not made public; set a later deprecation time (EnableImageDeprecation) or publish a newer build",
                crate::model::format_time(*at)
            ),
            Self::UnknownCreationDate => {
                f.write_str("no creation date to count the deprecation date from")
            }
            Self::MalformedSource { tag } => {
                write!(f, "its tag {tag} does not name a source as REGION/ami-...")
            }
            Self::Source { source, problem } => write!(f, "its source {source} {problem}"),
            Self::Content { summary, allow_key } => write!(
                f,
                "the content check found {summary}: clean the image and build it again, or acknowledge the kinds in the tag {allow_key}"
            ),
            Self::ContentUnreadable { reason } => write!(
                f,
                "the content check could not read it: {reason} (CONTENT_CHECK_UNREADABLE=publish publishes such AMIs)"
            ),
            Self::UnknownAcknowledged { key, names } => write!(
                f,
                "the tag {key} names unknown kinds: {} (known: {})",
                names.join(", "),
                crate::content::Kind::ALL.map(|k| k.name()).join(", ")
            ),
            Self::ContentNotChecked => f.write_str("the content check has no verdict for it"),
        }
    }
}

/// Every reason `image` can't be made public. `bpa` is the region's image
/// block public access state; `None` when it was not needed (an AMI that is
/// already public stays public whatever BPA says).
pub fn check(image: &Image, bpa: Option<&BlockPublicAccess>) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if !image.owned {
        reasons.push(Reason::NotOwned {
            owner_id: image.owner_id.clone(),
        });
    }
    if image.state != ImageState::Available {
        reasons.push(Reason::NotAvailable {
            state: image.state.clone(),
        });
    }
    if !image.encrypted_devices.is_empty() {
        reasons.push(Reason::Encrypted {
            devices: image.encrypted_devices.clone(),
        });
    }
    if !image.unknown_encryption.is_empty() {
        reasons.push(Reason::EncryptionUnknown {
            devices: image.unknown_encryption.clone(),
        });
    }
    if !image.product_codes.is_empty() {
        reasons.push(Reason::ProductCodes {
            codes: image.product_codes.clone(),
        });
    }
    if let Some(BlockPublicAccess::BlockNewSharing { managed_by }) = bpa {
        reasons.push(Reason::BlockPublicAccess {
            managed_by: managed_by.clone(),
        });
    }
    reasons
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::{ImageId, RegionName};
    use std::collections::BTreeMap;
    use time::macros::datetime;

    /// An owned, available, unencrypted AMI without product codes, tagged
    /// `publish=public`: eligible everywhere BPA is off.
    pub(crate) fn eligible_image() -> Image {
        Image {
            id: ImageId::parse("ami-0a1b2c3d4e5f60001").unwrap(),
            region: RegionName::parse("us-east-1").unwrap(),
            name: Some("demo".into()),
            description: None,
            owner_id: Some("123456789012".into()),
            owned: true,
            state: ImageState::Available,
            public: false,
            encrypted_devices: vec![],
            unknown_encryption: vec![],
            instance_store: false,
            snapshots: vec![],
            deregistration_protected: false,
            product_codes: vec![],
            creation_date: Some(datetime!(2026-11-01 00:00 UTC)),
            deprecation_time: None,
            tags: BTreeMap::from([("publish".into(), "public".into())]),
        }
    }

    const UNBLOCKED: Option<&BlockPublicAccess> = Some(&BlockPublicAccess::Unblocked);

    #[test]
    fn eligible_image_has_no_reason() {
        assert_eq!(check(&eligible_image(), UNBLOCKED), vec![]);
        assert_eq!(check(&eligible_image(), None), vec![]);
    }

    #[test]
    fn not_owned() {
        let image = Image {
            owned: false,
            owner_id: Some("210987654321".into()),
            ..eligible_image()
        };
        let reasons = check(&image, UNBLOCKED);
        assert_eq!(
            reasons,
            vec![Reason::NotOwned {
                owner_id: Some("210987654321".into())
            }]
        );
        assert_eq!(
            reasons[0].to_string(),
            "owned by account 210987654321, not this one"
        );
    }

    #[test]
    fn not_available() {
        for state in [
            ImageState::Pending,
            ImageState::Failed,
            ImageState::Disabled,
        ] {
            let image = Image {
                state: state.clone(),
                ..eligible_image()
            };
            assert_eq!(
                check(&image, UNBLOCKED),
                vec![Reason::NotAvailable { state }]
            );
        }
    }

    #[test]
    fn encrypted_volume() {
        let image = Image {
            encrypted_devices: vec!["/dev/sdb".into()],
            ..eligible_image()
        };
        let reasons = check(&image, UNBLOCKED);
        assert_eq!(
            reasons,
            vec![Reason::Encrypted {
                devices: vec!["/dev/sdb".into()]
            }]
        );
        assert_eq!(reasons[0].to_string(), "encrypted EBS volume: /dev/sdb");
    }

    #[test]
    fn unknown_encryption_fails_closed() {
        let image = Image {
            unknown_encryption: vec!["/dev/xvda".into()],
            ..eligible_image()
        };
        let reasons = check(&image, UNBLOCKED);
        assert_eq!(
            reasons,
            vec![Reason::EncryptionUnknown {
                devices: vec!["/dev/xvda".into()]
            }]
        );
        assert!(reasons[0].to_string().contains("does not say whether"));
    }

    #[test]
    fn product_code() {
        let image = Image {
            product_codes: vec!["abcdef0123".into()],
            ..eligible_image()
        };
        assert_eq!(
            check(&image, UNBLOCKED),
            vec![Reason::ProductCodes {
                codes: vec!["abcdef0123".into()]
            }]
        );
    }

    #[test]
    fn block_public_access_in_both_management_forms() {
        for managed_by in [BpaManager::Account, BpaManager::DeclarativePolicy] {
            let bpa = BlockPublicAccess::BlockNewSharing {
                managed_by: managed_by.clone(),
            };
            let reasons = check(&eligible_image(), Some(&bpa));
            assert_eq!(
                reasons,
                vec![Reason::BlockPublicAccess {
                    managed_by: managed_by.clone()
                }]
            );
            let text = reasons[0].to_string();
            let expected = match managed_by {
                BpaManager::Account => "managed by the account",
                _ => "declarative policy",
            };
            assert!(text.contains(expected), "{text}");
        }
    }

    #[test]
    fn all_rules_together_are_all_reported_in_order() {
        let image = Image {
            owned: false,
            owner_id: None,
            state: ImageState::Pending,
            encrypted_devices: vec!["/dev/xvda".into(), "/dev/sdf".into()],
            product_codes: vec!["code1".into()],
            ..eligible_image()
        };
        let bpa = BlockPublicAccess::BlockNewSharing {
            managed_by: BpaManager::Account,
        };
        let reasons = check(&image, Some(&bpa));
        assert_eq!(
            reasons,
            vec![
                Reason::NotOwned { owner_id: None },
                Reason::NotAvailable {
                    state: ImageState::Pending
                },
                Reason::Encrypted {
                    devices: vec!["/dev/xvda".into(), "/dev/sdf".into()]
                },
                Reason::ProductCodes {
                    codes: vec!["code1".into()]
                },
                Reason::BlockPublicAccess {
                    managed_by: BpaManager::Account
                },
            ]
        );
    }
}
