//! The Lambda entry point: reads configuration, builds the AWS config and
//! one EC2 client per region once, and hands invocations to the library.

use ami_publisher::clients::Clients;
use ami_publisher::config::Config;
use ami_publisher::event::NotJsonLayer;
use ami_publisher::publisher::Publisher;
use lambda_runtime::{Error, LambdaEvent, Runtime, layers::TracingLayer, service_fn};
use serde_json::Value;
use std::time::SystemTime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON, level from AWS_LAMBDA_LOG_LEVEL.
    lambda_runtime::tracing::init_default_subscriber();
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest());
    // On Lambda the execution role's keys are in the environment. Taking
    // them from there skips building the default credential chain, whose
    // instance-metadata and container providers each set up an HTTPS client
    // at start (loading every root certificate on the system) for nothing.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        sdk = sdk.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    let sdk = sdk.load().await;
    let clients = Clients::from_sdk_config(&sdk);
    let publisher = Publisher::new(config, clients);
    let publisher = &publisher;
    let handler = service_fn(move |event: LambdaEvent<Value>| async move {
        let account = account_of(&event.context.invoked_function_arn);
        let deadline = usable_deadline(event.context.deadline());
        publisher
            .handle_for(&event.payload, account, deadline)
            .await
    });
    // lambda_runtime::run, plus a payload that is not JSON answered as an
    // invalid event by the function rather than by the runtime.
    Runtime::new(handler)
        .layer(TracingLayer::new())
        .layer(NotJsonLayer)
        .run()
        .await
}

/// The account of the invoked function's ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`).
fn account_of(function_arn: &str) -> Option<&str> {
    function_arn
        .split(':')
        .nth(4)
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
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
