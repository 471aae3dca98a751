//! Under AWS's real limits: throttling and EC2's request buckets, the public
//! AMI quota, a slow EC2 against the invocation's deadline.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_by_the_sdk() {
    let emu = Emulator::start();
    let id = seed_tagged(&emu, HOME, json!({}));
    emu.post(
        "/_emulator/faults",
        json!({"action": "ModifyImageAttribute", "error_code": "RequestLimitExceeded", "count": 2}),
    );
    let publisher = emu.publisher(HOME, &[]).await;

    publisher.handle(&json!({"image_id": id})).await.unwrap();

    assert_eq!(emu.image(HOME, &id)["public"], true);
    let modify_calls = emu
        .calls()
        .iter()
        .filter(|(a, _)| a == "ModifyImageAttribute")
        .count();
    assert_eq!(modify_calls, 3);
}

/// The calls EC2 throttled since the last clear, by action.
fn throttled(emu: &Emulator) -> Vec<String> {
    emu.call_log()
        .iter()
        .filter(|c| c["throttled"] == true)
        .map(|c| c["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A sweep of `n` tagged AMIs with the emulator's EC2 throttling set to
/// `throttling`, and at most `lambda_retries` more invocations of it when
/// one fails for a reason a retry may fix (as Lambda retries): every AMI
/// must end public; returns the calls EC2 throttled.
async fn sweep_under_throttling(n: usize, throttling: Value, lambda_retries: usize) -> Vec<String> {
    let emu = Emulator::start();
    emu.post("/_emulator/config", json!({"public_image_quota": 100}));
    let ids: Vec<String> = (0..n).map(|_| seed_tagged(&emu, HOME, json!({}))).collect();
    emu.post("/_emulator/throttling", throttling);
    let publisher = emu.publisher(HOME, &[]).await;
    emu.clear_calls();

    let sweep = sweep_event(HOME);
    let mut result = publisher.handle(&sweep).await;
    for _ in 0..lambda_retries {
        if !matches!(result, Err(Error::Incomplete { .. })) {
            break;
        }
        result = publisher.handle(&sweep).await;
    }

    let outcome = result.unwrap();
    let done = |id: &String| {
        let image = emu.image(HOME, id);
        image["public"] == true && tag(&image, "publish:status") == Some("public")
    };
    assert!(ids.iter().all(done), "{outcome:?}");
    throttled(&emu)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_keeps_to_ec2s_request_buckets_instead_of_being_throttled() {
    // 60 AMIs: 10 EnableImageDeregistrationProtection calls (PROTECT_PUBLIC)
    // more than its bucket holds (50, refilled 5 a second).
    let throttled = sweep_under_throttling(60, json!({"enabled": true}), 0).await;

    // Unpaced, each of the 10 extra calls is throttled at least once. Paced,
    // none is, unless a call's network delay varies by more than a refill
    // interval (pace.rs keeps a token in reserve for that): allow one such
    // stall of a loaded machine.
    assert!(throttled.len() <= 2, "throttled: {throttled:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_another_caller_drained_slows_the_function_to_its_refill_rate() {
    // The account's EnableImageDeregistrationProtection bucket holds 2
    // tokens when the function starts (someone else used the rest); it
    // refills at EC2's rate.
    let drained = json!({"EnableImageDeregistrationProtection": {"capacity": 2, "refill_rate": 5}});
    // A call already under way when EC2 first said no can still run out of
    // the SDK's attempts on a loaded machine: the invocation then fails and
    // Lambda retries it, which the test allows once.
    let throttled =
        sweep_under_throttling(20, json!({"enabled": true, "overrides": drained}), 1).await;

    // The first throttled attempt empties the function's bucket: from then
    // on it waits for the refill. Only the calls already under way when EC2
    // first said no (COPY_CONCURRENCY, 4) and the SDK's retries of those can
    // be throttled. (Unpaced: 20 and more, and AMIs left unpublished.)
    assert!(throttled.len() <= 8, "throttled: {throttled:?}");
    assert!(
        throttled
            .iter()
            .all(|a| a == "EnableImageDeregistrationProtection")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sixth_public_ami_is_rejected_by_the_quota_and_the_invocation_succeeds() {
    let emu = Emulator::start();
    let ids: Vec<String> = (0..6).map(|_| seed_tagged(&emu, HOME, json!({}))).collect();
    let publisher = emu.publisher(HOME, &[]).await;

    for id in &ids[..5] {
        publisher.handle(&json!({"image_id": id})).await.unwrap();
    }
    emu.clear_calls();
    let outcome = publisher
        .handle(&json!({"image_id": ids[5]}))
        .await
        .expect("a quota is an outcome, not an error");

    let image = emu.image(HOME, &ids[5]);
    assert_eq!(image["public"], false);
    assert_eq!(tag(&image, "publish:status"), Some("rejected"));
    let reason = tag(&image, "publish:reason").unwrap_or_default();
    assert!(
        reason.contains("the public AMI quota in us-east-1 is reached: 5 public of 5")
            && reason.contains("L-0E3CBAB9"),
        "{reason}"
    );
    assert_eq!(outcome.quotas[0].quota_source, "service-quotas");
    let modify = emu
        .calls()
        .iter()
        .filter(|(a, _)| a == "ModifyImageAttribute")
        .count();
    assert_eq!(modify, 0, "the count said no: EC2 is not asked");
    let public = emu
        .images(HOME)
        .iter()
        .filter(|i| i["public"] == true)
        .count();
    assert_eq!(public, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_copy_is_started_into_a_region_at_its_public_ami_quota() {
    let emu = Emulator::start();
    emu.post(
        "/_emulator/config",
        json!({"public_image_quota_by_region": {"eu-west-1": 1}}),
    );
    emu.seed(json!({"region": "eu-west-1", "name": "already", "public": true}));
    let source = seed_tagged(&emu, HOME, json!({}));

    let outcome = emu
        .publisher(HOME, &[("TARGET_REGIONS", TWO_TARGETS)])
        .await
        .handle(&json!({"image_id": source}))
        .await
        .unwrap();

    assert_eq!(copies_of(&emu, "eu-west-1", &source), Vec::<Value>::new());
    assert_eq!(copies_of(&emu, "us-west-2", &source).len(), 1);
    let eu = &outcome.images[0].copies[1];
    assert_eq!(eu.action, Some(Action::Rejected));
    assert!(
        eu.reasons[0].contains("quota in eu-west-1 is reached: 1 public of 1"),
        "{:?}",
        eu.reasons
    );
    let reason = tag(&emu.image(HOME, &source), "publish:reason")
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("eu-west-1 (none) rejected"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_against_a_slow_ec2_answers_before_its_deadline_and_defers_the_rest() {
    let emu = Emulator::start();
    let ids: Vec<String> = (0..40)
        .map(|_| seed_tagged(&emu, HOME, json!({})))
        .collect();
    emu.warm_up(HOME).await;
    emu.post(
        "/_emulator/config",
        json!({"latency_ms": 200, "public_image_quota": 100}),
    );
    let limits = ami_publisher::clients::CallLimits {
        attempt_timeout: std::time::Duration::from_millis(800),
        operation_timeout: std::time::Duration::from_millis(1000),
        max_attempts: 1,
        ..Default::default()
    };
    let publisher = emu.publisher_with_limits(HOME, &[], limits).await;
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_secs(8);

    let outcome = publisher
        .handle_until(&sweep_event(HOME), Some(deadline))
        .await
        .unwrap();

    let answered = std::time::SystemTime::now();
    assert!(
        answered <= deadline,
        "answered {:?} after the deadline",
        answered.duration_since(deadline)
    );
    let done: Vec<&str> = outcome
        .images
        .iter()
        .filter(|i| i.action == Action::Published)
        .map(|i| i.image_id.as_str())
        .collect();
    assert!(
        !done.is_empty() && outcome.deferred > 0,
        "{} done, {} deferred",
        done.len(),
        outcome.deferred
    );
    assert_eq!(
        done.len() + outcome.deferred,
        ids.len(),
        "every AMI is done or counted as deferred"
    );
    for id in done {
        assert_eq!(
            tag(&emu.image(HOME, id), "publish:status"),
            Some("public"),
            "status tags of what was done"
        );
    }
}
