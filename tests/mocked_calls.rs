//! Exact EC2 call sequences, with the SDK's own mocking crate: which calls a
//! run makes, how many, and what happens when one fails. No network.

use std::collections::BTreeMap;
use std::time::Duration;

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

const HOME: &str = "us-east-1";
const SOURCE_ID: &str = "ami-0a1b2c3d4e5f60001";

fn now() -> OffsetDateTime {
    datetime!(2026-11-28 12:00 UTC)
}

/// The function's configuration in these tests: deregistration protection
/// off unless a test turns it on (its calls have tests of their own).
fn config(vars: &[(&str, &str)]) -> Config {
    let defaults = [("AWS_REGION", HOME), ("PROTECT_PUBLIC", "false")];
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

#[tokio::test]
async fn eligible_ami_is_made_public_with_one_modify_call_and_tagged_public() {
    let describe = describe_owned(Some(eligible().build()));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = make_public_ok();
    let tag = create_tags_expecting(&[
        ("publish:status", "public"),
        ("publish:reason", "public in us-east-1"),
    ]);
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&describe, &bpa, &modify, &tag]))],
    );

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(outcome.images[0].action, Action::Published);
    assert_eq!(outcome.images[0].status, Some(Status::Public));
    assert_eq!(
        (
            describe.num_calls(),
            bpa.num_calls(),
            modify.num_calls(),
            tag.num_calls()
        ),
        (1, 1, 1, 1)
    );
}

/// Runs the function on an AMI that must not become public and checks it
/// made no ModifyImageAttribute call and tagged it rejected with `reason`.
async fn assert_rejected(image: Image, bpa_rule: Rule, reason: &str) {
    let owned = image.owner_id() == Some("123456789012");
    let describe_self = describe_owned(owned.then(|| image.clone()));
    let describe_shared = describe_any(Some(image));
    let modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let tag = create_tags_ok();
    let p = publisher(
        config(&[]),
        vec![(
            HOME,
            client(&[&describe_self, &describe_shared, &bpa_rule, &modify, &tag]),
        )],
    );

    let outcome = run(&p, direct()).await.unwrap();

    let image = &outcome.images[0];
    assert_eq!(image.action, Action::Rejected, "{outcome:?}");
    assert!(
        image.reasons.iter().any(|r| r.contains(reason)),
        "{:?} lacks {reason}",
        image.reasons
    );
    assert_eq!(
        modify.num_calls(),
        0,
        "an ineligible AMI is never passed to ModifyImageAttribute"
    );
    // The role may write status tags only on the account's own AMIs.
    let (status, tag_calls) = if owned {
        (Some(Status::Rejected), 1)
    } else {
        (None, 0)
    };
    assert_eq!((image.status, tag.num_calls()), (status, tag_calls));
}

#[tokio::test]
async fn encrypted_ami_gets_no_modify_call() {
    let image = eligible()
        .set_block_device_mappings(Some(vec![
            BlockDeviceMapping::builder()
                .device_name("/dev/sdb")
                .ebs(EbsBlockDevice::builder().encrypted(true).build())
                .build(),
        ]))
        .build();
    assert_rejected(
        image,
        bpa("unblocked", ManagedBy::Account),
        "encrypted EBS volume: /dev/sdb",
    )
    .await;
}

#[tokio::test]
async fn ebs_volume_of_unknown_encryption_gets_no_modify_call() {
    // Fail closed: no Encrypted flag is not "unencrypted".
    let image = eligible()
        .set_block_device_mappings(Some(vec![
            BlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(
                    EbsBlockDevice::builder()
                        .snapshot_id("snap-0123456789abcdef0")
                        .build(),
                )
                .build(),
        ]))
        .build();
    assert_rejected(
        image,
        bpa("unblocked", ManagedBy::Account),
        "EC2 does not say whether EBS volume /dev/xvda is encrypted",
    )
    .await;
}

#[tokio::test]
async fn ami_with_product_code_gets_no_modify_call() {
    let image = eligible()
        .product_codes(
            ProductCode::builder()
                .product_code_id("8fbbk9yqlz2s")
                .build(),
        )
        .build();
    assert_rejected(
        image,
        bpa("unblocked", ManagedBy::Account),
        "product code: 8fbbk9yqlz2s",
    )
    .await;
}

#[tokio::test]
async fn ami_of_another_account_gets_no_modify_call() {
    let image = eligible().owner_id("210987654321").build();
    assert_rejected(
        image,
        bpa("unblocked", ManagedBy::Account),
        "owned by account 210987654321",
    )
    .await;
}

#[tokio::test]
async fn bpa_blocked_by_the_account_gets_no_modify_call() {
    let rule = bpa("block-new-sharing", ManagedBy::Account);
    assert_rejected(eligible().build(), rule, "managed by the account").await;
}

#[tokio::test]
async fn bpa_blocked_by_a_declarative_policy_gets_no_modify_call() {
    let rule = bpa("block-new-sharing", ManagedBy::DeclarativePolicy);
    assert_rejected(eligible().build(), rule, "declarative policy").await;
}

#[tokio::test]
async fn already_public_ami_with_its_status_gets_no_call_beyond_describe() {
    let image = eligible()
        .public(true)
        .set_tags(Some(tags(&[
            ("publish", "public"),
            ("publish:status", "public"),
            ("publish:reason", "public in us-east-1"),
        ])))
        .build();

    let (outcome, calls) = run_owned(image, "block-new-sharing").await;

    assert_eq!(outcome.images[0].action, Action::AlreadyPublic);
    assert_eq!(
        calls,
        (0, 0, 0),
        "no BPA, ModifyImageAttribute or CreateTags call"
    );
}

#[tokio::test]
async fn deprecation_is_set_before_the_ami_is_made_public() {
    let describe = describe_owned(Some(eligible().build()));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let deprecate = mock!(Client::enable_image_deprecation)
        .match_requests(|r| {
            r.image_id() == Some(SOURCE_ID)
                && r.deprecate_at().map(|d| d.secs())
                    == Some(datetime!(2027-01-30 00:00 UTC).unix_timestamp())
        })
        .then_output(|| {
            EnableImageDeprecationOutput::builder()
                .r#return(true)
                .build()
        });
    let modify = make_public_ok();
    let tag = create_tags_ok();
    // Sequential: a ModifyImageAttribute before EnableImageDeprecation fails
    // the test; the quota is counted right before the AMI is made public.
    let (public, bin) = (count_public(0), recycle_bin(0));
    let c = mock_client!(
        aws_sdk_ec2,
        RuleMode::Sequential,
        [&describe, &bpa, &deprecate, &public, &bin, &modify, &tag]
    );
    let p = publisher(config(&[("DEPRECATE_AFTER_DAYS", "90")]), vec![(HOME, c)]);

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(
        outcome.images[0].deprecation_time.as_deref(),
        Some("2027-01-30T00:00:00Z")
    );
    assert_eq!((deprecate.num_calls(), modify.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_quota_refusal_from_ec2_is_an_outcome_saying_how_to_raise_the_quota() {
    // The count said there was room (public AMIs in the Recycle Bin, which
    // EC2 does not say were public, may fill it): EC2's answer decides.
    let describe = describe_owned(Some(eligible().build()));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = mock!(Client::modify_image_attribute).then_error(|| {
        ModifyImageAttributeError::generic(
            ErrorMetadata::builder()
                .code("ResourceLimitExceeded")
                .message("You have reached your quota of 5 for the number of public images")
                .build(),
        )
    });
    let tag = create_tags_expecting(&[("publish:status", "rejected")]);
    let (public, bin) = (count_public(3), recycle_bin(2));
    let p = publisher(
        config(&[]),
        vec![(
            HOME,
            client(&[&describe, &bpa, &public, &bin, &modify, &tag]),
        )],
    );

    let outcome = run(&p, direct())
        .await
        .expect("a quota is not retried: the invocation succeeds");

    let image = &outcome.images[0];
    assert_eq!(
        (image.action, image.status),
        (Action::Rejected, Some(Status::Rejected))
    );
    let reason = image.reasons.join(" ");
    assert!(
        reason.contains("quota")
            && reason.contains("Service Quotas")
            && reason.contains("L-0E3CBAB9"),
        "{reason}"
    );
    assert_eq!((modify.num_calls(), tag.num_calls()), (1, 1));
    assert_eq!(outcome.quotas[0].in_recycle_bin, 2);
}

#[tokio::test]
async fn no_headroom_in_the_public_ami_quota_means_no_modify_call() {
    let describe = describe_owned(Some(eligible().build()));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = make_public_ok();
    let tag = create_tags_expecting(&[("publish:status", "rejected")]);
    let public = count_public(5);
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&describe, &bpa, &public, &modify, &tag]))],
    );

    let outcome = run(&p, direct()).await.unwrap();

    let image = &outcome.images[0];
    assert_eq!(
        (image.action, image.status),
        (Action::Rejected, Some(Status::Rejected))
    );
    let reason = image.reasons.join(" ");
    assert!(
        reason.contains("the public AMI quota in us-east-1 is reached: 5 public of 5")
            && reason.contains("assumed: AWS's default"),
        "{reason}"
    );
    assert_eq!(modify.num_calls(), 0, "no call that AWS would refuse");
    let quota = &outcome.quotas[0];
    assert_eq!((quota.quota, quota.public, quota.headroom), (5, 5, 0));
}

// ---- copies ----

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

struct Region {
    name: &'static str,
    find: Rule,
    copy: Rule,
}

fn target_region(name: &'static str, existing: Option<Image>, copy: Rule) -> Region {
    Region {
        name,
        find: find_copy(existing),
        copy,
    }
}

fn copy_config() -> Config {
    config(&[("TARGET_REGIONS", &TARGETS.join(","))])
}

fn source_publisher(source: Image, targets: &[Region], home_rules: &[&Rule]) -> Publisher {
    let describe = describe_owned(Some(source));
    let mut rules: Vec<&Rule> = vec![&describe];
    rules.extend_from_slice(home_rules);
    let mut clients = vec![(HOME, client(&rules))];
    for t in targets {
        clients.push((t.name, client(&[&t.find, &t.copy])));
    }
    publisher(copy_config(), clients)
}

#[tokio::test]
async fn first_run_starts_one_copy_per_target_region() {
    let targets: Vec<Region> = TARGETS
        .iter()
        .map(|t| target_region(t, None, copy_ok(t)))
        .collect();
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "copying")]),
    );
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let outcome = run(&p, direct()).await.unwrap();

    for t in &targets {
        assert_eq!(
            (t.name, t.find.num_calls(), t.copy.num_calls()),
            (t.name, 1, 1)
        );
    }
    let copies = &outcome.images[0].copies;
    let regions: Vec<&str> = copies.iter().map(|c| c.region.as_str()).collect();
    assert_eq!(regions, TARGETS, "reported in configured order");
    assert!(
        copies
            .iter()
            .all(|c| c.started && c.state.as_deref() == Some("pending"))
    );
    assert_eq!(outcome.images[0].status, Some(Status::Copying));
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

/// Every target region with a copy in `state` found by its tag.
fn targets_with_copies(state: ImageState, public: bool) -> Vec<Region> {
    TARGETS
        .iter()
        .map(|t| {
            let existing = existing_copy(t, state.clone(), public);
            target_region(t, Some(existing), copy_ok(t))
        })
        .collect()
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

#[tokio::test]
async fn replay_finds_every_copy_by_its_tag_and_copies_nothing() {
    let targets = targets_with_copies(ImageState::Pending, false);
    let source = public_source_copying();
    let (modify, tag) = (make_public_ok(), create_tags_ok());
    let p = source_publisher(source, &targets, &[&modify, &tag]);

    let outcome = run(&p, direct()).await.unwrap();

    let copy_calls: usize = targets.iter().map(|t| t.copy.num_calls()).sum();
    assert_eq!(copy_calls, 0, "no second copy");
    assert_eq!(modify.num_calls(), 0);
    assert!(outcome.images[0].copies.iter().all(|c| !c.started));
}

#[tokio::test]
async fn source_turns_public_once_every_copy_is_public() {
    let targets = targets_with_copies(ImageState::Available, true);
    let source = public_source_copying();
    let tag = create_tags_expecting(&[("publish:status", "public")]);
    let p = source_publisher(source, &targets, &[&tag]);

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(outcome.images[0].status, Some(Status::Public));
    assert_eq!(tag.num_calls(), 1);
}

fn copy_failing(code: &'static str) -> Rule {
    mock!(Client::copy_image).then_error(move || {
        CopyImageError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("injected")
                .build(),
        )
    })
}

/// Every target region without a copy; CopyImage fails with `code` in `failing`.
fn targets_without_copies_failing_in(failing: &str, code: &'static str) -> Vec<Region> {
    TARGETS
        .iter()
        .map(|t| {
            let copy = if *t == failing {
                copy_failing(code)
            } else {
                copy_ok(t)
            };
            target_region(t, None, copy)
        })
        .collect()
}

#[tokio::test]
async fn throttled_region_is_retried_by_the_sdk_then_reported_while_others_finish() {
    let targets = targets_without_copies_failing_in("eu-west-1", "RequestLimitExceeded");
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "error")]),
    );
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let err = run(&p, direct()).await.unwrap_err();

    let throttled = targets.iter().find(|t| t.name == "eu-west-1").unwrap();
    assert_eq!(
        throttled.copy.num_calls(),
        3,
        "the SDK's standard retry makes 3 attempts"
    );
    for t in targets.iter().filter(|t| t.name != "eu-west-1") {
        assert_eq!(t.copy.num_calls(), 1, "{} still copied", t.name);
    }
    let text = err.to_string();
    assert!(
        text.contains("eu-west-1") && text.contains("RequestLimitExceeded"),
        "{text}"
    );
    assert!(
        !text.contains("us-west-2"),
        "only the failed region is listed: {text}"
    );
    assert_eq!(
        modify.num_calls(),
        1,
        "the source's own region is still published"
    );
}

#[tokio::test]
async fn one_region_out_of_copy_capacity_is_rejected_there_while_three_others_copy() {
    let targets = targets_without_copies_failing_in("ap-southeast-2", "ResourceLimitExceeded");
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "copying")]),
    );
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let outcome = run(&p, direct())
        .await
        .expect("a limit a retry can't fix now is an outcome, not an error");

    let calls: Vec<(&str, usize)> = targets
        .iter()
        .map(|t| (t.name, t.copy.num_calls()))
        .collect();
    assert_eq!(
        calls,
        [
            ("us-west-2", 1),
            ("eu-west-1", 1),
            ("eu-central-1", 1),
            ("ap-southeast-2", 1)
        ],
        "ResourceLimitExceeded is not retried by the SDK"
    );
    let image = &outcome.images[0];
    let full = image
        .copies
        .iter()
        .find(|c| c.region.as_str() == "ap-southeast-2")
        .unwrap();
    assert_eq!(full.action, Some(Action::Rejected));
    assert!(
        full.reasons[0].contains("too many copies in progress"),
        "{:?}",
        full.reasons
    );
    assert_eq!(
        image.status,
        Some(Status::Copying),
        "the sweep takes it up again"
    );
}

/// An account whose IAM evaluates CopyImage otherwise than the role was
/// written for (README, "First deploy"): the region's copy is rejected with
/// the statements to look at, not retried, and the other regions copy.
#[tokio::test]
async fn a_copy_iam_refuses_names_the_role_statements_to_check() {
    let targets = targets_without_copies_failing_in("eu-west-1", "UnauthorizedOperation");
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "copying")]),
    );
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let outcome = run(&p, direct())
        .await
        .expect("a refusal a retry can't fix is an outcome, not an error");

    let refused = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(refused.action, Some(Action::Rejected));
    let reason = &refused.reasons[0];
    for statement in [
        "CopyFromOwnImages",
        "CopyCreatesMarkedImage",
        "DenyPublishAndFamilyTagKeys",
    ] {
        assert!(reason.contains(statement), "{statement} named: {reason}");
    }
    assert!(reason.contains(SOURCE_ID), "{reason}");
    for t in targets.iter().filter(|t| t.name != "eu-west-1") {
        assert_eq!(t.copy.num_calls(), 1, "{} still copied", t.name);
    }
}

/// A stack in a copy's region, handling the copy's own `available` event:
/// it reads the source in the source's region first. Returns the outcome
/// and the calls (source reads at home; deprecations, ModifyImageAttribute
/// and CopyImage in the copy's region).
async fn copy_event_in_its_region(source: Image) -> (Outcome, [usize; 4]) {
    let copy = existing_copy("us-west-2", ImageState::Available, false);
    let describe = mock!(Client::describe_images)
        .match_requests(|r| r.owners() == ["self"] && r.image_ids() == [copy_id("us-west-2")])
        .then_output(move || DescribeImagesOutput::builder().images(copy.clone()).build());
    let bpa = bpa("unblocked", ManagedBy::Account);
    // The copy is deprecated when its source is, before it is made public.
    let deprecate = mock!(Client::enable_image_deprecation)
        .match_requests(|r| {
            r.image_id() == Some(copy_id("us-west-2").as_str())
                && r.deprecate_at().map(|d| d.secs())
                    == Some(datetime!(2028-11-01 00:00 UTC).unix_timestamp())
        })
        .then_output(|| EnableImageDeprecationOutput::builder().build());
    let modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let tag = create_tags_ok();
    let copy_rule = mock!(Client::copy_image)
        .then_output(|| CopyImageOutput::builder().image_id("ami-99999999").build());
    let read_source = describe_owned(Some(source));
    let mut clients = vec![(
        "us-west-2",
        client(&[&describe, &bpa, &deprecate, &modify, &tag, &copy_rule]),
    )];
    for t in TARGETS.iter().filter(|t| **t != "us-west-2") {
        clients.push((t, client(&[&copy_rule])));
    }
    clients.push((HOME, client(&[&read_source, &copy_rule])));
    let p = publisher(copy_config(), clients);

    let outcome = run(
        &p,
        json!({"image_id": copy_id("us-west-2"), "region": "us-west-2"}),
    )
    .await
    .unwrap();

    let calls = [
        read_source.num_calls(),
        deprecate.num_calls(),
        modify.num_calls(),
        copy_rule.num_calls(),
    ];
    (outcome, calls)
}

#[tokio::test]
async fn a_copy_is_published_in_its_region_with_its_sources_deprecation_and_never_copied_onward() {
    let (outcome, [reads, deprecations, modify, copies]) =
        copy_event_in_its_region(public_source_copying()).await;

    assert_eq!(outcome.images[0].action, Action::Published);
    assert!(outcome.images[0].copies.is_empty());
    assert_eq!((reads, deprecations, modify, copies), (1, 1, 1, 0));
}

#[tokio::test]
async fn a_copy_of_a_source_no_longer_tagged_stays_private() {
    let untagged = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(tags(&[("publish:status", "withdrawn")])))
        .build();

    let (outcome, [reads, deprecations, modify, copies]) = copy_event_in_its_region(untagged).await;

    let image = &outcome.images[0];
    assert_eq!(
        (image.action, image.status),
        (Action::Rejected, Some(Status::Rejected))
    );
    assert!(
        image.reasons[0]
            .contains("its source us-east-1/ami-0a1b2c3d4e5f60001 is not tagged publish=public"),
        "{:?}",
        image.reasons
    );
    assert_eq!((reads, deprecations, modify, copies), (1, 0, 0, 0));
}

#[tokio::test]
async fn event_for_an_unconfigured_region_is_an_error_before_any_call() {
    let describe = describe_owned(Some(eligible().build()));
    let p = publisher(config(&[]), vec![(HOME, client(&[&describe]))]);

    let err = run(&p, json!({"image_id": SOURCE_ID, "region": "sa-east-1"}))
        .await
        .unwrap_err();

    assert!(matches!(err, Error::UnknownRegion { .. }), "{err}");
    assert_eq!(describe.num_calls(), 0);
}

#[tokio::test]
async fn sweep_asks_bpa_once_and_skips_amis_already_public_with_status() {
    let done = eligible()
        .image_id("ami-0d0d0d0d0d0d00001")
        .public(true)
        .set_tags(Some(tags(&[
            ("publish", "public"),
            ("publish:status", "public"),
            ("publish:reason", "public in us-east-1"),
        ])))
        .build();
    let todo: Vec<Image> = (2..5)
        .map(|n| {
            eligible()
                .image_id(format!("ami-0d0d0d0d0d0d0000{n}"))
                .build()
        })
        .collect();
    let mut listed = todo.clone();
    listed.push(done);
    let list = mock!(Client::describe_images)
        .match_requests(|r| {
            r.owners() == ["self"]
                && r.filters().iter().any(|f| {
                    f.name() == Some("tag-key") && f.values() == ["publish", "publish:status"]
                })
        })
        .then_output(move || {
            DescribeImagesOutput::builder()
                .set_images(Some(listed.clone()))
                .build()
        });
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let tag = create_tags_ok();
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&list, &bpa, &modify, &tag]))],
    );
    let sweep = sweep_event(HOME);

    let outcome = run(&p, sweep).await.unwrap();

    assert_eq!(outcome.images.len(), 3);
    assert!(outcome.images.iter().all(|i| i.action == Action::Published));
    assert_eq!(
        (list.num_calls(), bpa.num_calls(), modify.num_calls()),
        (1, 1, 3)
    );
}

#[tokio::test]
async fn untagged_ami_becoming_available_is_skipped_without_any_write() {
    let image = eligible()
        .set_tags(Some(tags(&[("Name", "other")])))
        .build();

    let (outcome, calls) = run_owned(image, "unblocked").await;

    assert_eq!(outcome.images[0].action, Action::Skipped);
    assert_eq!(
        calls,
        (0, 0, 0),
        "no BPA, ModifyImageAttribute or CreateTags call"
    );
}

#[tokio::test]
async fn sweep_near_its_deadline_leaves_the_amis_to_the_next_sweep() {
    let todo: Vec<Image> = (2..5)
        .map(|n| {
            eligible()
                .image_id(format!("ami-0d0d0d0d0d0d0000{n}"))
                .build()
        })
        .collect();
    let list = mock!(Client::describe_images).then_output(move || {
        DescribeImagesOutput::builder()
            .set_images(Some(todo.clone()))
            .build()
    });
    let modify = make_public_ok();
    let p = publisher(config(&[]), vec![(HOME, client(&[&list, &modify]))]);
    let sweep = sweep_event(HOME);
    let deadline = std::time::SystemTime::now() + Duration::from_secs(5);

    let outcome = p.handle_until(&sweep, Some(deadline)).await.unwrap();

    assert_eq!((outcome.images.len(), outcome.deferred), (0, 3));
    assert_eq!(modify.num_calls(), 0);
}

#[tokio::test]
async fn the_source_stack_publishes_available_copies_and_names_one_blocked_by_bpa() {
    // Every copy available and private; image block public access is on in
    // eu-west-1. The source's own stack finishes the job in every region.
    let blocked = "eu-west-1";
    let regions: Vec<(Region, Rule, Rule, Rule, Rule)> = TARGETS
        .iter()
        .map(|t| {
            let copy = existing_copy(t, ImageState::Available, false);
            let state = if *t == blocked {
                "block-new-sharing"
            } else {
                "unblocked"
            };
            (
                target_region(t, Some(copy), copy_ok(t)),
                bpa(state, ManagedBy::Account),
                mock!(Client::enable_image_deprecation)
                    .then_output(|| EnableImageDeprecationOutput::builder().build()),
                mock!(Client::modify_image_attribute)
                    .then_output(|| ModifyImageAttributeOutput::builder().build()),
                create_tags_ok(),
            )
        })
        .collect();
    let describe = describe_owned(Some(public_source_copying()));
    let tag = create_tags_expecting(&[("publish:status", "copying")]);
    let mut clients = vec![(HOME, client(&[&describe, &tag]))];
    for (r, bpa, deprecate, modify, tag) in &regions {
        clients.push((
            r.name,
            client(&[&r.find, &r.copy, bpa, deprecate, modify, tag]),
        ));
    }
    let p = publisher(copy_config(), clients);

    let outcome = run(&p, direct()).await.unwrap();

    for (r, _, deprecate, modify, tag) in &regions {
        let expected = if r.name == blocked {
            (0, 0, 1)
        } else {
            (1, 1, 1)
        };
        assert_eq!(
            (
                r.name,
                deprecate.num_calls(),
                modify.num_calls(),
                tag.num_calls()
            ),
            (r.name, expected.0, expected.1, expected.2),
            "deprecation, ModifyImageAttribute, status tags on the copy"
        );
        assert_eq!(r.copy.num_calls(), 0);
    }
    let image = &outcome.images[0];
    assert_eq!(image.status, Some(Status::Copying));
    let eu = image
        .copies
        .iter()
        .find(|c| c.region.as_str() == blocked)
        .unwrap();
    assert_eq!(
        (eu.action, eu.status, eu.public),
        (Some(Action::Rejected), Some(Status::Rejected), false)
    );
    assert!(
        eu.reasons[0].contains("image block public access"),
        "{:?}",
        eu.reasons
    );
    let published = image
        .copies
        .iter()
        .filter(|c| c.action == Some(Action::Published))
        .count();
    assert_eq!(published, TARGETS.len() - 1);
}

#[tokio::test]
async fn another_accounts_public_ami_tagged_here_is_never_copied() {
    let foreign = eligible().owner_id("137112412989").public(true).build();
    let targets: Vec<Region> = TARGETS
        .iter()
        .map(|t| target_region(t, None, copy_ok(t)))
        .collect();
    let describe_shared = describe_any(Some(foreign.clone()));
    let (modify, tag) = (
        make_public_ok(),
        create_tags_expecting(&[("publish:status", "rejected")]),
    );
    let describe_self = describe_owned(None);
    let mut clients = vec![(
        HOME,
        client(&[&describe_self, &describe_shared, &modify, &tag]),
    )];
    for t in &targets {
        clients.push((t.name, client(&[&t.find, &t.copy])));
    }
    let p = publisher(copy_config(), clients);

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(outcome.images[0].action, Action::Rejected);
    let copy_calls: usize = targets
        .iter()
        .map(|t| t.find.num_calls() + t.copy.num_calls())
        .sum();
    assert_eq!((copy_calls, modify.num_calls()), (0, 0));
}

#[tokio::test]
async fn no_copy_is_started_when_the_source_could_not_be_made_public() {
    let targets: Vec<Region> = TARGETS
        .iter()
        .map(|t| target_region(t, None, copy_ok(t)))
        .collect();
    let bpa = bpa("unblocked", ManagedBy::Account);
    // BPA turned on between the read and the write: refused, for good.
    let modify = mock!(Client::modify_image_attribute).then_error(|| {
        ModifyImageAttributeError::generic(
            ErrorMetadata::builder()
                .code("OperationNotPermitted")
                .message("block public access")
                .build(),
        )
    });
    let tag = create_tags_expecting(&[("publish:status", "rejected")]);
    let p = source_publisher(eligible().build(), &targets, &[&bpa, &modify, &tag]);

    let outcome = run(&p, direct()).await.unwrap();

    let image = &outcome.images[0];
    assert_eq!(image.status, Some(Status::Rejected));
    assert!(
        image.reasons[0].contains("OperationNotPermitted"),
        "{:?}",
        image.reasons
    );
    let copy_calls: usize = targets.iter().map(|t| t.copy.num_calls()).sum();
    assert_eq!(copy_calls, 0);
}

/// The copies in eu-west-1 as a run sees them, the rest public; `copy`
/// answers CopyImage there. Returns the outcome and, at home, the number of
/// generation tags written.
async fn heal(eu_copies: Vec<Image>, eu_rules: &[&Rule]) -> (Outcome, usize) {
    let mut regions = Vec::new();
    for t in TARGETS {
        let found = if t == "eu-west-1" {
            eu_copies.clone()
        } else {
            vec![existing_copy(t, ImageState::Available, true)]
        };
        let find = mock!(Client::describe_images)
            .match_requests(|r| {
                r.filters()
                    .iter()
                    .any(|f| f.name() == Some("tag:publish:source"))
            })
            .then_output(move || {
                DescribeImagesOutput::builder()
                    .set_images(Some(found.clone()))
                    .build()
            });
        regions.push((t, find));
    }
    let describe = describe_owned(Some(public_source_copying()));
    let generation = mock!(Client::create_tags)
        .match_requests(|r| {
            r.tags()
                .iter()
                .any(|t| t.key() == Some("publish:generation"))
        })
        .then_output(|| CreateTagsOutput::builder().build());
    let tag = create_tags_ok();
    let mut clients = vec![(HOME, client(&[&describe, &generation, &tag]))];
    for (t, find) in &regions {
        let mut rules: Vec<&Rule> = vec![find];
        if *t == "eu-west-1" {
            rules.extend_from_slice(eu_rules);
        }
        clients.push((t, client(&rules)));
    }
    let p = publisher(copy_config(), clients);
    let outcome = run(&p, direct()).await.unwrap();
    (outcome, generation.num_calls())
}

/// CopyImage in eu-west-1 answering `id` for the token of `generation`.
fn copy_answers(generation: u32, id: &'static str) -> Rule {
    mock!(Client::copy_image)
        .match_requests(move |r| {
            r.client_token() == Some(&format!("{HOME}/{SOURCE_ID}/eu-west-1/{generation}"))
        })
        .then_output(move || CopyImageOutput::builder().image_id(id).build())
}

const NEW_COPY: &str = "ami-0c0c0c0c0c0c09999";

/// DescribeImages of the new copy by id: pending.
fn new_copy_pending() -> Rule {
    mock!(Client::describe_images)
        .match_requests(|r| r.image_ids() == [NEW_COPY])
        .then_output(|| {
            let copy = existing_copy_with_id(NEW_COPY, "eu-west-1", ImageState::Pending, false);
            DescribeImagesOutput::builder().images(copy).build()
        })
}

#[tokio::test]
async fn a_failed_copy_is_replaced_under_a_new_token_and_only_once() {
    let failed = existing_copy("eu-west-1", ImageState::Failed, false);
    // EC2 answers the old token with the failed copy, a new one with a new copy.
    let (old, new, seen) = (
        copy_answers(0, "ami-0c0c0c0c0c0c00001"),
        copy_answers(1, NEW_COPY),
        new_copy_pending(),
    );

    let (outcome, generations) = heal(vec![failed], &[&old, &new, &seen]).await;

    let eu = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(
        (eu.started, eu.image_id.as_ref().map(|i| i.as_str())),
        (true, Some(NEW_COPY))
    );
    assert_eq!((old.num_calls(), new.num_calls(), generations), (1, 1, 1));
    assert_eq!(outcome.images[0].status, Some(Status::Copying));
}

#[tokio::test]
async fn a_copy_gone_from_ec2_is_replaced_when_ec2_answers_its_token_with_it() {
    // No copy listed; the old token's copy was deregistered (an empty answer by id).
    let gone = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids() == ["ami-0c0c0c0c0c0c00001"])
        .then_output(|| DescribeImagesOutput::builder().build());
    let (old, new, seen) = (
        copy_answers(0, "ami-0c0c0c0c0c0c00001"),
        copy_answers(1, NEW_COPY),
        new_copy_pending(),
    );

    let (outcome, generations) = heal(vec![], &[&gone, &old, &new, &seen]).await;

    let eu = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(eu.image_id.as_ref().map(|i| i.as_str()), Some(NEW_COPY));
    assert_eq!((gone.num_calls(), new.num_calls(), generations), (1, 1, 1));
}

#[tokio::test]
async fn a_token_conflict_is_resolved_with_a_new_token_not_an_error() {
    let conflict = mock!(Client::copy_image)
        .match_requests(|r| r.client_token() == Some(&format!("{HOME}/{SOURCE_ID}/eu-west-1/0")))
        .then_error(|| {
            CopyImageError::generic(
                ErrorMetadata::builder()
                    .code("IdempotentParameterMismatch")
                    .message("The request uses the same client token as a previous, but non-identical request.")
                    .build(),
            )
        });
    let (new, seen) = (copy_answers(1, NEW_COPY), new_copy_pending());

    let (outcome, generations) = heal(vec![], &[&conflict, &new, &seen]).await;

    let eu = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!((eu.started, eu.error.as_deref()), (true, None));
    assert_eq!(
        (conflict.num_calls(), new.num_calls(), generations),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_live_copy_found_by_its_tag_is_kept_and_nothing_is_copied() {
    let live = existing_copy("eu-west-1", ImageState::Pending, false);
    let failed = existing_copy_with_id(
        "ami-0d0d0d0d0d0d00001",
        "eu-west-1",
        ImageState::Failed,
        false,
    );
    let any_copy = mock!(Client::copy_image)
        .then_output(|| CopyImageOutput::builder().image_id(NEW_COPY).build());

    let (outcome, generations) = heal(vec![failed, live], &[&any_copy]).await;

    let eu = outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(
        eu.image_id.as_ref().map(|i| i.as_str()),
        Some(copy_id("eu-west-1").as_str())
    );
    assert_eq!(
        (any_copy.num_calls(), generations),
        (0, 0),
        "exactly one live copy per region"
    );
}

// ---- take-down ----

/// ModifyImageAttribute removing the group `all` (and adding nothing) from `id`.
fn make_private_ok(id: String) -> Rule {
    mock!(Client::modify_image_attribute)
        .match_requests(move |r| {
            r.image_id() == Some(id.as_str())
                && r.launch_permission().is_some_and(|lp| {
                    lp.add().is_empty()
                        && lp.remove().len() == 1
                        && lp.remove()[0].group() == Some(&PermissionGroup::All)
                })
        })
        .then_output(|| ModifyImageAttributeOutput::builder().build())
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

/// Takes down a public source and its public copies in two regions with
/// `payload`; every client answers only its exact calls, in order
/// (Sequential), so any other call (BPA, CopyImage, deprecation, a second
/// tag write) fails the test. The source ends with `status`, each copy
/// private with `copy_status`.
async fn take_down(source: Image, payload: serde_json::Value, status: Status, copy_status: Status) {
    let targets = ["us-west-2", "eu-west-1"];
    let home = [
        describe_owned(Some(source)),
        make_private_ok(SOURCE_ID.to_owned()),
        create_tags_on(SOURCE_ID.to_owned(), status.as_str()),
    ];
    let copies: Vec<[Rule; 3]> = targets
        .iter()
        .map(|t| {
            [
                find_copy(Some(existing_copy(t, ImageState::Available, true))),
                make_private_ok(copy_id(t)),
                create_tags_on(copy_id(t), copy_status.as_str()),
            ]
        })
        .collect();
    let mut clients = vec![(HOME, mock_client!(aws_sdk_ec2, RuleMode::Sequential, &home))];
    for (t, rules) in targets.iter().zip(&copies) {
        clients.push((t, mock_client!(aws_sdk_ec2, RuleMode::Sequential, rules)));
    }
    let p = publisher(
        config(&[("TARGET_REGIONS", "us-west-2,eu-west-1")]),
        clients,
    );

    let outcome = run(&p, payload).await.unwrap();

    for rule in home.iter().chain(copies.iter().flatten()) {
        assert_eq!(rule.num_calls(), 1, "each expected call exactly once");
    }
    let image = &outcome.images[0];
    assert_eq!(
        (image.action, image.status),
        (Action::Withdrawn, Some(status))
    );
    assert!(
        image
            .copies
            .iter()
            .all(|c| !c.public && c.status == Some(copy_status)),
        "{:?}",
        image.copies
    );
}

#[tokio::test]
async fn untagging_makes_the_source_and_its_copies_in_two_regions_private() {
    let untagged = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(tags(&[
            ("Name", "demo"),
            ("publish:status", "public"),
        ])))
        .build();

    take_down(untagged, direct(), Status::Withdrawn, Status::Withdrawn).await;
}

#[tokio::test]
async fn an_unpublish_request_holds_a_tagged_source_and_its_copies() {
    let tagged = public_source_copying();
    let request = json!({"image_id": SOURCE_ID, "action": "unpublish"});

    // The copies follow their source: withdrawn while it is held, published
    // again with it once its owner releases it.
    take_down(tagged, request, Status::Held, Status::Withdrawn).await;
}

#[tokio::test]
async fn an_ami_the_function_did_not_make_public_is_not_taken_down() {
    // Public, untagged, no status tag: never the function's.
    let foreign_public = eligible()
        .public(true)
        .set_tags(Some(tags(&[("Name", "demo")])))
        .build();

    let (outcome, (bpa, modify, tag)) = run_owned(foreign_public, "unblocked").await;

    assert_eq!(outcome.images[0].action, Action::Skipped);
    assert_eq!((bpa, modify, tag), (0, 0, 0));
}

// ---- fresh facts ----

#[tokio::test]
async fn a_sweep_reads_an_ami_again_before_making_it_public_on_an_old_listing() {
    // Listed tagged; untagged by its owner since; the listing is too old.
    let listed = eligible().build();
    let now = eligible().set_tags(Some(tags(&[("Name", "demo")]))).build();
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.image_ids().is_empty())
        .then_output(move || {
            DescribeImagesOutput::builder()
                .images(listed.clone())
                .build()
        });
    let reread = describe_owned(Some(now));
    let bpa = bpa("unblocked", ManagedBy::Account);
    let modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let tag = create_tags_ok();
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&list, &reread, &bpa, &modify, &tag]))],
    )
    .with_fresh_facts(Duration::ZERO);

    let outcome = run(&p, sweep_event(HOME)).await.unwrap();

    assert_eq!(outcome.images[0].action, Action::Skipped, "{outcome:?}");
    assert_eq!(
        (list.num_calls(), reread.num_calls(), modify.num_calls()),
        (1, 1, 0),
        "read again, and not made public"
    );
}

// ---- target regions checked up front ----

/// A first publish with copies to every target; `eu_rules` answer first in
/// eu-west-1. Returns the outcome and the CopyImage calls there.
async fn first_publish_with(source: Image, eu_rules: &[&Rule]) -> (Outcome, usize) {
    let eu_copy = copy_ok("eu-west-1");
    let mut targets = Vec::new();
    for t in TARGETS {
        let copy = if t == "eu-west-1" {
            eu_copy.clone()
        } else {
            copy_ok(t)
        };
        targets.push(target_region(t, None, copy));
    }
    let describe = describe_owned(Some(source));
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_ok(),
    );
    let mut clients = vec![(HOME, client(&[&describe, &bpa, &modify, &tag]))];
    for t in &targets {
        let mut rules: Vec<&Rule> = if t.name == "eu-west-1" {
            eu_rules.to_vec()
        } else {
            vec![]
        };
        rules.extend([&t.find, &t.copy]);
        clients.push((t.name, client(&rules)));
    }
    let p = publisher(copy_config(), clients);
    let outcome = run(&p, direct()).await.unwrap();
    let eu_calls = targets
        .iter()
        .find(|t| t.name == "eu-west-1")
        .unwrap()
        .copy
        .num_calls();
    (outcome, eu_calls)
}

fn eu_copy(outcome: &Outcome) -> &ami_publisher::report::CopyOutcome {
    outcome.images[0]
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1")
        .unwrap()
}

#[tokio::test]
async fn no_copy_into_a_region_whose_ebs_encryption_by_default_would_encrypt_it() {
    let on = encrypts_by_default(true);

    let (outcome, eu_calls) = first_publish_with(eligible().build(), &[&on]).await;

    let eu = eu_copy(&outcome);
    assert_eq!(
        (eu.action, eu_calls, eu.started),
        (Some(Action::Rejected), 0, false)
    );
    assert!(
        eu.reasons[0].contains("EBS encryption by default is on in eu-west-1"),
        "{:?}",
        eu.reasons
    );
    let started = outcome.images[0]
        .copies
        .iter()
        .filter(|c| c.started)
        .count();
    assert_eq!(started, TARGETS.len() - 1, "the other regions copy");
}

#[tokio::test]
async fn no_copy_into_a_region_without_public_ami_headroom() {
    let full = count_public(5);

    let (outcome, eu_calls) = first_publish_with(eligible().build(), &[&full]).await;

    let eu = eu_copy(&outcome);
    assert_eq!((eu.action, eu_calls), (Some(Action::Rejected), 0));
    assert!(
        eu.reasons[0].contains("quota in eu-west-1 is reached: 5 public of 5"),
        "{:?}",
        eu.reasons
    );
    let eu_quota = outcome
        .quotas
        .iter()
        .find(|q| q.region.as_str() == "eu-west-1")
        .unwrap();
    assert_eq!(eu_quota.headroom, 0);
}

#[tokio::test]
async fn an_instance_store_ami_is_published_in_its_region_but_not_copied() {
    let instance_store = eligible()
        .root_device_type(aws_sdk_ec2::types::DeviceType::InstanceStore)
        .set_block_device_mappings(None)
        .build();

    let (outcome, eu_calls) = first_publish_with(instance_store, &[]).await;

    let image = &outcome.images[0];
    assert_eq!(image.action, Action::Published);
    assert_eq!(eu_calls, 0);
    for copy in &image.copies {
        assert_eq!(copy.action, Some(Action::Rejected), "{copy:?}");
        assert!(
            copy.reasons[0].contains("instance-store AMIs are not copied"),
            "{:?}",
            copy.reasons
        );
    }
}

// ---- deregistration protection ----

#[tokio::test]
async fn a_published_ami_is_protected_from_deregistration_and_the_marker_written() {
    let describe = describe_owned(Some(eligible().build()));
    let (bpa, modify) = (bpa("unblocked", ManagedBy::Account), make_public_ok());
    let protect = mock!(Client::enable_image_deregistration_protection)
        .match_requests(|r| r.image_id() == Some(SOURCE_ID) && r.with_cooldown() == Some(false))
        .then_output(|| {
            aws_sdk_ec2::operation::enable_image_deregistration_protection::EnableImageDeregistrationProtectionOutput::builder().build()
        });
    let tag = create_tags_expecting(&[("publish:status", "public"), ("publish:protected", "true")]);
    let p = publisher(
        config(&[("PROTECT_PUBLIC", "true")]),
        vec![(HOME, client(&[&describe, &bpa, &modify, &protect, &tag]))],
    );

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(outcome.images[0].action, Action::Published);
    assert_eq!(
        (modify.num_calls(), protect.num_calls(), tag.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_take_down_removes_only_the_protection_the_function_set() {
    let untagged = |marker: &str| {
        eligible()
            .public(true)
            .deregistration_protection("enabled-without-cooldown")
            .set_tags(Some(tags(&[
                ("publish:status", "public"),
                ("publish:protected", marker),
            ])))
            .build()
    };
    for (marker, expected) in [("true", 1), ("false", 0)] {
        let describe = describe_owned(Some(untagged(marker)));
        let private = make_private_ok(SOURCE_ID.to_owned());
        let unprotect = mock!(Client::disable_image_deregistration_protection)
            .match_requests(|r| r.image_id() == Some(SOURCE_ID))
            .then_output(|| {
                aws_sdk_ec2::operation::disable_image_deregistration_protection::DisableImageDeregistrationProtectionOutput::builder().build()
            });
        let tag = create_tags_ok();
        let p = publisher(
            config(&[("PROTECT_PUBLIC", "true")]),
            vec![(HOME, client(&[&describe, &private, &unprotect, &tag]))],
        );

        let outcome = run(&p, direct()).await.unwrap();

        assert_eq!(outcome.images[0].action, Action::Withdrawn);
        assert_eq!(
            (private.num_calls(), unprotect.num_calls()),
            (1, expected),
            "marker {marker}"
        );
    }
}

// ---- a public AMI stays the function's to take down ----

fn unauthorized() -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("UnauthorizedOperation")
        .message("injected")
        .build()
}

fn unprotect_ok() -> Rule {
    mock!(Client::disable_image_deregistration_protection)
        .match_requests(|r| r.image_id() == Some(SOURCE_ID))
        .then_output(|| {
            aws_sdk_ec2::operation::disable_image_deregistration_protection::DisableImageDeregistrationProtectionOutput::builder().build()
        })
}

#[tokio::test]
async fn a_step_refused_after_the_publish_leaves_the_ami_in_error_not_rejected() {
    // Public now, its protection refused for good: `rejected` would make it
    // look like an AMI the function never published, never to be taken
    // down when its tag is removed.
    let describe = describe_owned(Some(eligible().build()));
    let (bpa, modify) = (bpa("unblocked", ManagedBy::Account), make_public_ok());
    let protect = mock!(Client::enable_image_deregistration_protection).then_error(|| {
        aws_sdk_ec2::operation::enable_image_deregistration_protection::EnableImageDeregistrationProtectionError::generic(unauthorized())
    });
    let tag = create_tags_expecting(&[("publish:status", "error")]);
    let p = publisher(
        config(&[("PROTECT_PUBLIC", "true")]),
        vec![(HOME, client(&[&describe, &bpa, &modify, &protect, &tag]))],
    );

    let outcome = run(&p, direct()).await.expect("a refusal is an outcome");

    assert_eq!(outcome.images[0].status, Some(Status::Error), "{outcome:?}");
    assert_eq!(
        (modify.num_calls(), protect.num_calls(), tag.num_calls()),
        (1, 1, 1)
    );
}

#[tokio::test]
async fn a_copy_a_take_down_could_not_make_private_leaves_the_source_in_error() {
    let untagged = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(tags(&[
            ("Name", "demo"),
            ("publish:status", "public"),
        ])))
        .build();
    let home = [
        describe_owned(Some(untagged)),
        make_private_ok(SOURCE_ID.to_owned()),
        create_tags_on(SOURCE_ID.to_owned(), "error"),
    ];
    let west = [
        find_copy(Some(existing_copy(
            "us-west-2",
            ImageState::Available,
            true,
        ))),
        make_private_ok(copy_id("us-west-2")),
        create_tags_on(copy_id("us-west-2"), "withdrawn"),
    ];
    let eu = [
        find_copy(Some(existing_copy(
            "eu-west-1",
            ImageState::Available,
            true,
        ))),
        mock!(Client::modify_image_attribute)
            .then_error(|| ModifyImageAttributeError::generic(unauthorized())),
        create_tags_on(copy_id("eu-west-1"), "error"),
    ];
    let p = publisher(
        config(&[("TARGET_REGIONS", "us-west-2,eu-west-1")]),
        vec![
            (HOME, mock_client!(aws_sdk_ec2, RuleMode::Sequential, &home)),
            (
                "us-west-2",
                mock_client!(aws_sdk_ec2, RuleMode::Sequential, &west),
            ),
            (
                "eu-west-1",
                mock_client!(aws_sdk_ec2, RuleMode::Sequential, &eu),
            ),
        ],
    );

    let outcome = run(&p, direct()).await.expect("a refusal is an outcome");

    for rule in home.iter().chain(&west).chain(&eu) {
        assert_eq!(rule.num_calls(), 1, "each expected call exactly once");
    }
    let image = &outcome.images[0];
    // Not `withdrawn`: a sweep takes up a source in error again, and with it
    // the copy still public in eu-west-1.
    assert_eq!(image.status, Some(Status::Error), "{image:?}");
    let eu_copy = image
        .copies
        .iter()
        .find(|c| c.region.as_str() == "eu-west-1");
    assert!(eu_copy.is_some_and(|c| c.public), "{:?}", image.copies);
}

#[tokio::test]
async fn a_withdrawn_ami_still_protected_by_the_function_gets_its_protection_off() {
    // Made private by an earlier take-down whose unprotect call failed.
    let withdrawn = eligible()
        .deregistration_protection("enabled-without-cooldown")
        .set_tags(Some(tags(&[
            ("publish:status", "withdrawn"),
            ("publish:protected", "true"),
        ])))
        .build();
    let describe = describe_owned(Some(withdrawn));
    let unprotect = unprotect_ok();
    let tag = create_tags_expecting(&[("publish:protected", "false")]);
    let rules = [describe, unprotect, tag];
    let p = publisher(
        config(&[("PROTECT_PUBLIC", "true")]),
        vec![(
            HOME,
            mock_client!(aws_sdk_ec2, RuleMode::Sequential, &rules),
        )],
    );

    let outcome = run(&p, direct()).await.unwrap();

    for rule in &rules {
        assert_eq!(rule.num_calls(), 1, "{outcome:?}");
    }
}

#[tokio::test]
async fn make_public_sends_nothing_once_its_turn_comes_after_the_facts_expire() {
    let modify = make_public_ok();
    let sdk = client(&[&modify]);
    let ec2 = ami_publisher::ec2::Client::new(sdk, ami_publisher::pace::Pace::new(true));
    let expired = std::time::Instant::now() - Duration::from_secs(1);

    let refused = ami_publisher::ec2::make_public(
        &ec2,
        &region(HOME),
        &ami_publisher::model::ImageId::parse(SOURCE_ID).unwrap(),
        expired,
    )
    .await
    .unwrap_err();

    assert_eq!(refused.code, ami_publisher::ec2::FACTS_TOO_OLD);
    assert_eq!(modify.num_calls(), 0);
}

#[tokio::test]
async fn a_family_listing_keeps_only_the_exact_value_not_what_ec2s_wildcards_match() {
    // EC2 reads `*` in a filter value as a wildcard: `tag:family=web*` also
    // answers `web-2`'s AMIs, which rotation must never count or retire.
    let image = |id: &str, family: &str| {
        eligible()
            .image_id(id)
            .set_tags(Some(tags(&[("family", family)])))
            .build()
    };
    let listing = mock!(Client::describe_images).then_output(move || {
        DescribeImagesOutput::builder()
            .images(image("ami-0000000000000000a", "web*"))
            .images(image("ami-0000000000000000b", "web-2"))
            .build()
    });
    let ec2 =
        ami_publisher::ec2::Client::new(client(&[&listing]), ami_publisher::pace::Pace::new(false));

    let family =
        ami_publisher::ec2::list_owned_images_tagged(&ec2, &region(HOME), "family", "web*")
            .await
            .unwrap();

    let ids: Vec<&str> = family.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["ami-0000000000000000a"]);
}

#[tokio::test]
async fn service_quotas_unavailable_for_now_is_an_error_to_retry_not_a_quota_of_5() {
    // Assuming AWS's default of 5 would reject an AMI a raised quota has
    // room for: a failure a retry may fix is retried instead.
    let unavailable = mock!(aws_sdk_servicequotas::Client::get_service_quota).then_error(|| {
        aws_sdk_servicequotas::operation::get_service_quota::GetServiceQuotaError::generic(
            ErrorMetadata::builder()
                .code("ServiceUnavailable")
                .message("injected")
                .build(),
        )
    });
    let quotas = mock_client!(
        aws_sdk_servicequotas,
        RuleMode::MatchAny,
        &[&unavailable],
        |c| c.retry_config(aws_sdk_servicequotas::config::retry::RetryConfig::disabled())
    );
    let describe = describe_owned(Some(eligible().build()));
    let (bpa, modify, tag) = (
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
        create_tags_ok(),
    );
    let clients =
        Clients::from_clients([(region(HOME), client(&[&describe, &bpa, &modify, &tag]))])
            .with_quota_clients([(region(HOME), quotas)]);
    let p = Publisher::new(config(&[]), clients).with_clock(now);

    let result = run(&p, direct()).await;

    assert!(result.is_err(), "{result:?}");
    assert_eq!(modify.num_calls(), 0);
    assert!(unavailable.num_calls() >= 1);
}

#[tokio::test]
async fn a_target_region_that_cannot_be_listed_does_not_stop_the_sweep() {
    // us-west-2 refuses every call: for good (an opt-in region not enabled)
    // or for now. The home AMI is published and eu-west-1 gets its copy
    // either way; only a failure a retry may fix fails the invocation.
    for (code, retried) in [("OptInRequired", false), ("ServiceUnavailable", true)] {
        let list = mock!(Client::describe_images)
            .match_requests(|r| r.filters().iter().any(|f| f.name() == Some("tag-key")))
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .images(eligible().build())
                    .build()
            });
        let (bpa, modify, tag) = (
            bpa("unblocked", ManagedBy::Account),
            make_public_ok(),
            create_tags_ok(),
        );
        let refusing = mock!(Client::describe_images).then_error(move || {
            aws_sdk_ec2::operation::describe_images::DescribeImagesError::generic(
                ErrorMetadata::builder()
                    .code(code)
                    .message("injected")
                    .build(),
            )
        });
        let no_copies =
            mock!(Client::describe_images).then_output(|| DescribeImagesOutput::builder().build());
        let eu_copy = copy_ok("eu-west-1");
        let p = publisher(
            config(&[("TARGET_REGIONS", "us-west-2,eu-west-1")]),
            vec![
                (HOME, client(&[&list, &bpa, &modify, &tag])),
                ("us-west-2", client(&[&refusing])),
                ("eu-west-1", client(&[&eu_copy, &no_copies])),
            ],
        );

        let result = run(&p, sweep_event(HOME)).await;

        assert_eq!(modify.num_calls(), 1, "{code}: the home AMI is published");
        assert_eq!(eu_copy.num_calls(), 1, "{code}: eu-west-1 gets its copy");
        match result {
            Ok(outcome) if !retried => {
                assert_eq!(outcome.unlisted_regions.len(), 1, "{outcome:?}");
                assert_eq!(outcome.unlisted_regions[0].region.as_str(), "us-west-2");
            }
            Err(Error::Incomplete { failures }) if retried => {
                assert!(
                    failures.iter().any(|f| f.contains("us-west-2")),
                    "{failures:?}"
                );
            }
            other => panic!("{code}: {other:?}"),
        }
    }
}

// ---- rotation finishes ----

#[tokio::test]
async fn a_retirement_that_failed_is_finished_by_the_next_run() {
    const OLD: &str = "ami-0a0a0a0a0a0a0a0a1";
    let family = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("publish", "public"), ("family", "base")];
        pairs.extend_from_slice(extra);
        tags(&pairs)
    };
    let old = eligible()
        .image_id(OLD)
        .public(true)
        .creation_date("2026-10-01T00:00:00.000Z")
        .set_tags(Some(family(&[("publish:status", "public")])))
        .build();
    let listing = |new: Image| {
        let old = old.clone();
        mock!(Client::describe_images)
            .match_requests(|r| r.filters().iter().any(|f| f.name() == Some("tag:family")))
            .then_output(move || {
                DescribeImagesOutput::builder()
                    .images(old.clone())
                    .images(new.clone())
                    .build()
            })
    };
    let retire_old = |ok: bool| {
        let rule = mock!(Client::modify_image_attribute).match_requests(|r| {
            r.image_id() == Some(OLD)
                && r.launch_permission()
                    .is_some_and(|lp| lp.remove().len() == 1)
        });
        if ok {
            rule.then_output(|| ModifyImageAttributeOutput::builder().build())
        } else {
            rule.then_error(|| {
                ModifyImageAttributeError::generic(
                    ErrorMetadata::builder()
                        .code("ServiceUnavailable")
                        .message("injected")
                        .build(),
                )
            })
        }
    };
    let vars = [("KEEP_PUBLIC_PER_FAMILY", "1")];

    // First run: the new AMI is made public; retiring the old one fails.
    let new = eligible().set_tags(Some(family(&[]))).build();
    let (describe, list, bpa, modify) = (
        describe_owned(Some(new.clone())),
        listing(new),
        bpa("unblocked", ManagedBy::Account),
        make_public_ok(),
    );
    let (failing, tag) = (retire_old(false), create_tags_on(SOURCE_ID.into(), "error"));
    let p = publisher(
        config(&vars),
        vec![(
            HOME,
            client(&[&describe, &list, &bpa, &modify, &failing, &tag]),
        )],
    );
    let first = run(&p, direct()).await;
    assert!(matches!(first, Err(Error::Incomplete { .. })), "{first:?}");
    assert_eq!((modify.num_calls(), tag.num_calls()), (1, 1));

    // The retry: the new AMI is public, in `error`; the retirement is done.
    let public_in_error = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(family(&[("publish:status", "error")])))
        .build();
    let (describe, list) = (
        describe_owned(Some(public_in_error.clone())),
        listing(public_in_error),
    );
    let (retiring, old_tag, new_tag) = (
        retire_old(true),
        create_tags_on(OLD.into(), "retired"),
        create_tags_on(SOURCE_ID.into(), "public"),
    );
    let p = publisher(
        config(&vars),
        vec![(
            HOME,
            client(&[&describe, &list, &retiring, &old_tag, &new_tag]),
        )],
    );
    let second = run(&p, direct()).await.unwrap();

    assert_eq!(
        (
            retiring.num_calls(),
            old_tag.num_calls(),
            new_tag.num_calls()
        ),
        (1, 1, 1),
        "{second:?}"
    );
}

#[tokio::test]
async fn a_read_refused_for_good_is_rejected_with_what_to_do_and_not_retried() {
    let describe = describe_owned(Some(eligible().build()));
    let bpa = mock!(Client::get_image_block_public_access_state).then_error(|| {
        aws_sdk_ec2::operation::get_image_block_public_access_state::GetImageBlockPublicAccessStateError::generic(unauthorized())
    });
    let tag = create_tags_expecting(&[("publish:status", "rejected")]);
    let modify = make_public_ok();
    let p = publisher(
        config(&[]),
        vec![(HOME, client(&[&describe, &bpa, &modify, &tag]))],
    );

    let outcome = run(&p, direct()).await.expect("an outcome, not a retry");

    assert_eq!(outcome.images[0].status, Some(Status::Rejected));
    assert_eq!((modify.num_calls(), tag.num_calls()), (0, 1));
}

#[tokio::test]
async fn finishing_a_rotation_never_retires_the_ami_it_runs_for() {
    // X is public in `error` and, since KEEP was lowered, older than the
    // one release its family keeps: the run for X must not make X private
    // and go on as if it were public (a newer release's run retires it).
    const NEWER: &str = "ami-0a0a0a0a0a0a0a0a2";
    let family_tags = |status: &str| {
        tags(&[
            ("publish", "public"),
            ("family", "base"),
            ("publish:status", status),
        ])
    };
    let x = eligible()
        .public(true)
        .deprecation_time(PUBLIC_DEPRECATION)
        .set_tags(Some(family_tags("error")))
        .build();
    let newer = eligible()
        .image_id(NEWER)
        .public(true)
        .creation_date("2026-11-20T00:00:00.000Z")
        .set_tags(Some(family_tags("public")))
        .build();
    let members = [x.clone(), newer];
    let list = mock!(Client::describe_images)
        .match_requests(|r| r.filters().iter().any(|f| f.name() == Some("tag:family")))
        .then_output(move || {
            DescribeImagesOutput::builder()
                .set_images(Some(members.to_vec()))
                .build()
        });
    let any_modify = mock!(Client::modify_image_attribute)
        .then_output(|| ModifyImageAttributeOutput::builder().build());
    let (describe, tag) = (describe_owned(Some(x)), create_tags_ok());
    let p = publisher(
        config(&[("KEEP_PUBLIC_PER_FAMILY", "1")]),
        vec![(HOME, client(&[&describe, &list, &any_modify, &tag]))],
    );

    let outcome = run(&p, direct()).await.unwrap();

    assert_eq!(list.num_calls(), 1, "the family is read: {outcome:?}");
    assert_eq!(any_modify.num_calls(), 0, "{outcome:?}");
}
