//! The AWS clients the function calls, per region, each built on first use
//! (and only once): EC2, Service Quotas for the public AMI quota, DynamoDB
//! for the ledger, and EBS (the direct APIs that read a snapshot's blocks,
//! src/ebs.rs). Every
//! call is bounded by the same limits (an attempt timeout, an operation
//! timeout, a number of attempts), so that an invocation can tell how long
//! the work it starts may take before its deadline.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_ec2::config::retry::{RetryConfig, RetryMode};
use aws_sdk_ec2::config::timeout::TimeoutConfig;

use crate::ec2;
use crate::model::RegionName;
use crate::pace::{self, Pace};

/// How long one AWS call may take, and how often it is tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallLimits {
    /// One HTTP attempt, connection and answer included.
    pub attempt_timeout: Duration,
    /// The whole call, retries and their back-off included: the unit an
    /// invocation budgets its remaining time in.
    pub operation_timeout: Duration,
    /// Attempts per call (the SDK's retry: throttling, 5xx and timeouts
    /// are retried with exponential back-off).
    pub max_attempts: u32,
    /// Whether each region's EC2 calls keep to EC2's documented request
    /// buckets (pace.rs); `PACE_EC2_CALLS`.
    pub paced: bool,
}

impl Default for CallLimits {
    /// EC2 answers in well under a second; 5 s is a stalled connection. Three
    /// attempts with back-off fit in 15 s.
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
            max_attempts: 3,
            paced: true,
        }
    }
}

impl CallLimits {
    fn timeouts(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }

    /// The SDK's retry in the mode the environment asks for
    /// (`AWS_RETRY_MODE`: standard, the default, or adaptive), with this
    /// many attempts.
    fn retry(&self, sdk: &aws_config::SdkConfig) -> RetryConfig {
        let mode = sdk.retry_config().map(RetryConfig::mode);
        match mode {
            Some(RetryMode::Adaptive) => RetryConfig::adaptive(),
            _ => RetryConfig::standard(),
        }
        .with_max_attempts(self.max_attempts)
    }
}

/// The clients by region. Any region of the partition can be served (a
/// copy's source may live in a region the function does not publish in);
/// which regions the function acts in is the publisher's rule, not this
/// map's.
#[derive(Debug, Default)]
pub struct Clients {
    sdk: Option<aws_config::SdkConfig>,
    limits: CallLimits,
    ec2: Mutex<HashMap<RegionName, ec2::Client>>,
    quotas: Mutex<HashMap<RegionName, aws_sdk_servicequotas::Client>>,
    dynamodb: Mutex<HashMap<RegionName, aws_sdk_dynamodb::Client>>,
    ebs: Mutex<HashMap<RegionName, aws_sdk_ebs::Client>>,
}

impl Clients {
    /// Clients sharing one SDK configuration (credentials, endpoint, HTTP
    /// client), each with its own region and the default call limits; none
    /// is built yet.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            sdk: Some(sdk.clone()),
            ..Self::default()
        }
    }

    /// EC2 clients given by hand (tests: mocks per region), paced; no other
    /// region is served, and no Service Quotas client unless given too.
    pub fn from_clients(
        clients: impl IntoIterator<Item = (RegionName, aws_sdk_ec2::Client)>,
    ) -> Self {
        let limits = CallLimits::default();
        let clients = clients.into_iter().map(|(region, client)| {
            let builder = client.config().to_builder();
            (region, paced(builder, limits.paced))
        });
        Self {
            ec2: Mutex::new(clients.collect()),
            limits,
            ..Self::default()
        }
    }

    /// Service Quotas clients given by hand (tests).
    pub fn with_quota_clients(
        self,
        clients: impl IntoIterator<Item = (RegionName, aws_sdk_servicequotas::Client)>,
    ) -> Self {
        Self {
            quotas: Mutex::new(clients.into_iter().collect()),
            ..self
        }
    }

    /// DynamoDB clients given by hand (tests).
    pub fn with_dynamodb_clients(
        self,
        clients: impl IntoIterator<Item = (RegionName, aws_sdk_dynamodb::Client)>,
    ) -> Self {
        Self {
            dynamodb: Mutex::new(clients.into_iter().collect()),
            ..self
        }
    }

    /// Replaces the call limits of the clients not built yet.
    pub fn with_limits(self, limits: CallLimits) -> Self {
        Self { limits, ..self }
    }

    /// Whether the EC2 clients not built yet keep to EC2's request buckets.
    pub fn with_pacing(mut self, on: bool) -> Self {
        self.limits.paced = on;
        self
    }

    pub fn limits(&self) -> CallLimits {
        self.limits
    }

    /// The region's EC2 client (a cheap handle on shared state, with the
    /// region's pace); `None` only for a region missing from clients given
    /// by hand.
    pub fn ec2(&self, region: &RegionName) -> Option<ec2::Client> {
        built(&self.ec2, region, || {
            let sdk = self.sdk.as_ref()?;
            let builder = aws_sdk_ec2::config::Builder::from(sdk)
                .region(aws_config::Region::new(region.as_str().to_owned()))
                .timeout_config(self.limits.timeouts())
                .retry_config(self.limits.retry(sdk));
            Some(paced(builder, self.limits.paced))
        })
    }

    /// The region's Service Quotas client.
    pub fn quotas(&self, region: &RegionName) -> Option<aws_sdk_servicequotas::Client> {
        built(&self.quotas, region, || {
            let sdk = self.sdk.as_ref()?;
            let conf = aws_sdk_servicequotas::config::Builder::from(sdk)
                .region(aws_config::Region::new(region.as_str().to_owned()))
                .timeout_config(self.limits.timeouts())
                .retry_config(self.limits.retry(sdk))
                .build();
            Some(aws_sdk_servicequotas::Client::from_conf(conf))
        })
    }

    /// The region's DynamoDB client (the ledger's table lives in the
    /// function's region).
    pub fn dynamodb(&self, region: &RegionName) -> Option<aws_sdk_dynamodb::Client> {
        built(&self.dynamodb, region, || {
            let sdk = self.sdk.as_ref()?;
            let conf = aws_sdk_dynamodb::config::Builder::from(sdk)
                .region(aws_config::Region::new(region.as_str().to_owned()))
                .timeout_config(self.limits.timeouts())
                .retry_config(self.limits.retry(sdk))
                .build();
            Some(aws_sdk_dynamodb::Client::from_conf(conf))
        })
    }

    /// The region's EBS direct APIs client, with the same limits as every
    /// EC2 call (its retries cover `RequestThrottledException`); not paced
    /// by a token bucket: src/ebs.rs says why.
    pub fn ebs(&self, region: &RegionName) -> Option<aws_sdk_ebs::Client> {
        built(&self.ebs, region, || {
            let sdk = self.sdk.as_ref()?;
            let conf = aws_sdk_ebs::config::Builder::from(sdk)
                .region(aws_config::Region::new(region.as_str().to_owned()))
                .timeout_config(self.limits.timeouts())
                .retry_config(self.limits.retry(sdk))
                .build();
            Some(aws_sdk_ebs::Client::from_conf(conf))
        })
    }
}

/// An EC2 client whose region keeps its own pace, told by the client's
/// interceptor of what EC2 throttled.
fn paced(builder: aws_sdk_ec2::config::Builder, on: bool) -> ec2::Client {
    let pace = Pace::new(on);
    let sdk =
        aws_sdk_ec2::Client::from_conf(builder.interceptor(pace::Learn(pace.clone())).build());
    ec2::Client::new(sdk, pace)
}

fn built<C: Clone>(
    map: &Mutex<HashMap<RegionName, C>>,
    region: &RegionName,
    build: impl FnOnce() -> Option<C>,
) -> Option<C> {
    // A poisoned lock only means another thread panicked while holding it;
    // the map itself is never left half-updated.
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(client) = map.get(region) {
        return Some(client.clone());
    }
    let client = build()?;
    map.insert(region.clone(), client.clone());
    Some(client)
}
