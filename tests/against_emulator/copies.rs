//! Copies across regions: one live copy per region whatever the events'
//! order, published by one stack with its source's deprecation, replaced
//! when dead, refused where they could never be public.

use super::*;

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

#[tokio::test(flavor = "multi_thread")]
async fn one_stack_publishes_every_copy_with_its_sources_deprecation() {
    let emu = Emulator::start();
    let vars = [
        ("TARGET_REGIONS", TWO_TARGETS),
        ("DEPRECATE_AFTER_DAYS", "365"),
    ];

    let (source, _home) = published_with_copies(&emu, &vars).await;

    let source_image = emu.image(HOME, &source);
    assert_eq!(tag(&source_image, "publish:status"), Some("public"));
    assert_eq!(copy_states(&emu, &source), all_copies(true, "public"));
    let deprecation =
        |i: &Value| i["deprecation_time"].as_str().unwrap_or_default()[..16].to_owned();
    for copy in ["us-west-2", "eu-west-1"].map(|r| copies_of(&emu, r, &source).remove(0)) {
        assert_eq!(
            deprecation(&copy),
            deprecation(&source_image),
            "the same release leaves every region on the same day"
        );
    }
    // Only the source region's stack ever ran: every call but the copies'
    // own was made from us-east-1's function (the emulator cannot tell;
    // the point is that no other Publisher was built).
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sources_deprecation_moved_earlier_reaches_its_copies_at_the_next_sweep() {
    let emu = Emulator::start();
    let (source, home) = published_with_copies(&emu, &[("TARGET_REGIONS", TWO_TARGETS)]).await;
    // The owner moves the source's deprecation a year earlier, by hand.
    let earlier = aws_sdk_ec2::primitives::DateTime::from_secs(
        time::OffsetDateTime::now_utc().unix_timestamp() + 200 * 86_400,
    );
    emu.owner(HOME)
        .await
        .enable_image_deprecation()
        .image_id(&source)
        .deprecate_at(earlier)
        .send()
        .await
        .expect("EnableImageDeprecation");

    home.handle(&sweep_event(HOME)).await.unwrap();

    let day = |i: &Value| i["deprecation_time"].as_str().unwrap_or_default()[..10].to_owned();
    let source_day = day(&emu.image(HOME, &source));
    for region in ["us-west-2", "eu-west-1"] {
        let copy = copies_of(&emu, region, &source).remove(0);
        assert_eq!(
            day(&copy),
            source_day,
            "{region}: never later than its source"
        );
        assert_eq!(copy["public"], true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_whose_source_was_untagged_while_it_was_pending_stays_private() {
    let emu = Emulator::start();
    let source = seed_tagged(&emu, HOME, json!({}));
    let vars = [("TARGET_REGIONS", "eu-west-1")];
    emu.publisher(HOME, &vars)
        .await
        .handle(&json!({"image_id": source}))
        .await
        .unwrap();
    // While the copy is pending, the owner makes the source private and
    // removes the publish tag, by hand.
    emu.owner(HOME)
        .await
        .modify_image_attribute()
        .image_id(&source)
        .launch_permission(
            aws_sdk_ec2::types::LaunchPermissionModifications::builder()
                .remove(
                    aws_sdk_ec2::types::LaunchPermission::builder()
                        .group(aws_sdk_ec2::types::PermissionGroup::All)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("owner makes the source private");
    owner_deletes_tag(&emu, HOME, &source, "publish").await;
    emu.post("/_emulator/complete-copies", json!({}));
    let copy = copies_of(&emu, "eu-west-1", &source).remove(0);
    let copy_id = copy["image_id"].as_str().unwrap().to_owned();

    // The copy's own event reaches a stack deployed in its region.
    let outcome = emu
        .publisher("eu-west-1", &vars)
        .await
        .handle(&ami_state_event(&copy_id, "eu-west-1", "available"))
        .await
        .unwrap();

    let copy = emu.image("eu-west-1", &copy_id);
    assert_eq!(copy["public"], false, "{outcome:?}");
    assert_eq!(tag(&copy, "publish:status"), Some("rejected"));
    let reason = tag(&copy, "publish:reason").unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "its source us-east-1/{source} is not tagged publish=public"
        )),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_copy_is_replaced_once_and_replays_leave_one_live_copy() {
    let emu = Emulator::start();
    emu.post(
        "/_emulator/copy-failures",
        json!({"region": "eu-west-1", "count": 1}),
    );
    let vars = [("TARGET_REGIONS", "eu-west-1")];
    let source = seed_tagged(&emu, HOME, json!({}));
    let home = emu.publisher(HOME, &vars).await;
    home.handle(&json!({"image_id": source})).await.unwrap();
    emu.post("/_emulator/complete-copies", json!({}));
    let failed = copies_of(&emu, "eu-west-1", &source);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["state"], "failed");

    // The next runs (a replayed event, then the sweep, twice each).
    for event in [
        json!({"image_id": source}),
        sweep_event(HOME),
        json!({"image_id": source}),
        sweep_event(HOME),
    ] {
        home.handle(&event).await.unwrap();
    }

    let copies = copies_of(&emu, "eu-west-1", &source);
    let live: Vec<&Value> = copies.iter().filter(|c| c["state"] != "failed").collect();
    assert_eq!((copies.len(), live.len()), (2, 1), "{copies:?}");
    assert_eq!(
        tag(&emu.image(HOME, &source), "publish:generation"),
        Some("1")
    );
    // It completes and the sweep publishes it.
    emu.post("/_emulator/complete-copies", json!({}));
    home.handle(&sweep_event(HOME)).await.unwrap();
    let live = emu.image("eu-west-1", live[0]["image_id"].as_str().unwrap());
    assert_eq!(
        (live["public"].as_bool(), tag(&live, "publish:status")),
        (Some(true), Some("public"))
    );
    assert_eq!(
        tag(&emu.image(HOME, &source), "publish:status"),
        Some("public")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deregistered_copy_is_replaced_even_when_ec2_remembers_its_token() {
    let emu = Emulator::start();
    let vars = [("TARGET_REGIONS", "eu-west-1")];
    let (source, home) = {
        let source = seed_tagged(
            &emu,
            HOME,
            json!({"tags": {"publish": "public", "team": "a"}}),
        );
        let home = emu.publisher(HOME, &vars).await;
        home.handle(&json!({"image_id": source})).await.unwrap();
        (source, home)
    };
    let first = copies_of(&emu, "eu-west-1", &source).remove(0)["image_id"]
        .as_str()
        .unwrap()
        .to_owned();
    emu.owner("eu-west-1")
        .await
        .deregister_image()
        .image_id(&first)
        .send()
        .await
        .expect("DeregisterImage");
    // The owner also changes the source's tags: the old token now conflicts.
    owner_sets_tag(&emu, HOME, &source, "team", "b").await;

    home.handle(&sweep_event(HOME)).await.unwrap();
    home.handle(&sweep_event(HOME)).await.unwrap();

    let copies = copies_of(&emu, "eu-west-1", &source);
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_ne!(copies[0]["image_id"], first.as_str());
    assert_eq!(tag(&copies[0], "team"), Some("b"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_region_that_encrypts_by_default_gets_no_copy() {
    let emu = Emulator::start();
    emu.post(
        "/_emulator/ebs-encryption-by-default",
        json!({"region": "eu-west-1", "enabled": true}),
    );
    let source = seed_tagged(&emu, HOME, json!({}));

    let outcome = emu
        .publisher(HOME, &[("TARGET_REGIONS", TWO_TARGETS)])
        .await
        .handle(&json!({"image_id": source}))
        .await
        .unwrap();

    assert_eq!(copies_of(&emu, "eu-west-1", &source).len(), 0);
    assert_eq!(copies_of(&emu, "us-west-2", &source).len(), 1);
    let eu = &outcome.images[0].copies[1];
    assert!(
        eu.reasons[0].contains("EBS encryption by default is on in eu-west-1"),
        "{:?}",
        eu.reasons
    );
}
