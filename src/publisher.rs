//! The entry: an invocation's payload parsed into a trigger
//! ([`event`](crate::event)), and the trigger handed to the capability that
//! carries it out: one AMI ([`reconcile`](crate::reconcile), which publishes
//! or takes it down and its copies with it) or a sweep of a region
//! ([`sweep`](crate::sweep)). Every AMI's and region's result is kept. A
//! failure a retry can fix (throttling, a server error, a timeout) is
//! returned as an error, so that Lambda retries, only after everything else
//! was done; one it can't (a quota, a refusal) is an outcome the owner is
//! told about on the AMI. The metrics line of each invocation is printed
//! here.

use std::time::{Duration, SystemTime};

use serde_json::Value;
use time::OffsetDateTime;
use tracing::{info, warn};

use crate::clients::Clients;
use crate::config::Config;
pub use crate::error::Error;
use crate::event::{self, Trigger};
use crate::invocation::{FRESH_FACTS, FunctionState, Invocation};
use crate::quota::QuotaCache;
use crate::reconcile;
use crate::report::{Counts, Outcome, metrics_line};
use crate::sweep;

/// The function: configuration and clients, built once, borrowed by every
/// invocation.
pub struct Publisher {
    function: FunctionState,
    clock: fn() -> OffsetDateTime,
    /// Every invocation is a preview (the `plan` command): nothing is written.
    preview_only: bool,
}

impl Publisher {
    /// The clients built from here on keep the configured pace
    /// (`PACE_EC2_CALLS`).
    pub fn new(config: Config, clients: Clients) -> Self {
        Self {
            function: FunctionState {
                clients: clients.with_pacing(config.pace_ec2_calls),
                config,
                quota_cache: QuotaCache::default(),
                fresh_facts: FRESH_FACTS,
            },
            clock: OffsetDateTime::now_utc,
            preview_only: false,
        }
    }

    /// A publisher that only previews: every invocation is a dry run,
    /// whatever its payload says, and it prints no metrics (the `plan`
    /// command).
    pub fn preview_only(mut self) -> Self {
        self.preview_only = true;
        self
    }

    /// Replaces the clock (tests pin "now" to check deprecation dates).
    pub fn with_clock(mut self, clock: fn() -> OffsetDateTime) -> Self {
        self.clock = clock;
        self
    }

    /// Replaces how old facts may be when an AMI is made public on them
    /// (tests: zero makes every publish read its facts again first).
    pub fn with_fresh_facts(mut self, max_age: Duration) -> Self {
        self.function.fresh_facts = max_age;
        self
    }

    /// Handles one invocation payload, with no deadline.
    pub async fn handle(&self, payload: &Value) -> Result<Outcome, Error> {
        self.handle_until(payload, None).await
    }

    /// Handles one invocation payload; work that could not finish, status
    /// tags included, before `deadline` is left to the next run.
    pub async fn handle_until(
        &self,
        payload: &Value,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, Error> {
        self.handle_for(payload, None, deadline).await
    }

    /// Handles one invocation payload for the function of `account` (from
    /// the invoked function's ARN; events naming another account's AMI are
    /// refused), and prints its metrics line (report::metrics_line).
    pub async fn handle_for(
        &self,
        payload: &Value,
        account: Option<&str>,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, Error> {
        let result = self.handle_payload(payload, account, deadline).await;
        let (counts, region) = match &result {
            // A preview changed nothing: its line counts no action.
            Ok(outcome) if outcome.preview => (
                Counts {
                    errors: outcome.failures().len(),
                    ..Counts::default()
                },
                outcome.region.as_ref(),
            ),
            Ok(outcome) => (outcome.counts(), outcome.region.as_ref()),
            Err(_) => (
                Counts {
                    errors: 1,
                    ..Counts::default()
                },
                None,
            ),
        };
        let region = region.unwrap_or(&self.function.config.home_region);
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        // On stdout, one line, as CloudWatch Logs expects EMF (not for a
        // person's preview: there is no CloudWatch to read it).
        if !self.preview_only {
            use std::io::Write as _;
            let line = metrics_line(counts, region, now_ms) + "\n";
            let _ = std::io::stdout().write_all(line.as_bytes());
        }
        let outcome = result?;
        let failures = outcome.failures();
        if failures.is_empty() {
            Ok(outcome)
        } else {
            warn!(
                outcome = %serde_json::to_string(&outcome).unwrap_or_default(),
                "incomplete: returning an error so the invocation is retried"
            );
            Err(Error::Incomplete { failures })
        }
    }

    /// The outcome of a payload, failures a retry may fix included.
    async fn handle_payload(
        &self,
        payload: &Value,
        account: Option<&str>,
        deadline: Option<SystemTime>,
    ) -> Result<Outcome, Error> {
        // An invalid event is logged by lambda_runtime with the error it returns.
        let request = event::parse(payload, &self.function.config, account)?;
        let (trigger, preview) = (request.trigger, self.preview_only || request.preview);
        let mut inv = Invocation::new(
            &self.function,
            (self.clock)(),
            deadline,
            preview,
            reconcile::boxed,
        );
        let mut outcome = match trigger {
            Trigger::Ignored { reason } => {
                info!(reason = %reason, "event ignored");
                Outcome::ignored(reason)
            }
            Trigger::Image {
                image_id,
                region,
                cause,
                intent,
            } => {
                let run = inv.run(&region)?;
                // On the heap: the run of one AMI (its copies' runs inside)
                // is a large future, too large for a thread's stack in a
                // debug build.
                let run = Box::pin(reconcile::reconcile_by_id(
                    &inv, run, &image_id, cause, intent,
                ));
                let image = run.await;
                Outcome::image(cause, region, image)
            }
            Trigger::Sweep { region } => Box::pin(sweep::sweep(&mut inv, &region)).await?,
        };
        outcome.quotas = inv.quotas.reports().await;
        outcome.preview = preview;
        outcome.steps = inv.steps();
        outcome.collect_actions();
        outcome.log_summary();
        Ok(outcome)
    }
}
