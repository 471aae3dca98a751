//! Exact EC2 call sequences, with the SDK's own mocking crate: which calls a
//! run makes, how many, and what happens when one fails. No network. One
//! file per capability; the mocks and builders they share are here.

use std::collections::BTreeMap;
use std::time::Duration;

#[path = "../common/mod.rs"]
mod common;

use ami_publisher::clients::Clients;
use ami_publisher::config::Config;
use ami_publisher::model::RegionName;
use ami_publisher::model::Status;
use ami_publisher::publisher::{Error, Publisher};
use ami_publisher::report::{Action, Outcome};
use aws_sdk_ec2::Client;
use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation::copy_image::{CopyImageError, CopyImageOutput};
use aws_sdk_ec2::operation::create_tags::CreateTagsOutput;
use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ec2::operation::enable_image_deprecation::EnableImageDeprecationOutput;
use aws_sdk_ec2::operation::get_ebs_encryption_by_default::GetEbsEncryptionByDefaultOutput;
use aws_sdk_ec2::operation::get_image_block_public_access_state::GetImageBlockPublicAccessStateOutput;
use aws_sdk_ec2::operation::list_images_in_recycle_bin::ListImagesInRecycleBinOutput;
use aws_sdk_ec2::operation::modify_image_attribute::{
    ModifyImageAttributeError, ModifyImageAttributeOutput,
};
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, Image, ImageRecycleBinInfo, ImageState, ManagedBy,
    PermissionGroup, ProductCode, ResourceType, Tag,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use common::sweep_event;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

mod copies;
mod publish;
mod rotation;
mod sweep;
mod takedown;

const HOME: &str = "us-east-1";
const SOURCE_ID: &str = "ami-0a1b2c3d4e5f60001";

fn now() -> OffsetDateTime {
    datetime!(2026-11-28 12:00 UTC)
}

/// The function's configuration in these tests: deregistration protection
/// and the content check off unless a test turns them on (their calls have
/// tests of their own).
fn config(vars: &[(&str, &str)]) -> Config {
    let defaults = [
        ("AWS_REGION", HOME),
        ("PROTECT_PUBLIC", "false"),
        ("CONTENT_CHECK", "off"),
    ];
    Config::from_vars(&[&defaults[..], vars].concat()).unwrap()
}

fn region(name: &str) -> RegionName {
    RegionName::parse(name).unwrap()
}

/// A mocked client whose SDK retries happen without real waiting. Reads a
/// region answers the same in every test unless the test's own rules come
/// first: no public AMI yet, an empty Recycle Bin, EBS encryption by default
/// off (the public AMI quota is AWS's default, 5: no Service Quotas client).
fn client(rules: &[&Rule]) -> Client {
    let defaults = [count_public(0), recycle_bin(0), encrypts_by_default(false)];
    let all: Vec<&Rule> = rules.iter().copied().chain(defaults.iter()).collect();
    mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &all, |c| c.retry_config(
        aws_sdk_ec2::config::retry::RetryConfig::standard()
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(2))
    ))
}

/// DescribeImages(Owners=self, is-public=true): `n` public AMIs.
fn count_public(n: usize) -> Rule {
    mock!(Client::describe_images)
        .match_requests(|r| r.filters().iter().any(|f| f.name() == Some("is-public")))
        .then_output(move || {
            let images = (0..n)
                .map(|i| {
                    Image::builder()
                        .image_id(format!("ami-0e0e0e0e0e0e{i:05}"))
                        .public(true)
                        .build()
                })
                .collect();
            DescribeImagesOutput::builder()
                .set_images(Some(images))
                .build()
        })
}

fn recycle_bin(n: usize) -> Rule {
    mock!(Client::list_images_in_recycle_bin).then_output(move || {
        let images = (0..n)
            .map(|i| {
                ImageRecycleBinInfo::builder()
                    .image_id(format!("ami-0b1b1b1b1b1b{i:05}"))
                    .build()
            })
            .collect();
        ListImagesInRecycleBinOutput::builder()
            .set_images(Some(images))
            .build()
    })
}

fn encrypts_by_default(on: bool) -> Rule {
    mock!(Client::get_ebs_encryption_by_default).then_output(move || {
        GetEbsEncryptionByDefaultOutput::builder()
            .ebs_encryption_by_default(on)
            .build()
    })
}

fn publisher(config: Config, clients: Vec<(&str, Client)>) -> Publisher {
    let clients = Clients::from_clients(clients.into_iter().map(|(r, c)| (region(r), c)));
    Publisher::new(config, clients).with_clock(now)
}

fn tags(pairs: &[(&str, &str)]) -> Vec<Tag> {
    pairs
        .iter()
        .map(|(k, v)| Tag::builder().key(*k).value(*v).build())
        .collect()
}

/// An owned, available, unencrypted AMI tagged publish=public.
fn eligible() -> aws_sdk_ec2::types::builders::ImageBuilder {
    Image::builder()
        .image_id(SOURCE_ID)
        .name("demo-image")
        .owner_id("123456789012")
        .state(ImageState::Available)
        .public(false)
        .creation_date("2026-11-01T00:00:00.000Z")
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(EbsBlockDevice::builder().encrypted(false).build())
                .build(),
        )
        .set_tags(Some(tags(&[("publish", "public"), ("Name", "demo")])))
}

/// DescribeImages with `Owners=["self"]`: finds `image` (if any).
fn describe_owned(image: Option<Image>) -> Rule {
    mock!(Client::describe_images)
        .match_requests(|r| r.owners() == ["self"] && r.image_ids() == [SOURCE_ID])
        .then_output(move || {
            DescribeImagesOutput::builder()
                .set_images(Some(image.clone().into_iter().collect()))
                .build()
        })
}

fn describe_any(image: Option<Image>) -> Rule {
    mock!(Client::describe_images)
        .match_requests(|r| r.owners().is_empty() && r.image_ids() == [SOURCE_ID])
        .then_output(move || {
            DescribeImagesOutput::builder()
                .set_images(Some(image.clone().into_iter().collect()))
                .build()
        })
}

fn bpa(state: &'static str, managed_by: ManagedBy) -> Rule {
    mock!(Client::get_image_block_public_access_state).then_output(move || {
        GetImageBlockPublicAccessStateOutput::builder()
            .image_block_public_access_state(state)
            .managed_by(managed_by.clone())
            .build()
    })
}

fn make_public_ok() -> Rule {
    mock!(Client::modify_image_attribute)
        .match_requests(|r| {
            r.image_id() == Some(SOURCE_ID)
                && r.launch_permission().is_some_and(|lp| {
                    lp.add().len() == 1 && lp.add()[0].group() == Some(&PermissionGroup::All)
                })
        })
        .then_output(|| ModifyImageAttributeOutput::builder().build())
}

fn create_tags_ok() -> Rule {
    mock!(Client::create_tags).then_output(|| CreateTagsOutput::builder().build())
}

/// CreateTags that records the tags it was sent.
fn create_tags_expecting(expected: &'static [(&'static str, &'static str)]) -> Rule {
    mock!(Client::create_tags)
        .match_requests(move |r| {
            let sent: BTreeMap<&str, &str> = r
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))
                .collect();
            expected.iter().all(|(k, v)| sent.get(k) == Some(v))
        })
        .then_output(|| CreateTagsOutput::builder().build())
}

async fn run(p: &Publisher, payload: serde_json::Value) -> Result<Outcome, Error> {
    p.handle(&payload).await
}

fn direct() -> serde_json::Value {
    json!({"image_id": SOURCE_ID})
}

/// Reconciles `image` (owned, in the home region) by direct invocation,
/// with BPA `bpa_state`; returns the outcome and how many BPA,
/// ModifyImageAttribute and CreateTags calls were made.
async fn run_owned(image: Image, bpa_state: &'static str) -> (Outcome, (usize, usize, usize)) {
    let describe = describe_owned(Some(image));
    let (bpa, modify, tag) = (
        bpa(bpa_state, ManagedBy::Account),
        make_public_ok(),
        create_tags_ok(),
    );
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&describe, &bpa, &modify, &tag]))],
    );
    let outcome = run(&p, direct()).await.unwrap();
    (
        outcome,
        (bpa.num_calls(), modify.num_calls(), tag.num_calls()),
    )
}

const TARGETS: [&str; 4] = ["us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2"];

fn source_ref() -> String {
    format!("{HOME}/{SOURCE_ID}")
}

fn copy_id(target: &str) -> String {
    format!(
        "ami-0c0c0c0c0c0c{:05}",
        TARGETS.iter().position(|t| *t == target).unwrap()
    )
}

/// The copy lookup (by provenance tag) in a target region: finds `existing`.
fn find_copy(existing: Option<Image>) -> Rule {
    mock!(Client::describe_images)
        .match_requests(|r| {
            r.owners() == ["self"]
                && r.filters()
                    .iter()
                    .any(|f| f.name() == Some("tag:publish:source") && f.values() == [source_ref()])
        })
        .then_output(move || {
            DescribeImagesOutput::builder()
                .set_images(Some(existing.clone().into_iter().collect()))
                .build()
        })
}

fn copy_ok(target: &'static str) -> Rule {
    mock!(Client::copy_image)
        .match_requests(move |r| {
            let tags: BTreeMap<&str, &str> = r
                .tag_specifications()
                .iter()
                .flat_map(|s| s.tags())
                .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or("")))
                .collect();
            r.source_region() == Some(HOME)
                && r.source_image_id() == Some(SOURCE_ID)
                && r.name() == Some("demo-image")
                && r.client_token() == Some(&format!("{HOME}/{SOURCE_ID}/{target}/0"))
                // The source's tags come from EC2 (CopyImageTags); the
                // request names only the function's markers, never the
                // publish key (the role denies it).
                && r.copy_image_tags() == Some(true)
                && tags.get("publish:source") == Some(&source_ref().as_str())
                && tags.keys().all(|k| k.starts_with("publish:"))
                && !tags.contains_key("publish")
                && !tags.contains_key("publish:status")
                // The new snapshots carry the provenance tag too (the role's
                // CopyImage statement for created resources asks for it).
                && r.tag_specifications().iter().map(|s| s.resource_type().cloned()).collect::<Vec<_>>()
                    == [Some(ResourceType::Image), Some(ResourceType::Snapshot)]
                && r.tag_specifications().iter().all(|s| {
                    s.tags().iter().any(|t| {
                        t.key() == Some("publish:source") && t.value() == Some(source_ref().as_str())
                    })
                })
        })
        .then_output(move || CopyImageOutput::builder().image_id(copy_id(target)).build())
}

/// AWS's default deprecation of a public AMI created 2026-11-01: two years on.
const PUBLIC_DEPRECATION: &str = "2028-11-01T00:00:00.000Z";

/// A copy found by its provenance tag; a public one was deprecated with its
/// source (as the function does before making a copy public).
fn existing_copy(target: &str, state: ImageState, public: bool) -> Image {
    existing_copy_with_id(&copy_id(target), target, state, public)
}

fn existing_copy_with_id(id: &str, target: &str, state: ImageState, public: bool) -> Image {
    let source = source_ref();
    let mut copy_tags = vec![("publish", "public"), ("publish:source", source.as_str())];
    let reason = format!("public in {target} (copy of {source})");
    if public {
        copy_tags.extend([("publish:status", "public"), ("publish:reason", &reason)]);
    }
    let copy = eligible()
        .image_id(id)
        .state(state)
        .public(public)
        .set_tags(Some(tags(&copy_tags)));
    if public {
        copy.deprecation_time(PUBLIC_DEPRECATION).build()
    } else {
        copy.build()
    }
}

/// A source made public by an earlier run, whose copies were pending then.
fn public_source_copying() -> Image {
    eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(tags(&[
            ("publish", "public"),
            ("publish:status", "copying"),
        ])))
        .build()
}

fn create_tags_on(id: String, status: &'static str) -> Rule {
    mock!(Client::create_tags)
        .match_requests(move |r| {
            r.resources() == [id.clone()]
                && r.tags()
                    .iter()
                    .any(|t| t.key() == Some("publish:status") && t.value() == Some(status))
        })
        .then_output(|| CreateTagsOutput::builder().build())
}

fn eu_copy(outcome: &Outcome) -> &ami_publisher::report::CopyOutcome {
    outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap()
}

fn unauthorized() -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("UnauthorizedOperation")
        .message("injected")
        .build()
}
