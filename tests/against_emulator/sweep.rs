//! The sweep of a region: every tagged, eligible AMI and nothing else.

use super::*;

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
