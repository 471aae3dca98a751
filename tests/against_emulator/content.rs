//! The content check in the publish path: real disk images (tests/images)
//! uploaded through the EBS direct APIs as coldsnap uploads them, registered
//! as AMIs tagged for publishing, and the function deciding on what it read.

use super::*;
use common::disk_images;

/// The secret tests/images/build.py plants in every finding's file.
const PLANTED: &str = "PLANTED-SECRET-7f3a";
const PLANTED_KEY_ID: &str = "AKIAPLANTED000000000";

/// An AMI over the named disk images (the first its root), tagged `tags`.
fn ami_of(emu: &Emulator, images: &[&str], tags: Value) -> String {
    let snapshots: Vec<Value> = images
        .iter()
        .map(|name| {
            let path = disk_images().join(format!("{name}.img"));
            json!({"snapshot_id": emu.upload_image(HOME, &path)})
        })
        .collect();
    emu.seed(
        json!({"region": HOME, "name": images.join("+"), "snapshots": snapshots, "tags": tags}),
    )
}

/// The EBS direct API reads since the last clear.
fn ebs_call_log(emu: &Emulator) -> Vec<Value> {
    let calls = emu.get("/_emulator/calls?service=ebs")["calls"].clone();
    let reads = ["ListSnapshotBlocks", "GetSnapshotBlock"];
    calls
        .as_array()
        .expect("calls")
        .iter()
        .filter(|c| reads.contains(&c["action"].as_str().unwrap_or_default()))
        .cloned()
        .collect()
}

fn ebs_calls(emu: &Emulator) -> usize {
    ebs_call_log(emu).len()
}

const ENFORCE: [(&str, &str); 1] = [("CONTENT_CHECK", "enforce")];

#[tokio::test(flavor = "multi_thread")]
async fn a_planted_image_stays_private_named_and_a_clean_one_is_published() {
    let emu = Emulator::start();
    let planted = ami_of(&emu, &["planted-ext4-plain"], json!({"publish": "public"}));
    let clean = ami_of(&emu, &["clean-ext4-plain"], json!({"publish": "public"}));
    let home = emu.publisher(HOME, &ENFORCE).await;
    emu.clear_calls();

    let kept = home.handle(&json!({"image_id": planted})).await.unwrap();
    let published = home.handle(&json!({"image_id": clean})).await.unwrap();

    let image = emu.image(HOME, &planted);
    assert_eq!(image["public"], false);
    assert_eq!(
        (
            tag(&image, "publish:status"),
            tag(&image, "publish:content")
        ),
        (Some("rejected"), Some("findings"))
    );
    let reason = tag(&image, "publish:reason").unwrap_or_default();
    for kind in ami_publisher::content::Kind::ALL {
        assert!(reason.contains(kind.name()), "{kind} in {reason}");
    }
    assert!(reason.chars().count() <= 256);
    let findings = kept.images[0]
        .content
        .as_ref()
        .expect("the verdict")
        .findings();
    let kinds: std::collections::BTreeSet<&str> = findings.iter().map(|f| f.kind.name()).collect();
    assert_eq!(kinds.len(), 6, "every kind, in the outcome: {kinds:?}");
    assert_eq!(kept.images[0].action, Action::Rejected);

    let image = emu.image(HOME, &clean);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:content")),
        (Some(true), Some("clean"))
    );
    assert_eq!(published.images[0].action, Action::Published);

    // The planted secret is nowhere: not in the outcomes, the tags or the
    // ledger.
    let mut seen = serde_json::to_string(&kept).unwrap();
    seen.push_str(&serde_json::to_string(&emu.images(HOME)).unwrap());
    for id in [&planted, &clean] {
        seen.push_str(&format!("{:?}", ledger_changes(&emu, id).await));
        seen.push_str(&ledger_item(&emu, id).await);
    }
    assert!(!seen.contains(PLANTED) && !seen.contains(PLANTED_KEY_ID));
    assert!(seen.contains(".ssh/authorized_keys"), "the paths are there");
}

/// The whole ledger item of an AMI, as text.
async fn ledger_item(emu: &Emulator, id: &str) -> String {
    let ledger = home_ledger(emu).await;
    let item = ledger
        .client
        .get_item()
        .table_name(&ledger.table)
        .key(
            "region",
            aws_sdk_dynamodb::types::AttributeValue::S(HOME.into()),
        )
        .key(
            "image_id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.into()),
        )
        .send()
        .await
        .unwrap();
    format!("{:?}", item.item())
}

/// Once per content: a rejected AMI's replay and the sweeps after it, and a
/// published AMI's, read the ledger's verdict, never the volumes again.
#[tokio::test(flavor = "multi_thread")]
async fn a_verdict_is_read_once_and_replays_and_sweeps_make_no_ebs_call() {
    let emu = Emulator::start();
    let planted = ami_of(&emu, &["planted-ext4-plain"], json!({"publish": "public"}));
    let clean = ami_of(&emu, &["clean-ext4-plain"], json!({"publish": "public"}));
    let home = emu.publisher(HOME, &ENFORCE).await;
    emu.clear_calls();
    for id in [&planted, &clean] {
        home.handle(&json!({"image_id": id})).await.unwrap();
    }
    assert!(ebs_calls(&emu) > 0, "read once");

    emu.clear_calls();
    for id in [&planted, &clean] {
        home.handle(&json!({"image_id": id})).await.unwrap();
    }
    home.handle(&sweep_event(HOME)).await.unwrap();
    home.handle(&sweep_event(HOME)).await.unwrap();

    assert_eq!(ebs_calls(&emu), 0, "{:?}", ebs_call_log(&emu));
    assert_eq!(emu.image(HOME, &planted)["public"], false);
    assert_eq!(emu.image(HOME, &clean)["public"], true);
}

/// A forged `publish:content=clean` is only a hint: the ledger has no
/// verdict for it, so the AMI is read, and stays private.
#[tokio::test(flavor = "multi_thread")]
async fn a_forged_content_tag_changes_nothing() {
    let emu = Emulator::start();
    let planted = ami_of(
        &emu,
        &["planted-ext4-plain"],
        json!({"publish": "public", "publish:content": "clean"}),
    );
    let home = emu.publisher(HOME, &ENFORCE).await;

    home.handle(&json!({"image_id": planted})).await.unwrap();

    let image = emu.image(HOME, &planted);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:content")),
        (Some(false), Some("findings"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn under_report_a_planted_image_is_published_with_its_findings() {
    let emu = Emulator::start();
    let planted = ami_of(&emu, &["planted-ext4-plain"], json!({"publish": "public"}));
    let home = emu.publisher(HOME, &[("CONTENT_CHECK", "report")]).await;

    let outcome = home.handle(&json!({"image_id": planted})).await.unwrap();

    let image = emu.image(HOME, &planted);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:content")),
        (Some(true), Some("findings"))
    );
    assert!(
        !outcome.images[0]
            .content
            .as_ref()
            .unwrap()
            .findings()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_check_off_nothing_is_read() {
    let emu = Emulator::start();
    let planted = ami_of(&emu, &["planted-ext4-plain"], json!({"publish": "public"}));
    let home = emu.publisher(HOME, &[("CONTENT_CHECK", "off")]).await;
    emu.clear_calls();

    home.handle(&json!({"image_id": planted})).await.unwrap();

    assert_eq!(emu.image(HOME, &planted)["public"], true);
    assert_eq!(ebs_calls(&emu), 0);
}

/// The owner acknowledges every kind the image has on this AMI (a tag the
/// role can never write): published, its tag says so.
#[tokio::test(flavor = "multi_thread")]
async fn the_owners_acknowledgement_publishes_what_it_names() {
    let emu = Emulator::start();
    let all = "authorized-keys,host-keys,histories,credentials,password-login,instance-data";
    let partly = ami_of(
        &emu,
        &["planted-ext4-plain"],
        json!({"publish": "public", "publish-allow": "host-keys,histories"}),
    );
    let wholly = ami_of(
        &emu,
        &["planted-ext4-plain"],
        json!({"publish": "public", "publish-allow": all}),
    );
    let home = emu.publisher(HOME, &ENFORCE).await;

    home.handle(&json!({"image_id": partly})).await.unwrap();
    home.handle(&json!({"image_id": wholly})).await.unwrap();

    let image = emu.image(HOME, &partly);
    assert_eq!(image["public"], false);
    let reason = tag(&image, "publish:reason").unwrap_or_default();
    assert!(
        reason.contains("authorized-keys") && !reason.contains("host-keys"),
        "{reason}"
    );
    let image = emu.image(HOME, &wholly);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:content")),
        (Some(true), Some("acknowledged"))
    );
}

/// An AMI the check can't read (a LUKS volume) is rejected with why, and
/// published with `CONTENT_CHECK_UNREADABLE=publish`.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_image_is_rejected_with_why_unless_unreadable_ones_are_published() {
    let emu = Emulator::start();
    let dir = std::env::temp_dir().join(format!("luks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let luks = dir.join("luks.img");
    let mut bytes = b"LUKS\xba\xbe".to_vec();
    bytes.resize(1 << 20, 0);
    std::fs::write(&luks, bytes).unwrap();
    let seed = |emu: &Emulator| {
        let snapshot = emu.upload_image(HOME, &luks);
        emu.seed(json!({"region": HOME, "name": "luks", "snapshots": [{"snapshot_id": snapshot}], "tags": {"publish": "public"}}))
    };
    let rejected = seed(&emu);
    let published = seed(&emu);

    emu.publisher(HOME, &ENFORCE)
        .await
        .handle(&json!({"image_id": rejected}))
        .await
        .unwrap();
    let vars = [
        ("CONTENT_CHECK", "enforce"),
        ("CONTENT_CHECK_UNREADABLE", "publish"),
    ];
    emu.publisher(HOME, &vars)
        .await
        .handle(&json!({"image_id": published}))
        .await
        .unwrap();

    let image = emu.image(HOME, &rejected);
    assert_eq!(
        (image["public"].as_bool(), tag(&image, "publish:content")),
        (Some(false), Some("unreadable"))
    );
    let reason = tag(&image, "publish:reason").unwrap_or_default();
    assert!(
        reason.contains("could not read") && reason.contains("LUKS"),
        "{reason}"
    );
    assert_eq!(emu.image(HOME, &published)["public"], true);
}

/// A copy has its source's content: the source is read once, in its region,
/// and its copies never.
#[tokio::test(flavor = "multi_thread")]
async fn a_copy_is_never_read() {
    let emu = Emulator::start();
    let source = ami_of(&emu, &["clean-ext4-plain"], json!({"publish": "public"}));
    let vars = [
        ("CONTENT_CHECK", "enforce"),
        ("TARGET_REGIONS", "us-west-2"),
    ];
    let home = emu.publisher(HOME, &vars).await;
    emu.clear_calls();
    home.handle(&json!({"image_id": source})).await.unwrap();
    emu.post("/_emulator/complete-copies", json!({}));
    home.handle(&sweep_event(HOME)).await.unwrap();

    let copy = copies_of(&emu, "us-west-2", &source).remove(0);
    assert_eq!(copy["public"], true);
    let regions: std::collections::BTreeSet<String> = ebs_call_log(&emu)
        .into_iter()
        .map(|c| c["region"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(regions, [HOME.to_owned()].into());
}
