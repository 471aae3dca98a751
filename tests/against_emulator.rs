//! The function against the local EC2 emulator over real HTTP: what ends up
//! public, what stays private, what the AMIs say about it, and that every
//! event can come twice, in any order, without a second copy.

mod common;

use common::{Emulator, ami_state_event, sweep_event, tag_change_event};
use serde_json::{Value, json};

const HOME: &str = "us-east-1";

fn tag<'a>(image: &'a Value, key: &str) -> Option<&'a str> {
    image["tags"][key].as_str()
}

fn seed_tagged(emu: &Emulator, region: &str, extra: Value) -> String {
    let mut spec = json!({"region": region, "name": "img", "tags": {"publish": "public"}});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    emu.seed(spec)
}

#[tokio::test(flavor = "multi_thread")]
async fn eligible_ami_ends_public_and_tagged_public() {
    let emu = Emulator::start();
    let id = seed_tagged(&emu, HOME, json!({}));
    let publisher = emu.publisher(HOME, &[]).await;

    let outcome = publisher
        .handle(&ami_state_event(&id, HOME, "available"))
        .await
        .unwrap();

    let image = emu.image(HOME, &id);
    assert_eq!(image["public"], true, "{outcome:?}");
    assert_eq!(tag(&image, "publish:status"), Some("public"));
    assert_eq!(tag(&image, "publish:reason"), Some("public in us-east-1"));
}

/// Publishes `id` through a tag change and checks it stayed private and
/// says why.
async fn assert_stays_private(emu: &Emulator, id: &str, reason: &str) {
    let publisher = emu.publisher(HOME, &[]).await;
    publisher
        .handle(&tag_change_event(id, HOME, &["publish"]))
        .await
        .unwrap();
    let image = emu.image(HOME, id);
    assert_eq!(image["public"], false);
    assert_eq!(tag(&image, "publish:status"), Some("rejected"));
    let written = tag(&image, "publish:reason").unwrap_or_default();
    assert!(
        written.contains(reason),
        "reason {written:?} lacks {reason:?}"
    );
    let modify_calls = emu
        .calls()
        .iter()
        .filter(|(a, _)| a == "ModifyImageAttribute")
        .count();
    assert_eq!(
        modify_calls, 0,
        "an ineligible AMI is never passed to ModifyImageAttribute"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ami_with_encrypted_snapshot_stays_private() {
    let emu = Emulator::start();
    let id = seed_tagged(
        &emu,
        HOME,
        json!({"snapshots": [{"encrypted": false}, {"encrypted": true}]}),
    );
    assert_stays_private(&emu, &id, "encrypted EBS volume").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ami_with_product_code_stays_private() {
    let emu = Emulator::start();
    let id = seed_tagged(&emu, HOME, json!({"product_codes": ["8fbbk9yqlz2s"]}));
    assert_stays_private(&emu, &id, "product code: 8fbbk9yqlz2s").await;
}

/// moto 5.2.5 answered `ImageIds=[x], Owners=["self"]` with another
/// account's image; a function trusting that filter would think it owns it.
#[tokio::test(flavor = "multi_thread")]
async fn ami_of_another_account_shared_with_us_stays_private() {
    let emu = Emulator::start();
    let id = seed_tagged(
        &emu,
        HOME,
        json!({"owner": "210987654321", "shared_with": ["123456789012"]}),
    );
    assert_stays_private(&emu, &id, "owned by account 210987654321").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ami_in_a_region_with_block_public_access_stays_private() {
    let emu = Emulator::start();
    emu.set_bpa(HOME, "block-new-sharing", "declarative-policy");
    let id = seed_tagged(&emu, HOME, json!({}));
    assert_stays_private(&emu, &id, "declarative policy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_ami_waits_and_is_published_by_its_available_event() {
    let emu = Emulator::start();
    let id = seed_tagged(&emu, HOME, json!({"state": "pending"}));
    let publisher = emu.publisher(HOME, &[]).await;

    publisher
        .handle(&tag_change_event(&id, HOME, &["publish"]))
        .await
        .unwrap();
    let waiting = emu.image(HOME, &id);
    assert_eq!(
        (waiting["public"].as_bool(), tag(&waiting, "publish:status")),
        (Some(false), Some("pending"))
    );

    emu.post("/_emulator/complete-copies", json!({"region": HOME}));
    publisher
        .handle(&ami_state_event(&id, HOME, "available"))
        .await
        .unwrap();
    let image = emu.image(HOME, &id);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:status")),
        (Some(true), Some("public"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deprecation_is_creation_plus_the_configured_days() {
    let emu = Emulator::start();
    let id = seed_tagged(
        &emu,
        HOME,
        json!({"creation_date": "2026-11-20T08:30:00.000Z"}),
    );
    let publisher = emu
        .publisher(HOME, &[("DEPRECATE_AFTER_DAYS", "100")])
        .await;

    publisher.handle(&json!({"image_id": id})).await.unwrap();

    let image = emu.image(HOME, &id);
    assert_eq!(image["public"], true);
    let deprecation = image["deprecation_time"].as_str().unwrap_or_default();
    assert!(
        deprecation.starts_with("2027-02-28T08:30:00"),
        "{deprecation}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn second_run_of_the_same_event_changes_nothing() {
    let emu = Emulator::start();
    let id = seed_tagged(&emu, HOME, json!({}));
    let publisher = emu.publisher(HOME, &[("DEPRECATE_AFTER_DAYS", "30")]).await;
    let event = ami_state_event(&id, HOME, "available");
    publisher.handle(&event).await.unwrap();
    let after_first = emu.image(HOME, &id);
    emu.clear_calls();

    publisher.handle(&event).await.unwrap();

    let actions: Vec<String> = emu.calls().into_iter().map(|(a, _)| a).collect();
    assert_eq!(actions, ["DescribeImages"], "a replay only looks");
    assert_eq!(emu.image(HOME, &id), after_first);
}

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

#[tokio::test(flavor = "multi_thread")]
async fn public_quota_reached_is_an_error_and_the_ami_says_so() {
    let emu = Emulator::start();
    emu.post("/_emulator/config", json!({"public_image_quota": 0}));
    let id = seed_tagged(&emu, HOME, json!({}));
    let publisher = emu.publisher(HOME, &[]).await;

    let err = publisher
        .handle(&json!({"image_id": id}))
        .await
        .unwrap_err();

    assert!(err.to_string().contains("ResourceLimitExceeded"), "{err}");
    let image = emu.image(HOME, &id);
    assert_eq!(image["public"], false);
    assert_eq!(tag(&image, "publish:status"), Some("error"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sweep_publishes_every_tagged_eligible_ami_in_its_region_and_nothing_else() {
    let emu = Emulator::start();
    let eligible: Vec<String> = (0..3).map(|_| seed_tagged(&emu, HOME, json!({}))).collect();
    let untagged = emu.seed(json!({"region": HOME, "name": "untagged"}));
    let wrong_value =
        emu.seed(json!({"region": HOME, "name": "x", "tags": {"publish": "private"}}));
    let encrypted = seed_tagged(&emu, HOME, json!({"snapshots": [{"encrypted": true}]}));
    let elsewhere = seed_tagged(&emu, "eu-west-1", json!({}));
    let publisher = emu.publisher(HOME, &[]).await;

    let outcome = publisher.handle(&sweep_event(HOME)).await.unwrap();

    for id in &eligible {
        assert_eq!(emu.image(HOME, id)["public"], true, "{id}");
    }
    for id in [&untagged, &wrong_value, &encrypted] {
        assert_eq!(emu.image(HOME, id)["public"], false, "{id}");
    }
    assert_eq!(
        tag(&emu.image(HOME, &encrypted), "publish:status"),
        Some("rejected")
    );
    assert_eq!(tag(&emu.image(HOME, &untagged), "publish:status"), None);
    assert_eq!(emu.image("eu-west-1", &elsewhere)["public"], false);
    assert_eq!(outcome.images.len(), 4);
}

// ---- copies across regions ----

const TARGETS: [&str; 3] = ["us-west-2", "eu-west-1", "ap-southeast-2"];

/// A fixed shuffle (no randomness in tests): a linear congruential sequence.
fn shuffled<T>(mut items: Vec<T>, seed: u64) -> Vec<T> {
    let mut state = seed;
    for i in (1..items.len()).rev() {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        items.swap(i, (state >> 33) as usize % (i + 1));
    }
    items
}

fn copies_of(emu: &Emulator, region: &str, source: &str) -> Vec<Value> {
    let source_ref = format!("{HOME}/{source}");
    emu.images(region)
        .into_iter()
        .filter(|i| tag(i, "publish:source") == Some(source_ref.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicated_shuffled_events_leave_exactly_one_public_copy_per_region() {
    let emu = Emulator::start();
    let source = seed_tagged(
        &emu,
        HOME,
        json!({"tags": {"publish": "public", "team": "images"}}),
    );
    let targets = TARGETS.join(",");
    let vars = [
        ("TARGET_REGIONS", targets.as_str()),
        ("DEPRECATE_AFTER_DAYS", "365"),
    ];
    // One stack per region, as deployed.
    let home = emu.publisher(HOME, &vars).await;
    let mut stacks = Vec::new();
    for region in TARGETS {
        stacks.push((region, emu.publisher(region, &vars).await));
    }

    // The source's events, each twice, in a shuffled order.
    let events = [
        ami_state_event(&source, HOME, "available"),
        tag_change_event(&source, HOME, &["publish", "team"]),
        sweep_event(HOME),
    ];
    let doubled: Vec<Value> = events.iter().chain(events.iter()).cloned().collect();
    for event in shuffled(doubled, 7) {
        home.handle(&event).await.unwrap();
    }
    for region in TARGETS {
        let copies = copies_of(&emu, region, &source);
        assert_eq!(copies.len(), 1, "one copy in {region}");
        assert_eq!(copies[0]["state"], "pending");
    }
    assert_eq!(
        tag(&emu.image(HOME, &source), "publish:status"),
        Some("copying")
    );

    // Copies finish; their own events reach their regions' stacks twice,
    // shuffled with sweeps.
    emu.post("/_emulator/complete-copies", json!({}));
    let mut copy_events = Vec::new();
    for (i, region) in TARGETS.iter().enumerate() {
        let copy = copies_of(&emu, region, &source).remove(0);
        let id = copy["image_id"].as_str().unwrap().to_owned();
        for event in [
            ami_state_event(&id, region, "available"),
            sweep_event(region),
        ] {
            copy_events.push((i, event.clone()));
            copy_events.push((i, event));
        }
    }
    for (i, event) in shuffled(copy_events, 11) {
        stacks[i].1.handle(&event).await.unwrap();
    }
    // The source's sweep sees every copy public.
    home.handle(&sweep_event(HOME)).await.unwrap();

    let source_image = emu.image(HOME, &source);
    assert_eq!(source_image["public"], true);
    assert_eq!(tag(&source_image, "publish:status"), Some("public"));
    for region in TARGETS {
        let images = emu.images(region);
        assert_eq!(
            images.len(),
            1,
            "nothing copied onward into {region}: {images:?}"
        );
        let copy = &images[0];
        assert_eq!(copy["public"], true, "{region}");
        assert_eq!(tag(copy, "publish:status"), Some("public"));
        assert_eq!(
            tag(copy, "team"),
            Some("images"),
            "the source's tags travel"
        );
        assert!(
            copy["deprecation_time"].is_string(),
            "deprecation is set on each copy"
        );
    }
    let copy_calls = emu.calls().iter().filter(|(a, _)| a == "CopyImage").count();
    assert_eq!(copy_calls, TARGETS.len(), "one CopyImage per region, ever");
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_in_a_region_with_block_public_access_is_rejected_there_only() {
    let emu = Emulator::start();
    emu.set_bpa("eu-west-1", "block-new-sharing", "account");
    let source = seed_tagged(&emu, HOME, json!({}));
    let vars = [("TARGET_REGIONS", "us-west-2,eu-west-1")];
    emu.publisher(HOME, &vars)
        .await
        .handle(&json!({"image_id": source}))
        .await
        .unwrap();
    emu.post("/_emulator/complete-copies", json!({}));

    for region in ["us-west-2", "eu-west-1"] {
        emu.publisher(region, &vars)
            .await
            .handle(&sweep_event(region))
            .await
            .unwrap();
    }

    let west = copies_of(&emu, "us-west-2", &source).remove(0);
    let eu = copies_of(&emu, "eu-west-1", &source).remove(0);
    assert_eq!(
        (west["public"].as_bool(), tag(&west, "publish:status")),
        (Some(true), Some("public"))
    );
    assert_eq!(
        (eu["public"].as_bool(), tag(&eu, "publish:status")),
        (Some(false), Some("rejected"))
    );
}
