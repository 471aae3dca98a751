//! The Lambda entry point: reads configuration, builds the AWS config (with
//! the one shared HTTPS client) and the per-region EC2 clients once, and
//! hands invocations to the library.

use ami_publisher::config::Config;
use ami_publisher::ec2::Clients;
use ami_publisher::publisher::Publisher;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::time::SystemTime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON, level from AWS_LAMBDA_LOG_LEVEL.
    lambda_runtime::tracing::init_default_subscriber();
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    // One HTTPS client for every region's EC2 client (src/http_client.rs).
    let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(ami_publisher::http_client::shared());
    // On Lambda the execution role's keys are in the environment. Taking
    // them from there skips building the default credential chain (profile,
    // web identity, container and instance-metadata providers), none of
    // which Lambda needs. (With the SDK's default HTTP client, the last two
    // also loaded every root certificate on the system at start.)
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        sdk = sdk.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    let sdk = sdk.load().await;
    let clients = Clients::from_sdk_config(&sdk, config.regions());
    let publisher = Publisher::new(config, clients);
    let publisher = &publisher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        publisher
            .handle_until(&event.payload, usable_deadline(event.context.deadline()))
            .await
    }))
    .await
}

/// The invocation's deadline, unless it is not in the future: a runtime API
/// that sends something else than a time (cargo-lambda 1.9.2's local server
/// sends the timeout as a duration) must not make a sweep skip every AMI.
fn usable_deadline(deadline: SystemTime) -> Option<SystemTime> {
    if deadline > SystemTime::now() {
        Some(deadline)
    } else {
        tracing::warn!(
            deadline_ms = deadline
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis()),
            "the invocation's deadline is not in the future; running without one"
        );
        None
    }
}
