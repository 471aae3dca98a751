//! Families and rotation: the newest N public in every region, room made
//! at the quota, releases of one sweep, a late older release, the preview.

use super::*;

/// An AMI of family "base", created on day `day` of November, tagged for
/// publishing.
fn seed_member(emu: &Emulator, day: usize) -> String {
    seed_tagged(
        emu,
        HOME,
        json!({"tags": {"publish": "public", "family": "base"}, "creation_date": format!("2026-11-{:02}T00:00:00Z", day + 1)}),
    )
}

/// Public AMIs of the family in `region`, by id.
fn public_in(emu: &Emulator, region: &str) -> Vec<String> {
    let mut ids: Vec<String> = emu
        .images(region)
        .into_iter()
        .filter(|i| i["public"] == true && tag(i, "family") == Some("base"))
        .map(|i| i["image_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// Every launch permission change in the call log, per region, in order:
/// (image, +1 or -1); the running count of public AMIs never goes over
/// `quota` (starting from `start` public ones).
/// Steps to compare a preview with the run after it: a retirement's
/// deprecation is "the next whole minute" when each is made, so the run's
/// may be a minute later than the preview's; every other field must match.
fn same_minute(steps: &[Step]) -> Vec<Step> {
    steps
        .iter()
        .map(|step| match step {
            Step::Deprecate {
                region,
                image_id,
                at,
            } if (*at - time::OffsetDateTime::now_utc())
                .whole_minutes()
                .abs()
                <= 2 =>
            {
                Step::Deprecate {
                    region: region.clone(),
                    image_id: image_id.clone(),
                    at: time::OffsetDateTime::UNIX_EPOCH,
                }
            }
            other => other.clone(),
        })
        .collect()
}

/// Replays `calls` (the emulator's call log) over the public AMIs each
/// region had before them (`start`; none elsewhere): never more than
/// `quota` at any moment.
fn never_over_quota(calls: &[Value], start: &[(&str, i64)], quota: i64) {
    let mut public: std::collections::HashMap<String, i64> = start
        .iter()
        .map(|(region, n)| ((*region).to_owned(), *n))
        .collect();
    assert!(
        calls.iter().any(|c| c["launch_permission"] == "add all"),
        "the calls make AMIs public"
    );
    for call in calls {
        let change = match call["launch_permission"].as_str() {
            Some("add all") => 1,
            Some("remove all") => -1,
            _ => continue,
        };
        let region = call["region"].as_str().unwrap().to_owned();
        let count = public.entry(region.clone()).or_default();
        *count += change;
        assert!(*count <= quota, "{count} public in {region} at {call}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_family_of_seven_keeps_its_newest_three_public_in_every_region() {
    let emu = Emulator::start();
    let vars = [
        ("TARGET_REGIONS", TWO_TARGETS),
        ("KEEP_PUBLIC_PER_FAMILY", "3"),
        ("DEPRECATE_RETIRED", "true"),
    ];
    let home = emu.publisher(HOME, &vars).await;

    // One release a day: built, its available event, its copies complete,
    // the next sweep publishes them. Every call, from the first (no public
    // AMI anywhere), is kept to replay against the quota.
    let mut family = Vec::new();
    let mut log: Vec<Value> = Vec::new();
    for day in 0..7 {
        let id = seed_member(&emu, day);
        let event = ami_state_event(&id, HOME, "available");
        // Each release previewed first: nothing written, the same steps.
        log.extend(emu.call_log());
        emu.clear_calls();
        let planned = home
            .handle(&json!({"image_id": id, "dry_run": true}))
            .await
            .unwrap();
        assert_eq!(
            writes(&emu),
            Vec::<Value>::new(),
            "day {day}: a preview writes nothing"
        );
        let done = home.handle(&event).await.unwrap();
        assert_eq!(
            same_minute(&done.steps),
            same_minute(&planned.steps),
            "day {day}: the preview is what the run does"
        );
        emu.post("/_emulator/complete-copies", json!({}));
        home.handle(&sweep_event(HOME)).await.unwrap();
        family.push(id);
    }

    let mut newest: Vec<String> = family[4..].to_vec();
    newest.sort();
    assert_eq!(
        public_in(&emu, HOME),
        newest,
        "the newest three, by creation date"
    );
    for old in &family[..4] {
        let image = emu.image(HOME, old);
        assert_eq!(tag(&image, "publish:status"), Some("retired"), "{old}");
        assert!(
            tag(&image, "publish:reason")
                .unwrap_or_default()
                .contains("newer public AMI of family base")
        );
        assert!(image["deprecation_time"].is_string(), "DEPRECATE_RETIRED");
        assert_eq!(
            image["deregistration_protection"], "disabled",
            "the protection it set is off again"
        );
    }
    for region in ["us-west-2", "eu-west-1"] {
        let copies_of_newest: Vec<String> = {
            let mut ids: Vec<String> = family[4..]
                .iter()
                .map(|s| {
                    copies_of(&emu, region, s).remove(0)["image_id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(public_in(&emu, region), copies_of_newest, "{region}");
        for old in &family[..4] {
            let copy = copies_of(&emu, region, old).remove(0);
            assert_eq!(
                (copy["public"].as_bool(), tag(&copy, "publish:status")),
                (Some(false), Some("retired"))
            );
        }
    }
    log.extend(emu.call_log());
    never_over_quota(&log, &[], 5);
    let deregistered = emu
        .calls()
        .iter()
        .filter(|(a, _)| a == "DeregisterImage")
        .count();
    assert_eq!(deregistered, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_family_at_the_quota_gets_its_new_ami_by_retiring_the_oldest_first() {
    let emu = Emulator::start();
    emu.post("/_emulator/config", json!({"public_image_quota": 3}));
    let vars = [("KEEP_PUBLIC_PER_FAMILY", "3")];
    let home = emu.publisher(HOME, &vars).await;
    // One release at a time (tagged together, the older ones would never
    // be made public: see the sweep of several releases below).
    let mut family = Vec::new();
    for day in 0..3 {
        let id = seed_member(&emu, day);
        home.handle(&json!({"image_id": id})).await.unwrap();
        family.push(id);
    }
    assert_eq!(public_in(&emu, HOME).len(), 3);
    family.push(seed_member(&emu, 3));
    emu.clear_calls();

    let preview = home
        .handle(&json!({"image_id": family[3], "dry_run": true}))
        .await
        .unwrap();
    assert_eq!(
        writes(&emu),
        Vec::<Value>::new(),
        "a preview writes nothing"
    );
    emu.clear_calls();
    let outcome = home.handle(&json!({"image_id": family[3]})).await.unwrap();

    assert_eq!(
        same_minute(&outcome.steps),
        same_minute(&preview.steps),
        "the preview is what the run does"
    );
    assert_eq!(outcome.images[0].action, Action::Published);
    let mut newest: Vec<String> = family[1..].to_vec();
    newest.sort();
    assert_eq!(public_in(&emu, HOME), newest);
    assert_eq!(
        tag(&emu.image(HOME, &family[0]), "publish:status"),
        Some("retired")
    );
    // The order, from the call log: the oldest made private, then the new one public.
    let changes: Vec<(String, String)> = emu
        .call_log()
        .into_iter()
        .filter_map(|c| {
            Some((
                c["image_id"].as_str()?.to_owned(),
                c["launch_permission"].as_str()?.to_owned(),
            ))
        })
        .collect();
    assert_eq!(
        changes,
        [
            (family[0].clone(), "remove all".to_owned()),
            (family[3].clone(), "add all".to_owned())
        ]
    );
    never_over_quota(&emu.call_log(), &[(HOME, 3)], 3);
}

/// Three newer releases tagged while nothing listened: the sweep works them
/// at the same time. Only the newest is made public (the run never makes
/// public a release the same sweep retires), and the sweep's preview lists
/// exactly the steps the run takes.
#[tokio::test(flavor = "multi_thread")]
async fn a_sweep_publishing_several_releases_of_a_family_at_once_keeps_only_the_newest() {
    let emu = Emulator::start();
    let home = emu
        .publisher(HOME, &[("KEEP_PUBLIC_PER_FAMILY", "1")])
        .await;
    let oldest = seed_member(&emu, 0);
    home.handle(&json!({"image_id": oldest})).await.unwrap();
    let older = seed_member(&emu, 1);
    let middle = seed_member(&emu, 2);
    let newest = seed_member(&emu, 3);

    let preview = home
        .handle(&json!({"sweep": true, "region": HOME, "dry_run": true}))
        .await
        .unwrap();
    emu.clear_calls();
    let outcome = home.handle(&sweep_event(HOME)).await.unwrap();

    assert_eq!(public_in(&emu, HOME), vec![newest.clone()], "{outcome:?}");
    let made_public: Vec<Value> = emu
        .call_log()
        .into_iter()
        .filter(|c| c["launch_permission"] == "add all")
        .collect();
    assert_eq!(made_public.len(), 1, "only the newest: {made_public:?}");
    assert_eq!(
        same_minute(&outcome.steps),
        same_minute(&preview.steps),
        "the preview is what the run does"
    );
    assert_eq!(
        tag(&emu.image(HOME, &older), "publish:status"),
        Some("retired")
    );
    for retired in [&oldest, &middle] {
        assert_eq!(
            tag(&emu.image(HOME, retired), "publish:status"),
            Some("retired"),
            "{retired}"
        );
    }
    let retirements: Vec<&str> = outcome
        .images
        .iter()
        .flat_map(|i| &i.retired)
        .map(|r| r.image_id.as_str())
        .collect();
    assert_eq!(
        retirements.iter().filter(|id| **id == oldest).count(),
        1,
        "retired once: {retirements:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_older_release_tagged_late_is_not_made_public_over_its_newer_ones() {
    let emu = Emulator::start();
    let home = emu
        .publisher(HOME, &[("KEEP_PUBLIC_PER_FAMILY", "2")])
        .await;
    let newer: Vec<String> = (1..3).map(|day| seed_member(&emu, day)).collect();
    for id in &newer {
        home.handle(&json!({"image_id": id})).await.unwrap();
    }
    // Built before both, tagged only now: made public, it would be the one
    // rotation retires at once.
    let late = seed_member(&emu, 0);

    let outcome = home.handle(&json!({"image_id": late})).await.unwrap();

    assert_eq!(outcome.images[0].action, Action::Skipped, "{outcome:?}");
    let image = emu.image(HOME, &late);
    assert_eq!(image["public"], false);
    assert_eq!(tag(&image, "publish:status"), Some("retired"));
    let mut kept = newer.clone();
    kept.sort();
    assert_eq!(public_in(&emu, HOME), kept, "the newer two stay public");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_of_a_rotation_with_copies_writes_nothing_and_matches_the_run() {
    let emu = Emulator::start();
    let vars = [
        ("TARGET_REGIONS", TWO_TARGETS),
        ("KEEP_PUBLIC_PER_FAMILY", "2"),
    ];
    let home = emu.publisher(HOME, &vars).await;
    for day in 0..2 {
        let id = seed_member(&emu, day);
        home.handle(&json!({"image_id": id})).await.unwrap();
        emu.post("/_emulator/complete-copies", json!({}));
        home.handle(&sweep_event(HOME)).await.unwrap();
    }
    let family = [seed_member(&emu, 2)];
    emu.clear_calls();

    let preview = home
        .handle(&json!({"image_id": family[0], "dry_run": true}))
        .await
        .unwrap();
    let images_after_preview = emu.images(HOME);
    assert_eq!(
        writes(&emu),
        Vec::<Value>::new(),
        "a preview writes nothing"
    );
    assert!(preview.preview);
    let real = home.handle(&json!({"image_id": family[0]})).await.unwrap();

    assert_ne!(emu.images(HOME), images_after_preview);
    assert_eq!(
        same_minute(&real.steps),
        same_minute(&preview.steps),
        "the preview is what the run does"
    );
    let kinds: Vec<String> = real
        .steps
        .iter()
        .map(|s| {
            serde_json::to_value(s).unwrap()["step"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for expected in ["make-public", "copy", "make-private", "status"] {
        assert!(kinds.contains(&expected.to_owned()), "{kinds:?}");
    }
}

/// Three releases of a family, one kept public (with its copy): the owner
/// pulls the newest (a broken build), by untagging it or by an unpublish
/// request. The release rotation retired for it is public again, with its
/// copy, recorded in the ledger with why; with `RESTORE_ON_WITHDRAW=false`
/// the family is left with nothing public.
async fn pull_the_newest_release(
    pull: &str,
    restore: &str,
    bpa_before_the_pull: bool,
) -> (Emulator, Vec<String>) {
    let emu = Emulator::start();
    let vars = [
        ("TARGET_REGIONS", "us-west-2"),
        ("KEEP_PUBLIC_PER_FAMILY", "1"),
        ("RESTORE_ON_WITHDRAW", restore),
    ];
    let home = emu.publisher(HOME, &vars).await;
    let mut family = Vec::new();
    for day in 0..3 {
        let id = seed_member(&emu, day);
        home.handle(&ami_state_event(&id, HOME, "available"))
            .await
            .unwrap();
        emu.post("/_emulator/complete-copies", json!({}));
        home.handle(&sweep_event(HOME)).await.unwrap();
        family.push(id);
    }
    assert_eq!(public_in(&emu, HOME), vec![family[2].clone()]);
    if bpa_before_the_pull {
        emu.set_bpa(HOME, "block-new-sharing", "account");
    }
    let newest = &family[2];
    let done = match pull {
        "untag" => {
            owner_deletes_tag(&emu, HOME, newest, "publish").await;
            home.handle(&tag_change_event(newest, HOME, &["publish"]))
                .await
        }
        _ => {
            home.handle(&json!({"image_id": newest, "action": "unpublish"}))
                .await
        }
    };
    done.expect("the pull");
    assert_eq!(emu.image(HOME, newest)["public"], false, "pulled");
    (emu, family)
}

async fn pulling_restores_the_previous_release(pull: &str) {
    let (emu, family) = pull_the_newest_release(pull, "true", false).await;
    let previous = &family[1];
    assert_eq!(public_in(&emu, HOME), vec![previous.clone()], "{pull}");
    assert_eq!(
        tag(&emu.image(HOME, previous), "publish:status"),
        Some("public")
    );
    let copy = copies_of(&emu, "us-west-2", previous).remove(0);
    assert_eq!(
        (copy["public"].as_bool(), tag(&copy, "publish:status")),
        (Some(true), Some("public")),
        "its copy is restored with it"
    );
    assert_eq!(
        public_in(&emu, "us-west-2"),
        vec![copy["image_id"].as_str().unwrap().to_owned()],
        "and only its copy is public there"
    );
    // The ledger says it was retired, then restored, and why.
    let changes = ledger_changes(&emu, previous).await;
    let states: Vec<&str> = changes.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        states,
        ["publishing", "public", "retired", "publishing", "public"]
    );
    assert!(changes[3].1.starts_with("restored"), "{changes:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn untagging_a_familys_public_release_restores_the_one_it_retired() {
    pulling_restores_the_previous_release("untag").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn holding_a_familys_public_release_restores_the_one_it_retired() {
    pulling_restores_the_previous_release("unpublish").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_restore_on_withdraw_false_a_pulled_release_leaves_its_family_private() {
    let (emu, _) = pull_the_newest_release("untag", "false", false).await;
    assert_eq!(public_in(&emu, HOME), Vec::<String>::new());
    assert_eq!(public_in(&emu, "us-west-2"), Vec::<String>::new());
}

/// A restore is a publish like any other: with image block public access
/// on in the region, the retired release stays private and says why, and
/// the ledger records no intent for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_respects_block_public_access() {
    let (emu, family) = pull_the_newest_release("untag", "true", true).await;
    let previous = emu.image(HOME, &family[1]);
    assert_eq!(previous["public"], false);
    assert_eq!(tag(&previous, "publish:status"), Some("rejected"));
    assert!(
        tag(&previous, "publish:reason")
            .unwrap_or_default()
            .contains("image block public access"),
        "{previous}"
    );
    let changes = ledger_changes(&emu, &family[1]).await;
    assert_eq!(changes.last().map(|(s, _)| s.as_str()), Some("retired"));
}
