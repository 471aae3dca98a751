//! The entry point. Run by Lambda (`AWS_LAMBDA_RUNTIME_API` set), the
//! function: reads configuration, builds the AWS config (with the one
//! shared HTTPS client) and the lazily built regional clients once, and hands invocations to the library. Run
//! by a person, the `plan` command (src/cli.rs): a preview that never
//! writes; and `ls`, a directory of an AMI's root file system.

use std::process::ExitCode;
use std::time::SystemTime;

use ami_publisher::cli::{self, Command};
use ami_publisher::clients::Clients;
use ami_publisher::config::Config;
use ami_publisher::event::NotJsonLayer;
use ami_publisher::ledger::Ledger;
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

/// A person's command: `plan` (a preview with their own credentials) or help.
async fn command(args: &[String]) -> ExitCode {
    let plan = match cli::parse(args) {
        Ok(Command::Help) => {
            say(&format!("{}\n", cli::USAGE));
            return ExitCode::SUCCESS;
        }
        Ok(Command::Plan(plan)) => plan,
        Ok(Command::Ls(ls)) => return list(&ls).await,
        Ok(Command::History(history)) => return show_history(&history).await,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("ami-publisher: {e}\n");
            }
            eprintln!("{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let config = match cli::config(&plan) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ami-publisher: {e}");
            return ExitCode::from(2);
        }
    };
    // The standard credential chain (environment, profile, SSO, ...).
    let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(ami_publisher::http_client::shared())
        .region(aws_config::Region::new(plan.region.as_str().to_owned()));
    if let Some(profile) = &plan.profile {
        sdk = sdk.profile_name(profile);
    }
    let clients = Clients::from_sdk_config(&sdk.load().await);
    // Every request a preview, whatever it says: this command never writes.
    let publisher = Publisher::new(config.clone(), clients).preview_only();
    let mut outcomes = Vec::new();
    let mut failed = false;
    for payload in cli::payloads(&plan) {
        match publisher.handle(&payload).await {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                for line in cli::explain(&e) {
                    eprintln!("ami-publisher: {line}");
                }
                failed = true;
            }
        }
    }
    if plan.json {
        say(&format!(
            "{}\n",
            serde_json::to_string_pretty(&outcomes).unwrap_or_default()
        ));
    } else {
        say(&cli::render(&config, &outcomes, failed));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `history`: what the function did to the AMIs, from its ledger, read
/// with the person's credentials.
async fn show_history(history: &cli::History) -> ExitCode {
    let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(ami_publisher::http_client::shared())
        .region(aws_config::Region::new(history.region.as_str().to_owned()));
    if let Some(profile) = &history.profile {
        sdk = sdk.profile_name(profile);
    }
    let ledger = Ledger {
        client: aws_sdk_dynamodb::Client::new(&sdk.load().await),
        table: history.table.clone(),
        region: history.region.clone(),
    };
    match ami_publisher::history::read(&ledger, &history.region, history.image.as_ref()).await {
        Ok(records) if history.json => {
            say(&format!(
                "{}\n",
                serde_json::to_string_pretty(&records).unwrap_or_default()
            ));
            ExitCode::SUCCESS
        }
        Ok(records) => {
            say(&ami_publisher::history::render(&records));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ami-publisher: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `ls`: a directory of an AMI's root file system, read with the person's
/// credentials (the standard chain, or --profile).
async fn list(ls: &cli::Ls) -> ExitCode {
    let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(ami_publisher::http_client::shared())
        .region(aws_config::Region::new(ls.region.as_str().to_owned()));
    if let Some(profile) = &ls.profile {
        sdk = sdk.profile_name(profile);
    }
    let clients = Clients::from_sdk_config(&sdk.load().await);
    match cli::ls(ls, &clients).await {
        Ok(listing) => {
            say(&listing);
            ExitCode::SUCCESS
        }
        Err(line) => {
            eprintln!("ami-publisher: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn say(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().write_all(text.as_bytes());
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
