//! The ledger (DynamoDB, served by the emulator) failing or out of reach:
//! nothing is made public without the intent recorded first (fail closed),
//! and a failure a retry may fix is an invocation error, so that Lambda
//! tries the event again.

use std::time::Duration;

use ami_publisher::clients::{CallLimits, Clients};
use ami_publisher::config::Config;
use ami_publisher::model::RegionName;

use super::*;

/// Every `UpdateItem` of the ledger fails with `code` (more often than
/// any run retries it).
fn ledger_writes_fail(emu: &Emulator, code: &str) {
    emu.post(
        "/_emulator/faults",
        json!({"action": "UpdateItem", "error_code": code, "count": 1000}),
    );
}

/// The calls that added the group `all` to an AMI's launch permission.
fn made_public(emu: &Emulator) -> Vec<Value> {
    emu.call_log()
        .into_iter()
        .filter(|c| c["launch_permission"] == "add all")
        .collect()
}

/// The ledger's calls since the last clear, by action.
fn ledger_calls(emu: &Emulator) -> Vec<String> {
    emu.get("/_emulator/calls?service=dynamodb")["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The failures an invocation error reports; panics on success.
fn failures_of(result: Result<ami_publisher::report::Outcome, Error>) -> Vec<String> {
    match result {
        Err(Error::Incomplete { failures }) => failures,
        Err(other) => panic!("expected an error a retry may fix, got {other}"),
        Ok(outcome) => panic!("the ledger failed, yet the invocation succeeded: {outcome:?}"),
    }
}

/// With every ledger write failing with `code`, a tagged AMI's first run
/// leaves it private and ends in an invocation error naming the failure;
/// the retry, once the ledger answers again, publishes it.
async fn transient_ledger_failure_fails_closed(code: &str) {
    let emu = Emulator::start();
    let spec = json!({"image_id": "ami-0a1b2c3d4e5f60001", "tags": {"publish": "public"}});
    let id = seed_tagged(&emu, HOME, spec.clone());
    ledger_writes_fail(&emu, code);
    let publisher = emu.publisher(HOME, &[]).await;

    let failures = failures_of(
        publisher
            .handle(&ami_state_event(&id, HOME, "available"))
            .await,
    );

    let reported = failures.join("; ");
    assert!(
        reported.contains(&id) && reported.contains("UpdateItem") && reported.contains(code),
        "{code}: {reported}"
    );
    let image = emu.image(HOME, &id);
    assert_eq!(
        image["public"], false,
        "{code}: made public without the ledger"
    );
    assert_ne!(tag(&image, "publish:status"), Some("public"), "{code}");
    assert!(
        made_public(&emu).is_empty(),
        "{code}: {:?}",
        made_public(&emu)
    );
    // The ledger was asked, and the SDK tried again: the failure is transient.
    let updates = ledger_calls(&emu)
        .iter()
        .filter(|a| *a == "UpdateItem")
        .count();
    assert!(updates > 1, "{code}: {updates} UpdateItem call(s)");

    // The retry Lambda makes, once the ledger answers again: published.
    emu.post("/_emulator/reset", json!({}));
    seed_tagged(&emu, HOME, spec);
    publisher
        .handle(&ami_state_event(&id, HOME, "available"))
        .await
        .unwrap_or_else(|e| panic!("{code}: the retry failed: {e}"));
    assert_eq!(emu.image(HOME, &id)["public"], true, "{code}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ledger_writes_failing_with_internal_server_error_leave_the_ami_private_and_the_invocation_an_error()
 {
    transient_ledger_failure_fails_closed("InternalServerError").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ledger_writes_failing_with_service_unavailable_leave_the_ami_private_and_the_invocation_an_error()
 {
    transient_ledger_failure_fails_closed("ServiceUnavailable").await;
}

/// DynamoDB's throttling (HTTP 400; "OK to retry? Yes" in the Developer
/// Guide's error table; the SDK's standard retry treats it as throttling).
#[tokio::test(flavor = "multi_thread")]
async fn ledger_writes_throttled_leave_the_ami_private_and_the_invocation_an_error() {
    transient_ledger_failure_fails_closed("ProvisionedThroughputExceededException").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_with_the_ledger_failing_makes_nothing_public() {
    let emu = Emulator::start();
    let ids: Vec<String> = (0..3).map(|_| seed_tagged(&emu, HOME, json!({}))).collect();
    ledger_writes_fail(&emu, "InternalServerError");
    let publisher = emu.publisher(HOME, &[]).await;

    let failures = failures_of(publisher.handle(&sweep_event(HOME)).await);

    for id in &ids {
        assert_eq!(emu.image(HOME, id)["public"], false, "{id}");
        assert!(
            failures.iter().any(|f| f.contains(id.as_str())),
            "{id} not among {failures:?}"
        );
    }
    assert!(made_public(&emu).is_empty(), "{:?}", made_public(&emu));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ledger_out_of_reach_makes_nothing_public_and_the_invocation_an_error() {
    let emu = Emulator::start();
    let id = seed_tagged(&emu, HOME, json!({}));
    // EC2 answers; DynamoDB is a closed port (nothing listens on port 9,
    // discard, here): every ledger call fails to connect.
    let region = RegionName::parse(HOME).unwrap();
    let sdk = emu.sdk(HOME).await;
    let unreachable = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url("http://127.0.0.1:9")
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_timeout(Duration::from_secs(10))
                    .build(),
            )
            .build(),
    );
    let config = Config::from_vars(&common::defaults(HOME)).expect("valid configuration");
    let clients = Clients::from_sdk_config(&sdk)
        .with_limits(CallLimits::default())
        .with_dynamodb_clients([(region, unreachable)]);
    let publisher = Publisher::new(config, clients);

    let failures = failures_of(
        publisher
            .handle(&ami_state_event(&id, HOME, "available"))
            .await,
    );

    assert!(
        failures.iter().any(|f| f.contains("UpdateItem")),
        "{failures:?}"
    );
    assert_eq!(emu.image(HOME, &id)["public"], false);
    assert!(made_public(&emu).is_empty(), "{:?}", made_public(&emu));
    assert!(ledger_calls(&emu).is_empty(), "the ledger was out of reach");
}
