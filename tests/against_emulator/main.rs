//! The function against the local EC2 emulator over real HTTP: what ends up
//! public, what stays private, what the AMIs say about it, and that every
//! event can come twice, in any order, without a second copy.
//! One file per capability; what they share is here.

#[path = "../common/mod.rs"]
mod common;

use ami_publisher::publisher::{Error, Publisher};
use ami_publisher::report::Action;
use ami_publisher::steps::Step;
use common::{Emulator, ami_state_event, sweep_event, tag_change_event};
use serde_json::{Value, json};

mod content;
mod copies;
mod ebs;
mod ledger;
mod limits;
mod publish;
mod rotation;
mod sweep;
mod takedown;

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

fn copies_of(emu: &Emulator, region: &str, source: &str) -> Vec<Value> {
    let source_ref = format!("{HOME}/{source}");
    emu.images(region)
        .into_iter()
        .filter(|i| tag(i, "publish:source") == Some(source_ref.as_str()))
        .collect()
}

const TWO_TARGETS: &str = "us-west-2,eu-west-1";

/// The owner removes a tag from an AMI by hand.
async fn owner_deletes_tag(emu: &Emulator, region: &str, id: &str, key: &str) {
    emu.owner(region)
        .await
        .delete_tags()
        .resources(id)
        .tags(aws_sdk_ec2::types::Tag::builder().key(key).build())
        .send()
        .await
        .expect("DeleteTags");
}

/// The owner tags an AMI by hand.
async fn owner_sets_tag(emu: &Emulator, region: &str, id: &str, key: &str, value: &str) {
    emu.owner(region)
        .await
        .create_tags()
        .resources(id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(key)
                .value(value)
                .build(),
        )
        .send()
        .await
        .expect("CreateTags");
}

/// A source published with copies in two regions, by the source region's
/// stack alone: its first event starts the copies, the copies complete, its
/// sweep publishes them. Returns the source's id and that stack.
async fn published_with_copies(emu: &Emulator, vars: &[(&str, &str)]) -> (String, Publisher) {
    let source = seed_tagged(
        emu,
        HOME,
        json!({"tags": {"publish": "public", "team": "images"}}),
    );
    let home = emu.publisher(HOME, vars).await;
    home.handle(&ami_state_event(&source, HOME, "available"))
        .await
        .unwrap();
    emu.post("/_emulator/complete-copies", json!({}));
    home.handle(&sweep_event(HOME)).await.unwrap();
    (source, home)
}

/// Every copy of `source`, as `(region, public, status)`.
fn copy_states(emu: &Emulator, source: &str) -> Vec<(String, bool, Option<String>)> {
    ["us-west-2", "eu-west-1"]
        .iter()
        .flat_map(|r| copies_of(emu, r, source))
        .map(|c| {
            (
                c["region"].as_str().unwrap_or_default().to_owned(),
                c["public"].as_bool().unwrap_or_default(),
                tag(&c, "publish:status").map(str::to_owned),
            )
        })
        .collect()
}

fn all_copies(public: bool, status: &str) -> Vec<(String, bool, Option<String>)> {
    ["us-west-2", "eu-west-1"]
        .iter()
        .map(|r| ((*r).to_owned(), public, Some(status.to_owned())))
        .collect()
}

/// The calls since the last clear that write.
fn writes(emu: &Emulator) -> Vec<Value> {
    const READS: [&str; 5] = [
        "DescribeImages",
        "ListImagesInRecycleBin",
        "GetImageBlockPublicAccessState",
        "GetServiceQuota",
        "GetEbsEncryptionByDefault",
    ];
    emu.call_log()
        .into_iter()
        .filter(|c| !READS.contains(&c["action"].as_str().unwrap_or_default()))
        .collect()
}

/// The ledger's table in the home region, through the emulator.
async fn home_ledger(emu: &Emulator) -> ami_publisher::ledger::Ledger {
    ami_publisher::ledger::Ledger {
        client: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&emu.sdk(HOME).await).build(),
        ),
        table: common::LEDGER_TABLE.to_owned(),
        region: ami_publisher::model::RegionName::parse(HOME).unwrap(),
    }
}

/// What the ledger remembers of `image` in the home region: its changes'
/// (state, reason), oldest first.
async fn ledger_changes(emu: &Emulator, image: &str) -> Vec<(String, String)> {
    let ledger = home_ledger(emu).await;
    let id = ami_publisher::model::ImageId::parse(image).unwrap();
    let records = ami_publisher::ledger::history(&ledger, &ledger.region, Some(&id))
        .await
        .unwrap();
    records
        .into_iter()
        .flat_map(|r| r.history)
        .map(|c| (c.state, c.reason))
        .collect()
}
