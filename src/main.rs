//! The Lambda entry point: reads configuration, builds the AWS config and
//! one EC2 client per region once, and hands invocations to the library.

use ami_publisher::config::Config;
use ami_publisher::ec2::Clients;
use ami_publisher::publisher::Publisher;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON, level from AWS_LAMBDA_LOG_LEVEL.
    lambda_runtime::tracing::init_default_subscriber();
    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "bad configuration"))?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let clients = Clients::from_sdk_config(&sdk, config.regions());
    let publisher = Publisher::new(config, clients);
    let publisher = &publisher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = event.context.deadline();
        publisher.handle_until(&event.payload, Some(deadline)).await
    }))
    .await
}
