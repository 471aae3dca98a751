//! The pace of the function's own EC2 calls, per region and action: a token
//! bucket the size and refill rate EC2 documents for that action, so that a
//! sweep of a thousand AMIs waits its turn instead of being throttled and
//! failing.
//!
//! EC2 throttles "for each AWS account on a per-Region basis", "on a
//! per-API basis": each action has a bucket of request tokens that refills
//! every second, and an empty bucket answers `RequestLimitExceeded` (Amazon
//! EC2 Developer Guide, "Request throttling for the Amazon EC2 API", "Request
//! token bucket sizes and refill rates"). The SDK's retries back off after
//! the fact, with a budget shared by every action of the client; the
//! buckets' rates are known in advance, so the function keeps to them: each
//! call takes a token first, and waits for one when there is none.
//!
//! The function can't see the account's buckets, only its own calls. Other
//! callers (a console, a pipeline) draw from the same buckets, and a new
//! process starts believing them full. So an attempt EC2 throttled empties
//! the function's bucket for that action ([`Learn`], an interceptor on
//! every EC2 client), and a retry the SDK makes takes a token too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime::client::retries::classifiers::run_classifiers_on_ctx;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::retries::classifiers::{RetryAction, RetryReason};
use aws_smithy_types::retry::ErrorKind;
use tokio::time::Instant;

/// A bucket's size (requests) and refill rate (requests per second).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub capacity: f64,
    pub refill_per_second: f64,
}

impl Limits {
    const fn new(capacity: f64, refill_per_second: f64) -> Self {
        Self {
            capacity,
            refill_per_second,
        }
    }
}

/// The bucket EC2 documents for `action` (its "Request token bucket sizes
/// and refill rates"): the actions with their own bucket ("Uncategorized
/// actions") that the function calls, else the category's: `Describe*`,
/// `Get*`, `List*` are "Non-mutating actions" (100, 20 per second), the rest
/// "Mutating actions" (50, 5 per second).
pub fn limits(action: &str) -> Limits {
    match action {
        "CopyImage" => Limits::new(100.0, 1.0),
        "CreateTags" | "DeleteTags" => Limits::new(100.0, 10.0),
        "DeregisterImage" | "ModifyImageAttribute" => Limits::new(100.0, 5.0),
        _ if ["Describe", "Get", "List", "Search"]
            .iter()
            .any(|p| action.starts_with(p)) =>
        {
            Limits::new(100.0, 20.0)
        }
        _ => Limits::new(50.0, 5.0),
    }
}

/// The function's buckets in one region. Off, every call goes at once (for
/// accounts whose EC2 rate limits were raised: `PACE_EC2_CALLS=false`).
#[derive(Debug, Default)]
pub struct Pace {
    on: bool,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Tokens of each of EC2's buckets the function leaves alone. A call paced
/// to the token reaches EC2 a network delay after it leaves, and that delay
/// varies: a bucket run to exactly empty would throttle every call that
/// arrives a little sooner than the one before it. One token in reserve
/// absorbs a variation of a whole refill interval (200 ms at 5 a second),
/// for no loss of rate.
const RESERVE: f64 = 1.0;

#[derive(Debug)]
struct Bucket {
    /// Tokens the function may still take (EC2's, less the reserve); below
    /// zero, the turns already promised to callers waiting for the refill.
    tokens: f64,
    at: Instant,
    limits: Limits,
}

impl Pace {
    pub fn new(on: bool) -> Arc<Self> {
        Arc::new(Self {
            on,
            buckets: Mutex::default(),
        })
    }

    /// Waits until `action` may be called, and takes its token.
    pub async fn turn(&self, action: &str) {
        if let Some(wait) = self.take(action) {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token (possibly one not refilled yet); how long until it is.
    fn take(&self, action: &str) -> Option<Duration> {
        if !self.on {
            return None;
        }
        self.with_bucket(action, |bucket| {
            bucket.tokens -= 1.0;
            (bucket.tokens < 0.0)
                .then(|| Duration::from_secs_f64(-bucket.tokens / bucket.limits.refill_per_second))
        })
    }

    /// EC2 throttled an attempt: the account's bucket for `action` is empty,
    /// whatever this process believed.
    pub fn throttled(&self, action: &str) {
        if self.on {
            self.with_bucket(action, |bucket| bucket.tokens = bucket.tokens.min(-RESERVE));
        }
    }

    /// A retry the SDK makes on its own (after its back-off) takes a token
    /// without waiting for one.
    fn retried(&self, action: &str) {
        if self.on {
            self.with_bucket(action, |bucket| bucket.tokens -= 1.0);
        }
    }

    fn with_bucket<T>(&self, action: &str, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let bucket = buckets.entry(action.to_owned()).or_insert_with(|| {
            // A bucket not used yet is full.
            let limits = limits(action);
            Bucket {
                tokens: limits.capacity - RESERVE,
                at: now,
                limits,
            }
        });
        let refilled =
            now.duration_since(bucket.at).as_secs_f64() * bucket.limits.refill_per_second;
        bucket.tokens = (bucket.tokens + refilled).min(bucket.limits.capacity - RESERVE);
        bucket.at = now;
        f(bucket)
    }
}

/// The interceptor that tells a region's [`Pace`] what the SDK does on its
/// own: an attempt EC2 throttled (classified by the client's own retry
/// classifiers, as its retry strategy sees it), and each retry.
#[derive(Debug)]
pub struct Learn(pub Arc<Pace>);

impl Intercept for Learn {
    fn name(&self) -> &'static str {
        "ami_publisher::pace::Learn"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The first attempt took its token in `turn`.
        let retry = cfg
            .load::<RequestAttempts>()
            .is_some_and(|a| a.attempts() > 1);
        if let (true, Some(op)) = (retry, cfg.load::<Metadata>()) {
            self.0.retried(op.name());
        }
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let action =
            run_classifiers_on_ctx(runtime_components.retry_classifiers(), context.inner());
        let throttled = matches!(
            action,
            RetryAction::RetryIndicated(RetryReason::RetryableError {
                kind: ErrorKind::ThrottlingError,
                ..
            })
        );
        if let (true, Some(op)) = (throttled, cfg.load::<Metadata>()) {
            self.0.throttled(op.name());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_the_ones_ec2_documents() {
        assert_eq!(limits("ModifyImageAttribute"), Limits::new(100.0, 5.0));
        assert_eq!(limits("CopyImage"), Limits::new(100.0, 1.0));
        assert_eq!(limits("CreateTags"), Limits::new(100.0, 10.0));
        assert_eq!(limits("DescribeImages"), Limits::new(100.0, 20.0));
        assert_eq!(
            limits("GetImageBlockPublicAccessState"),
            Limits::new(100.0, 20.0)
        );
        assert_eq!(limits("ListImagesInRecycleBin"), Limits::new(100.0, 20.0));
        assert_eq!(limits("EnableImageDeprecation"), Limits::new(50.0, 5.0));
        assert_eq!(
            limits("EnableImageDeregistrationProtection"),
            Limits::new(50.0, 5.0)
        );
    }

    /// How long `n` turns of `action` take, one after the other.
    async fn time_of(pace: &Pace, action: &str, n: usize) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            pace.turn(action).await;
        }
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_goes_at_once_then_each_call_waits_for_the_refill() {
        let pace = Pace::new(true);
        assert_eq!(
            time_of(&pace, "EnableImageDeprecation", 49).await,
            Duration::ZERO
        );
        // 5 tokens a second: one every 200 ms.
        assert_eq!(
            time_of(&pace, "EnableImageDeprecation", 10).await,
            Duration::from_secs(2)
        );
        // Another action has its own bucket, still full.
        assert_eq!(time_of(&pace, "CreateTags", 99).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_refills_at_its_rate_up_to_its_size() {
        let pace = Pace::new(true);
        time_of(&pace, "CopyImage", 99).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Three tokens back (one a second), then the fourth waits a second.
        assert_eq!(time_of(&pace, "CopyImage", 3).await, Duration::ZERO);
        assert_eq!(time_of(&pace, "CopyImage", 1).await, Duration::from_secs(1));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(time_of(&pace, "CopyImage", 99).await, Duration::ZERO);
        assert_eq!(time_of(&pace, "CopyImage", 1).await, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttled_attempt_empties_the_bucket_and_a_retry_takes_a_token() {
        let pace = Pace::new(true);
        pace.throttled("ModifyImageAttribute");
        // EC2's bucket is empty: a token is 200 ms away, the reserve's
        // another 200 ms.
        assert_eq!(
            time_of(&pace, "ModifyImageAttribute", 1).await,
            Duration::from_millis(400)
        );
        // Now just empty again; a retry takes the next token.
        pace.retried("ModifyImageAttribute");
        assert_eq!(
            time_of(&pace, "ModifyImageAttribute", 1).await,
            Duration::from_millis(400)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn off_every_call_goes_at_once() {
        let pace = Pace::new(false);
        pace.throttled("CopyImage");
        assert_eq!(time_of(&pace, "CopyImage", 1000).await, Duration::ZERO);
    }
}
