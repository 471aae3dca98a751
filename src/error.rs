//! The errors an invocation ends with, each mapped to a stable Lambda
//! `errorType` (README, "Errors"). An AMI that must stay private is not an
//! error but an outcome ([`report`](crate::report)): errors make Lambda
//! retry, rejections must not.

use lambda_runtime::Diagnostic;

use crate::ec2::Ec2Error;
use crate::event::EventError;
use crate::model::RegionName;

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidEvent(#[from] EventError),
    #[error(
        "region {region} is not one this function works in (its own region {home} and TARGET_REGIONS)"
    )]
    UnknownRegion {
        region: RegionName,
        home: RegionName,
    },
    #[error("sweep of {region} could not list the AMIs tagged for publishing: {error}")]
    Sweep {
        region: RegionName,
        error: Box<Ec2Error>,
    },
    #[error("{} failure(s) a retry may fix, everything else done: {}", failures.len(), failures.join("; "))]
    Incomplete { failures: Vec<String> },
}

impl From<Error> for Diagnostic {
    fn from(error: Error) -> Self {
        let error_type = match &error {
            Error::InvalidEvent(_) => "InvalidEvent",
            Error::UnknownRegion { .. } => "UnknownRegion",
            Error::Sweep { .. } => "SweepFailed",
            Error::Incomplete { .. } => "PublishIncomplete",
        };
        Diagnostic {
            error_type: error_type.to_owned(),
            error_message: error.to_string(),
        }
    }
}
