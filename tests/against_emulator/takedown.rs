//! Public only while the owner asks: untagging (by event, by sweep alone),
//! UNPUBLISH_ON_UNTAG, the unpublish request's hold.

use super::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_its_owner_untagged_alone_is_taken_down_by_the_source_regions_sweep() {
    let emu = Emulator::start();
    let (source, home) = published_with_copies(&emu, &[("TARGET_REGIONS", TWO_TARGETS)]).await;
    let copy = copies_of(&emu, "eu-west-1", &source).remove(0);
    let copy_id = copy["image_id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(copy["public"], true);

    // The owner removes the publish tag from the eu-west-1 copy only; no
    // stack runs there, so only the source region's sweep can notice.
    owner_deletes_tag(&emu, "eu-west-1", &copy_id, "publish").await;
    home.handle(&sweep_event(HOME)).await.unwrap();

    let copy = emu.image("eu-west-1", &copy_id);
    assert_eq!(copy["public"], false);
    assert_eq!(tag(&copy, "publish:status"), Some("withdrawn"));
    assert_eq!(emu.image(HOME, &source)["public"], true);
    let west = copies_of(&emu, "us-west-2", &source).remove(0);
    assert_eq!(west["public"], true, "the other copy is left as it is");
}

#[tokio::test(flavor = "multi_thread")]
async fn untagging_takes_down_the_source_and_its_copies_by_event() {
    let emu = Emulator::start();
    let (source, home) = published_with_copies(&emu, &[("TARGET_REGIONS", TWO_TARGETS)]).await;
    owner_deletes_tag(&emu, HOME, &source, "publish").await;

    home.handle(&tag_change_event(&source, HOME, &["publish"]))
        .await
        .unwrap();

    let image = emu.image(HOME, &source);
    assert_eq!(image["public"], false);
    assert_eq!(tag(&image, "publish:status"), Some("withdrawn"));
    assert!(
        tag(&image, "publish:reason")
            .is_some_and(|r| r.starts_with("the tag publish was removed, so it is private")),
        "{image}"
    );
    assert_eq!(copy_states(&emu, &source), all_copies(false, "withdrawn"));
    // A replay changes nothing further.
    emu.clear_calls();
    home.handle(&tag_change_event(&source, HOME, &["publish"]))
        .await
        .unwrap();
    let writes: Vec<(String, String)> = emu
        .calls()
        .into_iter()
        .filter(|(a, _)| !a.starts_with("Describe"))
        .collect();
    assert_eq!(writes, [], "a replay only looks");
}

#[tokio::test(flavor = "multi_thread")]
async fn untagging_takes_down_the_source_and_its_copies_by_sweep_alone() {
    let emu = Emulator::start();
    let (source, home) = published_with_copies(&emu, &[("TARGET_REGIONS", TWO_TARGETS)]).await;
    owner_deletes_tag(&emu, HOME, &source, "publish").await;

    // The tag-change event was lost: the hourly sweep notices.
    home.handle(&sweep_event(HOME)).await.unwrap();

    let image = emu.image(HOME, &source);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:status")),
        (Some(false), Some("withdrawn"))
    );
    assert_eq!(copy_states(&emu, &source), all_copies(false, "withdrawn"));
    // Tagged again by its owner: published again, copies with it.
    owner_sets_tag(&emu, HOME, &source, "publish", "public").await;
    home.handle(&sweep_event(HOME)).await.unwrap();
    assert_eq!(emu.image(HOME, &source)["public"], true);
    assert_eq!(copy_states(&emu, &source), all_copies(true, "public"));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_unpublish_on_untag_false_the_ami_is_left_public_and_says_so() {
    let emu = Emulator::start();
    let vars = [
        ("TARGET_REGIONS", TWO_TARGETS),
        ("UNPUBLISH_ON_UNTAG", "false"),
    ];
    let (source, home) = published_with_copies(&emu, &vars).await;
    owner_deletes_tag(&emu, HOME, &source, "publish").await;

    home.handle(&sweep_event(HOME)).await.unwrap();

    let image = emu.image(HOME, &source);
    assert_eq!(image["public"], true);
    let reason = tag(&image, "publish:reason").unwrap_or_default();
    assert!(
        reason.contains("the publish tag was removed; left public"),
        "{reason}"
    );
    assert_eq!(copy_states(&emu, &source), all_copies(true, "public"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unpublish_request_holds_until_the_owner_releases_it() {
    let emu = Emulator::start();
    let (source, home) = published_with_copies(&emu, &[("TARGET_REGIONS", TWO_TARGETS)]).await;

    home.handle(&json!({"image_id": source, "action": "unpublish"}))
        .await
        .unwrap();

    let held = emu.image(HOME, &source);
    assert_eq!(
        (held["public"].as_bool(), tag(&held, "publish:status")),
        (Some(false), Some("held"))
    );
    assert_eq!(
        tag(&held, "publish"),
        Some("public"),
        "its tags are the owner's"
    );
    assert_eq!(copy_states(&emu, &source), all_copies(false, "withdrawn"));
    // Still tagged, yet neither its events nor the sweep publish it again.
    home.handle(&ami_state_event(&source, HOME, "available"))
        .await
        .unwrap();
    home.handle(&sweep_event(HOME)).await.unwrap();
    assert_eq!(emu.image(HOME, &source)["public"], false);
    assert_eq!(copy_states(&emu, &source), all_copies(false, "withdrawn"));

    // The owner releases it by deleting the status tag: published again.
    owner_deletes_tag(&emu, HOME, &source, "publish:status").await;
    home.handle(&sweep_event(HOME)).await.unwrap();
    assert_eq!(emu.image(HOME, &source)["public"], true);
    assert_eq!(copy_states(&emu, &source), all_copies(true, "public"));
    let deregistered = emu
        .calls()
        .iter()
        .filter(|(a, _)| a == "DeregisterImage")
        .count();
    assert_eq!(deregistered, 0, "never deregisters anything");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unpublish_request_for_a_public_ami_the_function_did_not_publish_is_refused() {
    let emu = Emulator::start();
    let foreign =
        emu.seed(json!({"region": HOME, "name": "team-x", "public": true, "tags": {"team": "x"}}));
    let home = emu.publisher(HOME, &[]).await;

    let outcome = home
        .handle(&json!({"image_id": foreign, "action": "unpublish"}))
        .await
        .expect("a refusal is an outcome");

    let reason = outcome.images[0].reasons.join("; ");
    assert!(
        reason.starts_with("unpublish refused: the function did not publish it"),
        "{reason}"
    );
    let image = emu.image(HOME, &foreign);
    assert_eq!(image["public"], true, "left as its owner made it");
    assert_eq!(tag(&image, "publish:status"), None, "nothing written");
    let writes: Vec<String> = emu
        .calls()
        .into_iter()
        .map(|(action, _)| action)
        .filter(|a| !a.starts_with("Describe") && !a.starts_with("Get"))
        .collect();
    assert_eq!(writes, Vec::<String>::new());
}

/// `aws ec2 delete-tags --resources ami-...` with no tag list deletes every
/// user tag, the function's status tags with them (DeleteTags reference).
/// The ledger remembers what the function published: the next sweep takes
/// the source and its copies down, and says so on them again.
#[tokio::test(flavor = "multi_thread")]
async fn a_blanket_untag_is_taken_down_by_the_next_sweep_with_its_copies() {
    let emu = Emulator::start();
    let (source, home) = published_with_copies(&emu, &[("TARGET_REGIONS", TWO_TARGETS)]).await;
    assert_eq!(copy_states(&emu, &source), all_copies(true, "public"));
    emu.owner(HOME)
        .await
        .delete_tags()
        .resources(&source)
        .send()
        .await
        .expect("DeleteTags");
    assert_eq!(
        emu.image(HOME, &source)["tags"],
        json!({}),
        "every tag gone"
    );

    home.handle(&sweep_event(HOME)).await.unwrap();

    let image = emu.image(HOME, &source);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:status")),
        (Some(false), Some("withdrawn"))
    );
    assert_eq!(copy_states(&emu, &source), all_copies(false, "withdrawn"));
    // Settled: the next sweep changes nothing.
    emu.clear_calls();
    home.handle(&sweep_event(HOME)).await.unwrap();
    assert_eq!(writes(&emu), Vec::<Value>::new());
}

/// A run made the AMI public and is starting its copies when an unpublish
/// request holds it. The run's later writes must not undo the hold: its
/// result is refused by the ledger (the hold was recorded since its
/// intent), so it reads the AMI again and decides again.
#[tokio::test(flavor = "multi_thread")]
async fn a_hold_while_a_publish_is_in_flight_is_not_overwritten() {
    let emu = Emulator::start();
    let source = seed_tagged(&emu, HOME, json!({}));
    let vars = [("TARGET_REGIONS", "us-west-2")];
    let first = emu.publisher(HOME, &vars).await;
    let second = emu.publisher(HOME, &vars).await;
    emu.hold("CopyImage");

    let available = ami_state_event(&source, HOME, "available");
    let unpublish = json!({"image_id": source, "action": "unpublish"});
    let publishing = first.handle(&available);
    let holding = async {
        emu.until_held("CopyImage").await;
        assert_eq!(
            emu.image(HOME, &source)["public"],
            true,
            "made public first"
        );
        let held = second.handle(&unpublish).await;
        emu.release("CopyImage");
        held
    };
    let (_, held) = tokio::join!(publishing, holding);
    held.expect("the hold");

    let image = emu.image(HOME, &source);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:status")),
        (Some(false), Some("held")),
        "the run in flight did not undo the hold"
    );
    // And nothing later does: the sweep keeps it private.
    emu.post("/_emulator/complete-copies", json!({}));
    first.handle(&sweep_event(HOME)).await.unwrap();
    let image = emu.image(HOME, &source);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:status")),
        (Some(false), Some("held"))
    );
    for copy in copies_of(&emu, "us-west-2", &source) {
        assert_eq!(copy["public"], false, "{copy}");
    }
}

/// The owner removes the publish tag while a run is making the AMI public
/// (its status tags are written only at the end of that run). The untag's
/// own run finds the run's intent in the ledger and takes the AMI down; the
/// publishing run's result is then refused, and it does not undo that.
/// `held_at`: where the publishing run is paused when the untag comes,
/// after its `all` (CopyImage) or before it (ModifyImageAttribute).
async fn untag_during_publish(held_at: &str) {
    let emu = Emulator::start();
    let source = seed_tagged(&emu, HOME, json!({}));
    let vars = [("TARGET_REGIONS", "us-west-2")];
    let publishing_run = emu.publisher(HOME, &vars).await;
    let untag_run = emu.publisher(HOME, &vars).await;
    emu.hold(held_at);

    let available = ami_state_event(&source, HOME, "available");
    let untagged = tag_change_event(&source, HOME, &["publish"]);
    let publishing = publishing_run.handle(&available);
    let untagging = async {
        emu.until_held(held_at).await;
        owner_deletes_tag(&emu, HOME, &source, "publish").await;
        let done = untag_run.handle(&untagged).await;
        emu.release(held_at);
        done
    };
    let (_, done) = tokio::join!(publishing, untagging);
    done.expect("the untag's run");

    let image = emu.image(HOME, &source);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:status")),
        (Some(false), Some("withdrawn")),
        "held at {held_at}"
    );
    // Settled for good: the sweep leaves it private.
    emu.post("/_emulator/complete-copies", json!({}));
    publishing_run.handle(&sweep_event(HOME)).await.unwrap();
    assert_eq!(emu.image(HOME, &source)["public"], false);
    for copy in copies_of(&emu, "us-west-2", &source) {
        assert_eq!(copy["public"], false, "{copy}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untag_while_a_publish_is_starting_copies_is_taken_down_by_its_own_run() {
    untag_during_publish("CopyImage").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untag_before_a_publish_adds_all_leaves_the_ami_private() {
    untag_during_publish("ModifyImageAttribute").await;
}

/// The ledger remembers each change with its reason, oldest first, and
/// `ami-publisher history` reads it back (src/history.rs).
#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_keeps_the_history_a_person_reads() {
    let emu = Emulator::start();
    let source = seed_tagged(&emu, HOME, json!({}));
    let home = emu.publisher(HOME, &[]).await;
    home.handle(&ami_state_event(&source, HOME, "available"))
        .await
        .unwrap();
    home.handle(&json!({"image_id": source, "action": "unpublish"}))
        .await
        .unwrap();

    let ledger = home_ledger(&emu).await;
    let records = ami_publisher::history::read(&ledger, &ledger.region, None)
        .await
        .unwrap();
    let [record] = records.as_slice() else {
        panic!("{records:?}")
    };
    assert_eq!(record.image_id, source);
    assert_eq!(record.state, "held");
    let states: Vec<&str> = record.history.iter().map(|c| c.state.as_str()).collect();
    assert_eq!(states, ["publishing", "public", "held"]);
    assert_eq!(record.version, 3);
    let text = ami_publisher::history::render(&records);
    assert!(text.contains("an unpublish request"), "{text}");
}

/// A sweep acts on a listing: the source tagged and public, its copy
/// available and private. While the sweep is about to make the copy public
/// (held at the copy's deprecation, the step before its `all`), the owner
/// untags the source and the untag's run takes it down. The copy must stay
/// private: its source is read again in its region right before the copy is
/// made public. And the sweep must not write the source's status from its
/// old listing over `withdrawn`.
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_on_a_stale_listing_makes_no_copy_of_an_untagged_source_public() {
    let emu = Emulator::start();
    let source = seed_tagged(&emu, HOME, json!({}));
    let vars = [("TARGET_REGIONS", "us-west-2")];
    let sweeping_run = emu.publisher(HOME, &vars).await;
    let untag_run = emu.publisher(HOME, &vars).await;
    sweeping_run
        .handle(&ami_state_event(&source, HOME, "available"))
        .await
        .unwrap();
    emu.post("/_emulator/complete-copies", json!({}));
    let copy = copies_of(&emu, "us-west-2", &source);
    assert_eq!(
        (copy.len(), copy[0]["public"].as_bool()),
        (1, Some(false)),
        "an available, private copy for the sweep to publish"
    );
    emu.hold("EnableImageDeprecation");

    let sweep = sweep_event(HOME);
    let sweeping = sweeping_run.handle(&sweep);
    let untagging = async {
        emu.until_held("EnableImageDeprecation").await;
        owner_deletes_tag(&emu, HOME, &source, "publish").await;
        let done = untag_run
            .handle(&tag_change_event(&source, HOME, &["publish"]))
            .await;
        emu.release("EnableImageDeprecation");
        done
    };
    let (swept, untagged) = tokio::join!(sweeping, untagging);
    untagged.expect("the untag's run");
    swept.expect("the sweep");

    let image = emu.image(HOME, &source);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:status")),
        (Some(false), Some("withdrawn")),
        "the source's status is not written from the sweep's listing"
    );
    for copy in copies_of(&emu, "us-west-2", &source) {
        assert_eq!(copy["public"], false, "{copy}");
    }
    // Settled: the next sweep leaves both private.
    sweeping_run.handle(&sweep_event(HOME)).await.unwrap();
    assert_eq!(emu.image(HOME, &source)["public"], false);
    for copy in copies_of(&emu, "us-west-2", &source) {
        assert_eq!(copy["public"], false, "{copy}");
    }
}

/// A status tag forged by hand changes nothing the function believes: an
/// AMI it published, its status overwritten (`rejected`, `withdrawn`:
/// statuses of an AMI the function never made public) and its publish tag
/// removed, is taken down by the untag's own run, and one whose tag is
/// overwritten in a blanket way by the next sweep, copies included; the
/// tags are repaired.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_status_tag_does_not_keep_an_untagged_ami_public() {
    let emu = Emulator::start();
    let (by_event, home) = published_with_copies(&emu, &[("TARGET_REGIONS", TWO_TARGETS)]).await;
    let (by_sweep, _) = published_with_copies(&emu, &[("TARGET_REGIONS", TWO_TARGETS)]).await;
    for (id, forged) in [(&by_event, "rejected"), (&by_sweep, "withdrawn")] {
        owner_sets_tag(&emu, HOME, id, "publish:status", forged).await;
        owner_deletes_tag(&emu, HOME, id, "publish").await;
        assert_eq!(emu.image(HOME, id)["public"], true);
    }

    home.handle(&tag_change_event(&by_event, HOME, &["publish"]))
        .await
        .unwrap();
    home.handle(&sweep_event(HOME)).await.unwrap();

    for id in [&by_event, &by_sweep] {
        let image = emu.image(HOME, id);
        assert_eq!(
            (image["public"].as_bool(), tag(&image, "publish:status")),
            (Some(false), Some("withdrawn")),
            "{id}"
        );
        assert_eq!(
            copy_states(&emu, id),
            all_copies(false, "withdrawn"),
            "{id}"
        );
    }
}

/// The home sweep reconciles every public copy it indexes, also those
/// whose source it no longer lists: here a source blanket-untagged with no
/// ledger to remember it (`LEDGER_TABLE` unset). Its copies are taken down;
/// the source itself, which nothing tells the function it published, is
/// left as it is (the ledger is what finds it: see the blanket-untag test
/// above).
#[tokio::test(flavor = "multi_thread")]
async fn copies_whose_source_lost_every_tag_are_taken_down_without_a_ledger() {
    let emu = Emulator::start();
    let vars = [("TARGET_REGIONS", TWO_TARGETS), ("LEDGER_TABLE", "")];
    let (source, home) = published_with_copies(&emu, &vars).await;
    assert_eq!(copy_states(&emu, &source), all_copies(true, "public"));
    emu.owner(HOME)
        .await
        .delete_tags()
        .resources(&source)
        .send()
        .await
        .expect("DeleteTags");

    home.handle(&sweep_event(HOME)).await.unwrap();

    assert_eq!(copy_states(&emu, &source), all_copies(false, "withdrawn"));
    assert_eq!(emu.image(HOME, &source)["public"], true);
    // Settled: the next sweep changes nothing.
    emu.clear_calls();
    home.handle(&sweep_event(HOME)).await.unwrap();
    assert_eq!(writes(&emu), Vec::<Value>::new());
}
