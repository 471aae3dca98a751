//! The entry point. Run by Lambda (`AWS_LAMBDA_RUNTIME_API` set), the
//! function: reads configuration, builds the AWS config (with the one
//! shared HTTPS client) and the lazily built regional clients once, and hands invocations to the library. Run
//! by a person, the commands of src/cli/: `plan` (a preview that never
//! writes), `ls`, `history` and `check`.

use std::process::ExitCode;
use std::time::SystemTime;

use ami_publisher::cli;
use ami_publisher::clients::Clients;
use ami_publisher::config::Config;
use ami_publisher::event::NotJsonLayer;
use ami_publisher::publisher::Publisher;
use lambda_runtime::{Error, LambdaEvent, Runtime, layers::TracingLayer, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<ExitCode, Error> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        lambda().await?;
        return Ok(ExitCode::SUCCESS);
    }
    Ok(command(&std::env::args().skip(1).collect::<Vec<_>>()).await)
}

async fn lambda() -> Result<(), Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON, level from AWS_LAMBDA_LOG_LEVEL.
    lambda_runtime::tracing::init_default_subscriber();
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    // One HTTPS client for every AWS client of the process (src/http_client.rs).
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

/// A person's command (src/cli/): `plan`, `ls`, `history`, `check`, or
/// the usage; bad usage exits 2.
async fn command(args: &[String]) -> ExitCode {
    match cli::parse(args) {
        Ok(command) => cli::run(&command).await,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ami-publisher: {e}\n");
            }
            eprintln!("{}", cli::USAGE);
            ExitCode::from(2)
        }
    }
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
