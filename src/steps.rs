//! Every change the function makes to EC2, as a value. A run carries each
//! step out (through [`ec2`](crate::ec2)) and reports it; a preview (a dry
//! run, or the `plan` command) only reports it, so that what a preview says
//! is what the run then does, step for step.

use std::fmt;

use serde::{Serialize, Serializer};
use time::OffsetDateTime;

use crate::model::{ImageId, RegionName, SourceRef, Status, format_time};

/// One write, in the order the function makes them for an AMI.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "step", rename_all = "kebab-case")]
pub enum Step {
    /// Set the AMI's deprecation time.
    Deprecate {
        region: RegionName,
        image_id: ImageId,
        #[serde(serialize_with = "rfc3339")]
        at: OffsetDateTime,
    },
    /// Add the group `all` to its launch permission.
    MakePublic {
        region: RegionName,
        image_id: ImageId,
    },
    /// Turn deregistration protection on (no cool-down).
    Protect {
        region: RegionName,
        image_id: ImageId,
    },
    /// Remove the group `all`.
    MakePrivate {
        region: RegionName,
        image_id: ImageId,
    },
    /// Turn deregistration protection off (only where the function set it).
    Unprotect {
        region: RegionName,
        image_id: ImageId,
    },
    /// Start a copy of `source` in `region`.
    Copy {
        region: RegionName,
        source: SourceRef,
    },
    /// Record a new copy generation on the source (a dead copy is replaced).
    NewGeneration {
        region: RegionName,
        image_id: ImageId,
        generation: u32,
    },
    /// Write the status tags (the reason with it).
    Status {
        region: RegionName,
        image_id: ImageId,
        status: Status,
    },
}

impl Step {
    /// The region the step's call is made in.
    pub fn region(&self) -> &RegionName {
        match self {
            Self::Deprecate { region, .. }
            | Self::MakePublic { region, .. }
            | Self::Protect { region, .. }
            | Self::MakePrivate { region, .. }
            | Self::Unprotect { region, .. }
            | Self::Copy { region, .. }
            | Self::NewGeneration { region, .. }
            | Self::Status { region, .. } => region,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deprecate { image_id, at, .. } => {
                write!(f, "deprecate {image_id} at {}", format_time(*at))
            }
            Self::MakePublic { image_id, .. } => write!(f, "make {image_id} public"),
            Self::Protect { image_id, .. } => {
                write!(f, "protect {image_id} from deregistration")
            }
            Self::MakePrivate { image_id, .. } => write!(f, "make {image_id} private"),
            Self::Unprotect { image_id, .. } => {
                write!(f, "remove {image_id}'s deregistration protection")
            }
            Self::Copy { region, source } => write!(f, "copy {source} to {region}"),
            Self::NewGeneration {
                image_id,
                generation,
                ..
            } => write!(f, "record copy generation {generation} on {image_id}"),
            Self::Status {
                image_id, status, ..
            } => write!(f, "tag {image_id} {}", status.as_str()),
        }
    }
}

fn rfc3339<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_time(*at))
}
